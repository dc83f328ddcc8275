/*
 * test_normalize.c - lib/normalize.c: golden dumps and table-driven cases.
 *
 * Golden: every tests/data/NAME.eml is normalized with GOLDEN limits
 * (defaults, but small mime_depth/part_count/header_count/header_bytes/
 * text_bytes so that the limit messages stay small) and rendered with
 * record_to_json (sorted keys, indent 1, received_at_us left out); the
 * result must equal NAME.expect.  UPDATE_GOLDEN=1 rewrites the .expect
 * files instead.  On a mismatch the actual dump is written to
 * $TMPDIR/vmi-golden-NAME.json and a diff command is printed.
 *
 * The IMS parser is replaced here by a recorder (ims_parse_part /
 * ims_finish / ims_topic below; the linker then leaves lib/ims.o out), so
 * the golden files do not depend on lib/ims and the tests can check what
 * normalize hands to it.
 *
 * Table: one case per behaviour and per limit, each with the limits it
 * runs under and what the record must show.
 */
#include <dirent.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <glib.h>

#include "ims.h"
#include "normalize.h"
#include "record.h"

/* ---- IMS recorder (stands in for lib/ims.c) ---- */

#define MAX_CALLS 16
static struct ims_call {
	char	 path[64];
	size_t	 len;
	char	 head[64];
	int	 valid_utf8;
} calls[MAX_CALLS];
static int ncalls, nfinish;
static int recording;	/* only the main thread records */

void
ims_parse_part(const struct limits *l, Vmingest__Record *rec,
    const char *part_path, const char *text, size_t len)
{
	struct ims_call *c;

	if (!recording || ncalls >= MAX_CALLS)
		return;
	c = &calls[ncalls++];
	snprintf(c->path, sizeof(c->path), "%s", part_path);
	c->len = len;
	snprintf(c->head, sizeof(c->head), "%.*s",
	    (int)(len < 63 ? len : 63), text);
	c->valid_utf8 = utf8_valid_ok(text, len);
}

void
ims_finish(const struct limits *l, Vmingest__Record *rec)
{
	if (recording)
		nfinish++;
}

int
ims_topic(const Vmingest__Record *rec, char *buf, size_t bufsz)
{
	return snprintf(buf, bufsz, "mail.other") < (int)bufsz ? 0 : -1;
}

/* ---- helpers ---- */

static void
golden_limits(struct limits *l)
{
	limits_default(l);
	l->mime_depth = 8;
	l->part_count = 64;
	l->header_count = 64;
	l->header_bytes = 16384;
	l->text_bytes = 4096;
}

static char *
slurp(const char *path, size_t *len)
{
	gchar	*buf = NULL;
	gsize	 n = 0;

	*len = 0;
	if (!g_file_get_contents(path, &buf, &n, NULL))
		return NULL;
	*len = n;
	return buf;
}

static char *
render(const Vmingest__Record *r)
{
	json_t	*j = record_to_json(r, 0);
	char	*s;

	json_object_del(j, "received_at_us");
	s = json_dumps(j, JSON_SORT_KEYS | JSON_INDENT(1));
	json_decref(j);
	return s;
}

static Vmingest__Record *
run(const struct limits *l, const char *msg, size_t len)
{
	Vmingest__Record *r = record_new();

	ncalls = nfinish = 0;
	assert_int_equal(normalize_message(l, msg, len, r), 0);
	return r;
}

static int
has_warning(const Vmingest__Record *r, const char *sub)
{
	size_t	 i;

	for (i = 0; i < r->n_warnings; i++)
		if (strstr(r->warnings[i], sub) != NULL)
			return 1;
	return 0;
}

static const Vmingest__Part *
part_at(const Vmingest__Record *r, const char *path)
{
	size_t	 i;

	for (i = 0; i < r->n_parts; i++)
		if (strcmp(r->parts[i]->path, path) == 0)
			return r->parts[i];
	return NULL;
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char * const *)a, *(char * const *)b);
}

/* Sorted list of tests/data/ *.eml base names (NULL-terminated). */
static char **
list_eml(size_t *n)
{
	DIR	*d = opendir(TEST_DATA);
	struct dirent *de;
	char	**v = NULL;
	size_t	 k = 0, len;

	assert_non_null(d);
	while ((de = readdir(d)) != NULL) {
		len = strlen(de->d_name);
		if (len > 4 && strcmp(de->d_name + len - 4, ".eml") == 0) {
			v = realloc(v, (k + 2) * sizeof(*v));
			v[k++] = strndup(de->d_name, len - 4);
		}
	}
	closedir(d);
	qsort(v, k, sizeof(*v), cmp_str);
	v[k] = NULL;
	*n = k;
	return v;
}

/* ---- golden ---- */

static void
test_golden(void **state)
{
	struct limits l;
	char	**names, path[1024], *raw, *got, *want;
	size_t	 n, i, len, wlen, line, k;
	int	 update = getenv("UPDATE_GOLDEN") != NULL, bad = 0;
	Vmingest__Record *r;

	golden_limits(&l);
	names = list_eml(&n);
	assert_true(n >= 15);
	for (i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "%s/%s.eml", TEST_DATA, names[i]);
		raw = slurp(path, &len);
		assert_non_null(raw);
		r = run(&l, raw, len);
		got = render(r);
		snprintf(path, sizeof(path), "%s/%s.expect", TEST_DATA, names[i]);
		if (update) {
			FILE	*f = fopen(path, "w");

			assert_non_null(f);
			fprintf(f, "%s\n", got);
			fclose(f);
		} else if ((want = slurp(path, &wlen)) == NULL) {
			fprintf(stderr, "golden %s: %s missing (UPDATE_GOLDEN=1 "
			    "writes it)\n", names[i], path);
			bad++;
		} else {
			if (wlen > 0 && want[wlen - 1] == '\n')
				want[--wlen] = '\0';
			if (strcmp(got, want) != 0) {
				char	 tmp[1024];
				FILE	*f;
				const char *td = getenv("TMPDIR");

				for (k = 0, line = 1; got[k] && got[k] == want[k]; k++)
					if (got[k] == '\n')
						line++;
				snprintf(tmp, sizeof(tmp), "%s/vmi-golden-%s.json",
				    td ? td : "/tmp", names[i]);
				if ((f = fopen(tmp, "w")) != NULL) {
					fprintf(f, "%s\n", got);
					fclose(f);
				}
				fprintf(stderr, "golden %s: differs from line %zu;"
				    " diff -u %s %s\n", names[i], line, path, tmp);
				bad++;
			}
			g_free(want);
		}
		free(got);
		record_free(r);
		g_free(raw);
		free(names[i]);
	}
	free(names);
	assert_int_equal(bad, 0);
}

/* Every golden record survives pack/unpack unchanged. */
static void
test_pack_roundtrip(void **state)
{
	struct limits l;
	char	**names, path[1024], *raw, *a, *b;
	size_t	 n, i, len, plen;
	uint8_t	*buf;
	Vmingest__Record *r, *u;

	golden_limits(&l);
	names = list_eml(&n);
	for (i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "%s/%s.eml", TEST_DATA, names[i]);
		raw = slurp(path, &len);
		r = run(&l, raw, len);
		assert_int_equal(record_pack(r, &buf, &plen), 0);
		u = record_unpack(buf, plen);
		assert_non_null(u);
		a = render(r);
		b = render(u);
		assert_string_equal(a, b);
		free(a);
		free(b);
		free(buf);
		record_free(u);
		record_free(r);
		g_free(raw);
		free(names[i]);
	}
	free(names);
}

/* ---- threads: concurrent calls give the same records as serial ones ---- */

#define NTHREADS 4
static char **t_names;
static size_t t_n;
static char **t_serial;

static void *
thread_main(void *arg)
{
	struct limits l;
	char	 path[1024], *raw, *got;
	size_t	 i, len, round;
	intptr_t bad = 0;
	Vmingest__Record *r;

	golden_limits(&l);
	for (round = 0; round < 5; round++)
		for (i = 0; i < t_n; i++) {
			snprintf(path, sizeof(path), "%s/%s.eml", TEST_DATA,
			    t_names[(i + (size_t)(intptr_t)arg) % t_n]);
			raw = slurp(path, &len);
			r = record_new();
			normalize_message(&l, raw, len, r);
			got = render(r);
			if (strcmp(got, t_serial[(i + (size_t)(intptr_t)arg) % t_n]))
				bad++;
			free(got);
			record_free(r);
			g_free(raw);
		}
	return (void *)bad;
}

static void
test_threads(void **state)
{
	struct limits l;
	pthread_t th[NTHREADS];
	char	 path[1024], *raw;
	size_t	 i, len;
	void	*res;
	Vmingest__Record *r;

	golden_limits(&l);
	t_names = list_eml(&t_n);
	t_serial = calloc(t_n, sizeof(*t_serial));
	for (i = 0; i < t_n; i++) {
		snprintf(path, sizeof(path), "%s/%s.eml", TEST_DATA, t_names[i]);
		raw = slurp(path, &len);
		r = run(&l, raw, len);
		t_serial[i] = render(r);
		record_free(r);
		g_free(raw);
	}
	recording = 0;
	for (i = 0; i < NTHREADS; i++)
		assert_int_equal(pthread_create(&th[i], NULL, thread_main,
		    (void *)(intptr_t)i), 0);
	for (i = 0; i < NTHREADS; i++) {
		assert_int_equal(pthread_join(th[i], &res), 0);
		assert_int_equal((intptr_t)res, 0);
	}
	recording = 1;
	for (i = 0; i < t_n; i++) {
		free(t_serial[i]);
		free(t_names[i]);
	}
	free(t_serial);
	free(t_names);
}

/* ---- table-driven cases ---- */

#define HDR "From: a@example.org\nTo: b@example.org\nSubject: s\n" \
	"Date: Thu, 03 Dec 2026 12:00:00 +0000\nMessage-ID: <t@example.org>\n"

struct tcase {
	const char *name;
	const char *msg;		/* NUL-terminated unless len given */
	size_t	 len;
	void	(*tweak)(struct limits *);
	int	 quarantined;
	const char *reason;		/* substring of reason, or NULL */
	const char *warning;		/* substring of some warning, or NULL */
	const char *no_warning;		/* substring no warning may have */
	void	(*check)(const Vmingest__Record *);
};

static void lim_hcount(struct limits *l) { l->header_count = 3; }
static void lim_hbytes(struct limits *l) { l->header_bytes = 60; }
static void lim_mbytes(struct limits *l) { l->message_bytes = 200; }
static void lim_depth(struct limits *l) { l->mime_depth = 1; }
static void lim_parts(struct limits *l) { l->part_count = 2; }
static void lim_text(struct limits *l) { l->text_bytes = 10; }
static void lim_reparse(struct limits *l) { l->message_bytes = 249; }
static void lim_budget(struct limits *l) { l->header_count = 4; l->part_count = 1; }

/* a part with 100 header fields: GMime is stopped after 20 in all */
#define F10 "a: 1\na: 2\na: 3\na: 4\na: 5\na: 6\na: 7\na: 8\na: 9\na: 0\n"
#define F100 F10 F10 F10 F10 F10 F10 F10 F10 F10 F10

/* 100 empty parts: 101 lines start with "--" */
#define P10 "--x\n\na\n--x\n\na\n--x\n\na\n--x\n\na\n--x\n\na\n" \
	"--x\n\na\n--x\n\na\n--x\n\na\n--x\n\na\n--x\n\na\n"
#define P100 P10 P10 P10 P10 P10 P10 P10 P10 P10 P10

/* 50000 colons: GMime 3.2 recurses per ':' and overflows an 8 MB stack */
#define C10 "a:a:a:a:a:a:a:a:a:a:"
#define C100 C10 C10 C10 C10 C10 C10 C10 C10 C10 C10
#define C1000 C100 C100 C100 C100 C100 C100 C100 C100 C100 C100
#define C10000 C1000 C1000 C1000 C1000 C1000 C1000 C1000 C1000 C1000 C1000
#define C50000 C10000 C10000 C10000 C10000 C10000

static void
chk_hcount(const Vmingest__Record *r)
{
	assert_int_equal(r->n_headers, 3);
	assert_string_equal(r->headers[2]->name, "Subject");
}

static void
chk_hbytes(const Vmingest__Record *r)
{
	size_t	 i, b = 0;

	assert_true(r->n_headers >= 1 && r->n_headers < 5);
	for (i = 0; i < r->n_headers; i++)
		b += strlen(r->headers[i]->name) + 1 + r->headers[i]->value.len;
	assert_true(b <= 60);
}

static void
chk_mbytes(const Vmingest__Record *r)
{
	/* sha256 and size cover all bytes; what was parsed is still there */
	assert_int_equal(r->raw_size, strlen(HDR) + 1 + 300);
	assert_int_equal(r->sha256.len, 32);
	assert_string_equal(r->message_id, "t@example.org");
	assert_int_equal(r->n_parts, 1);
	assert_int_equal(r->parts[0]->decoded_size, 200 - strlen(HDR) - 1);
}

static void
chk_depth(const Vmingest__Record *r)
{
	size_t	 i;

	for (i = 0; i < r->n_parts; i++)
		assert_true(r->parts[i]->depth <= 1);
	assert_non_null(part_at(r, "1"));
	assert_null(part_at(r, "1.1"));
}

static void
chk_parts(const Vmingest__Record *r)
{
	assert_int_equal(r->n_parts, 2);
	assert_string_equal(r->parts[0]->path, "");
	assert_string_equal(r->parts[1]->path, "1");
}

static void
chk_text(const Vmingest__Record *r)
{
	/* 10 bytes would cut the second e-acute: 9 are kept */
	assert_int_equal(r->n_parts, 1);
	assert_true(r->parts[0]->text_truncated);
	assert_string_equal(r->parts[0]->text, "abcdefg\xc3\xa9");
	/* the IMS parser got all of it */
	assert_int_equal(ncalls, 1);
	assert_int_equal(calls[0].len, strlen("abcdefg\xc3\xa9\xc3\xa9xyz\n"));
}

static void
chk_empty(const Vmingest__Record *r)
{
	static const char e[] = "e3b0c44298fc1c149afbf4c8996fb924"
	    "27ae41e4649b934ca495991b7852b855";
	char	 hex[65];

	assert_int_equal(r->raw_size, 0);
	assert_int_equal(r->sha256.len, 32);
	assert_string_equal(hex_encode(hex, r->sha256.data, 32), e);
	assert_int_equal(r->n_parts, 0);
	assert_int_equal(nfinish, 1);
}

static void
chk_abc(const Vmingest__Record *r)
{
	static const char e[] = "ba7816bf8f01cfea414140de5dae2223"
	    "b00361a396177a9cb410ff61f20015ad";
	char	 hex[65];

	assert_string_equal(hex_encode(hex, r->sha256.data, 32), e);
	/* kept as one text part, so a bare IMS file still gets parsed */
	assert_int_equal(r->n_parts, 1);
	assert_string_equal(r->parts[0]->content_type, "text/plain");
	assert_string_equal(r->parts[0]->text, "abc");
	assert_int_equal(ncalls, 1);
}

static void
chk_binary(const Vmingest__Record *r)
{
	assert_int_equal(r->n_parts, 1);
	assert_string_equal(r->parts[0]->content_type,
	    "application/octet-stream");
	assert_int_equal(ncalls, 0);
}

static void
chk_fffd(const Vmingest__Record *r)
{
	assert_string_equal(r->parts[0]->text, "a\xef\xbf\xbd" "b\n");
	assert_true(calls[0].valid_utf8);
}

static void
chk_latin1(const Vmingest__Record *r)
{
	assert_string_equal(r->parts[0]->charset, "iso-8859-1");
	assert_string_equal(r->parts[0]->text, "caf\xc3\xa9\n");
}

static void
chk_cp1252(const Vmingest__Record *r)
{
	/* 0x80 is the euro sign in windows-1252, 0x81 is unassigned */
	assert_string_equal(r->parts[0]->text, "\xe2\x82\xac\xef\xbf\xbd\n");
}

static void
chk_nodate(const Vmingest__Record *r)
{
	assert_int_equal(r->date_unix, 0);
	assert_string_equal(r->date_raw, "");
	assert_string_equal(r->message_id, "");
}

static void
chk_baddate(const Vmingest__Record *r)
{
	assert_int_equal(r->date_unix, 0);
	assert_string_equal(r->date_raw, "not a date at all");
}

static void
chk_date(const Vmingest__Record *r)
{
	/* 2026-12-03 12:00:00 +0100 = 11:00 UTC */
	assert_int_equal(r->date_unix, 1796299200 - 3600);
}

static void
chk_unknown_cs(const Vmingest__Record *r)
{
	assert_string_equal(r->parts[0]->text, "text\n");
	assert_string_equal(r->parts[0]->charset, "x-none");
}

static void
chk_b64(const Vmingest__Record *r)
{
	const Vmingest__Part *p = part_at(r, "1");

	assert_non_null(p);
	assert_string_equal(p->transfer_encoding, "base64");
	assert_int_equal(p->decoded_size, 5);
	assert_string_equal(p->text, "hello");
}

static void
chk_uu(const Vmingest__Record *r)
{
	const Vmingest__Part *p = part_at(r, "1");

	assert_non_null(p);
	assert_int_equal(p->decoded_size, 12);
	/* application/octet-stream named .txt that looks like text */
	assert_int_equal(ncalls, 1);
	assert_string_equal(calls[0].head, "hello world\n");
}

static void
chk_nocolon(const Vmingest__Record *r)
{
	assert_string_equal(r->message_id, "t@example.org");
}

static void
chk_nul(const Vmingest__Record *r)
{
	assert_string_equal(r->parts[0]->text, "ab\n");
}

static void
chk_envelope(const Vmingest__Record *r)
{
	assert_string_equal(r->return_path, "");
	assert_string_equal(r->delivered_to, "orig@vm.example");
}

static void
chk_delivered(const Vmingest__Record *r)
{
	assert_string_equal(r->return_path, "s@idc.example");
	assert_string_equal(r->delivered_to, "first@vm.example");
}

static void
chk_mbox(const Vmingest__Record *r)
{
	assert_string_equal(r->message_id, "t@example.org");
	assert_string_equal(r->headers[0]->name, "From");
}

static void
chk_headers_raw(const Vmingest__Record *r)
{
	const Vmingest__Header *h = r->headers[2];

	assert_string_equal(h->name, "Subject");
	/* unfolded, raw: the encoded word is kept as sent */
	assert_int_equal(h->value.len, strlen("=?utf-8?q?caf=C3=A9?=\tand more"));
	assert_memory_equal(h->value.data, "=?utf-8?q?caf=C3=A9?=\tand more",
	    h->value.len);
	/* RFC 5322 unfolding removes only the line break */
	assert_string_equal(r->subject, "caf\xc3\xa9\tand more");
	/* the Content-Type header keeps its place among the others */
	assert_string_equal(r->headers[5]->name, "Content-Type");
	assert_string_equal(r->headers[6]->name, "Message-ID");
}

static void
chk_groups(const Vmingest__Record *r)
{
	assert_int_equal(r->n_to, 2);
	assert_string_equal(r->to[0]->address, "x@example.org");
	assert_string_equal(r->to[1]->name, "Y");
	assert_int_equal(r->n_cc, 0);
}

static void
chk_addr_cap(const Vmingest__Record *r)
{
	assert_int_equal(r->n_to, 3);
	assert_string_equal(r->to[2]->address, "c@x.example");
	assert_int_equal(r->n_references, 3);
}

static void
chk_b64_message(const Vmingest__Record *r)
{
	const Vmingest__Part *p = part_at(r, "1"), *q = part_at(r, "1.1");

	assert_non_null(p);
	assert_true(p->is_message);
	assert_non_null(q);
	assert_int_equal(q->depth, 1);
	assert_string_equal(q->text, "Text body\n");
	assert_int_equal(ncalls, 1);
	assert_string_equal(calls[0].path, "1.1");
}

static void
chk_reparse(const Vmingest__Record *r)
{
	assert_non_null(part_at(r, "1.1"));
	assert_null(part_at(r, "1.1.1"));
}

static void
chk_guard(const Vmingest__Record *r)
{
	assert_int_equal(r->n_to, 0);
	assert_int_equal(r->n_from, 1);
	/* the record shows the field under its real name */
	assert_string_equal(r->headers[1]->name, "To");
}

static void
chk_guard_inner(const Vmingest__Record *r)
{
	assert_non_null(part_at(r, "1.1"));
	assert_string_equal(part_at(r, "1.1")->text, "inner\n");
}

static void
chk_ims_paths(const Vmingest__Record *r)
{
	/* text leaves and the .gse attachment, not the image */
	assert_int_equal(ncalls, 3);
	assert_string_equal(calls[0].path, "1");
	assert_string_equal(calls[1].path, "2.1");
	assert_string_equal(calls[2].path, "3");
	assert_string_equal(calls[2].head, "BEGIN IMS2.0");
	assert_int_equal(nfinish, 1);
}

static void
chk_signed(const Vmingest__Record *r)
{
	assert_string_equal(r->parts[0]->content_type, "multipart/signed");
	assert_string_equal(r->parts[0]->protocol,
	    "application/x-pkcs7-signature");
	assert_string_equal(r->parts[2]->filename, "smime.p7s");
}

static const struct tcase cases[] = {
	{ "header_count", HDR "\nbody\n", 0, lim_hcount, 1,
	    "header_count limit 3 exceeded", NULL, NULL, chk_hcount },
	{ "header_bytes", HDR "\nbody\n", 0, lim_hbytes, 1,
	    "header_bytes limit 60 exceeded", NULL, NULL, chk_hbytes },
	{ "message_bytes", HDR "\n"
	    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
	    0, lim_mbytes, 1, "message_bytes limit 200 exceeded (", NULL, NULL,
	    chk_mbytes },
	{ "mime_depth", HDR "Content-Type: multipart/mixed; boundary=a\n\n"
	    "--a\nContent-Type: multipart/mixed; boundary=b\n\n"
	    "--b\nContent-Type: text/plain\n\ndeep\n--b--\n--a--\n",
	    0, lim_depth, 1, "mime_depth limit 1 exceeded", NULL, NULL,
	    chk_depth },
	{ "part_count", HDR "Content-Type: multipart/mixed; boundary=a\n\n"
	    "--a\n\none\n--a\n\ntwo\n--a\n\nthree\n--a--\n",
	    0, lim_parts, 1, "part_count limit 2 exceeded", NULL, NULL,
	    chk_parts },
	{ "text_bytes", HDR "Content-Type: text/plain; charset=utf-8\n\n"
	    "abcdefg\xc3\xa9\xc3\xa9xyz\n", 0, lim_text, 0, NULL,
	    "text cut at text_bytes limit 10", NULL, chk_text },
	{ "empty", "", 0, NULL, 1, "empty message", NULL, NULL, chk_empty },
	{ "no_headers_text", "abc", 0, NULL, 1, "no header fields", NULL,
	    NULL, chk_abc },
	{ "binary_garbage", "\x01\x02\x03\xff\xfe\x00\x10\x11\x12\x13\x14",
	    11, NULL, 1, "no header fields", "NUL bytes", NULL, chk_binary },
	{ "invalid_utf8", HDR "Content-Type: text/plain; charset=utf-8\n\n"
	    "a\xff" "b\n", 0, NULL, 0, NULL, "replaced with U+FFFD", NULL,
	    chk_fffd },
	{ "latin1", HDR "Content-Type: text/plain; charset=ISO-8859-1\n\n"
	    "caf\xe9\n", 0, NULL, 0, NULL, NULL, "replaced", chk_latin1 },
	{ "cp1252_bad_byte", HDR "Content-Type: text/plain; charset=windows-1252\n\n"
	    "\x80\x81\n", 0, NULL, 0, NULL, "replaced with U+FFFD", NULL,
	    chk_cp1252 },
	{ "unknown_charset", HDR "Content-Type: text/plain; charset=x-none\n\n"
	    "text\n", 0, NULL, 0, NULL, "unknown charset \"x-none\"", NULL,
	    chk_unknown_cs },
	{ "missing_date_msgid", "From: a@example.org\nSubject: s\n\nbody\n",
	    0, NULL, 0, NULL, "no Date header", NULL, chk_nodate },
	{ "missing_msgid", "From: a@example.org\nSubject: s\n\nbody\n",
	    0, NULL, 0, NULL, "no Message-ID header", NULL, NULL },
	{ "bad_date", "From: a@example.org\nDate: not a date at all\n\nx\n",
	    0, NULL, 0, NULL, "bad Date header", NULL, chk_baddate },
	{ "date_tz", "From: a@example.org\nDate: Thu, 3 Dec 2026 12:00:00 +0100\n\nx\n",
	    0, NULL, 0, NULL, NULL, "Date", chk_date },
	{ "base64_padded", HDR "Content-Type: multipart/mixed; boundary=a\n\n"
	    "--a\nContent-Transfer-Encoding: base64\n\naGVsbG8=\n--a--\n",
	    0, NULL, 0, NULL, NULL, "truncated", chk_b64 },
	{ "base64_truncated", HDR "Content-Transfer-Encoding: base64\n\n"
	    "aGVsbG8gd29ybGQ\n", 0, NULL, 0, NULL, "truncated base64", NULL,
	    NULL },
	{ "base64_one_left", HDR "Content-Transfer-Encoding: base64\n\n"
	    "aGVsbG8gd\n", 0, NULL, 0, NULL, "truncated base64", NULL, NULL },
	{ "uuencode", HDR "Content-Type: application/octet-stream; name=hello.txt\n"
	    "Content-Transfer-Encoding: x-uuencode\n\n"
	    "begin 644 hello.txt\n,:&5L;&\\@=V]R;&0*\n`\nend\n", 0, NULL, 0,
	    NULL, NULL, "uuencode", chk_uu },
	{ "unknown_encoding", HDR "Content-Transfer-Encoding: x-foo\n\nraw\n",
	    0, NULL, 0, NULL, "unknown transfer encoding \"x-foo\"", NULL, NULL },
	{ "header_no_colon", "From: a@example.org\nno colon here\n"
	    "Message-ID: <t@example.org>\n\nbody\n", 0, NULL, 0, NULL,
	    "without colon", NULL, chk_nocolon },
	{ "eightbit_header", "From: a@example.org\nSubject: caf\xc3\xa9\n\nx\n",
	    0, NULL, 0, NULL, "8-bit bytes in headers", NULL, NULL },
	{ "nul_bytes", HDR "\na\0b\n", sizeof(HDR "\na\0b\n") - 1, NULL, 0,
	    NULL, "NUL bytes in message", NULL, chk_nul },
	{ "missing_boundary", HDR "Content-Type: multipart/mixed\n\n--x\n\ny\n--x--\n",
	    0, NULL, 0, NULL, "boundary", NULL, NULL },
	{ "missing_end_boundary", HDR "Content-Type: multipart/mixed; boundary=a\n\n"
	    "--a\n\ncut off\n", 0, NULL, 0, NULL, "truncated", NULL, NULL },
	{ "null_sender", "Return-Path: <>\nX-Original-To: orig@vm.example\n"
	    HDR "\nx\n", 0, NULL, 0, NULL, NULL, NULL, chk_envelope },
	{ "delivered_to_first", "Return-Path: <s@idc.example>\n"
	    "Delivered-To: first@vm.example\nDelivered-To: second@vm.example\n"
	    "X-Original-To: orig@vm.example\n" HDR "\nx\n", 0, NULL, 0, NULL,
	    NULL, NULL, chk_delivered },
	{ "mbox_from_line", "From someone@example.org Thu Dec  3 12:00:00 2026\n"
	    HDR "\nx\n", 0, NULL, 0, NULL, "mbox From_ line", NULL, chk_mbox },
	{ "raw_header_values", "From: a@example.org\nTo: b@example.org\n"
	    "Subject: =?utf-8?q?caf=C3=A9?=\n\tand more\nDate: Thu, 03 Dec 2026 12:00:00 +0000\n"
	    "MIME-Version: 1.0\nContent-Type: text/plain\nMessage-ID: <t@example.org>\n\nx\n",
	    0, NULL, 0, NULL, NULL, NULL, chk_headers_raw },
	{ "groups_flattened", "From: a@example.org\n"
	    "To: friends: x@example.org, Y <y@example.org>;\nCc: empty:;\n\nx\n",
	    0, NULL, 0, NULL, NULL, NULL, chk_groups },
	{ "address_and_reference_cap", "From: a@example.org\n"
	    "To: a@x.example, b@x.example, c@x.example, d@x.example, e@x.example\n"
	    "References: <1@x> <2@x> <3@x> <4@x>\n\nx\n", 0, lim_hcount, 0,
	    NULL, "To: more than 3 addresses", NULL, chk_addr_cap },
	{ "base64_message_rfc822", HDR "Content-Type: message/rfc822\n"
	    "Content-Transfer-Encoding: base64\n\n"
	    "Q29udGVudC1UeXBlOiB0ZXh0L3BsYWluDQoNClRleHQgYm9keQo=\n", 0, NULL, 0,
	    NULL, "message/rfc822 with transfer encoding base64", NULL,
	    chk_b64_message },
	{ "reparse_budget", "From: a@b\n"
	    "Content-Type: message/rfc822\nContent-Transfer-Encoding: quoted-printable\n\n"
	    "Content-Type: message/rfc822\nContent-Transfer-Encoding: quoted-printable\n\n"
	    "Content-Type: message/rfc822\nContent-Transfer-Encoding: quoted-printable\n\n"
	    "From: x\n\nbody\n", 0, lim_reparse, 0, NULL, "re-parse budget",
	    NULL, chk_reparse },
	{ "header_budget_all_entities", "From: a@b\n"
	    "Content-Type: multipart/mixed; boundary=x\n\n--x\n" F100
	    "\nbody\n--x--\n", 0, lim_budget, 1,
	    "more than 20 header fields in all entities", NULL, NULL, NULL },
	{ "address_guard_colons", "From: a@example.org\nTo: " C1000 C10 "x\n"
	    "Subject: s\n\nbody\n", 0, NULL, 1, "not parsed as addresses",
	    NULL, NULL, chk_guard },
	{ "address_guard_inner_message", "From: a@example.org\n"
	    "Content-Type: message/rfc822\n\nFrom: b@example.org\nCc: " C50000
	    "\n\ninner\n", 0, NULL, 1, NULL, "not parsed as addresses", NULL,
	    chk_guard_inner },
	{ "part_flood_cut", "From: a@b\nContent-Type: multipart/mixed; "
	    "boundary=x\n\n" P100 "--x--\n", 0, lim_parts, 1,
	    "part_count limit 2: more than 72 lines start with \"--\"", NULL,
	    NULL, chk_parts },
	{ "ims_calls", HDR "Content-Type: multipart/mixed; boundary=a\n\n"
	    "--a\nContent-Type: text/plain\n\none\n"
	    "--a\nContent-Type: message/rfc822\n\nFrom: c@example.org\n\ninner\n"
	    "--a\nContent-Type: application/octet-stream\n"
	    "Content-Disposition: attachment; filename=DATA.GSE\n\nBEGIN IMS2.0\n"
	    "--a\nContent-Type: image/png; name=x.png\n\n\x89PNG\n"
	    "--a--\n", 0, NULL, 0, NULL, NULL, NULL, chk_ims_paths },
	{ "smime_signed", HDR "Content-Type: multipart/signed; "
	    "protocol=\"application/x-pkcs7-signature\"; micalg=sha1; boundary=s\n\n"
	    "--s\n\nBEGIN IMS1.0\nSTOP\n"
	    "--s\nContent-Type: application/x-pkcs7-signature; name=smime.p7s\n"
	    "Content-Transfer-Encoding: base64\n"
	    "Content-Disposition: attachment; filename=smime.p7s\n\nAAAA\n--s--\n",
	    0, NULL, 0, NULL, NULL, NULL, chk_signed },
};

static void
test_case(void **state)
{
	const struct tcase *c = *state;
	struct limits l;
	Vmingest__Record *r;
	size_t	 len = c->len ? c->len : strlen(c->msg), i;

	limits_default(&l);
	if (c->tweak != NULL)
		c->tweak(&l);
	r = run(&l, c->msg, len);
	if (c->quarantined != (r->disposition ==
	    VMINGEST__DISPOSITION__QUARANTINED) ||
	    (c->reason != NULL && strstr(r->reason, c->reason) == NULL) ||
	    (c->warning != NULL && !has_warning(r, c->warning)) ||
	    (c->no_warning != NULL && has_warning(r, c->no_warning))) {
		fprintf(stderr, "case %s: disposition %s reason \"%s\"\n",
		    c->name, disposition_name(r->disposition), r->reason);
		for (i = 0; i < r->n_warnings; i++)
			fprintf(stderr, "  warning: %s\n", r->warnings[i]);
		fail_msg("case %s: want quarantined=%d reason~\"%s\" "
		    "warning~\"%s\" no warning~\"%s\"", c->name, c->quarantined,
		    c->reason ? c->reason : "", c->warning ? c->warning : "",
		    c->no_warning ? c->no_warning : "");
	}
	if (c->check != NULL)
		c->check(r);
	assert_int_equal(nfinish, 1);
	record_free(r);
}

static int
setup(void **state)
{
	normalize_init();
	recording = 1;
	return 0;
}

int
main(void)
{
	struct CMUnitTest t[3 + sizeof(cases) / sizeof(cases[0])];
	size_t	 i, n = 0;

	t[n++] = (struct CMUnitTest)cmocka_unit_test(test_golden);
	t[n++] = (struct CMUnitTest)cmocka_unit_test(test_pack_roundtrip);
	t[n++] = (struct CMUnitTest)cmocka_unit_test(test_threads);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		t[n] = (struct CMUnitTest)cmocka_unit_test_prestate(test_case,
		    (void *)(uintptr_t)&cases[i]);
		t[n].name = cases[i].name;
		n++;
	}
	return _cmocka_run_group_tests("normalize", t, n, setup, NULL);
}
