/*
 * cmd_store.c - `vmingest list`, `vmingest show`, `vmingest stats`:
 * read the store directly (read-only LMDB transactions, so they work
 * while the daemon runs and never block it).
 *
 * Output: a table for people; with --json one object per line, field
 * names as in proto/vmingest.proto, enums by name, sha256 as lower hex
 * (lib/record.c: record_to_json).  `show --raw` writes the stored bytes
 * unchanged.
 */
#include <getopt.h>
#include <stdarg.h>
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

static const char list_usage[] =
"usage: vmingest list [--store DIR | -c FILE] [--from SEQ] [--limit N]\n"
"                     [--quarantined] [--json]\n"
"\n"
"List stored records in seq order.\n"
"\n"
"  --store DIR     the store directory (default: from -c, else\n"
"                  ./var/vmingest/store)\n"
"  -c FILE         take the store path from the daemon's configuration\n"
"  --from SEQ      start at this seq (default 1)\n"
"  --limit N       print at most N records (default: all)\n"
"  --quarantined   only QUARANTINED records\n"
"  --json          one JSON object per line, field names as in the .proto\n"
"\n"
"Exit status: 0 listed (maybe nothing), 2 usage or store error.\n";

static const char show_usage[] =
"usage: vmingest show SEQ [--store DIR | -c FILE] [--raw | --json]\n"
"\n"
"Show one record: a summary for people, the full record as one JSON\n"
"object (--json), or the stored raw message exactly as delivered (--raw).\n"
"\n"
"Exit status: 0 shown, 1 no such record, 2 usage or store error.\n";

static const char stats_usage[] =
"usage: vmingest stats [--store DIR | -c FILE] [--json]\n"
"\n"
"Store statistics: epoch, seq range, records by disposition, map use.\n"
"\n"
"Exit status: 0, or 2 on a usage or store error.\n";

enum { O_STORE = 256, O_FROM, O_LIMIT, O_QUAR, O_JSON, O_RAW };

static const struct option store_opts[] = {
	{ "store", required_argument, NULL, O_STORE },
	{ "config", required_argument, NULL, 'c' },
	{ "from", required_argument, NULL, O_FROM },
	{ "limit", required_argument, NULL, O_LIMIT },
	{ "quarantined", no_argument, NULL, O_QUAR },
	{ "json", no_argument, NULL, O_JSON },
	{ "raw", no_argument, NULL, O_RAW },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 }
};

struct sopts {
	const char *store, *cfg;
	uint64_t from, limit;
	int	 quar, json, raw;
};

static int
parse(int argc, char **argv, const char *usage, struct sopts *o)
{
	int	 ch;

	memset(o, 0, sizeof(*o));
	optind = 1;
	while ((ch = getopt_long(argc, argv, "c:h", store_opts, NULL)) != -1) {
		switch (ch) {
		case O_STORE: o->store = optarg; break;
		case 'c': o->cfg = optarg; break;
		case O_FROM:
			if (cli_parse_u64(optarg, &o->from) == -1)
				goto bad;
			break;
		case O_LIMIT:
			if (cli_parse_u64(optarg, &o->limit) == -1)
				goto bad;
			break;
		case O_QUAR: o->quar = 1; break;
		case O_JSON: o->json = 1; break;
		case O_RAW: o->raw = 1; break;
		case 'h': fputs(usage, stdout); exit(0);
		default: goto bad;
		}
	}
	return 0;
bad:
	fputs(usage, stderr);
	return -1;
}

static void
fmt_time(char *buf, size_t n, int64_t us)
{
	time_t	 t = (time_t)(us / 1000000);
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* Cut s to at most w display columns (bytes; UTF-8 continuation aware). */
static void
cell(char *buf, size_t n, const char *s, size_t w)
{
	size_t	 i = 0, cols = 0;

	while (s[i] && cols < w && i + 4 < n) {
		unsigned char c = (unsigned char)s[i];

		buf[i] = (c < 0x20) ? ' ' : (char)c;
		i++;
		while (((unsigned char)s[i] & 0xc0) == 0x80 && i + 1 < n) {
			buf[i] = s[i];
			i++;
		}
		cols++;
	}
	buf[i] = '\0';
}

/* One record as list prints it, to fp. */
static void
list_line(FILE *fp, const struct sopts *o, const Vmingest__Record *rec)
{
	char	 when[32], q[16], t[40], s[200];

	if (o->json) {
		cli_fprint_json(fp, record_to_json(rec, 0));
		return;
	}
	fmt_time(when, sizeof(when), rec->received_at_us);
	cell(q, sizeof(q), rec->queue, 10);
	cell(t, sizeof(t), rec->topic, 24);
	cell(s, sizeof(s), rec->disposition == VMINGEST__DISPOSITION__QUARANTINED ?
	    rec->reason : rec->subject, 60);
	fprintf(fp, "%-8llu %-20s %-10s %-24s %-11s %8llu  %s\n",
	    (unsigned long long)rec->seq, when, q, t,
	    disposition_name(rec->disposition), (unsigned long long)rec->raw_size, s);
}

#define LIST_CHUNK	256	/* records formatted per read snapshot */

int
cmd_list(int argc, char **argv)
{
	struct sopts o;
	struct store *st;
	struct store_rtxn *r;
	struct store_cursor *c;
	const void *p;
	size_t	 len;
	uint64_t seq, n = 0, next;
	int	 rc, done = 0;

	if (parse(argc, argv, list_usage, &o) == -1 || optind != argc)
		return 2;
	if (cli_open_store("list", o.store, o.cfg, &st) == -1)
		return 2;
	if ((rc = store_rbegin(st, &r)) != 0) {
		fprintf(stderr, "vmingest list: %s\n", store_strerror(rc));
		store_close(st);
		return 2;
	}
	if (!o.json)
		printf("%-8s %-20s %-10s %-24s %-11s %8s  %s\n", "SEQ", "RECEIVED",
		    "QUEUE", "TOPIC", "DISPOSITION", "SIZE", "SUBJECT");
	/*
	 * A chunk of lines is formatted in a fresh snapshot, which is
	 * released before they are written: `vmingest list | less` left open
	 * must not pin the daemon's pages (the map would fill).
	 */
	next = o.from;
	while (!done) {
		char	*buf = NULL;
		size_t	 blen = 0, k = 0;
		FILE	*mem;

		if ((mem = open_memstream(&buf, &blen)) == NULL)
			log_fatal("open_memstream");
		if ((rc = store_rrenew(r)) != 0 ||
		    (rc = store_cursor_open(r, next, &c)) != 0) {
			fclose(mem);
			free(buf);
			fprintf(stderr, "vmingest list: %s\n", store_strerror(rc));
			store_rend(r);
			store_close(st);
			return 2;
		}
		done = 1;
		while ((o.limit == 0 || n < o.limit) &&
		    store_cursor_next(c, &seq, &p, &len) == 0) {
			Vmingest__Record *rec = record_unpack(p, len);

			next = seq + 1;
			if (rec == NULL) {
				fprintf(stderr, "vmingest list: seq %llu: record does "
				    "not decode\n", (unsigned long long)seq);
				continue;
			}
			if (o.quar &&
			    rec->disposition != VMINGEST__DISPOSITION__QUARANTINED) {
				record_free(rec);
				continue;
			}
			n++;
			list_line(mem, &o, rec);
			record_free(rec);
			if (++k == LIST_CHUNK) {
				done = 0;
				break;
			}
		}
		store_cursor_close(c);
		store_rreset(r);
		fclose(mem);
		if (blen > 0 && fwrite(buf, 1, blen, stdout) != blen)
			done = 1;	/* the caller sees the error on stdout */
		free(buf);
	}
	store_rend(r);
	store_close(st);
	return 0;
}

/*
 * printf for show's text output: the fields are the sender's bytes (valid
 * UTF-8, but ESC, BEL and C1 controls included), so every control
 * character but the newlines of our own format becomes '?' rather than
 * reach the operator's terminal.
 */
static void tprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void
tprintf(const char *fmt, ...)
{
	va_list	 ap;
	char	*s;
	size_t	 i, n;
	int	 len;

	va_start(ap, fmt);
	len = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (len < 0)
		return;
	n = (size_t)len;
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == 0xc2 && i + 1 < n && (unsigned char)s[i + 1] >= 0x80 &&
		    (unsigned char)s[i + 1] <= 0x9f) {
			s[i] = '?';		/* U+0080..U+009F as one '?' */
			memmove(s + i + 1, s + i + 2, n - i - 2);
			n--;
		} else if ((c < 0x20 && c != '\n' && c != '\t') || c == 0x7f)
			s[i] = '?';
	}
	fwrite(s, 1, n, stdout);
	free(s);
}

static void
print_addr(const char *what, const Vmingest__Address *a)
{
	if (a->name[0])
		tprintf("%-13s %s <%s>\n", what, a->name, a->address);
	else
		tprintf("%-13s <%s>\n", what, a->address);
}

static void
show_text(const Vmingest__Record *rec)
{
	char	 when[32], hex[65];
	size_t	 i, k;

	fmt_time(when, sizeof(when), rec->received_at_us);
	hex_encode(hex, rec->sha256.data, rec->sha256.len == 32 ? 32 : 0);
	tprintf("seq:          %llu\n", (unsigned long long)rec->seq);
	tprintf("queue:        %s\n", rec->queue);
	tprintf("topic:        %s\n", rec->topic);
	for (i = 0; i < rec->n_topics; i++)
		tprintf("published:    %s #%llu\n", rec->topics[i]->topic,
		    (unsigned long long)rec->topics[i]->topic_seq);
	tprintf("disposition:  %s%s%s\n", disposition_name(rec->disposition),
	    rec->reason[0] ? " - " : "", rec->reason);
	if (rec->duplicate_of)
		tprintf("duplicate_of: %llu\n", (unsigned long long)rec->duplicate_of);
	if (rec->reprocessed_from)
		tprintf("reprocessed_from: %llu\n",
		    (unsigned long long)rec->reprocessed_from);
	tprintf("received:     %s\n", when);
	tprintf("maildir_name: %s\n", rec->maildir_name);
	tprintf("size:         %llu\n", (unsigned long long)rec->raw_size);
	tprintf("sha256:       %s\n", hex);
	tprintf("message_id:   %s\n", rec->message_id);
	tprintf("date:         %s\n", rec->date_raw);
	for (i = 0; i < rec->n_from; i++)
		print_addr("from:", rec->from[i]);
	for (i = 0; i < rec->n_to; i++)
		print_addr("to:", rec->to[i]);
	for (i = 0; i < rec->n_cc; i++)
		print_addr("cc:", rec->cc[i]);
	tprintf("subject:      %s\n", rec->subject);
	if (rec->return_path[0])
		tprintf("return_path:  %s\n", rec->return_path);
	if (rec->delivered_to[0])
		tprintf("delivered_to: %s\n", rec->delivered_to);
	for (i = 0; i < rec->n_parts; i++) {
		const Vmingest__Part *pt = rec->parts[i];

		tprintf("part %-8s %*s%s%s%s %llu bytes%s%s\n", pt->path[0] ? pt->path : "-",
		    (int)pt->depth * 2, "", pt->content_type,
		    pt->charset[0] ? "; charset=" : "", pt->charset,
		    (unsigned long long)pt->decoded_size,
		    pt->filename[0] ? " file=" : "", pt->filename);
	}
	for (i = 0; i < rec->n_ims; i++) {
		const Vmingest__ImsMessage *m = rec->ims[i];

		tprintf("ims %u/%u:      %s %s msg_id=%s source=%s%s\n", m->index,
		    m->count, m->version, m->msg_type, m->msg_id, m->source,
		    m->complete ? "" : " (no STOP)");
		for (k = 0; k < m->n_sections; k++)
			tprintf("  data_type:  %s%s%s %s\n", m->sections[k]->data_type,
			    m->sections[k]->subtype[0] ? ":" : "",
			    m->sections[k]->subtype, m->sections[k]->format);
		for (k = 0; k < m->n_requests; k++)
			tprintf("  request:    %s%s%s %s\n", m->requests[k]->keyword,
			    m->requests[k]->subtype[0] ? ":" : "",
			    m->requests[k]->subtype, m->requests[k]->format);
		for (k = 0; k < m->n_warnings; k++)
			tprintf("  warning:    %s\n", m->warnings[k]);
	}
	if (rec->rules != NULL) {
		for (i = 0; i < rec->rules->n_actions; i++)
			tprintf("rule action:  %s\n", rec->rules->actions[i]);
		if (rec->rules->error[0])
			tprintf("rule error:   %s\n", rec->rules->error);
	}
	for (i = 0; i < rec->n_labels; i++)
		tprintf("label:        %s\n", rec->labels[i]);
	for (i = 0; i < rec->n_warnings; i++)
		tprintf("warning:      %s\n", rec->warnings[i]);
}

int
cmd_show(int argc, char **argv)
{
	struct sopts o;
	struct store *st;
	struct store_rtxn *r;
	Vmingest__Record *rec;
	const void *raw;
	size_t	 len;
	uint64_t seq;
	int	 rc, ret = 0;

	if (parse(argc, argv, show_usage, &o) == -1)
		return 2;
	if (optind + 1 != argc || cli_parse_u64(argv[optind], &seq) == -1 ||
	    (o.raw && o.json)) {
		fputs(show_usage, stderr);
		return 2;
	}
	if (cli_open_store("show", o.store, o.cfg, &st) == -1)
		return 2;
	if ((rc = store_rbegin(st, &r)) != 0) {
		fprintf(stderr, "vmingest show: %s\n", store_strerror(rc));
		store_close(st);
		return 2;
	}
	/* copied out and the snapshot released before writing: see list */
	if (o.raw) {
		uint8_t	*copy = NULL;

		rc = store_get_raw(r, seq, &raw, &len);
		if (rc == 0) {
			if ((copy = malloc(len ? len : 1)) == NULL)
				log_fatal("malloc");
			memcpy(copy, raw, len);
		}
		store_rreset(r);
		if (copy != NULL && (fwrite(copy, 1, len, stdout) != len ||
		    fflush(stdout) != 0)) {
			perror("vmingest show: stdout");
			ret = 2;
		}
		free(copy);
	} else {
		rc = store_get_record(r, seq, &rec);
		store_rreset(r);
		if (rc == 0) {
			if (o.json)
				cli_print_json(record_to_json(rec, 0));
			else
				show_text(rec);
			record_free(rec);
		}
	}
	if (rc == STORE_E_NOTFOUND) {
		fprintf(stderr, "vmingest show: no record %llu%s\n",
		    (unsigned long long)seq, o.raw ? " (or its raw bytes were "
		    "pruned)" : "");
		ret = 1;
	} else if (rc != 0) {
		fprintf(stderr, "vmingest show: %s\n", store_strerror(rc));
		ret = 2;
	}
	store_rend(r);
	store_close(st);
	return ret;
}

int
cmd_stats(int argc, char **argv)
{
	struct sopts o;
	struct store *st;
	struct store_stat ss;
	struct store_rtxn *r;
	struct store_cursor *c;
	const void *p;
	size_t	 len, i;
	uint64_t seq, disp[6] = { 0 };
	int	 rc;

	if (parse(argc, argv, stats_usage, &o) == -1 || optind != argc)
		return 2;
	if (cli_open_store("stats", o.store, o.cfg, &st) == -1)
		return 2;
	if ((rc = store_stat(st, &ss)) != 0 || (rc = store_rbegin(st, &r)) != 0 ||
	    (rc = store_cursor_open(r, 0, &c)) != 0) {
		fprintf(stderr, "vmingest stats: %s\n", store_strerror(rc));
		store_close(st);
		return 2;
	}
	while (store_cursor_next(c, &seq, &p, &len) == 0) {
		Vmingest__Record *rec = record_unpack(p, len);

		if (rec != NULL && rec->disposition >= 0 && rec->disposition < 6)
			disp[rec->disposition]++;
		record_free(rec);
	}
	store_cursor_close(c);
	store_rend(r);
	if (o.json) {
		json_t *j = json_object(), *d = json_object();
		char	 ep[20];

		snprintf(ep, sizeof(ep), "%016llx", (unsigned long long)ss.epoch);
		json_object_set_new(j, "store", json_string(store_path(st)));
		json_object_set_new(j, "epoch", json_string(ep));
		json_object_set_new(j, "first_seq", json_integer((json_int_t)ss.first_seq));
		json_object_set_new(j, "last_seq", json_integer((json_int_t)ss.head_seq));
		json_object_set_new(j, "records", json_integer((json_int_t)ss.records));
		json_object_set_new(j, "map_bytes", json_integer((json_int_t)ss.map_size));
		json_object_set_new(j, "used_bytes", json_integer((json_int_t)ss.used_bytes));
		for (i = 1; i < 6; i++)
			json_object_set_new(d, disposition_name((int)i),
			    json_integer((json_int_t)disp[i]));
		json_object_set_new(j, "dispositions", d);
		cli_print_json(j);
	} else {
		printf("store:       %s\n", store_path(st));
		printf("epoch:       %016llx\n", (unsigned long long)ss.epoch);
		printf("seq range:   %llu..%llu\n", (unsigned long long)ss.first_seq,
		    (unsigned long long)ss.head_seq);
		printf("records:     %llu\n", (unsigned long long)ss.records);
		for (i = 1; i < 6; i++)
			printf("  %-11s %llu\n", disposition_name((int)i),
			    (unsigned long long)disp[i]);
		printf("map:         %zu bytes, %zu used (%.1f%%)\n", ss.map_size,
		    ss.used_bytes, ss.map_size ? 100.0 * ss.used_bytes / ss.map_size : 0);
	}
	store_close(st);
	return 0;
}
