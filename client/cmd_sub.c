/*
 * cmd_sub.c - `vmingest sub`: subscribe through libvmingest-client and
 * print every record once, in order (JSON lines, a line for people, raw
 * files, or only a summary), optionally keeping a checkpoint.
 *
 * Exit status: 0 done (--count reached, or interrupted), 1 "not so" (no
 * record within --timeout, or the store's epoch changed), 2 usage,
 * configuration, key or checkpoint problems.
 *
 * SECURITY: records come from the daemon; what we print is JSON-escaped
 * by jansson, the line for people is escaped, raw files are written under
 * --raw-dir with names we make (SEQ.eml), never names from the message.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <zmq.h>

#include "cmd_common.h"
#include "cmds.h"
#include "log.h"
#include "record.h"
#include "vmingest-client.h"

static const char sub_usage[] =
"usage: vmingest sub [-c FILE | --endpoint E --replay-endpoint E]\n"
"                    [--topic PREFIX]... [--from-start | --from SEQ | --from-now]\n"
"                    [--checkpoint FILE] [--json | --summary | --raw-dir DIR]\n"
"                    [--count N] [--timeout SEC] [--stats] [--hwm N]\n"
"                    [--server-key FILE.pub --key FILE.key]\n"
"\n"
"Subscribe to vmingestd's records: every record of the chosen topics,\n"
"once, in seq order.  Records the live feed lost (slow consumer, late\n"
"start, reconnect, daemon restart) are fetched from the daemon's log\n"
"before anything newer is printed (docs/PROTOCOL.md).\n"
"\n"
"Options:\n"
"  -c, --config FILE      take the endpoints (and, if readable, the server's\n"
"                         CURVE key) from the daemon's configuration\n"
"  --endpoint E           the PUB endpoint (default tcp://127.0.0.1:8426)\n"
"  --replay-endpoint E    the replay endpoint (default tcp://127.0.0.1:8427)\n"
"  --topic PREFIX         topic prefix to receive (repeatable; default all),\n"
"                         e.g. --topic rn. --topic seismic.waveform\n"
"  --from-start           every record in the log, then the live ones\n"
"  --from SEQ             records with seq >= SEQ, then the live ones\n"
"  --from-now             only records committed from now on (default)\n"
"  --checkpoint FILE      keep the last processed position in FILE (written\n"
"                         atomically); if FILE exists, resume right after it\n"
"                         (overrides --from*).  At-least-once across crashes.\n"
"  --json                 one JSON object per line: the record with field\n"
"                         names as in `vmingest list --json`, plus topic_seq\n"
"                         (of the topic it arrived on) and delivered_topic\n"
"  --summary              print nothing per record; at exit one JSON line\n"
"                         with counts (records, first/last seq, gaps, ...)\n"
"  --raw-dir DIR          also write each raw message to DIR/SEQ.eml\n"
"  --count N              exit after N records\n"
"  --timeout SEC          exit 1 if no record arrives for SEC seconds\n"
"  --stats                at exit, write the subscriber's counters (records,\n"
"                         live, replayed, duplicates, gaps, resyncs) as one\n"
"                         JSON line to stderr\n"
"  --hwm N                receive high-water mark of the live socket\n"
"                         (messages; default libzmq's 1000)\n"
"  --server-key FILE.pub  the daemon's CURVE public key (vmingest keygen)\n"
"  --key FILE.key         this client's CURVE secret key; its .pub must be in\n"
"                         the daemon's authorized_keys_dir\n"
"  -h, --help             this text\n"
"\n"
"Without --json or --summary each record is one line for people:\n"
"SEQ TOPIC#TOPIC_SEQ DISPOSITION <MESSAGE-ID> SUBJECT\n"
"\n"
"Exit status: 0 done (--count reached, or SIGINT/SIGTERM), 1 no record\n"
"within --timeout or the store's epoch changed (a recreated store: move\n"
"the checkpoint away to start again), 2 usage, configuration, key or\n"
"checkpoint error.\n"
"\n"
"Examples:\n"
"  vmingest sub --topic rn. --json\n"
"  vmingest sub -c /etc/vmingest/vmingestd.conf --from-start --count 100\n"
"  vmingest sub --checkpoint /var/lib/idc/rn.ckpt --topic rn. --json\n"
"  vmingest sub --endpoint tcp://vm.example:8426 \\\n"
"      --replay-endpoint tcp://vm.example:8427 \\\n"
"      --server-key server.pub --key idc.key --topic seismic.\n";

enum {
	O_EP = 256, O_REP, O_TOPIC, O_START, O_FROM, O_NOW, O_CKPT, O_JSON,
	O_SUMMARY, O_RAWDIR, O_COUNT, O_TIMEOUT, O_SKEY, O_KEY, O_STATS, O_HWM
};

static volatile sig_atomic_t sub_stop;

static void
on_signal(int sig)
{
	sub_stop = 1;
}

/* Bind addresses (tcp://STAR:P, tcp://0.0.0.0:P) are reached on loopback. */
static char *
connect_addr(const char *ep)
{
	char	 buf[1024];
	const char *rest = NULL;

	if (!strncmp(ep, "tcp://*:", 8))
		rest = ep + 8;
	else if (!strncmp(ep, "tcp://0.0.0.0:", 14))
		rest = ep + 14;
	if (rest != NULL && snprintf(buf, sizeof(buf), "tcp://127.0.0.1:%s", rest) <
	    (int)sizeof(buf))
		return strdup(buf);
	return strdup(ep);
}

/* Fetch the raw message of one seq from the replay service (with_raw). */
static int
fetch_raw(const struct vmi_sub_opts *so, uint64_t seq, const char *dir)
{
	Vmingest__ReplayRequest q = VMINGEST__REPLAY_REQUEST__INIT;
	zmq_msg_t f[4];
	uint8_t	 buf[256];
	char	 path[4096];
	void	*ctx, *d;
	int	 zero = 0, n = 0, more = 1, rc = -1, fd, w;
	size_t	 len;
	zmq_pollitem_t it;

	ctx = zmq_ctx_new();
	d = zmq_socket(ctx, ZMQ_DEALER);
	zmq_setsockopt(d, ZMQ_LINGER, &zero, sizeof(zero));
	if (so->server_key != NULL) {
		zmq_setsockopt(d, ZMQ_CURVE_SERVERKEY, so->server_key, 40);
		zmq_setsockopt(d, ZMQ_CURVE_PUBLICKEY, so->public_key, 40);
		zmq_setsockopt(d, ZMQ_CURVE_SECRETKEY, so->secret_key, 40);
	}
	zmq_connect(d, so->replay_endpoint);
	q.from_seq = q.to_seq = seq;
	q.with_raw = 1;
	q.credit = 1;
	q.request_id = seq;
	len = vmingest__replay_request__pack(&q, buf);
	zmq_send(d, buf, len, 0);
	it.socket = d;
	it.events = ZMQ_POLLIN;
	while (zmq_poll(&it, 1, 5000) == 1) {
		n = 0;
		more = 1;
		while (more && n < 4) {
			zmq_msg_init(&f[n]);
			if (zmq_msg_recv(&f[n], d, 0) == -1)
				break;
			more = zmq_msg_more(&f[n]);
			n++;
		}
		if (n == 4) {
			w = snprintf(path, sizeof(path), "%s/%llu.eml", dir,
			    (unsigned long long)seq);
			if (w > 0 && (size_t)w < sizeof(path) && (fd = open(path,
			    O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)) != -1) {
				if (write(fd, zmq_msg_data(&f[3]), zmq_msg_size(&f[3])) ==
				    (ssize_t)zmq_msg_size(&f[3]))
					rc = 0;
				close(fd);
			}
		}
		while (n > 0)
			zmq_msg_close(&f[--n]);
		if (rc == 0 || n == 0)
			break;
		/* a control reply (REPLAY_END without the record): stop */
		break;
	}
	zmq_close(d);
	zmq_ctx_term(ctx);
	if (rc != 0)
		fprintf(stderr, "vmingest sub: seq %llu: raw message not fetched\n",
		    (unsigned long long)seq);
	return rc;
}

static void
print_line(const struct vmi_msg *m)
{
	char	 mid[600], subj[600];
	const Vmingest__Record *r = m->rec;

	log_escape(mid, sizeof(mid), r->message_id, strlen(r->message_id));
	log_escape(subj, sizeof(subj), r->subject, strlen(r->subject));
	printf("%llu %s#%llu %s <%s> %s\n", (unsigned long long)m->seq, m->topic,
	    (unsigned long long)m->topic_seq, disposition_name(r->disposition),
	    mid, subj);
}

int
cmd_sub(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "endpoint", required_argument, NULL, O_EP },
		{ "replay-endpoint", required_argument, NULL, O_REP },
		{ "topic", required_argument, NULL, O_TOPIC },
		{ "from-start", no_argument, NULL, O_START },
		{ "from", required_argument, NULL, O_FROM },
		{ "from-now", no_argument, NULL, O_NOW },
		{ "checkpoint", required_argument, NULL, O_CKPT },
		{ "json", no_argument, NULL, O_JSON },
		{ "summary", no_argument, NULL, O_SUMMARY },
		{ "raw-dir", required_argument, NULL, O_RAWDIR },
		{ "count", required_argument, NULL, O_COUNT },
		{ "timeout", required_argument, NULL, O_TIMEOUT },
		{ "server-key", required_argument, NULL, O_SKEY },
		{ "key", required_argument, NULL, O_KEY },
		{ "stats", no_argument, NULL, O_STATS },
		{ "hwm", required_argument, NULL, O_HWM },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	struct vmi_sub_opts so;
	struct vmi_sub *sub = NULL;
	struct vmi_msg m;
	struct vmi_sub_stats st;
	struct config *cf = NULL;
	const char *cfpath = NULL, *ep = NULL, *rep = NULL, *rawdir = NULL;
	const char *skeyf = NULL, *keyf = NULL;
	const char *topics[64];
	char	 skey[41], pkey[41], ckey[41], err[1024];
	char	*ep_c = NULL, *rep_c = NULL;
	uint64_t count = 0, timeout_s = 0, got = 0, first = 0, last = 0;
	size_t	 nt = 0;
	int	 ch, json = 0, summary = 0, nfrom = 0, rc, status = 0, stats = 0;
	uint64_t hwm;
	int64_t	 idle_ms = 0;
	struct sigaction sa;

	memset(&so, 0, sizeof(so));
	so.from = VMI_FROM_NOW;
	optind = 1;
	while ((ch = getopt_long(argc, argv, "c:h", lo, NULL)) != -1) {
		switch (ch) {
		case 'c': cfpath = optarg; break;
		case O_EP: ep = optarg; break;
		case O_REP: rep = optarg; break;
		case O_TOPIC:
			if (nt >= 64 || strlen(optarg) > 255 || strspn(optarg,
			    "abcdefghijklmnopqrstuvwxyz0123456789_-.") != strlen(optarg)) {
				fprintf(stderr, "vmingest sub: bad or too many --topic: "
				    "%s\n", optarg);
				return 2;
			}
			topics[nt++] = optarg;
			break;
		case O_START: so.from = VMI_FROM_START; nfrom++; break;
		case O_NOW: so.from = VMI_FROM_NOW; nfrom++; break;
		case O_FROM:
			if (cli_parse_u64(optarg, &so.from_seq) != 0) {
				fprintf(stderr, "vmingest sub: --from: not a number\n");
				return 2;
			}
			so.from = VMI_FROM_SEQ;
			nfrom++;
			break;
		case O_CKPT: so.checkpoint = optarg; break;
		case O_JSON: json = 1; break;
		case O_SUMMARY: summary = 1; break;
		case O_RAWDIR: rawdir = optarg; break;
		case O_COUNT:
			if (cli_parse_u64(optarg, &count) != 0 || count == 0) {
				fprintf(stderr, "vmingest sub: --count: a positive number\n");
				return 2;
			}
			break;
		case O_TIMEOUT:
			if (cli_parse_u64(optarg, &timeout_s) != 0 || timeout_s == 0 ||
			    timeout_s > 86400 * 365) {
				fprintf(stderr, "vmingest sub: --timeout: seconds\n");
				return 2;
			}
			break;
		case O_SKEY: skeyf = optarg; break;
		case O_KEY: keyf = optarg; break;
		case O_STATS: stats = 1; break;
		case O_HWM:
			if (cli_parse_u64(optarg, &hwm) != 0 || hwm == 0 ||
			    hwm > 10000000) {
				fprintf(stderr, "vmingest sub: --hwm: 1..10000000\n");
				return 2;
			}
			so.rcvhwm = (int)hwm;
			break;
		case 'h': fputs(sub_usage, stdout); return 0;
		default: fputs(sub_usage, stderr); return 2;
		}
	}
	if (optind != argc || nfrom > 1 || json + summary > 1 ||
	    (cfpath != NULL && (ep != NULL || rep != NULL)) ||
	    ((skeyf == NULL) != (keyf == NULL) && !(cfpath && keyf))) {
		fputs(sub_usage, stderr);
		return 2;
	}
	log_set_quiet(1);
	if (cfpath != NULL) {
		if ((cf = cli_load_config("sub", cfpath)) == NULL)
			return 2;
		if (cf->publish.n_endpoints == 0 || cf->publish.replay_endpoint == NULL) {
			fprintf(stderr, "vmingest sub: %s has no publish endpoints\n",
			    cfpath);
			config_free(cf);
			return 2;
		}
		ep_c = connect_addr(cf->publish.endpoints[0]);
		rep_c = connect_addr(cf->publish.replay_endpoint);
		if (keyf == NULL && cf->publish.curve_secret_key_file != NULL) {
			fprintf(stderr, "vmingest sub: %s: the daemon uses CURVE; "
			    "give --key FILE.key (and --server-key FILE.pub)\n", cfpath);
			config_free(cf);
			free(ep_c);
			free(rep_c);
			return 2;
		}
		/* the server's public key from its secret key, if we may read it */
		if (skeyf == NULL && keyf != NULL && cf->publish.curve_secret_key_file) {
			char	 sec[41];

			if (cli_read_keyfile("sub", cf->publish.curve_secret_key_file, sec) != 0 ||
			    zmq_curve_public(skey, sec) != 0) {
				fprintf(stderr, "vmingest sub: give --server-key\n");
				config_free(cf);
				free(ep_c);
				free(rep_c);
				return 2;
			}
			explicit_bzero(sec, sizeof(sec));
			so.server_key = skey;
		}
		config_free(cf);
	} else {
		ep_c = connect_addr(ep ? ep : "tcp://127.0.0.1:8426");
		rep_c = connect_addr(rep ? rep : "tcp://127.0.0.1:8427");
	}
	so.endpoint = ep_c;
	so.replay_endpoint = rep_c;
	if (skeyf != NULL) {
		if (cli_read_keyfile("sub", skeyf, skey) != 0) {
			status = 2;
			goto out;
		}
		so.server_key = skey;
	}
	if (keyf != NULL) {
		if (cli_read_keyfile("sub", keyf, ckey) != 0 || zmq_curve_public(pkey, ckey) != 0) {
			fprintf(stderr, "vmingest sub: %s: not a secret key\n", keyf);
			status = 2;
			goto out;
		}
		so.secret_key = ckey;
		so.public_key = pkey;
	}
	so.prefixes = topics;
	so.n_prefixes = nt;

	if ((rc = vmi_sub_open(&sub, &so, err, sizeof(err))) != VMI_OK) {
		fprintf(stderr, "vmingest sub: %s\n", err);
		status = 2;
		goto out;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	while (!sub_stop && (count == 0 || got < count)) {
		rc = vmi_sub_next(sub, &m, 200);
		if (rc == VMI_E_TIMEOUT) {
			idle_ms += 200;
			if (timeout_s && idle_ms >= (int64_t)timeout_s * 1000) {
				fprintf(stderr, "vmingest sub: no record for %llu s\n",
				    (unsigned long long)timeout_s);
				status = 1;
				break;
			}
			continue;
		}
		if (rc != VMI_OK) {
			fprintf(stderr, "vmingest sub: %s: %s\n", vmi_strerror(rc),
			    vmi_sub_error(sub));
			status = rc == VMI_E_EPOCH ? 1 : 2;
			break;
		}
		idle_ms = 0;
		if (got == 0)
			first = m.seq;
		last = m.seq;
		got++;
		if (rawdir != NULL && fetch_raw(&so, m.seq, rawdir) != 0) {
			vmi_msg_clear(&m);
			status = 2;
			break;
		}
		if (json) {
			json_t	*j = record_to_json(m.rec, 0);

			json_object_set_new(j, "topic_seq", json_integer(
			    (json_int_t)m.topic_seq));
			json_object_set_new(j, "delivered_topic", json_string(m.topic));
			cli_print_json(j);
		} else if (!summary)
			print_line(&m);
		vmi_msg_clear(&m);
		if (fflush(stdout) != 0) {
			status = 2;
			break;
		}
	}
	if (summary || stats) {
		json_t	*j = json_object();
		char	*line;

		vmi_sub_stats(sub, &st);
		json_object_set_new(j, "records", json_integer((json_int_t)got));
		json_object_set_new(j, "first_seq", json_integer((json_int_t)first));
		json_object_set_new(j, "last_seq", json_integer((json_int_t)last));
		json_object_set_new(j, "live", json_integer((json_int_t)st.live));
		json_object_set_new(j, "replayed", json_integer((json_int_t)st.replayed));
		json_object_set_new(j, "duplicates", json_integer((json_int_t)st.duplicates));
		json_object_set_new(j, "gaps", json_integer((json_int_t)st.gaps));
		json_object_set_new(j, "resyncs", json_integer((json_int_t)st.resyncs));
		json_object_set_new(j, "heartbeats", json_integer((json_int_t)st.heartbeats));
		json_object_set_new(j, "checkpoints", json_integer((json_int_t)st.checkpoints));
		if (summary)
			printf("%s\n", (line = json_dumps(j, JSON_COMPACT)) ? line : "{}");
		else
			fprintf(stderr, "%s\n", (line = json_dumps(j, JSON_COMPACT)) ?
			    line : "{}");
		free(line);
		json_decref(j);
	}
	if (status == 0 && so.checkpoint != NULL && vmi_sub_checkpoint(sub) != VMI_OK) {
		fprintf(stderr, "vmingest sub: %s\n", vmi_sub_error(sub));
		status = 2;
	}
out:
	vmi_sub_close(sub);
	explicit_bzero(ckey, sizeof(ckey));
	free(ep_c);
	free(rep_c);
	return status;
}
