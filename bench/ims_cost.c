/*
 * ims_cost.c - what IMS parsing adds to normalize, per message.
 *
 * usage: ims_cost [CORPUS_IMS_DIR [SAMPLES]]
 *
 * For every regular file of CORPUS_IMS_DIR (default $VMI_CORPUS/ims, else
 * ../shared/corpus/ims) and of its requests/ folder, the bench takes a
 * mail: the file itself when it already is one (starts with "From " or a
 * header field), else the file wrapped as the body of a small text/plain
 * mail.  It then measures, SAMPLES times (default 31) each, and reports
 * the median of:
 *
 *   norm   normalize_message() on the mail: GMime parse, headers, MIME
 *          tree, decoding, sha256 - and the IMS parse it calls;
 *   ims    ims_parse_part() on each decoded text part of the same mail
 *          (decoded once beforehand with GMime, as normalize hands them
 *          over) plus ims_finish(): the IMS share of norm.
 *
 * "added" = ims / (norm - ims): how much the IMS parse adds to a
 * normalize that would not do it.  The goal (issue 6) is at most 20%.
 * Each sample repeats the call until it has taken at least 200 us, so
 * the clock resolution does not matter for small messages.
 *
 * Output: a markdown table on stdout, one row per file plus a total row
 * (sums of the medians).  Exit status 0, 1 when no file could be read.
 *
 * SECURITY: a developer tool run on the read-only corpus; files are read
 * whole with a size cap (64 MiB).
 */
#include <sys/stat.h>

#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <gmime/gmime.h>

#include "ims.h"
#include "normalize.h"
#include "record.h"

#define MAX_FILE_BYTES	(64u * 1024 * 1024)
#define MAX_SAMPLES	1001
#define MIN_SAMPLE_NS	200000.0
#define MAX_TEXTS	64

struct texts {
	char	*path[MAX_TEXTS];
	char	*text[MAX_TEXTS];
	size_t	 len[MAX_TEXTS];
	size_t	 n;
};

static struct limits L;

static double
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int
cmp_double(const void *a, const void *b)
{
	double	 x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static char *
slurp(const char *path, size_t *len)
{
	FILE	*f = fopen(path, "rb");
	char	*b;
	long	 n;

	if (f == NULL)
		return NULL;
	if (fseek(f, 0, SEEK_END) == -1 || (n = ftell(f)) < 0 ||
	    (size_t)n > MAX_FILE_BYTES || fseek(f, 0, SEEK_SET) == -1) {
		fclose(f);
		return NULL;
	}
	b = malloc((size_t)n + 1);
	if (b == NULL || fread(b, 1, (size_t)n, f) != (size_t)n) {
		free(b);
		fclose(f);
		return NULL;
	}
	fclose(f);
	b[n] = '\0';
	*len = (size_t)n;
	return b;
}

/* A mail already (mbox From_ line or a header field first), or a bare body. */
static int
looks_like_mail(const char *b, size_t n)
{
	size_t	 i;

	if (n >= 5 && memcmp(b, "From ", 5) == 0)
		return 1;
	/* a field name (RFC 5322 ftext, here letters, digits, '-'), ": " */
	for (i = 0; i < n && i < 80; i++) {
		if (b[i] == ':')
			return i > 0 && i + 1 < n &&
			    (b[i + 1] == ' ' || b[i + 1] == '\t');
		if (!((b[i] >= 'A' && b[i] <= 'Z') || (b[i] >= 'a' &&
		    b[i] <= 'z') || (b[i] >= '0' && b[i] <= '9') || b[i] == '-'))
			return 0;
	}
	return 0;
}

static char *
as_mail(char *b, size_t n, size_t *outlen)
{
	static const char hdr[] = "From: bench@ndc.example\r\n"
	    "To: messages@idc.example\r\nSubject: bench\r\n"
	    "Message-ID: <bench@ndc.example>\r\nMIME-Version: 1.0\r\n"
	    "Content-Type: text/plain; charset=us-ascii\r\n\r\n";
	char	*m;

	if (looks_like_mail(b, n)) {
		*outlen = n;
		return b;
	}
	m = malloc(sizeof(hdr) - 1 + n);
	if (m == NULL)
		abort();
	memcpy(m, hdr, sizeof(hdr) - 1);
	memcpy(m + sizeof(hdr) - 1, b, n);
	free(b);
	*outlen = sizeof(hdr) - 1 + n;
	return m;
}

/* Decoded content of every text/ANY leaf, as normalize would pass it. */
static void
collect(GMimeObject *parent, GMimeObject *part, gpointer data)
{
	struct texts *t = data;
	GMimeContentType *ct = g_mime_object_get_content_type(part);
	GMimeDataWrapper *w;
	GMimeStream *s;
	GByteArray *ba;

	if (!GMIME_IS_PART(part) || t->n >= MAX_TEXTS ||
	    !g_mime_content_type_is_type(ct, "text", "*"))
		return;
	if ((w = g_mime_part_get_content(GMIME_PART(part))) == NULL)
		return;
	s = g_mime_stream_mem_new();
	g_mime_data_wrapper_write_to_stream(w, s);
	ba = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(s));
	t->text[t->n] = malloc(ba->len + 1);
	if (t->text[t->n] == NULL)
		abort();
	memcpy(t->text[t->n], ba->data, ba->len);
	t->len[t->n] = ba->len;
	t->path[t->n] = strdup("1");
	t->n++;
	g_object_unref(s);
}

static void
decode_texts(const char *mail, size_t len, struct texts *t)
{
	GMimeStream *s = g_mime_stream_mem_new_with_buffer(mail, len);
	GMimeParser *p = g_mime_parser_new_with_stream(s);
	GMimeMessage *m;

	g_mime_parser_set_format(p, GMIME_FORMAT_MBOX);
	if (len < 5 || memcmp(mail, "From ", 5) != 0)
		g_mime_parser_set_format(p, GMIME_FORMAT_MESSAGE);
	m = g_mime_parser_construct_message(p, NULL);
	if (m != NULL) {
		g_mime_message_foreach(m, collect, t);
		if (t->n == 0)
			collect(NULL, g_mime_message_get_mime_part(m), t);
		g_object_unref(m);
	}
	g_object_unref(p);
	g_object_unref(s);
}

static void
run_norm(const char *mail, size_t len)
{
	Vmingest__Record *r = record_new();

	normalize_message(&L, mail, len, r);
	record_free(r);
}

static size_t
run_ims(const struct texts *t)
{
	Vmingest__Record *r = record_new();
	size_t	 i, n;

	for (i = 0; i < t->n; i++)
		ims_parse_part(&L, r, t->path[i], t->text[i], t->len[i]);
	ims_finish(&L, r);
	n = r->n_ims;
	record_free(r);
	return n;
}

/* Median ns per call over samples; which: 0 norm, 1 ims. */
static double
median(int which, const char *mail, size_t len, const struct texts *t,
    int samples)
{
	double	 v[MAX_SAMPLES], t0, dt;
	long	 reps = 1, k;
	int	 i;

	for (;;) {
		t0 = now_ns();
		for (k = 0; k < reps; k++) {
			if (which == 0)
				run_norm(mail, len);
			else
				(void)run_ims(t);
		}
		dt = now_ns() - t0;
		if (dt >= MIN_SAMPLE_NS || reps >= 1L << 20)
			break;
		reps *= 2;
	}
	for (i = 0; i < samples; i++) {
		t0 = now_ns();
		for (k = 0; k < reps; k++) {
			if (which == 0)
				run_norm(mail, len);
			else
				(void)run_ims(t);
		}
		v[i] = (now_ns() - t0) / (double)reps;
	}
	qsort(v, (size_t)samples, sizeof(double), cmp_double);
	return v[samples / 2];
}

struct totals {
	double	 norm, ims;
	size_t	 bytes;
	int	 files;
};

static void
bench_file(const char *path, const char *name, int samples, struct totals *tot)
{
	struct texts t;
	size_t	 len, mlen, i, nims;
	char	*raw, *mail;
	double	 tn, ti, base;

	if ((raw = slurp(path, &len)) == NULL)
		return;
	mail = as_mail(raw, len, &mlen);
	memset(&t, 0, sizeof(t));
	decode_texts(mail, mlen, &t);
	nims = run_ims(&t);
	tn = median(0, mail, mlen, &t, samples);
	ti = median(1, mail, mlen, &t, samples);
	base = tn - ti;
	printf("| %s | %zu | %zu | %.1f | %.1f | %s%.1f%% |\n", name, mlen,
	    nims, tn / 1000, ti / 1000, base > 0 ? "" : "n/a ",
	    base > 0 ? 100.0 * ti / base : 0.0);
	tot->norm += tn;
	tot->ims += ti;
	tot->bytes += mlen;
	tot->files++;
	for (i = 0; i < t.n; i++) {
		free(t.text[i]);
		free(t.path[i]);
	}
	free(mail);
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char * const *)a, *(char * const *)b);
}

static void
bench_dir(const char *dir, const char *prefix, int samples,
    struct totals *tot)
{
	DIR	*d = opendir(dir);
	struct dirent *de;
	char	*names[1024], path[4096], label[512];
	size_t	 n = 0, i;
	struct stat st;

	if (d == NULL)
		return;
	while ((de = readdir(d)) != NULL && n < 1024) {
		if (de->d_name[0] == '.' || strcmp(de->d_name, "SOURCES.txt") == 0 ||
		    strcmp(de->d_name, "INDEX.tsv") == 0)
			continue;
		if (snprintf(path, sizeof(path), "%s/%s", dir, de->d_name) >=
		    (int)sizeof(path) || stat(path, &st) == -1 ||
		    !S_ISREG(st.st_mode))
			continue;
		names[n++] = strdup(de->d_name);
	}
	closedir(d);
	qsort(names, n, sizeof(char *), cmp_str);
	for (i = 0; i < n; i++) {
		if (snprintf(path, sizeof(path), "%s/%s", dir, names[i]) <
		    (int)sizeof(path) &&
		    snprintf(label, sizeof(label), "%s%s", prefix, names[i]) <
		    (int)sizeof(label))
			bench_file(path, label, samples, tot);
		free(names[i]);
	}
}

int
main(int argc, char **argv)
{
	char	 dir[2048], sub[2100];
	const char *env = getenv("VMI_CORPUS");
	struct totals tot = { 0, 0, 0, 0 };
	int	 samples = 31;

	if (argc > 1)
		snprintf(dir, sizeof(dir), "%s", argv[1]);
	else
		snprintf(dir, sizeof(dir), "%s/ims",
		    env != NULL && env[0] != '\0' ? env : "../shared/corpus");
	if (argc > 2)
		samples = atoi(argv[2]);
	if (samples < 1 || samples > MAX_SAMPLES) {
		fprintf(stderr, "usage: ims_cost [DIR [SAMPLES 1-%d]]\n",
		    MAX_SAMPLES);
		return 2;
	}
	limits_default(&L);
	normalize_init();
	printf("| file | mail bytes | IMS msgs | normalize us | IMS parse us "
	    "| IMS adds |\n|---|---:|---:|---:|---:|---:|\n");
	bench_dir(dir, "", samples, &tot);
	snprintf(sub, sizeof(sub), "%s/requests", dir);
	bench_dir(sub, "requests/", samples, &tot);
	if (tot.files == 0) {
		fprintf(stderr, "ims_cost: no files in %s\n", dir);
		return 1;
	}
	printf("| **total (%d files)** | %zu | | %.1f | %.1f | %.1f%% |\n",
	    tot.files, tot.bytes, tot.norm / 1000, tot.ims / 1000,
	    tot.norm > tot.ims ? 100.0 * tot.ims / (tot.norm - tot.ims) : 0);
	return 0;
}
