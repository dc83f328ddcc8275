/*
 * cmd_replay.c - `vmingest replay`: write a range of the durable log out
 * again, as records (json) or as the raw messages exactly as delivered
 * (raw, mbox, maildir), so that another tool can reprocess them.
 *
 *   cmd_replay         the subcommand (argv[0] == "replay")
 *   replay_parse_time  ISO 8601 or relative ("-2h") time -> unix us
 *
 * Source: the local store, opened read-only (works while the daemon runs
 * or is stopped).  The read transaction is renewed every few thousand
 * records so a long replay never pins old pages of a store that the daemon
 * keeps writing.
 *
 * Output formats (documented in --help; the e2e tests undo exactly this):
 *   json     one record per line (record_to_json, field names as in the
 *            .proto), no raw bytes
 *   raw      the stored bytes of each message, concatenated with nothing
 *            in between; with --out DIR (an existing directory) one file
 *            DIR/SEQ.eml per record instead
 *   mbox     mboxrd: each message is preceded by a line
 *            "From vmingest@seq-SEQ DATE\n"; every line of the message that
 *            matches /^>*From / gets one more '>'; a message that does not
 *            end in "\n" gets one; a blank line "\n" follows each message.
 *   maildir  --out DIR is made a Maildir (tmp/ new/ cur/); each message is
 *            written to tmp/ and renamed into new/ as
 *            "RECEIVEDSEC.S<SEQ>.vmingest-replay", byte-identical.
 *
 * Error policy: a usage error exits 2; a store that cannot be opened, an
 * output that cannot be written exit 2; a record whose raw bytes are gone
 * (retention) is skipped with a warning and the exit status is 1.  Ctrl-C
 * stops after the current message with the output valid (every message
 * written whole, stdio flushed, maildir files renamed only when complete)
 * and exits 1.
 *
 * SECURITY: the store is the daemon's and trusted to be well formed, but
 * the raw messages are hostile mail: they are copied, never interpreted;
 * file names in maildir/raw output are built from numbers only.
 */
#include <sys/stat.h>
#include <sys/time.h>

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
#include "store.h"
#include "util.h"

int	replay_parse_time(const char *s, int64_t now_us, int64_t *out);

#define REPLAY_MAX_TOPICS	32
#define REPLAY_CHUNK		256		/* records per read snapshot */
#define REPLAY_CHUNK_BYTES	(8u << 20)	/* and their raw bytes, about */

/* A record read in one snapshot, written after it is released. */
struct chunk_item {
	uint64_t seq;
	Vmingest__Record *rec;	/* NULL when not needed */
	uint8_t	*raw;
	size_t	 len;
	int	 missing;	/* raw bytes pruned by retention */
};
#define REPLAY_BACKSCAN		4096	/* --since: seqs checked below the seek */

enum { F_JSON, F_RAW, F_MBOX, F_MAILDIR };

static const char replay_usage[] =
"usage: vmingest replay [--store DIR | -c FILE | --endpoint E\n"
"                       [--server-key FILE.pub --key FILE.key]] [--from SEQ]\n"
"                       [--to SEQ] [--since TIME] [--until TIME]\n"
"                       [--topic PREFIX]... [--quarantined]\n"
"                       [--format json|raw|mbox|maildir] [--out PATH]\n"
"\n"
"Write stored records, or the raw messages exactly as they were delivered,\n"
"in seq order.  The store is opened read-only: replay works while\n"
"vmingestd runs and never holds it up.\n"
"\n"
"Selection (all given conditions must hold):\n"
"  --from SEQ        first seq (default: the oldest stored)\n"
"  --to SEQ          last seq, inclusive (default: the head when replay\n"
"                    started; records committed later are not included)\n"
"  --since TIME      received at or after TIME\n"
"  --until TIME      received before TIME\n"
"                    TIME is ISO 8601 (2026-12-04, 2026-12-04T14:00:00Z,\n"
"                    2026-12-04T14:00:00.5+01:00; no zone means UTC), a\n"
"                    relative time before now (-90s, -30m, -2h, -7d, -1w)\n"
"                    or @UNIXSECONDS.  --since seeks through the store's\n"
"                    time index, so it starts at once on a large store.\n"
"  --topic PREFIX    a topic of the record starts with PREFIX (bytewise,\n"
"                    as a ZeroMQ subscription); may be repeated (any)\n"
"  --quarantined     only QUARANTINED records\n"
"\n"
"Output:\n"
"  --format json     one JSON record per line, field names as in\n"
"                    proto/vmingest.proto (default)\n"
"  --format raw      the raw messages concatenated, nothing in between;\n"
"                    if --out names an existing directory, one file\n"
"                    DIR/SEQ.eml per message instead\n"
"  --format mbox     mboxrd: before each message a line\n"
"                    \"From vmingest@seq-SEQ Thu Dec  4 14:31:00 2026\";\n"
"                    message lines matching /^>*From / get one more '>';\n"
"                    a message not ending in a newline gets one; an empty\n"
"                    line follows each message.  Undo that and the bytes\n"
"                    are those delivered, but for that added newline: mbox\n"
"                    cannot tell it apart (use maildir or raw for exact\n"
"                    bytes).\n"
"  --format maildir  --out DIR becomes a Maildir (tmp/ new/ cur/ made if\n"
"                    missing); each message is written to tmp/ and renamed\n"
"                    to new/RECEIVEDSEC.S<SEQ>.vmingest-replay, byte for\n"
"                    byte as delivered\n"
"  --out PATH        a file (json, raw, mbox; default standard output) or\n"
"                    a directory (maildir, raw)\n"
"\n"
"Source:\n"
"  --store DIR       the store directory\n"
"  -c FILE           the daemon's configuration: its [store] path\n"
"  --endpoint E      a remote daemon's replay endpoint (its [publish]\n"
"                    replay_endpoint, e.g. tcp://idc.example:8427).  The\n"
"                    replay service sends published records only (or,\n"
"                    with --quarantined, the quarantined ones): records\n"
"                    that were discarded or duplicates are not sent.\n"
"                    --since/--until filter as records arrive (no time\n"
"                    index remotely: give --from to skip ahead).\n"
"  --server-key FILE.pub  the daemon's CURVE public key (vmingest keygen)\n"
"  --key FILE.key    this client's CURVE secret key; its .pub must be in\n"
"                    the daemon's authorized_keys_dir\n"
"\n"
"When standard error is a terminal, progress (done/total, MB/s, ETA) is\n"
"shown there.  Ctrl-C stops after the current message and leaves the\n"
"output valid: every message written is complete.\n"
"\n"
"Local replay writes every stored record that matches, including\n"
"DISCARDED and DUPLICATE ones; with --topic, only records published on a\n"
"matching topic, as the replay service does.\n"
"\n"
"Exit status: 0 all selected records written; 1 interrupted, or some\n"
"records had no raw bytes left (pruned by retention; a warning names\n"
"each); 2 usage error, store or output cannot be opened or written, the\n"
"endpoint did not answer or refused the request.\n"
"\n"
"Examples:\n"
"  vmingest replay -c /etc/vmingest/vmingestd.conf --since -2h --topic rn.\n"
"  vmingest replay --store /var/lib/vmingest/store --from 1000 --to 1999 \\\n"
"      --format mbox --out /tmp/batch.mbox\n"
"  vmingest replay --quarantined --format maildir --out /tmp/q\n"
"  vmingest replay --format raw --since 2026-12-01 >/dev/null\n"
"  vmingest replay --endpoint tcp://idc.example:8427 --server-key idc.pub \\\n"
"      --key analyst.key --topic rn. --from 5000 --format maildir --out /tmp/rn\n";

struct ropts {
	const char *store, *cfg, *endpoint, *out, *server_key, *key;
	uint64_t from, to;
	int64_t	 since, until;
	int	 has_since, has_until, quar, format;
	const char *topics[REPLAY_MAX_TOPICS];
	size_t	 n_topics;
};

struct rout {
	FILE	*fp;		/* json, raw, mbox */
	int	 dirfd;		/* maildir root, or raw per-file dir */
	int	 tmpfd, newfd;
	int	 raw_dir;
	const char *path;
};

static volatile sig_atomic_t replay_stop;

static void
on_sigint(int sig)
{
	(void)sig;
	replay_stop = 1;
}

static double
mono_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Parse exactly n digits at *p into *v. */
static int
digits(const char **p, int n, int *v)
{
	int	 i, x = 0;

	for (i = 0; i < n; i++) {
		if ((*p)[i] < '0' || (*p)[i] > '9')
			return -1;
		x = x * 10 + ((*p)[i] - '0');
	}
	*p += n;
	*v = x;
	return 0;
}

int
replay_parse_time(const char *s, int64_t now_us, int64_t *out)
{
	struct tm tm;
	const char *p = s;
	int	 y, mo, d, h = 0, mi = 0, se = 0, oh, om, sign;
	int64_t	 frac = 0, scale = 100000, secs;
	char	*end;

	if (s == NULL || *s == '\0')
		return -1;
	if (*s == '-' || *s == '@') {
		long long n;

		errno = 0;
		n = strtoll(s + 1, &end, 10);
		if (errno != 0 || end == s + 1 || n < 0)
			return -1;
		if (*s == '@') {
			if (*end != '\0' || n > 253402300799LL)
				return -1;
			*out = (int64_t)n * 1000000;
			return 0;
		}
		if (end[0] == '\0' || end[1] != '\0')
			return -1;
		switch (*end) {
		case 's': break;
		case 'm': n *= 60; break;
		case 'h': n *= 3600; break;
		case 'd': n *= 86400; break;
		case 'w': n *= 7 * 86400; break;
		default: return -1;
		}
		if (n > 100LL * 366 * 86400)
			return -1;
		*out = now_us - (int64_t)n * 1000000;
		return 0;
	}
	if (digits(&p, 4, &y) || *p++ != '-' || digits(&p, 2, &mo) ||
	    *p++ != '-' || digits(&p, 2, &d))
		return -1;
	if (mo < 1 || mo > 12 || d < 1 || d > 31)
		return -1;
	if (*p == 'T' || *p == ' ') {
		p++;
		if (digits(&p, 2, &h) || *p++ != ':' || digits(&p, 2, &mi))
			return -1;
		if (*p == ':') {
			p++;
			if (digits(&p, 2, &se))
				return -1;
			if (*p == '.' || *p == ',') {
				p++;
				if (*p < '0' || *p > '9')
					return -1;
				while (*p >= '0' && *p <= '9') {
					frac += (*p - '0') * scale;
					scale /= 10;
					p++;
				}
			}
		}
		if (h > 23 || mi > 59 || se > 60)
			return -1;
	}
	memset(&tm, 0, sizeof(tm));
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = se;
	secs = (int64_t)timegm(&tm);
	if (*p == 'Z') {
		p++;
	} else if (*p == '+' || *p == '-') {
		sign = *p == '+' ? 1 : -1;
		p++;
		if (digits(&p, 2, &oh))
			return -1;
		if (*p == ':')
			p++;
		if (digits(&p, 2, &om) || oh > 23 || om > 59)
			return -1;
		secs -= sign * (oh * 3600 + om * 60);
	}
	if (*p != '\0')
		return -1;
	*out = secs * 1000000 + frac;
	return 0;
}

static int
parse_opts(int argc, char **argv, struct ropts *o)
{
	enum { O_STORE = 256, O_EP, O_FROM, O_TO, O_SINCE, O_UNTIL, O_TOPIC,
	    O_QUAR, O_FORMAT, O_OUT, O_SKEY, O_KEY };
	static const struct option opts[] = {
		{ "store", required_argument, NULL, O_STORE },
		{ "config", required_argument, NULL, 'c' },
		{ "endpoint", required_argument, NULL, O_EP },
		{ "from", required_argument, NULL, O_FROM },
		{ "to", required_argument, NULL, O_TO },
		{ "since", required_argument, NULL, O_SINCE },
		{ "until", required_argument, NULL, O_UNTIL },
		{ "topic", required_argument, NULL, O_TOPIC },
		{ "quarantined", no_argument, NULL, O_QUAR },
		{ "format", required_argument, NULL, O_FORMAT },
		{ "out", required_argument, NULL, O_OUT },
		{ "server-key", required_argument, NULL, O_SKEY },
		{ "key", required_argument, NULL, O_KEY },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	int64_t	 now = util_now_us();
	int	 ch;

	memset(o, 0, sizeof(*o));
	o->to = UINT64_MAX;
	optind = 1;
	while ((ch = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
		switch (ch) {
		case O_STORE: o->store = optarg; break;
		case 'c': o->cfg = optarg; break;
		case O_EP: o->endpoint = optarg; break;
		case O_FROM:
			if (cli_parse_u64(optarg, &o->from) == -1)
				goto bad;
			break;
		case O_TO:
			if (cli_parse_u64(optarg, &o->to) == -1)
				goto bad;
			break;
		case O_SINCE:
			if (replay_parse_time(optarg, now, &o->since) == -1) {
				fprintf(stderr, "vmingest replay: bad time: %s\n", optarg);
				goto bad;
			}
			o->has_since = 1;
			break;
		case O_UNTIL:
			if (replay_parse_time(optarg, now, &o->until) == -1) {
				fprintf(stderr, "vmingest replay: bad time: %s\n", optarg);
				goto bad;
			}
			o->has_until = 1;
			break;
		case O_TOPIC:
			if (o->n_topics == REPLAY_MAX_TOPICS) {
				fprintf(stderr, "vmingest replay: at most %d --topic\n",
				    REPLAY_MAX_TOPICS);
				goto bad;
			}
			o->topics[o->n_topics++] = optarg;
			break;
		case O_QUAR: o->quar = 1; break;
		case O_FORMAT:
			if (!strcmp(optarg, "json")) o->format = F_JSON;
			else if (!strcmp(optarg, "raw")) o->format = F_RAW;
			else if (!strcmp(optarg, "mbox")) o->format = F_MBOX;
			else if (!strcmp(optarg, "maildir")) o->format = F_MAILDIR;
			else {
				fprintf(stderr, "vmingest replay: unknown format %s\n",
				    optarg);
				goto bad;
			}
			break;
		case O_OUT: o->out = optarg; break;
		case O_SKEY: o->server_key = optarg; break;
		case O_KEY: o->key = optarg; break;
		case 'h': fputs(replay_usage, stdout); exit(0);
		default: goto bad;
		}
	}
	if (optind != argc)
		goto bad;
	if ((o->store != NULL || o->cfg != NULL) && o->endpoint != NULL) {
		fprintf(stderr, "vmingest replay: --endpoint excludes --store and -c\n");
		goto bad;
	}
	if ((o->server_key != NULL) != (o->key != NULL) ||
	    (o->server_key != NULL && o->endpoint == NULL)) {
		fprintf(stderr, "vmingest replay: --server-key and --key go together, "
		    "with --endpoint\n");
		goto bad;
	}
	if (o->format == F_MAILDIR && o->out == NULL) {
		fprintf(stderr, "vmingest replay: --format maildir needs --out DIR\n");
		goto bad;
	}
	if (o->from > o->to) {
		fprintf(stderr, "vmingest replay: --from is after --to\n");
		goto bad;
	}
	return 0;
bad:
	fputs(replay_usage, stderr);
	return -1;
}

static int
mkdir_ok(int dfd, const char *name)
{
	struct stat sb;

	if (mkdirat(dfd, name, 0700) == 0)
		return 1;
	return errno == EEXIST && fstatat(dfd, name, &sb, 0) == 0 &&
	    S_ISDIR(sb.st_mode);
}

static int
out_open(const struct ropts *o, struct rout *w)
{
	struct stat sb;
	int	 dfd;

	memset(w, 0, sizeof(*w));
	w->dirfd = w->tmpfd = w->newfd = -1;
	w->path = o->out ? o->out : "(stdout)";
	if (o->format == F_MAILDIR ||
	    (o->format == F_RAW && o->out != NULL && stat(o->out, &sb) == 0 &&
	    S_ISDIR(sb.st_mode))) {
		if (mkdir(o->out, 0700) == -1 && errno != EEXIST)
			goto err;
		if ((dfd = open(o->out, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1)
			goto err;
		w->dirfd = dfd;
		if (o->format == F_RAW) {
			w->raw_dir = 1;
			return 0;
		}
		if (!mkdir_ok(dfd, "tmp") || !mkdir_ok(dfd, "new") ||
		    !mkdir_ok(dfd, "cur"))
			goto err;
		w->tmpfd = openat(dfd, "tmp", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		w->newfd = openat(dfd, "new", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (w->tmpfd == -1 || w->newfd == -1)
			goto err;
		return 0;
	}
	if (o->out == NULL)
		w->fp = stdout;
	else if ((w->fp = fopen(o->out, "we")) == NULL)
		goto err;
	setvbuf(w->fp, NULL, _IOFBF, 1 << 20);
	return 0;
err:
	fprintf(stderr, "vmingest replay: %s: %s\n", w->path, strerror(errno));
	return -1;
}

static int
out_close(struct rout *w)
{
	int	 rc = 0;

	if (w->fp != NULL) {
		if (fflush(w->fp) != 0 || ferror(w->fp))
			rc = -1;
		if (w->fp != stdout && fclose(w->fp) != 0)
			rc = -1;
	}
	if (w->newfd != -1 && fsync(w->newfd) == -1 && errno != EINVAL)
		rc = -1;
	if (w->tmpfd != -1)
		close(w->tmpfd);
	if (w->newfd != -1)
		close(w->newfd);
	if (w->dirfd != -1) {
		if (w->raw_dir && fsync(w->dirfd) == -1 && errno != EINVAL)
			rc = -1;
		close(w->dirfd);
	}
	if (rc == -1)
		fprintf(stderr, "vmingest replay: %s: %s\n", w->path, strerror(errno));
	return rc;
}

/* mboxrd body: quote /^>*From / lines; add a final newline if missing. */
static int
mbox_write(FILE *fp, uint64_t seq, int64_t recv_us, const uint8_t *p, size_t n)
{
	char	 date[64];
	time_t	 t = (time_t)(recv_us / 1000000);
	struct tm tm;
	size_t	 i, ls, j;

	gmtime_r(&t, &tm);
	if (strftime(date, sizeof(date), "%a %b %e %H:%M:%S %Y", &tm) == 0)
		return -1;
	fprintf(fp, "From vmingest@seq-%llu %s\n", (unsigned long long)seq, date);
	for (ls = 0; ls < n; ls = i) {
		for (i = ls; i < n && p[i] != '\n'; i++)
			;
		if (i < n)
			i++;	/* include the newline */
		for (j = ls; j < i && p[j] == '>'; j++)
			;
		if (i - j >= 5 && memcmp(p + j, "From ", 5) == 0)
			fputc('>', fp);
		fwrite(p + ls, 1, i - ls, fp);
	}
	if (n == 0 || p[n - 1] != '\n')
		fputc('\n', fp);
	fputc('\n', fp);
	return ferror(fp) ? -1 : 0;
}

/*
 * --topic: a published topic of the record starts with a prefix (as the
 * replay service matches); with --quarantined, the record's primary topic
 * (quarantined records are published on none).
 */
static int
topic_match(const struct ropts *o, const Vmingest__Record *rec)
{
	size_t	 i, k, pl;

	if (o->n_topics == 0)
		return 1;
	for (k = 0; k < o->n_topics; k++) {
		pl = strlen(o->topics[k]);
		if (o->quar) {
			if (rec->topic != NULL && strncmp(rec->topic, o->topics[k],
			    pl) == 0)
				return 1;
			continue;
		}
		for (i = 0; i < rec->n_topics; i++)
			if (rec->topics[i]->topic != NULL &&
			    strncmp(rec->topics[i]->topic, o->topics[k], pl) == 0)
				return 1;
	}
	return 0;
}

/*
 * --since: the time index gives the seq of the earliest record received
 * at or after TIME.  Workers finish out of order by a few ms, so a record
 * with a slightly smaller seq may carry a later time: look back at most
 * REPLAY_BACKSCAN seqs for such records; the filter does the rest.
 */
static uint64_t
since_start(struct store_rtxn *r, int64_t since)
{
	Vmingest__Record *rec;
	uint64_t seq, s, best, low;

	if (store_time_seek(r, since, &seq) != 0)
		return UINT64_MAX;	/* nothing received since */
	best = seq;
	low = seq > REPLAY_BACKSCAN ? seq - REPLAY_BACKSCAN : 1;
	for (s = seq - 1; s >= low && s > 0; s--) {
		if (store_get_record(r, s, &rec) != 0)
			continue;
		if (rec->received_at_us >= since)
			best = s;
		record_free(rec);
	}
	return best;
}

struct progress {
	int	 on;
	double	 t0, last;
	uint64_t total, done, bytes;
};

static void
progress_show(struct progress *pg, int final)
{
	double	 now = mono_s(), el, rate, eta;

	if (!pg->on || (!final && now - pg->last < 0.5))
		return;
	pg->last = now;
	el = now - pg->t0 > 1e-6 ? now - pg->t0 : 1e-6;
	rate = (double)pg->done / el;
	eta = rate > 0 && pg->total > pg->done ? (pg->total - pg->done) / rate : 0;
	fprintf(stderr, "\r%llu/%llu records  %.1f MB/s  ETA %.0fs   ",
	    (unsigned long long)pg->done, (unsigned long long)pg->total,
	    pg->bytes / el / 1e6, eta);
	if (final)
		fputc('\n', stderr);
}

static int
emit(const struct ropts *o, struct rout *w, uint64_t seq,
    const Vmingest__Record *rec, const uint8_t *raw, size_t len)
{
	char	 name[96];
	int	 n;

	switch (o->format) {
	case F_JSON: {
		json_t	*j = record_to_json(rec, 0);
		char	*s = j ? json_dumps(j, JSON_COMPACT) : NULL;

		json_decref(j);
		if (s == NULL)
			return -1;
		fputs(s, w->fp);
		fputc('\n', w->fp);
		free(s);
		return ferror(w->fp) ? -1 : 0;
	}
	case F_RAW:
		if (w->raw_dir) {
			n = snprintf(name, sizeof(name), "%llu.eml",
			    (unsigned long long)seq);
			if (n < 0 || n >= (int)sizeof(name))
				return -1;
			return cli_write_file(w->dirfd, w->dirfd, name, raw, len, 0600, 1);
		}
		if (len > 0 && fwrite(raw, 1, len, w->fp) != len)
			return -1;
		return 0;
	case F_MBOX:
		return mbox_write(w->fp, seq, rec ? rec->received_at_us : 0, raw, len);
	case F_MAILDIR:
		n = snprintf(name, sizeof(name), "%lld.S%llu.vmingest-replay",
		    (long long)((rec ? rec->received_at_us : 0) / 1000000),
		    (unsigned long long)seq);
		if (n < 0 || n >= (int)sizeof(name))
			return -1;
		return cli_write_file(w->tmpfd, w->newfd, name, raw, len, 0600, 1);
	}
	return -1;
}

static int
replay_local(const struct ropts *o)
{
	struct store *st = NULL;
	struct store_rtxn *r = NULL;
	struct store_cursor *c = NULL;
	struct rout w;
	struct progress pg;
	struct sigaction sa, osa;
	uint64_t seq = 0, start, end, head, next, missing = 0, n_out = 0;
	int	 need_rec, rc, status = 0, have_out = 0;

	if (cli_open_store("replay", o->store, o->cfg, &st) == -1)
		return 2;
	if ((rc = store_rbegin(st, &r)) != 0) {
		fprintf(stderr, "vmingest replay: %s\n", store_strerror(rc));
		status = 2;
		goto out;
	}
	head = store_head(r);
	start = o->from ? o->from : store_first(r);
	if (start == 0)
		start = 1;
	end = o->to < head ? o->to : head;
	if (o->has_since) {
		uint64_t s = since_start(r, o->since);

		if (s > start)
			start = s;
	}
	/* records are needed for filters, json, mbox dates and maildir names */
	need_rec = o->format != F_RAW || o->has_since || o->has_until ||
	    o->quar || o->n_topics > 0;

	if (out_open(o, &w) == -1) {
		status = 2;
		goto out;
	}
	have_out = 1;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_sigint;
	sa.sa_flags = SA_RESTART;	/* a blocked write resumes; we stop after it */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, &osa);

	memset(&pg, 0, sizeof(pg));
	pg.on = isatty(STDERR_FILENO);
	pg.t0 = pg.last = mono_s();
	pg.total = end >= start ? end - start + 1 : 0;

	/*
	 * In chunks: read up to REPLAY_CHUNK records (copied out) in a fresh
	 * snapshot, release it, then write them.  A consumer that reads the
	 * output slowly (a pager, a full pipe) then holds no snapshot, which
	 * would keep the daemon from reusing pages and fill the map.
	 */
	store_rreset(r);
	next = start;
	while (next <= end && !replay_stop) {
		struct chunk_item items[REPLAY_CHUNK];
		size_t	 ni = 0, bytes = 0, k;
		int	 done = 0;

		if ((rc = store_rrenew(r)) != 0 ||
		    (rc = store_cursor_open(r, next, &c)) != 0)
			goto store_err;
		while (ni < REPLAY_CHUNK && bytes < REPLAY_CHUNK_BYTES) {
			struct chunk_item *it = &items[ni];
			Vmingest__Record *rec = NULL;
			const void *rp = NULL, *raw = NULL;
			size_t	 rl = 0, len = 0;

			if ((rc = store_cursor_next(c, &seq, &rp, &rl)) != 0) {
				if (rc != STORE_E_NOTFOUND)
					goto chunk_err;
				done = 1;
				break;
			}
			if (seq > end) {
				done = 1;
				break;
			}
			next = seq + 1;
			if (need_rec && (rec = record_unpack(rp, rl)) == NULL) {
				fprintf(stderr, "vmingest replay: seq %llu: record "
				    "does not unpack; skipped\n",
				    (unsigned long long)seq);
				status = 1;
				continue;
			}
			if (rec != NULL && ((o->quar && rec->disposition !=
			    VMINGEST__DISPOSITION__QUARANTINED) ||
			    (o->has_since && rec->received_at_us < o->since) ||
			    (o->has_until && rec->received_at_us >= o->until) ||
			    !topic_match(o, rec))) {
				record_free(rec);
				continue;
			}
			memset(it, 0, sizeof(*it));
			it->seq = seq;
			it->rec = rec;
			if (o->format != F_JSON) {
				rc = store_get_raw(r, seq, &raw, &len);
				if (rc == STORE_E_NOTFOUND)
					it->missing = 1;
				else if (rc != 0) {
					record_free(rec);
					goto chunk_err;
				} else {
					if ((it->raw = malloc(len ? len : 1)) == NULL)
						log_fatal("malloc");
					memcpy(it->raw, raw, len);
					it->len = len;
				}
			}
			bytes += len;
			ni++;
		}
		store_cursor_close(c);
		c = NULL;
		store_rreset(r);
		for (k = 0; k < ni; k++) {
			struct chunk_item *it = &items[k];

			pg.done = it->seq - start + 1;
			if (it->missing) {
				fprintf(stderr, "vmingest replay: seq %llu: raw bytes "
				    "pruned by retention; skipped\n",
				    (unsigned long long)it->seq);
				missing++;
			} else if (status != 2 && emit(o, &w, it->seq, it->rec,
			    it->raw, it->len) == -1) {
				fprintf(stderr, "vmingest replay: %s: %s\n", w.path,
				    strerror(errno));
				status = 2;
			} else if (status != 2) {
				pg.bytes += it->len;
				/* the first record goes out at once: a consumer
				 * sees the stream start without a full buffer */
				if (n_out++ == 0 && w.fp != NULL)
					fflush(w.fp);
			}
			seq = it->seq;
			free(it->raw);
			record_free(it->rec);
			progress_show(&pg, 0);
		}
		if (status == 2)
			goto out;
		if (done)
			break;
		continue;
chunk_err:
		while (ni > 0) {
			free(items[--ni].raw);
			record_free(items[ni].rec);
		}
		goto store_err;
	}
	progress_show(&pg, 1);
	if (replay_stop) {
		fprintf(stderr, "vmingest replay: interrupted after seq %llu; "
		    "output is complete up to there\n", (unsigned long long)seq);
		status = 1;
	}
	if (missing > 0 && status == 0)
		status = 1;
	goto out;
store_err:
	fprintf(stderr, "vmingest replay: store: %s\n", store_strerror(rc));
	status = 2;
out:
	store_cursor_close(c);
	store_rend(r);
	if (have_out) {
		if (out_close(&w) == -1)
			status = 2;
		sigaction(SIGINT, &osa, NULL);
	}
	store_close(st);
	return status;
}

#define REMOTE_TIMEOUT_MS	15000	/* no reply for this long: give up */
#define REMOTE_CREDIT		1000

static int
send_request(void *d, const Vmingest__ReplayRequest *q)
{
	uint8_t	*buf;
	size_t	 n = vmingest__replay_request__get_packed_size(q);
	int	 rc;

	if ((buf = malloc(n ? n : 1)) == NULL)
		log_fatal("malloc");
	vmingest__replay_request__pack(q, buf);
	rc = zmq_send(d, buf, n, 0) == (int)n ? 0 : -1;
	free(buf);
	return rc;
}

/*
 * The same selection through a daemon's replay service (docs/PROTOCOL.md
 * "Replay service"): one stream, credit batches answered with `more`,
 * until REPLAY_END.  The raw message comes as a 4th frame (with_raw).
 */
static int
replay_remote(const struct ropts *o)
{
	Vmingest__ReplayRequest q = VMINGEST__REPLAY_REQUEST__INIT;
	char	 skey[41], sec[41], pub[41];
	void	*ctx = NULL, *d = NULL;
	struct rout w;
	struct progress pg;
	struct sigaction sa, osa;
	uint64_t epoch = 0, rid, last = 0, missing = 0;
	int	 zero = 0, status = 2, have_out = 0, waited = 0;

	if (o->server_key != NULL && (cli_read_keyfile("replay", o->server_key, skey) == -1 ||
	    cli_read_keyfile("replay", o->key, sec) == -1))
		return 2;
	if (o->server_key != NULL && zmq_curve_public(pub, sec) != 0) {
		fprintf(stderr, "vmingest replay: %s: not a CURVE secret key\n", o->key);
		return 2;
	}
	ctx = zmq_ctx_new();
	d = zmq_socket(ctx, ZMQ_DEALER);
	zmq_setsockopt(d, ZMQ_LINGER, &zero, sizeof(zero));
	if (o->server_key != NULL &&
	    (zmq_setsockopt(d, ZMQ_CURVE_SERVERKEY, skey, 40) != 0 ||
	    zmq_setsockopt(d, ZMQ_CURVE_PUBLICKEY, pub, 40) != 0 ||
	    zmq_setsockopt(d, ZMQ_CURVE_SECRETKEY, sec, 40) != 0)) {
		fprintf(stderr, "vmingest replay: CURVE: %s\n", zmq_strerror(errno));
		goto out;
	}
	explicit_bzero(sec, sizeof(sec));
	if (zmq_connect(d, o->endpoint) != 0) {
		fprintf(stderr, "vmingest replay: %s: %s\n", o->endpoint,
		    zmq_strerror(errno));
		goto out;
	}
	rid = ((uint64_t)getpid() << 32) ^ (uint64_t)util_now_us();
	q.request_id = rid;
	q.prefixes = (char **)(uintptr_t)o->topics;
	q.n_prefixes = o->n_topics;
	q.from_seq = o->from;
	q.to_seq = o->to == UINT64_MAX ? 0 : o->to;
	q.credit = REMOTE_CREDIT;
	q.quarantined_only = o->quar;
	q.with_raw = o->format != F_JSON;
	if (send_request(d, &q) != 0) {
		fprintf(stderr, "vmingest replay: send: %s\n", zmq_strerror(errno));
		goto out;
	}
	if (out_open(o, &w) == -1)
		goto out;
	have_out = 1;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_sigint;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, &osa);
	memset(&pg, 0, sizeof(pg));
	pg.on = isatty(STDERR_FILENO);
	pg.t0 = pg.last = mono_s();
	if (o->to != UINT64_MAX)
		pg.total = o->to - (o->from ? o->from : 1) + 1;

	for (;;) {
		zmq_pollitem_t it = { d, 0, ZMQ_POLLIN, 0 };
		zmq_msg_t f[4];
		Vmingest__Envelope *env;
		int	 n, k;

		if (replay_stop) {
			Vmingest__ReplayRequest c = VMINGEST__REPLAY_REQUEST__INIT;

			c.cancel = 1;
			c.request_id = rid;
			send_request(d, &c);
			fprintf(stderr, "vmingest replay: interrupted after seq %llu; "
			    "output is complete up to there\n",
			    (unsigned long long)last);
			status = 1;
			break;
		}
		if ((k = zmq_poll(&it, 1, 200)) == -1 && errno != EINTR) {
			fprintf(stderr, "vmingest replay: poll: %s\n", zmq_strerror(errno));
			break;
		}
		if (k <= 0) {
			if ((waited += 200) >= REMOTE_TIMEOUT_MS) {
				fprintf(stderr, "vmingest replay: %s: no reply for %d s\n",
				    o->endpoint, REMOTE_TIMEOUT_MS / 1000);
				break;
			}
			continue;
		}
		waited = 0;
		/* [topic][Envelope]([Record]([raw])); anything beyond is dropped */
		n = cli_recv_frames(d, f, 4);
		env = n >= 2 ? vmingest__envelope__unpack(NULL, zmq_msg_size(&f[1]),
		    zmq_msg_data(&f[1])) : NULL;
		if (env != NULL && env->request_id == rid) {
			if (epoch == 0)
				epoch = env->epoch;
			if (env->epoch != epoch) {
				fprintf(stderr, "vmingest replay: the daemon's store "
				    "changed (epoch) during the replay\n");
				k = -2;
			} else if (env->kind == VMINGEST__ENVELOPE__KIND__RECORD &&
			    n >= 3) {
				Vmingest__Record *rec = record_unpack(zmq_msg_data(&f[2]),
				    zmq_msg_size(&f[2]));
				const uint8_t *raw = n >= 4 ? zmq_msg_data(&f[3]) : NULL;
				size_t	 len = n >= 4 ? zmq_msg_size(&f[3]) : 0;

				if (rec == NULL) {
					fprintf(stderr, "vmingest replay: seq %llu: bad "
					    "record; skipped\n",
					    (unsigned long long)env->seq);
					status = 1;
				} else if ((!o->has_since || rec->received_at_us >=
				    o->since) && (!o->has_until ||
				    rec->received_at_us < o->until)) {
					if (o->format != F_JSON && n < 4) {
						fprintf(stderr, "vmingest replay: seq %llu: "
						    "no raw frame\n",
						    (unsigned long long)env->seq);
						k = -2;
					} else if (o->format != F_JSON && len == 0 &&
					    rec->raw_size > 0) {
						/* the service sends none once pruned */
						fprintf(stderr, "vmingest replay: seq %llu: "
						    "raw bytes pruned by retention; "
						    "skipped\n",
						    (unsigned long long)env->seq);
						missing++;
					} else if (o->format != F_JSON &&
					    !cli_raw_matches(rec, raw, len)) {
						fprintf(stderr, "vmingest replay: seq %llu: "
						    "the raw bytes do not match the "
						    "record's sha256\n",
						    (unsigned long long)env->seq);
						k = -2;
					} else if (emit(o, &w, env->seq, rec, raw,
					    len) == -1) {
						fprintf(stderr, "vmingest replay: %s: %s\n",
						    w.path, strerror(errno));
						k = -2;
					}
					pg.bytes += len;
				}
				record_free(rec);
				last = env->seq;
				pg.done++;
				progress_show(&pg, 0);
			} else if (env->kind == VMINGEST__ENVELOPE__KIND__BATCH_END) {
				Vmingest__ReplayRequest m = VMINGEST__REPLAY_REQUEST__INIT;

				m.more = 1;
				m.request_id = rid;
				m.credit = REMOTE_CREDIT;
				if (send_request(d, &m) != 0)
					k = -2;
			} else if (env->kind == VMINGEST__ENVELOPE__KIND__REPLAY_END) {
				progress_show(&pg, 1);
				if (status == 2)
					status = 0;
				k = -3;
			} else if (env->kind == VMINGEST__ENVELOPE__KIND__ERROR) {
				fprintf(stderr, "vmingest replay: %s: %s\n", o->endpoint,
				    env->error ? env->error : "error");
				k = -2;
			}
		}
		if (env != NULL)
			vmingest__envelope__free_unpacked(env, NULL);
		while (n > 0)
			zmq_msg_close(&f[--n]);
		if (k == -2) {
			status = 2;
			break;
		}
		if (k == -3)
			break;
	}
	if (missing > 0 && status == 0)
		status = 1;
out:
	if (have_out) {
		if (out_close(&w) == -1)
			status = 2;
		sigaction(SIGINT, &osa, NULL);
	}
	if (d != NULL)
		zmq_close(d);
	if (ctx != NULL)
		zmq_ctx_term(ctx);
	return status;
}

int
cmd_replay(int argc, char **argv)
{
	struct ropts o;

	log_set_quiet(1);
	if (parse_opts(argc, argv, &o) == -1)
		return 2;
	if (o.endpoint != NULL)
		return replay_remote(&o);
	return replay_local(&o);
}
