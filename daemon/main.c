/*
 * main.c - vmingestd: flags, config, privileges, then the loop.
 *
 * Start-up order: parse flags; load the config (or the embedded default);
 * make the state directory; drop root; block the signals the loop takes
 * through a signalfd; open the store (refusing a second daemon); start
 * the publisher and the HTTP endpoint; run the ingest loop; on SIGTERM
 * finish the batch, stop the publisher and HTTP, close the store, exit 0.
 *
 * Exit status: 0 clean stop, 1 configuration or start-up error, 2 usage.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

#include "config.h"
#include "control.h"
#include "http.h"
#include "ingest.h"
#include "log.h"
#include "normalize.h"
#include "privdrop.h"
#include "publish.h"
#include "retention.h"
#include "stats.h"
#include "store.h"

static const char usage_text[] =
"usage: vmingestd [-v] [-c FILE]\n"
"       vmingestd --check-config [-c FILE]\n"
"       vmingestd --dump-config [-c FILE]\n"
"\n"
"Drain the Maildir queues named in the configuration into the durable\n"
"LMDB log, one normalized record per delivered file, and publish each\n"
"record over ZeroMQ.  Runs in the foreground and logs to stderr with\n"
"syslog priority prefixes (systemd style).\n"
"\n"
"Options:\n"
"  -c, --config FILE   configuration file (see vmingestd.conf(5)); without\n"
"                      it an embedded default is used: state in\n"
"                      ./var/vmingest, queue \"default\" on ./var/maildir,\n"
"                      HTTP on 127.0.0.1:8425, PUB on tcp://127.0.0.1:8426,\n"
"                      replay on tcp://127.0.0.1:8427\n"
"      --check-config  parse the configuration and every queue's rules,\n"
"                      print what is wrong (FILE:LINE: ...), exit 0 or 1\n"
"      --dump-config   print the effective configuration, every key\n"
"  -v, --verbose       debug logging\n"
"  -V, --version       print the version and exit\n"
"  -h, --help          this text\n"
"\n"
"Signals:\n"
"  SIGTERM, SIGINT     finish and commit the current batch, exit 0\n"
"  SIGHUP              reload rules, topics, limits and batching; a file\n"
"                      or rules error keeps the running configuration\n"
"\n"
"Exit status: 0 clean stop or valid config, 1 configuration or start-up\n"
"error (another vmingestd on the store, unreadable store, bad rules),\n"
"2 usage error.\n"
"\n"
"See vmingestd(8), vmingestd.conf(5), vmingest(1).\n";

static void
usage(FILE *fp, int status)
{
	fputs(usage_text, fp);
	exit(status);
}

static void
on_ready(void *arg)
{
	const struct config *cf = arg;

	log_notice("ready: %zu queue(s), store %s, epoch %016llx", cf->n_queues,
	    cf->store.path, (unsigned long long)g_stats.epoch);
	sd_notify(0, "READY=1\nSTATUS=ingesting");
}

static int
check_rules(const struct config *cf)
{
	char	 err[2048];
	size_t	 i;
	int	 bad = 0;

	for (i = 0; i < cf->n_queues; i++) {
		struct rules *r;

		if (cf->queues[i].rules == NULL)
			continue;
		if ((r = rules_compile(cf->queues[i].rules, &cf->rules, err,
		    sizeof(err))) == NULL) {
			fprintf(stderr, "%s\n", err);
			bad = 1;
		}
		rules_free(r);
	}
	return bad;
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "check-config", no_argument, NULL, 'C' },
		{ "dump-config", no_argument, NULL, 'D' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	const char *cfpath = NULL;
	struct config *cf;
	struct store *st = NULL;
	struct publisher *pub = NULL;
	struct http *http = NULL;
	struct ingest *ing = NULL;
	struct control *ctl = NULL;
	struct retention *ret = NULL;
	char	 err[2048];
	int	 ch, check = 0, dump = 0, verbose = 0, rc;
	sigset_t mask;

	while ((ch = getopt_long(argc, argv, "c:vVh", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c': cfpath = optarg; break;
		case 'C': check = 1; break;
		case 'D': dump = 1; break;
		case 'v': verbose = 1; break;
		case 'V': printf("vmingestd %s\n", VMI_VERSION); return 0;
		case 'h': usage(stdout, 0); break;
		default: usage(stderr, 2);
		}
	}
	if (optind != argc)
		usage(stderr, 2);
	log_init("vmingestd", verbose);

	if ((cf = config_load(cfpath, err, sizeof(err))) == NULL) {
		fprintf(stderr, "vmingestd: %s\n", err);
		return 1;
	}
	if (dump) {
		config_dump(cf, stdout);
		config_free(cf);
		return 0;
	}
	normalize_init();
	if (check) {
		rc = check_rules(cf);
		if (rc == 0)
			printf("%s: ok\n", cfpath ? cfpath : "(embedded default)");
		config_free(cf);
		return rc;
	}

	if (privdrop_prepare_dir(cf, cf->daemon.state_dir, err, sizeof(err)) == -1 ||
	    privdrop(cf, err, sizeof(err)) == -1)
		log_fatalx("%s", err);

	/* the loop takes these through a signalfd; every thread inherits the mask */
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	signal(SIGPIPE, SIG_IGN);

	stats_init(cf);
	rc = store_open(&st, cf->store.path, cf->store.map_size, STORE_EXCL);
	if (rc == STORE_E_LOCKED)
		log_fatalx("store %s is in use by another vmingestd; refusing to "
		    "start a second one", cf->store.path);
	if (rc != 0)
		log_fatalx("store %s: %s", cf->store.path, store_strerror(rc));

	if (publisher_start(&pub, cf, st, err, sizeof(err)) != 0)
		log_fatalx("publish: %s", err);
	if (http_start(&http, cf, pub, err, sizeof(err)) != 0)
		log_fatalx("http: %s", err);
	if ((ing = ingest_new(cf, st, pub, err, sizeof(err))) == NULL)
		log_fatalx("%s", err);
	if ((ctl = control_start(ing, err, sizeof(err))) == NULL)
		log_warnx("%s; reprocess is not available", err);
	ret = retention_start(ing);
	ingest_set_ready_hook(ing, on_ready, cf);

	rc = ingest_run(ing);

	sd_notify(0, "STOPPING=1");
	control_free(ctl);	/* before ingest_free: it unhooks from the loop */
	retention_free(ret);
	ingest_free(ing);
	http_stop(http);
	publisher_stop(pub);
	store_close(st);
	config_free(cf);
	return rc;
}
