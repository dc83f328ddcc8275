/*
 * cmd_sub.c - `vmingest sub`: subscribe through libvmingest-client and
 * print every record once, in order (JSON lines, a line for people, raw
 * files, or only a summary), optionally keeping a checkpoint.
 *
 * Exit status: 0 done (--count reached, or interrupted), 1 "not so" (no
 * record within --timeout, or the store's epoch changed), 2 usage,
 * configuration, key or checkpoint problems, or a record that could not
 * be written out (stdout, --raw-dir): the checkpoint stays before it
 * (vmi_sub_close_unprocessed), so a restart delivers it again; 3 done,
 * but records of the subscription were lost (VMI_E_LOST: retention
 * removed them before they were delivered; said on stderr).
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
#include "util.h"
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
"  --raw-dir DIR          also write each raw message to DIR/SEQ.eml, checked\n"
"                         against the record's sha256, through a temp file\n"
"                         (fsynced with --checkpoint); one whose bytes\n"
"                         retention removed is reported and skipped\n"
"  --count N              exit after N records\n"
"  --timeout SEC          exit 1 if no record arrives for SEC seconds\n"
"  --stats                at exit, write the subscriber's counters (records,\n"
"                         live, replayed, duplicates, gaps, resyncs, lost,\n"
"                         malformed) as one JSON line to stderr\n"
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
"Records that retention removed from the log before they could be\n"
"delivered are named on standard error as they are found (\"records lost\"),\n"
"counted as \"lost\" in --summary/--stats, and the run goes on.\n"
"\n"
"Exit status: 0 done (--count reached, or SIGINT/SIGTERM), 1 no record\n"
"within --timeout or the store's epoch changed (a recreated store: move\n"
"the checkpoint away to start again), 2 usage, configuration, key or\n"
"checkpoint error, or a record that could not be written out (standard\n"
"output or --raw-dir): the checkpoint then stays before that record,\n"
"3 done, but records were lost (removed by retention before delivery).\n"
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

/*
 * --raw-dir: the raw message of each record, from the replay service
 * (with_raw), over one DEALER connection kept for the whole run.
 */
struct raw_fetch {
	void	*ctx, *d;
	uint64_t req;		/* request_id of the last request */
	uint64_t missing;	/* records whose raw bytes retention removed */
	int	 dfd;		/* the --raw-dir directory, -1: not open yet */
};

#define RAW_WAIT_MS	10000	/* for the reply to one request */

static void
raw_fetch_close(struct raw_fetch *rf)
{
	if (rf->d != NULL)
		zmq_close(rf->d);
	if (rf->ctx != NULL)
		zmq_ctx_term(rf->ctx);
	rf->d = rf->ctx = NULL;
	if (rf->dfd != -1)
		close(rf->dfd);
	rf->dfd = -1;
}

/*
 * dir/SEQ.eml through a temp file; with --checkpoint (durable) the file
 * and the directory are fsynced: it must outlive a crash before the
 * position moves past it.
 */
static int
raw_write(struct raw_fetch *rf, const char *dir, uint64_t seq, const void *buf,
    size_t len, int durable)
{
	char	 name[32];

	if (rf->dfd == -1 &&
	    (rf->dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1)
		return -1;
	snprintf(name, sizeof(name), "%llu.eml", (unsigned long long)seq);
	if (cli_write_file(rf->dfd, rf->dfd, name, buf, len, 0644, durable) == -1)
		return -1;
	return durable ? fsync(rf->dfd) : 0;
}

/*
 * Fetch the raw bytes of m and write DIR/SEQ.eml.  0 written, 1 the log
 * no longer has them (retention: a line says so), -1 error (said).
 */
static int
fetch_raw(struct raw_fetch *rf, const struct vmi_sub_opts *so,
    const struct vmi_msg *m, const char *dir, int durable)
{
	Vmingest__ReplayRequest q = VMINGEST__REPLAY_REQUEST__INIT;
	Vmingest__Envelope *env;
	zmq_msg_t f[4];
	zmq_pollitem_t it;
	uint8_t	 buf[256];
	const char *why = NULL;
	int64_t	 deadline;
	int	 zero = 0, n, rc = -1;
	size_t	 len;

	if (rf->d == NULL) {
		rf->ctx = zmq_ctx_new();
		if (rf->ctx == NULL || (rf->d = zmq_socket(rf->ctx, ZMQ_DEALER)) == NULL) {
			fprintf(stderr, "vmingest sub: --raw-dir: %s\n",
			    zmq_strerror(errno));
			return -1;
		}
		zmq_setsockopt(rf->d, ZMQ_LINGER, &zero, sizeof(zero));
		if (so->server_key != NULL) {
			zmq_setsockopt(rf->d, ZMQ_CURVE_SERVERKEY, so->server_key, 40);
			zmq_setsockopt(rf->d, ZMQ_CURVE_PUBLICKEY, so->public_key, 40);
			zmq_setsockopt(rf->d, ZMQ_CURVE_SECRETKEY, so->secret_key, 40);
		}
		if (zmq_connect(rf->d, so->replay_endpoint) != 0) {
			fprintf(stderr, "vmingest sub: --raw-dir: connect %s: %s\n",
			    so->replay_endpoint, zmq_strerror(errno));
			return -1;
		}
	}
	/* credit 2: the one record, then REPLAY_END rather than BATCH_END */
	q.from_seq = q.to_seq = m->seq;
	q.with_raw = 1;
	q.credit = 2;
	q.request_id = ++rf->req;
	len = vmingest__replay_request__pack(&q, buf);
	if (zmq_send(rf->d, buf, len, 0) == -1) {
		fprintf(stderr, "vmingest sub: --raw-dir: send: %s\n",
		    zmq_strerror(errno));
		return -1;
	}
	it.socket = rf->d;
	it.events = ZMQ_POLLIN;
	deadline = util_mono_us() / 1000 + RAW_WAIT_MS;
	for (;;) {
		int64_t	 left = deadline - util_mono_us() / 1000;

		if (left <= 0)
			break;
		if ((n = zmq_poll(&it, 1, (long)left)) == -1 && errno == EINTR)
			continue;	/* SIGINT: finish this record first */
		if (n != 1)
			break;
		n = cli_recv_frames(rf->d, f, 4);
		env = n >= 2 ? vmingest__envelope__unpack(NULL, zmq_msg_size(&f[1]),
		    zmq_msg_data(&f[1])) : NULL;
		if (env == NULL || env->request_id != rf->req) {
			/* a reply to an earlier request, or garbage: not ours */
			if (env != NULL)
				vmingest__envelope__free_unpacked(env, NULL);
			while (n > 0)
				zmq_msg_close(&f[--n]);
			continue;
		}
		if (env->kind == VMINGEST__ENVELOPE__KIND__BATCH_END) {
			/* not expected with credit 2; the record may still come */
			vmingest__envelope__free_unpacked(env, NULL);
			while (n > 0)
				zmq_msg_close(&f[--n]);
			continue;
		}
		if (env->kind == VMINGEST__ENVELOPE__KIND__RECORD && n == 4 &&
		    env->seq == m->seq) {
			const void *raw = zmq_msg_data(&f[3]);
			size_t	 rlen = zmq_msg_size(&f[3]);

			if (rlen == 0 && m->rec->raw_size > 0) {
				rf->missing++;
				fprintf(stderr, "vmingest sub: seq %llu: the raw "
				    "message is no longer in the log (retention, "
				    "[store] retain_raw_days): no %llu.eml\n",
				    (unsigned long long)m->seq,
				    (unsigned long long)m->seq);
				rc = 1;
			} else if (!cli_raw_matches(m->rec, raw, rlen))
				why = "the bytes do not match the record's sha256";
			else if (raw_write(rf, dir, m->seq, raw, rlen, durable) != 0)
				fprintf(stderr, "vmingest sub: %s/%llu.eml: %s\n", dir,
				    (unsigned long long)m->seq, strerror(errno));
			else
				rc = 0;
		} else if (env->kind == VMINGEST__ENVELOPE__KIND__ERROR)
			why = env->error && env->error[0] ? env->error :
			    "the replay service refused the request";
		else
			why = "the record is not in the log";
		if (why != NULL)
			fprintf(stderr, "vmingest sub: seq %llu: raw message not "
			    "fetched: %s\n", (unsigned long long)m->seq, why);
		vmingest__envelope__free_unpacked(env, NULL);
		while (n > 0)
			zmq_msg_close(&f[--n]);
		return rc;
	}
	fprintf(stderr, "vmingest sub: seq %llu: raw message not fetched: no "
	    "answer from the replay service %s within %d s\n",
	    (unsigned long long)m->seq, so->replay_endpoint, RAW_WAIT_MS / 1000);
	return -1;
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
	struct raw_fetch rf;
	int	 unprocessed = 0;	/* the last record's output failed */
	int	 lost = 0;		/* VMI_E_LOST was reported */

	memset(&so, 0, sizeof(so));
	memset(&rf, 0, sizeof(rf));
	rf.dfd = -1;
	so.from = VMI_FROM_NOW;
	optind = 1;
	while ((ch = getopt_long(argc, argv, "c:h", lo, NULL)) != -1) {
		switch (ch) {
		case 'c': cfpath = optarg; break;
		case O_EP: ep = optarg; break;
		case O_REP: rep = optarg; break;
		case O_TOPIC:
			if (nt >= 64 || !topic_chars_ok(optarg, 1)) {
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
	if (rawdir != NULL && access(rawdir, W_OK | X_OK) != 0) {
		fprintf(stderr, "vmingest sub: --raw-dir %s: %s\n", rawdir,
		    strerror(errno));
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
		if (rc == VMI_E_LOST || rc == VMI_E_SERVER) {
			/* said, and the subscriber goes on (exit 3 for a loss) */
			fprintf(stderr, "vmingest sub: %s: %s\n", vmi_strerror(rc),
			    vmi_sub_error(sub));
			if (rc == VMI_E_LOST)
				lost = 1;
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
		/* with a checkpoint, the file is durable before the position moves */
		if (rawdir != NULL &&
		    fetch_raw(&rf, &so, &m, rawdir, so.checkpoint != NULL) < 0) {
			vmi_msg_clear(&m);
			unprocessed = 1;
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
			fprintf(stderr, "vmingest sub: standard output: %s\n",
			    strerror(errno));
			unprocessed = 1;
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
		json_object_set_new(j, "lost", json_integer((json_int_t)st.lost));
		json_object_set_new(j, "malformed", json_integer((json_int_t)st.malformed));
		json_object_set_new(j, "resyncs", json_integer((json_int_t)st.resyncs));
		json_object_set_new(j, "heartbeats", json_integer((json_int_t)st.heartbeats));
		json_object_set_new(j, "checkpoints", json_integer((json_int_t)st.checkpoints));
		if (rawdir != NULL)
			json_object_set_new(j, "raw_missing",
			    json_integer((json_int_t)rf.missing));
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
	if (status == 0 && lost)
		status = 3;
out:
	raw_fetch_close(&rf);
	/* a record whose output failed must come again after a restart */
	if (unprocessed)
		vmi_sub_close_unprocessed(sub);
	else
		vmi_sub_close(sub);
	explicit_bzero(ckey, sizeof(ckey));
	free(ep_c);
	free(rep_c);
	return status;
}
