/*
 * cmd_reprocess.c - `vmingest reprocess`, `vmingest quarantine list` and
 * `vmingest quarantine release`: run the daemon's current normalize and
 * rules again on stored mail.
 *
 *   cmd_reprocess   select seqs, ask the daemon over its control socket
 *   cmd_quarantine  list quarantined records / release (reprocess) them
 *
 * The selection (range, --quarantined, --topic, already-released) is
 * resolved here by reading the store read-only; the daemon gets plain
 * seq lists, CTL_BATCH at a time, over [daemon] control_socket (protocol
 * in daemon/control.h) and does the work on its main loop: each message
 * becomes a new record with a new seq and reprocessed_from = the old seq,
 * committed and published as usual.  The old record stays.
 *
 * "Released": a quarantined record some later record was reprocessed
 * from.  `reprocess --quarantined` and `quarantine release` skip those
 * unless --force, so running a release twice does not publish twice.
 *
 * Error policy: usage 2; store or socket unreachable 2; a seq the daemon
 * could not reprocess is printed and makes the exit status 1.
 *
 * SECURITY: the daemon's replies are parsed with jansson and only known
 * fields are printed (escaped by the JSON encoder).  Who may ask is
 * decided by the socket's file permissions.
 */
#include <sys/socket.h>
#include <sys/un.h>

#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cmd_common.h"
#include "cmds.h"
#include "log.h"
#include "record.h"
#include "store.h"
#include "util.h"

#define CTL_BATCH		4096
#define CTL_IDLE_MS		(10 * 60 * 1000)	/* no reply for this long: give up */
#define CTL_LINE_MAX		(1 << 20)
#define SEL_MAX_TOPICS		32

static const char reprocess_usage[] =
"usage: vmingest reprocess [-c FILE] [--store DIR] [--socket PATH]\n"
"                          (--from SEQ --to SEQ | --quarantined | SEQ...)\n"
"                          [--topic PREFIX]... [--dry-run] [--force] [--json]\n"
"\n"
"Ask the running vmingestd to run normalize and its current rules again\n"
"on the stored raw bytes of the selected records.  Each becomes a new\n"
"record with a new seq and reprocessed_from = the old seq, and is\n"
"published as usual; the old record stays in the log unchanged.\n"
"\n"
"Selection:\n"
"  --from SEQ --to SEQ  every stored record in the range (inclusive)\n"
"  --quarantined        every QUARANTINED record not yet released (a\n"
"                       later record reprocessed from it); --force takes\n"
"                       released ones too\n"
"  SEQ...               these records\n"
"  --topic PREFIX       only records with a topic starting with PREFIX\n"
"                       (may be repeated; any matches)\n"
"\n"
"Options:\n"
"  -c FILE         the daemon's configuration: the store and the control\n"
"                  socket ([daemon] control_socket, default\n"
"                  STATE_DIR/control.sock)\n"
"  --store DIR     read the selection from this store instead\n"
"  --socket PATH   the control socket instead\n"
"  --dry-run       print what would change (disposition, topics) and\n"
"                  write nothing\n"
"  --json          print the daemon's reply lines as they are (one JSON\n"
"                  object per seq, then a \"done\" object)\n"
"\n"
"Output: a line per seq: \"SEQ -> NEW: OLDDISP [topics] -> NEWDISP\n"
"[topics]\" (with --dry-run: \"SEQ: ... (would change)\" or \"(same)\").\n"
"\n"
"Exit status: 0 every selected seq was reprocessed (or, with --dry-run,\n"
"evaluated); 1 some seqs could not be (missing, raw bytes pruned, queue\n"
"gone); 2 usage error, store or daemon cannot be reached.\n"
"\n"
"Examples:\n"
"  vmingest reprocess -c /etc/vmingest/vmingestd.conf --quarantined --dry-run\n"
"  vmingest reprocess -c /etc/vmingest/vmingestd.conf --from 100 --to 200 \\\n"
"      --topic rn.\n"
"  vmingest reprocess 812 813\n";

static const char quarantine_usage[] =
"usage: vmingest quarantine list [-c FILE | --store DIR] [--all] [--json]\n"
"       vmingest quarantine release [-c FILE] [--store DIR] [--socket PATH]\n"
"                                   [--dry-run] [--force] [--json] SEQ...\n"
"\n"
"list     the QUARANTINED records not yet released (with --all, released\n"
"         ones too, with the seq they were released as): seq, received\n"
"         time, queue, reason, subject; --json prints one object per line\n"
"         (seq, received_at_us, queue, reason, subject, released_as).\n"
"release  reprocess these quarantined records with the daemon's current\n"
"         rules (see vmingest reprocess), e.g. after a rules fix.  A seq\n"
"         that is not quarantined is refused by the daemon; one already\n"
"         released is skipped unless --force.\n"
"\n"
"Exit status: list: 0 (even if empty), 2 store error.  release: 0 all\n"
"released; 1 some could not be; 2 usage or daemon unreachable.\n"
"\n"
"Examples:\n"
"  vmingest quarantine list -c /etc/vmingest/vmingestd.conf\n"
"  vmingest quarantine release -c /etc/vmingest/vmingestd.conf 812 813\n";

struct sel {
	const char *cfg, *store, *sock;
	uint64_t from, to;
	int	 range, quar, dry, force, json, qonly;
	char	 epoch[17];	/* of the store the selection was read from */
	const char *topics[SEL_MAX_TOPICS];
	size_t	 n_topics;
	uint64_t *seqs;
	size_t	 n, cap;
};

static void
sel_push(struct sel *s, uint64_t seq)
{
	if (s->n == s->cap) {
		s->cap = s->cap ? s->cap * 2 : 1024;
		if ((s->seqs = realloc(s->seqs, s->cap * sizeof(uint64_t))) == NULL)
			log_fatal("realloc");
	}
	s->seqs[s->n++] = seq;
}

static int
topic_ok(const struct sel *s, const Vmingest__Record *r)
{
	size_t	 i, k, pl;

	if (s->n_topics == 0)
		return 1;
	for (k = 0; k < s->n_topics; k++) {
		pl = strlen(s->topics[k]);
		for (i = 0; i < r->n_topics; i++)
			if (strncmp(r->topics[i]->topic, s->topics[k], pl) == 0)
				return 1;
		if (r->topic != NULL && r->topic[0] != '\0' &&
		    strncmp(r->topic, s->topics[k], pl) == 0)
			return 1;
	}
	return 0;
}

/* old seq -> the first seq reprocessed from it, for every record */
struct rel {
	uint64_t old, as;
};

struct released {
	struct rel *v;
	size_t	 n, cap;
};

static int
cmp_rel(const void *a, const void *b)
{
	const struct rel *x = a, *y = b;

	if (x->old != y->old)
		return x->old < y->old ? -1 : 1;
	return x->as < y->as ? -1 : x->as > y->as;
}

static uint64_t
released_as(const struct released *rl, uint64_t seq)
{
	size_t	 lo = 0, hi = rl->n;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if (rl->v[mid].old < seq)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < rl->n && rl->v[lo].old == seq ? rl->v[lo].as : 0;
}

/*
 * One pass over the store: fn sees every record; rl gets the released
 * map (old seq -> new seq), sorted by old seq.
 */
static int
scan_store(struct store *st, struct released *rl,
    int (*fn)(const Vmingest__Record *, void *), void *arg)
{
	struct store_rtxn *r;
	struct store_cursor *c;
	const void *p;
	size_t	 len;
	uint64_t seq;
	int	 rc;

	if ((rc = store_rbegin(st, &r)) != 0)
		return rc;
	if ((rc = store_cursor_open(r, 1, &c)) != 0) {
		store_rend(r);
		return rc;
	}
	while ((rc = store_cursor_next(c, &seq, &p, &len)) == 0) {
		Vmingest__Record *rec = record_unpack(p, len);

		if (rec == NULL)
			continue;
		if (rec->reprocessed_from != 0) {
			if (rl->n == rl->cap) {
				rl->cap = rl->cap ? rl->cap * 2 : 256;
				if ((rl->v = realloc(rl->v, rl->cap *
				    sizeof(*rl->v))) == NULL)
					log_fatal("realloc");
			}
			rl->v[rl->n].old = rec->reprocessed_from;
			rl->v[rl->n].as = seq;
			rl->n++;
		}
		if (fn != NULL && fn(rec, arg) != 0) {
			record_free(rec);
			break;
		}
		record_free(rec);
	}
	store_cursor_close(c);
	store_rend(r);
	/* by old seq, then new: the search finds the first release */
	if (rl->n > 1)
		qsort(rl->v, rl->n, sizeof(*rl->v), cmp_rel);
	return rc == STORE_E_NOTFOUND ? 0 : rc;
}

static int
collect_quar(const Vmingest__Record *rec, void *arg)
{
	struct sel *s = arg;

	if (rec->disposition == VMINGEST__DISPOSITION__QUARANTINED &&
	    topic_ok(s, rec))
		sel_push(s, rec->seq);
	return 0;
}

static int
collect_range(struct store *st, struct sel *s)
{
	struct store_rtxn *r;
	struct store_cursor *c;
	const void *p;
	size_t	 len;
	uint64_t seq;
	int	 rc;

	if ((rc = store_rbegin(st, &r)) != 0)
		return rc;
	if ((rc = store_cursor_open(r, s->from, &c)) != 0) {
		store_rend(r);
		return rc;
	}
	while ((rc = store_cursor_next(c, &seq, &p, &len)) == 0 && seq <= s->to) {
		Vmingest__Record *rec;

		if (s->n_topics > 0) {
			if ((rec = record_unpack(p, len)) == NULL)
				continue;
			if (!topic_ok(s, rec)) {
				record_free(rec);
				continue;
			}
			record_free(rec);
		}
		sel_push(s, seq);
	}
	store_cursor_close(c);
	store_rend(r);
	return rc == STORE_E_NOTFOUND || rc == 0 ? 0 : rc;
}

/* Keep only explicit seqs that match --topic (they must exist to match). */
static int
filter_topics(struct store *st, struct sel *s)
{
	struct store_rtxn *r;
	size_t	 i, k = 0;
	int	 rc;

	if (s->n_topics == 0)
		return 0;
	if ((rc = store_rbegin(st, &r)) != 0)
		return rc;
	for (i = 0; i < s->n; i++) {
		Vmingest__Record *rec;

		if (store_get_record(r, s->seqs[i], &rec) != 0)
			continue;
		if (topic_ok(s, rec))
			s->seqs[k++] = s->seqs[i];
		record_free(rec);
	}
	s->n = k;
	store_rend(r);
	return 0;
}

static int
ctl_connect(const char *path)
{
	struct sockaddr_un sun;
	int	 fd;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path) >=
	    (int)sizeof(sun.sun_path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		return -1;
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		close(fd);
		return -1;
	}
	return fd;
}

struct reader {
	int	 fd;
	char	*buf;
	size_t	 len;
};

/* Next reply line as JSON (NULL: connection closed, timeout or garbage). */
static json_t *
ctl_readline(struct reader *rd)
{
	char	*nl, tmp[65536];
	ssize_t	 k;
	json_t	*j;

	for (;;) {
		if (rd->len > 0 && (nl = memchr(rd->buf, '\n', rd->len)) != NULL) {
			size_t used = (size_t)(nl - rd->buf) + 1;

			j = json_loadb(rd->buf, used - 1, 0, NULL);
			memmove(rd->buf, rd->buf + used, rd->len - used);
			rd->len -= used;
			if (j == NULL || !json_is_object(j)) {
				json_decref(j);
				return NULL;
			}
			return j;
		}
		if (rd->len > CTL_LINE_MAX)
			return NULL;
		{
			struct pollfd pfd = { rd->fd, POLLIN, 0 };

			if (poll(&pfd, 1, CTL_IDLE_MS) <= 0)
				return NULL;
		}
		if ((k = read(rd->fd, tmp, sizeof(tmp))) == -1 && errno == EINTR)
			continue;
		if (k <= 0)
			return NULL;
		if ((rd->buf = realloc(rd->buf, rd->len + (size_t)k)) == NULL)
			log_fatal("realloc");
		memcpy(rd->buf + rd->len, tmp, (size_t)k);
		rd->len += (size_t)k;
	}
}

static void
fmt_side(char *buf, size_t n, json_t *side)
{
	json_t	*t = json_object_get(side, "topics"), *v;
	size_t	 i, off;
	int	 w;

	w = snprintf(buf, n, "%s [", json_string_value(json_object_get(side,
	    "disposition")) ? json_string_value(json_object_get(side,
	    "disposition")) : "?");
	off = w > 0 && (size_t)w < n ? (size_t)w : n - 1;
	json_array_foreach(t, i, v) {
		w = snprintf(buf + off, n - off, "%s%s", i ? " " : "",
		    json_string_value(v) ? json_string_value(v) : "");
		if (w < 0 || (size_t)w >= n - off)
			break;
		off += (size_t)w;
	}
	if (off + 2 <= n) {
		buf[off++] = ']';
		buf[off] = '\0';
	}
}

static void
print_reply(const struct sel *s, json_t *j)
{
	char	 a[512], b[512], *line;
	json_int_t seq = json_integer_value(json_object_get(j, "seq"));
	const char *err = json_string_value(json_object_get(j, "error"));

	if (s->json) {
		if ((line = json_dumps(j, JSON_COMPACT)) != NULL) {
			puts(line);
			free(line);
		}
		return;
	}
	if (err != NULL) {
		printf("%lld: error: %s\n", (long long)seq, err);
		return;
	}
	fmt_side(a, sizeof(a), json_object_get(j, "old"));
	fmt_side(b, sizeof(b), json_object_get(j, "new"));
	if (s->dry)
		printf("%lld: %s -> %s (%s)\n", (long long)seq, a, b,
		    json_is_true(json_object_get(j, "changed")) ?
		    "would change" : "same");
	else
		printf("%lld -> %lld: %s -> %s\n", (long long)seq,
		    (long long)json_integer_value(json_object_get(j, "new_seq")),
		    a, b);
}

/* Send the selection in batches; print replies.  Returns the exit status. */
static int
run_requests(const char *prog, const struct sel *s, const char *sock)
{
	struct reader rd = { -1, NULL, 0 };
	size_t	 off, i, errors = 0, count = 0, changed = 0;
	int	 status = 0;

	if ((rd.fd = ctl_connect(sock)) == -1) {
		fprintf(stderr, "vmingest %s: control socket %s: %s (is vmingestd "
		    "running?)\n", prog, sock, strerror(errno));
		return 2;
	}
	for (off = 0; off < s->n || (off == 0 && s->n == 0); off += CTL_BATCH) {
		size_t	 end = off + CTL_BATCH < s->n ? off + CTL_BATCH : s->n;
		json_t	*req, *arr = json_array(), *j;
		char	*txt;
		size_t	 tl, sent = 0;
		ssize_t	 k;

		for (i = off; i < end; i++)
			json_array_append_new(arr, json_integer((json_int_t)s->seqs[i]));
		req = json_pack("{s:s,s:o,s:b,s:b,s:b,s:b,s:s}", "op", "reprocess",
		    "seqs", arr, "dry_run", s->dry, "quarantined_only",
		    s->qonly || s->quar, "release", s->qonly || s->quar,
		    "force", s->force, "epoch", s->epoch);
		txt = json_dumps(req, JSON_COMPACT);
		json_decref(req);
		if (txt == NULL)
			log_fatal("json_dumps");
		tl = strlen(txt);
		txt[tl++] = '\n';	/* over the NUL: the buffer has tl+1 bytes */
		while (sent < tl) {
			k = send(rd.fd, txt + sent, tl - sent, MSG_NOSIGNAL);
			if (k == -1 && errno == EINTR)
				continue;
			if (k <= 0) {
				free(txt);
				goto lost;
			}
			sent += (size_t)k;
		}
		free(txt);
		while ((j = ctl_readline(&rd)) != NULL) {
			if (json_is_true(json_object_get(j, "done"))) {
				const char *e = json_string_value(json_object_get(j,
				    "error"));

				if (e != NULL) {
					fprintf(stderr, "vmingest %s: daemon: %s\n",
					    prog, e);
					json_decref(j);
					status = 2;
					goto out;
				}
				count += (size_t)json_integer_value(json_object_get(j,
				    "count"));
				errors += (size_t)json_integer_value(json_object_get(j,
				    "errors"));
				changed += (size_t)json_integer_value(json_object_get(j,
				    "changed"));
				json_decref(j);
				break;
			}
			print_reply(s, j);
			json_decref(j);
		}
		if (j == NULL)
			goto lost;
		if (s->n == 0)
			break;
	}
	fflush(stdout);
	fprintf(stderr, "vmingest %s: %zu record(s) %s, %zu changed, %zu error(s)\n",
	    prog, count, s->dry ? "evaluated (dry run)" : "reprocessed", changed,
	    errors);
	status = errors > 0 ? 1 : 0;
	goto out;
lost:
	fprintf(stderr, "vmingest %s: lost the daemon's control connection\n", prog);
	status = 2;
out:
	close(rd.fd);
	free(rd.buf);
	return status;
}

enum { O_STORE = 256, O_SOCK, O_FROM, O_TO, O_QUAR, O_TOPIC, O_DRY, O_FORCE,
    O_JSON, O_ALL };

static const struct option rp_opts[] = {
	{ "config", required_argument, NULL, 'c' },
	{ "store", required_argument, NULL, O_STORE },
	{ "socket", required_argument, NULL, O_SOCK },
	{ "from", required_argument, NULL, O_FROM },
	{ "to", required_argument, NULL, O_TO },
	{ "quarantined", no_argument, NULL, O_QUAR },
	{ "topic", required_argument, NULL, O_TOPIC },
	{ "dry-run", no_argument, NULL, O_DRY },
	{ "force", no_argument, NULL, O_FORCE },
	{ "json", no_argument, NULL, O_JSON },
	{ "all", no_argument, NULL, O_ALL },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 }
};

/* Parse options common to reprocess and release; SEQ args appended. */
static int
parse_sel(int argc, char **argv, const char *usage, struct sel *s, int *all)
{
	int	 ch, has_from = 0, has_to = 0;
	uint64_t v;

	optind = 1;
	while ((ch = getopt_long(argc, argv, "c:h", rp_opts, NULL)) != -1) {
		switch (ch) {
		case 'c': s->cfg = optarg; break;
		case O_STORE: s->store = optarg; break;
		case O_SOCK: s->sock = optarg; break;
		case O_FROM:
			if (cli_parse_u64(optarg, &s->from) == -1)
				goto bad;
			has_from = 1;
			break;
		case O_TO:
			if (cli_parse_u64(optarg, &s->to) == -1)
				goto bad;
			has_to = 1;
			break;
		case O_QUAR: s->quar = 1; break;
		case O_TOPIC:
			if (s->n_topics == SEL_MAX_TOPICS)
				goto bad;
			s->topics[s->n_topics++] = optarg;
			break;
		case O_DRY: s->dry = 1; break;
		case O_FORCE: s->force = 1; break;
		case O_JSON: s->json = 1; break;
		case O_ALL:
			if (all == NULL)
				goto bad;
			*all = 1;
			break;
		case 'h': fputs(usage, stdout); exit(0);
		default: goto bad;
		}
	}
	if (has_from != has_to)
		goto bad;
	s->range = has_from;
	for (; optind < argc; optind++) {
		if (cli_parse_u64(argv[optind], &v) == -1 || v == 0) {
			fprintf(stderr, "vmingest: not a seq: %s\n", argv[optind]);
			goto bad;
		}
		sel_push(s, v);
	}
	return 0;
bad:
	fputs(usage, stderr);
	return -1;
}

/* Resolve the selection against the store and send it.  */
static int
reprocess_sel(const char *prog, struct sel *s)
{
	struct config *cf = NULL;
	struct store *st = NULL;
	struct released rl = { NULL, 0, 0 };
	const char *sock = s->sock;
	size_t	 i, k, skipped = 0;
	int	 rc, status;

	if ((cf = cli_load_config(prog, s->cfg)) == NULL)
		return 2;
	if (sock == NULL)
		sock = cf->daemon.control_socket;
	if (cli_open_store(prog, s->store ? s->store : cf->store.path, NULL,
	    &st) == -1) {
		config_free(cf);
		return 2;
	}
	if (s->range)
		rc = collect_range(st, s);
	else if (s->quar)
		rc = scan_store(st, &rl, collect_quar, s);
	else {
		rc = filter_topics(st, s);
		if (rc == 0 && s->qonly && !s->force)
			rc = scan_store(st, &rl, NULL, NULL);
	}
	if (rc != 0) {
		fprintf(stderr, "vmingest %s: store: %s\n", prog, store_strerror(rc));
		status = 2;
		goto out;
	}
	if (!s->force && (s->quar || s->qonly)) {
		for (i = k = 0; i < s->n; i++) {
			uint64_t as = released_as(&rl, s->seqs[i]);

			if (as != 0) {
				skipped++;
				if (!s->quar)
					fprintf(stderr, "vmingest %s: %llu was "
					    "released already as %llu; skipped "
					    "(--force to do it again)\n", prog,
					    (unsigned long long)s->seqs[i],
					    (unsigned long long)as);
				continue;
			}
			s->seqs[k++] = s->seqs[i];
		}
		s->n = k;
		if (skipped > 0 && s->quar)
			fprintf(stderr, "vmingest %s: %zu quarantined record(s) "
			    "released already; skipped (--force to include)\n",
			    prog, skipped);
	}
	if (s->range || s->quar)
		qsort(s->seqs, s->n, sizeof(uint64_t), util_cmp_u64);
	snprintf(s->epoch, sizeof(s->epoch), "%016llx",
	    (unsigned long long)store_epoch(st));
	store_close(st);
	st = NULL;
	if (s->n == 0) {
		fprintf(stderr, "vmingest %s: nothing selected\n", prog);
		status = 0;
		goto out;
	}
	status = run_requests(prog, s, sock);
out:
	store_close(st);
	config_free(cf);
	free(rl.v);
	return status;
}

int
cmd_reprocess(int argc, char **argv)
{
	struct sel s;
	int	 status, modes;

	log_set_quiet(1);
	memset(&s, 0, sizeof(s));
	if (parse_sel(argc, argv, reprocess_usage, &s, NULL) == -1)
		return 2;
	modes = s.range + s.quar + (s.n > 0);
	if (modes != 1 || (s.range && s.from > s.to)) {
		fprintf(stderr, "vmingest reprocess: give exactly one of --from/--to, "
		    "--quarantined or SEQ...\n");
		fputs(reprocess_usage, stderr);
		free(s.seqs);
		return 2;
	}
	status = reprocess_sel("reprocess", &s);
	free(s.seqs);
	return status;
}

struct qlist {
	Vmingest__Record **recs;
	size_t	 n, cap;
};

static int
collect_qrec(const Vmingest__Record *rec, void *arg)
{
	struct qlist *q = arg;
	Vmingest__Record *copy;
	uint8_t	*buf;
	size_t	 len;

	if (rec->disposition != VMINGEST__DISPOSITION__QUARANTINED)
		return 0;
	if (record_pack(rec, &buf, &len) != 0)
		return 0;
	copy = record_unpack(buf, len);
	free(buf);
	if (copy == NULL)
		return 0;
	if (q->n == q->cap) {
		q->cap = q->cap ? q->cap * 2 : 64;
		if ((q->recs = realloc(q->recs, q->cap * sizeof(*q->recs))) == NULL)
			log_fatal("realloc");
	}
	q->recs[q->n++] = copy;
	return 0;
}

static int
quarantine_list(int argc, char **argv)
{
	struct sel s;
	struct store *st = NULL;
	struct released rl = { NULL, 0, 0 };
	struct qlist q = { NULL, 0, 0 };
	size_t	 i;
	int	 all = 0, rc;

	memset(&s, 0, sizeof(s));
	if (parse_sel(argc, argv, quarantine_usage, &s, &all) == -1 || s.n > 0 ||
	    s.range || s.quar) {
		free(s.seqs);
		return 2;
	}
	if (cli_open_store("quarantine", s.store, s.cfg, &st) == -1)
		return 2;
	rc = scan_store(st, &rl, collect_qrec, &q);
	store_close(st);
	if (rc != 0) {
		fprintf(stderr, "vmingest quarantine: store: %s\n", store_strerror(rc));
		return 2;
	}
	if (!s.json)
		printf("%-10s %-20s %-12s %-10s %s\n", "SEQ", "RECEIVED", "QUEUE",
		    "RELEASED", "REASON / SUBJECT");
	for (i = 0; i < q.n; i++) {
		Vmingest__Record *r = q.recs[i];
		uint64_t as = released_as(&rl, r->seq);

		if (as == 0 || all) {
			if (s.json) {
				json_t *j = json_pack("{s:I,s:I,s:s,s:s,s:s,s:I}",
				    "seq", (json_int_t)r->seq, "received_at_us",
				    (json_int_t)r->received_at_us, "queue",
				    r->queue ? r->queue : "", "reason",
				    r->reason ? r->reason : "", "subject",
				    r->subject ? r->subject : "", "released_as",
				    (json_int_t)as);
				if (j != NULL)
					cli_print_json(j);
			} else {
				char	 tb[32], rb[24];
				time_t	 t = (time_t)(r->received_at_us / 1000000);
				struct tm tm;

				gmtime_r(&t, &tm);
				strftime(tb, sizeof(tb), "%Y-%m-%dT%H:%M:%SZ", &tm);
				if (as)
					snprintf(rb, sizeof(rb), "%llu",
					    (unsigned long long)as);
				else
					snprintf(rb, sizeof(rb), "-");
				printf("%-10llu %-20s %-12.12s %-10s %.60s / %.60s\n",
				    (unsigned long long)r->seq, tb,
				    r->queue ? r->queue : "", rb,
				    r->reason ? r->reason : "",
				    r->subject ? r->subject : "");
			}
		}
		record_free(r);
	}
	free(q.recs);
	free(rl.v);
	return 0;
}

int
cmd_quarantine(int argc, char **argv)
{
	struct sel s;
	int	 status;

	log_set_quiet(1);
	if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
		fputs(quarantine_usage, argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	if (!strcmp(argv[1], "list"))
		return quarantine_list(argc - 1, argv + 1);
	if (strcmp(argv[1], "release") != 0) {
		fputs(quarantine_usage, stderr);
		return 2;
	}
	memset(&s, 0, sizeof(s));
	if (parse_sel(argc - 1, argv + 1, quarantine_usage, &s, NULL) == -1)
		return 2;
	if (s.n == 0 || s.range || s.quar) {
		fprintf(stderr, "vmingest quarantine release: give the SEQs to "
		    "release\n");
		free(s.seqs);
		return 2;
	}
	s.qonly = 1;
	status = reprocess_sel("quarantine", &s);
	free(s.seqs);
	return status;
}
