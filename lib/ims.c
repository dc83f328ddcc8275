/*
 * ims.c - find and parse IMS2.0 / IMS1.0 / GSE2.x messages in decoded
 * mail text and describe them on the record (Record.ims).
 *
 *   ims_parse_part  scan one decoded text part; one ImsMessage per
 *                   BEGIN..STOP (or BEGIN..next BEGIN / end of text,
 *                   kept with complete = 0 and a warning)
 *   ims_finish      after all parts: index N of M, repeated MSG_IDs,
 *                   S/MIME multipart/signed, bounce, Subject-only HELP
 *   ims_topic       "ims.<msg_type>.<first data_type|request keyword>"
 *                   or "mail.other"
 *
 * The grammar (docs/IMS.md) is that of GSE2.0/2.1 and of the IDC's
 * IMS1.0/IMS2.0 as seen in real traffic: free-format lines, blanks
 * between fields, keywords in any case, leading blanks, CRLF or LF,
 * backslash continuation, '%' comment lines.  Lines between STOP and the
 * next BEGIN are not ours and are skipped.
 *
 * Error policy: nothing here fails.  Every deviation from the grammar
 * (unknown keyword, bad date, over-long line, missing STOP, MSG_ID too
 * long, ...) becomes a warning on the ImsMessage it was met in, "line N:
 * what"; at most limits->warnings of them per message.  Limits that cut
 * the description short (ims_messages, ims_sections, ims_requests,
 * ims_stations, ims_line_bytes) say so in a warning.  Allocation failure
 * is fatal (xmalloc style, as in record.c).
 *
 * SECURITY: the text is hostile mail content.  Lines are copied into one
 * buffer of limits->ims_line_bytes; every loop advances through the text
 * or is bounded by a limit; the look-ahead after a doubtful BEGIN line
 * stops at the next non-blank line, so total work stays linear in the
 * text size.  Strings put on the record go through rec_strndup (valid
 * UTF-8, no NUL); text quoted in warnings is escaped with log_escape.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <glib.h>

#include "ims.h"
#include "log.h"
#include "record.h"

#define MAXTOK		32	/* tokens looked at per line */
#define ENV_MAX		64	/* environment keys in force per message */
#define QUOTE_MAX	40	/* bytes of hostile text quoted in a warning */

struct tok {
	const char	*p;
	size_t		 n;
};

enum phd_block { PHD_NONE, PHD_HEADER, PHD_COLLECTION, PHD_ACQUISITION };

struct ims_ctx {
	const struct limits *l;
	Vmingest__Record *rec;
	const char	*path;
	const char	*text;
	size_t		 len;
	size_t		 pos;		/* start of the next physical line */
	size_t		 phys_no;	/* physical lines read */

	char		*buf;		/* current logical line */
	size_t		 cap;		/* ims_line_bytes */
	size_t		 blen;
	size_t		 line_off;	/* offset of its first byte in text */
	size_t		 line_no;	/* 1-based physical line number */
	int		 line_over;	/* cut at cap */
	struct tok	 tk[MAXTOK];
	size_t		 ntk;
	char		 kw[40];	/* kwname() */

	/* the message being read (NULL outside BEGIN..STOP) */
	Vmingest__ImsMessage *m;
	int		 rank;		/* highest envelope line rank seen */
	int		 body;		/* a body line was seen */
	int		 reqlike;	/* REQUEST / SUBSCRIPTION body grammar */
	int		 sec_full;	/* ims_sections reached, warned */
	int		 req_full;	/* ims_requests reached, warned */
	char		*env[ENV_MAX];	/* "KEY value", in order of first use */
	size_t		 nenv;

	/* the section being read (NULL before the first DATA_TYPE) */
	Vmingest__ImsSection *sec;
	int		 in_section;	/* after DATA_TYPE, even when not kept */
	int		 log_section;	/* LOG / ERROR_LOG: may echo a message */
	size_t		 echo;		/* BEGIN..STOP depth echoed in it */
	int		 in_dat2;
	enum phd_block	 phd;
	int		 phd_line;
	GHashTable	*sta_seen;
	GHashTable	*chan_seen;
	int		 sta_full;
	int64_t		 transmit;	/* PHD #Header transmit time */
	double		 t0, t1;	/* section time range, t0 < 0: unset */
};

/* ---- small helpers ---- */

static void *
xmalloc(size_t n)
{
	void	*p = malloc(n ? n : 1);

	if (p == NULL)
		log_fatal("malloc %zu", n);
	return p;
}

static int
tok_is(const struct tok *t, const char *kw)
{
	size_t	 n = strlen(kw);

	return t->n == n && strncasecmp(t->p, kw, n) == 0;
}

static char *
tok_dup(const struct tok *t)
{
	return rec_strndup(t->p, t->n);
}

static char *
upper_dup(const char *p, size_t n)
{
	char	*s = rec_strndup(p, n);
	char	*q;

	for (q = s; *q != '\0'; q++)
		*q = (char)toupper((unsigned char)*q);
	return s;
}

/* Escaped, shortened copy of hostile text for a warning. */
static const char *
quote(char *dst, size_t dstsz, const char *p, size_t n)
{
	return log_escape(dst, dstsz, p, n > QUOTE_MAX ? QUOTE_MAX : n);
}

static void
set_str(char **field, char *val)
{
	if (*field != NULL && *field != protobuf_c_empty_string)
		free(*field);
	*field = val;
}

static void msg_warn(struct ims_ctx *, const char *, ...)
    __attribute__((format(printf, 2, 3)));

/* A warning on the current message, prefixed with the line number. */
static void
msg_warn(struct ims_ctx *c, const char *fmt, ...)
{
	Vmingest__ImsMessage *m = c->m;
	char	 what[400], line[480];
	va_list	 ap;

	if (m == NULL || m->n_warnings >= c->l->warnings)
		return;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	if (m->n_warnings + 1 == c->l->warnings)
		snprintf(line, sizeof(line), "too many warnings (limit %zu)",
		    c->l->warnings);
	else
		snprintf(line, sizeof(line), "line %zu: %s", c->line_no, what);
	rec_push(&m->warnings, &m->n_warnings, rec_strdup(line));
}

/* ---- lines and tokens ---- */

static int
blank_ok(char ch)
{
	return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\f' ||
	    ch == '\v';
}

/*
 * Fast path: step over the next physical line when its first non-blank
 * byte is not in `starts` (no keyword that matters here can begin it),
 * it is not over-long and it does not continue on the next line.  Saves
 * copying and splitting the bulk of waveform and bulletin data.
 * Returns 1 when a line was skipped.
 */
static int
skip_line(struct ims_ctx *c, const char *starts, int join)
{
	const char *t = c->text, *nl;
	size_t	 p = c->pos, end, e;

	while (p < c->len && (t[p] == ' ' || t[p] == '\t'))
		p++;
	if (p >= c->len || t[p] == '\n' || t[p] == '\r' || t[p] == '\0' ||
	    strchr(starts, t[p]) != NULL)
		return 0;
	nl = memchr(t + p, '\n', c->len - p);
	end = nl != NULL ? (size_t)(nl - t) : c->len;
	if (end - c->pos > c->cap)
		return 0;		/* let next_line() see and warn */
	e = end;
	while (e > p && blank_ok(t[e - 1]))
		e--;
	if (join && e > p && t[e - 1] == '\\')
		return 0;
	c->pos = nl != NULL ? end + 1 : c->len;
	c->phys_no++;
	return 1;
}

/* Next physical line: offset and length without the LF or CRLF. */
static int
next_phys(struct ims_ctx *c, size_t *start, size_t *n)
{
	const char *nl;
	size_t	 end;

	if (c->pos >= c->len)
		return 0;
	*start = c->pos;
	nl = memchr(c->text + c->pos, '\n', c->len - c->pos);
	end = nl != NULL ? (size_t)(nl - c->text) : c->len;
	c->pos = nl != NULL ? end + 1 : c->len;
	*n = end - *start;
	if (*n > 0 && c->text[*start + *n - 1] == '\r')
		(*n)--;
	c->phys_no++;
	return 1;
}

/*
 * Read the next logical line into c->buf (trailing blanks dropped).  With
 * join, a line ending in a backslash continues on the next one; data
 * section bodies are read without join (GSE2.1: no continuation in data).
 * Returns 0 at the end of the text.
 */
static int
next_line(struct ims_ctx *c, int join)
{
	size_t	 s, n, k, used = 0;
	int	 first = 1, cont;

	c->line_over = 0;
	for (;;) {
		if (!next_phys(c, &s, &n)) {
			if (first)
				return 0;
			break;
		}
		if (first) {
			c->line_off = s;
			c->line_no = c->phys_no;
			first = 0;
		}
		if (n > c->cap)
			c->line_over = 1;
		while (n > 0 && (c->text[s + n - 1] == ' ' ||
		    c->text[s + n - 1] == '\t' || c->text[s + n - 1] == '\r'))
			n--;
		cont = join && n > 0 && c->text[s + n - 1] == '\\';
		if (cont)
			n--;
		k = n;
		if (k > c->cap - used) {
			k = c->cap - used;
			c->line_over = 1;
		}
		memcpy(c->buf + used, c->text + s, k);
		used += k;
		if (!cont)
			break;
	}
	for (k = 0; k < used; k++)
		if (c->buf[k] == '\0')
			c->buf[k] = ' ';
	c->buf[used] = '\0';
	c->blen = used;
	return 1;
}


/* Split the current line into blank-separated tokens (at most MAXTOK). */
static void
split_line(struct ims_ctx *c)
{
	const char *p = c->buf, *e = c->buf + c->blen;

	c->ntk = 0;
	while (p < e && c->ntk < MAXTOK) {
		while (p < e && blank_ok(*p))
			p++;
		if (p >= e)
			break;
		c->tk[c->ntk].p = p;
		while (p < e && !blank_ok(*p))
			p++;
		c->tk[c->ntk].n = (size_t)(p - c->tk[c->ntk].p);
		c->ntk++;
	}
}

/* Text of the line after token i and the blanks that follow it. */
static struct tok
rest_after(const struct ims_ctx *c, size_t i)
{
	struct tok r;
	const char *e = c->buf + c->blen;

	r.p = c->tk[i].p + c->tk[i].n;
	while (r.p < e && blank_ok(*r.p))
		r.p++;
	r.n = (size_t)(e - r.p);
	return r;
}

/* ---- dates and times ---- */

static int
parse_uint(const char *p, size_t n, size_t maxdig, long *out)
{
	size_t	 i;
	long	 v = 0;

	if (n == 0 || n > maxdig)
		return -1;
	for (i = 0; i < n; i++) {
		if (!isdigit((unsigned char)p[i]))
			return -1;
		v = v * 10 + (p[i] - '0');
	}
	*out = v;
	return 0;
}

static int
leap_ok(long y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant). */
static int64_t
days_from_civil(long y, long m, long d)
{
	int64_t	 era, yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

/*
 * Date "yyyy[/mm[/dd]]" and optional time "hh[:mm[:ss[.sss]]]" (trailing
 * parts may be dropped; GSE2.1 section 2) to unix seconds.  -1 if bad.
 */
static int
parse_datetime(const char *d, size_t dn, const char *t, size_t tn,
    double *out)
{
	static const int mdays[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31,
	    30, 31 };
	long	 f[3] = { 0, 1, 1 }, h[3] = { 0, 0, 0 };
	size_t	 i, k, start;
	double	 frac = 0;
	long	 dim;

	for (i = 0, k = 0, start = 0; i <= dn; i++) {
		if (i < dn && d[i] != '/')
			continue;
		if (k >= 3 || parse_uint(d + start, i - start, k ? 2 : 4,
		    &f[k]) == -1)
			return -1;
		k++;
		start = i + 1;
	}
	if (f[0] < 1000 || f[1] < 1 || f[1] > 12)
		return -1;
	dim = mdays[f[1] - 1] + (f[1] == 2 && leap_ok(f[0]));
	if (f[2] < 1 || f[2] > dim)
		return -1;
	if (t != NULL && tn > 0) {
		for (i = 0, k = 0, start = 0; i <= tn; i++) {
			if (i < tn && t[i] != ':' && !(k == 2 && t[i] == '.'))
				continue;
			if (k >= 3 || parse_uint(t + start, i - start, 2,
			    &h[k]) == -1)
				return -1;
			k++;
			start = i + 1;
			if (i < tn && t[i] == '.') {
				/* fraction of seconds: digits to the end */
				size_t j;
				double scale = 0.1;

				if (start >= tn)
					return -1;
				for (j = start; j < tn; j++) {
					if (!isdigit((unsigned char)t[j]) ||
					    j - start >= 9)
						return -1;
					frac += (t[j] - '0') * scale;
					scale /= 10;
				}
				break;
			}
		}
		if (h[0] > 24 || h[1] > 59 || h[2] > 60)
			return -1;
	}
	*out = (double)days_from_civil(f[0], f[1], f[2]) * 86400.0 +
	    h[0] * 3600.0 + h[1] * 60.0 + (double)h[2] + frac;
	return 0;
}

/* A token that looks like a time of day (starts with a digit, has no '/'). */
static int
time_tok_ok(const struct tok *t)
{
	return t->n > 0 && isdigit((unsigned char)t->p[0]) &&
	    memchr(t->p, '/', t->n) == NULL;
}

/* ---- the message ---- */

static const char *const msg_types[] = {
	"REQUEST", "DATA", "SUBSCRIPTION", "COMMAND_REQUEST",
	"COMMAND_RESPONSE", NULL
};

/* Request keywords (GSE2.0 CRP243 section 2.6, IDC AutoDRM HELP). */
static const char *const req_keywords[] = {
	"WAVEFORM", "WAVEFORM_SEGMENT", "ARRIVAL", "ORIGIN", "EVENT",
	"BULLETIN", "NETWORK", "STATION", "CHANNEL", "BEAM", "RESPONSE",
	"OUTAGE", "SLSD", "STA_STATUS", "CHAN_STATUS", "COMM_STATUS",
	"AUTH_STATUS", "WAVE_MISSION", "WAVE_QUALITY", "EXECSUM", "COMMENT",
	"DETECTION", "PROBLEM", "LOG", "HELP",
	"SPHDP", "SPHDF", "SAMPLEPHD", "BLANKPHD", "DETBKPHD", "GASBKPHD",
	"CALIBPHD", "QCPHD", "SPIKEPHD", "RLR", "ARR", "RRR", "ALERT_FLOW",
	"ALERT_SYSTEM", "ALERT_TEMP", "ALERT_UPS", "MET", "RNPS", "SSREB",
	"RMSSOH", "ARMR", "FPEB", "NETWORK_STATUS",
	"SUBSCR_PROD", "SUBSCR_RESEND", "SUBSCR_LOG", "UNSUBSCRIBE",
	"SUBSCRIBE", "CHANGE", "RESEND",	/* GSE2.1 section 3 */
	NULL
};

enum env_kind { ENV_ANY, ENV_TIME, ENV_RANGE, ENV_LIST };

static const struct env_kw {
	const char	*name;
	enum env_kind	 kind;
} env_keywords[] = {
	{ "TIME", ENV_TIME },
	{ "LAT", ENV_RANGE }, { "LON", ENV_RANGE }, { "LONG", ENV_RANGE },
	{ "DEPTH", ENV_RANGE }, { "DEPTH_MINUS_ERROR", ENV_RANGE },
	{ "MAG", ENV_RANGE }, { "MB_MINUS_MS", ENV_RANGE },
	{ "EVENT_STA_DIST", ENV_RANGE },
	{ "MAG_TYPE", ENV_LIST }, { "BULL_TYPE", ENV_LIST },
	{ "RELATIVE_TO", ENV_LIST }, { "PROB_TYPE", ENV_LIST },
	{ "PROB_LOC", ENV_LIST }, { "PROB_STATE", ENV_LIST },
	{ "DEPTH_CONF", ENV_ANY }, { "DEPTH_KVALUE", ENV_ANY },
	{ "DEPTH_THRESH", ENV_ANY }, { "LOC_CONF", ENV_ANY },
	{ "MBMS_CONF", ENV_ANY }, { "MBMS_SLOPE", ENV_ANY },
	{ "MBMS_THRESH", ENV_ANY }, { "REG_CONF", ENV_ANY },
	{ "HYDRO_CP_THRESH", ENV_ANY }, { "HYDRO_TE_THRESH", ENV_ANY },
	{ "FREQ", ENV_ANY }, { "SUBSCR_NAME", ENV_ANY },
	{ "SEND_EMPTY", ENV_ANY }, { "DELIVERY", ENV_ANY },
	{ NULL, ENV_ANY }
};

static int
word_in(const struct tok *t, const char *const *list)
{
	size_t	 i;

	for (i = 0; list[i] != NULL; i++)
		if (tok_is(t, list[i]))
			return 1;
	return 0;
}

/* Environment keyword: its kind, or -1.  Any "*_LIST" is a list. */
static int
env_kind(const struct tok *t)
{
	size_t	 i;

	for (i = 0; env_keywords[i].name != NULL; i++)
		if (tok_is(t, env_keywords[i].name))
			return (int)env_keywords[i].kind;
	if (t->n > 5 && strncasecmp(t->p + t->n - 5, "_LIST", 5) == 0)
		return ENV_LIST;
	return -1;
}

/* BEGIN argument: letters then a version number, e.g. IMS2.0, GSE2.1. */
static int
version_ok(const struct tok *t)
{
	size_t	 i = 0, letters, digits = 0;

	while (i < t->n && isalpha((unsigned char)t->p[i]))
		i++;
	letters = i;
	while (i < t->n && (isdigit((unsigned char)t->p[i]) || t->p[i] == '.'))
		if (isdigit((unsigned char)t->p[i++]))
			digits++;
	return letters >= 2 && letters <= 8 && digits >= 1 && i == t->n;
}

/* "name[:sub]" with non-empty pieces of [A-Za-z0-9._-]; 0 if malformed. */
static int
colon_pair(const struct tok *t, struct tok *a, struct tok *b)
{
	const char *colon = memchr(t->p, ':', t->n);
	size_t	 i;

	a->p = t->p;
	a->n = colon != NULL ? (size_t)(colon - t->p) : t->n;
	b->p = colon != NULL ? colon + 1 : t->p + t->n;
	b->n = colon != NULL ? t->n - a->n - 1 : 0;
	if (a->n == 0 || (colon != NULL && b->n == 0))
		return 0;
	for (i = 0; i < t->n; i++) {
		unsigned char ch = (unsigned char)t->p[i];

		if (t->p + i == colon)
			continue;
		if (!isalnum(ch) && ch != '.' && ch != '_' && ch != '-')
			return 0;
	}
	return 1;
}

/* addr-spec as IMS return addresses use it: local@domain.labels */
static int
address_ok(const struct tok *t)
{
	const char *at = memchr(t->p, '@', t->n);
	size_t	 i, lablen = 0, local;

	if (at == NULL || at == t->p)
		return 0;
	local = (size_t)(at - t->p);
	for (i = 0; i < local; i++)
		if ((unsigned char)t->p[i] <= ' ' || t->p[i] == '"' ||
		    t->p[i] == '<' || t->p[i] == '>' || t->p[i] == ',')
			return 0;
	for (i = local + 1; i <= t->n; i++) {
		char	 ch = i < t->n ? t->p[i] : '.';

		if (ch == '.') {
			if (lablen == 0 || t->p[i - 1] == '-')
				return 0;
			lablen = 0;
		} else if (isalnum((unsigned char)ch) ||
		    (ch == '-' && lablen > 0))
			lablen++;
		else
			return 0;
	}
	return 1;
}

static int
envelope_rank(const struct tok *t)
{
	if (tok_is(t, "MSG_TYPE"))
		return 1;
	if (tok_is(t, "MSG_ID"))
		return 2;
	if (tok_is(t, "REF_ID"))
		return 3;
	if (tok_is(t, "PROD_ID"))
		return 4;
	return 0;
}

static void
env_clear(struct ims_ctx *c)
{
	while (c->nenv > 0)
		free(c->env[--c->nenv]);
}

static void
sets_free(struct ims_ctx *c)
{
	if (c->sta_seen != NULL)
		g_hash_table_destroy(c->sta_seen);
	if (c->chan_seen != NULL)
		g_hash_table_destroy(c->chan_seen);
	c->sta_seen = c->chan_seen = NULL;
}

static void
end_section(struct ims_ctx *c, size_t end_off)
{
	Vmingest__ImsSection *s = c->sec;

	if (s != NULL) {
		s->length = end_off > s->offset ? end_off - s->offset : 0;
		if (c->t0 >= 0) {
			s->start_unix = (int64_t)c->t0;
			s->end_unix = (int64_t)c->t1;
		} else if (c->transmit != 0)
			s->start_unix = s->end_unix = c->transmit;
	}
	sets_free(c);
	c->sec = NULL;
	c->in_section = 0;
	c->log_section = 0;
	c->echo = 0;
	c->in_dat2 = 0;
	c->phd = PHD_NONE;
}

static void
end_message(struct ims_ctx *c, size_t end_off, int complete)
{
	Vmingest__ImsMessage *m = c->m;

	if (c->echo > 0)
		msg_warn(c, "message quoted in a LOG section has no STOP");
	end_section(c, end_off);
	if (m == NULL)
		return;
	m->complete = complete;
	if (!complete)
		msg_warn(c, "missing STOP: message incomplete");
	if (m->msg_type[0] == '\0')
		msg_warn(c, "missing MSG_TYPE");
	if (m->msg_id[0] == '\0')
		msg_warn(c, "missing MSG_ID");
	if (c->reqlike && m->n_requests == 0 && !m->help)
		msg_warn(c, "request message without request lines");
	env_clear(c);
	c->m = NULL;
}

static void
begin_message(struct ims_ctx *c, const struct tok *version)
{
	Vmingest__ImsMessage *m;

	if (c->rec->n_ims >= c->l->ims_messages) {
		record_warn(c->rec, c->l->warnings,
		    "ims: more than %zu IMS messages (ims_messages), "
		    "line %zu and later not described", c->l->ims_messages,
		    c->line_no);
		c->pos = c->len;	/* nothing more to find */
		return;
	}
	m = xmalloc(sizeof(*m));
	vmingest__ims_message__init(m);
	m->version = version != NULL ? tok_dup(version) : rec_strdup("");
	m->part_path = rec_strdup(c->path);
	rec_push(&c->rec->ims, &c->rec->n_ims, m);
	c->m = m;
	c->rank = 0;
	c->body = 0;
	c->reqlike = 0;
	c->sec_full = c->req_full = 0;
}

/*
 * After a BEGIN line whose argument is not a version: is the next
 * non-blank line MSG_TYPE?  Stops at the first non-blank line, so the
 * scan never passes the next candidate BEGIN (linear overall).
 */
static int
next_is_msg_type(const struct ims_ctx *c)
{
	size_t	 p = c->pos;

	while (p < c->len) {
		while (p < c->len && (blank_ok(c->text[p]) ||
		    c->text[p] == '\n'))
			p++;
		if (p >= c->len)
			return 0;
		return c->len - p >= 8 &&
		    strncasecmp(c->text + p, "MSG_TYPE", 8) == 0 &&
		    (c->len - p == 8 || blank_ok(c->text[p + 8]) ||
		    c->text[p + 8] == '\n');
	}
	return 0;
}

/* ---- envelope lines ---- */

static void
line_msg_type(struct ims_ctx *c)
{
	Vmingest__ImsMessage *m = c->m;
	char	 q[QUOTE_MAX * 4 + 1];

	if (m->msg_type[0] != '\0') {
		msg_warn(c, "second MSG_TYPE line ignored");
		return;
	}
	if (c->ntk < 2) {
		msg_warn(c, "MSG_TYPE without a type");
		return;
	}
	set_str(&m->msg_type, upper_dup(c->tk[1].p, c->tk[1].n));
	if (!word_in(&c->tk[1], msg_types))
		msg_warn(c, "unknown MSG_TYPE \"%s\"",
		    quote(q, sizeof(q), c->tk[1].p, c->tk[1].n));
	c->reqlike = strcmp(m->msg_type, "REQUEST") == 0 ||
	    strcmp(m->msg_type, "SUBSCRIPTION") == 0 ||
	    strcmp(m->msg_type, "COMMAND_REQUEST") == 0;
	if (c->ntk > 2)
		msg_warn(c, "extra fields after MSG_TYPE");
}

static void
line_msg_id(struct ims_ctx *c)
{
	Vmingest__ImsMessage *m = c->m;
	const struct tok *id = &c->tk[1], *src = &c->tk[2];

	if (m->msg_id[0] != '\0') {
		msg_warn(c, "second MSG_ID line ignored");
		return;
	}
	if (c->ntk < 2) {
		msg_warn(c, "MSG_ID without an id");
		return;
	}
	set_str(&m->msg_id, tok_dup(id));
	if (id->n > 20)
		msg_warn(c, "MSG_ID id is %zu characters (at most 20)", id->n);
	if (memchr(id->p, '\\', id->n) != NULL)
		msg_warn(c, "MSG_ID id contains a backslash");
	if (c->ntk >= 3) {
		set_str(&m->source, tok_dup(src));
		if (src->n > 8)
			msg_warn(c, "MSG_ID source is %zu characters "
			    "(at most 8)", src->n);
	}
	if (c->ntk > 3)
		msg_warn(c, "extra fields after MSG_ID");
}

static int
part_number(struct ims_ctx *c, const struct tok *t, const char *what,
    uint32_t *out)
{
	long	 v;

	if (parse_uint(t->p, t->n, 9, &v) == -1 || v == 0) {
		msg_warn(c, "REF_ID %s is not a positive number", what);
		return -1;
	}
	*out = (uint32_t)v;
	return 0;
}

static void
line_ref_id(struct ims_ctx *c)
{
	Vmingest__ImsMessage *m = c->m;
	Vmingest__RefId *r;
	size_t	 i = 2;

	if (m->ref_id != NULL) {
		msg_warn(c, "second REF_ID line ignored");
		return;
	}
	if (c->ntk < 2) {
		msg_warn(c, "REF_ID without an id");
		return;
	}
	r = xmalloc(sizeof(*r));
	vmingest__ref_id__init(r);
	m->ref_id = r;
	r->id = tok_dup(&c->tk[1]);
	if (i < c->ntk && !tok_is(&c->tk[i], "PART"))
		r->source = tok_dup(&c->tk[i++]);
	if (i < c->ntk && tok_is(&c->tk[i], "PART")) {
		if (i + 1 >= c->ntk) {
			msg_warn(c, "REF_ID PART without a number");
			return;
		}
		if (part_number(c, &c->tk[i + 1], "PART", &r->part) == -1)
			return;
		i += 2;
		if (i < c->ntk && tok_is(&c->tk[i], "OF")) {
			if (i + 1 >= c->ntk) {
				msg_warn(c, "REF_ID OF without a number");
				return;
			}
			if (part_number(c, &c->tk[i + 1], "OF", &r->of) == -1)
				return;
			i += 2;
			if (r->part > r->of)
				msg_warn(c, "REF_ID PART %u OF %u", r->part,
				    r->of);
		}
	}
	if (i < c->ntk)
		msg_warn(c, "extra fields in REF_ID line");
}

static void
line_prod_id(struct ims_ctx *c)
{
	Vmingest__ImsMessage *m = c->m;
	Vmingest__ProdId *p;

	if (m->prod_id != NULL) {
		msg_warn(c, "second PROD_ID line ignored");
		return;
	}
	if (c->ntk < 2) {
		msg_warn(c, "PROD_ID without a product id");
		return;
	}
	p = xmalloc(sizeof(*p));
	vmingest__prod_id__init(p);
	m->prod_id = p;
	p->product = tok_dup(&c->tk[1]);
	if (c->ntk >= 3)
		p->delivery = tok_dup(&c->tk[2]);
	if (c->ntk > 3)
		msg_warn(c, "extra fields in PROD_ID line");
}

static void
line_return(struct ims_ctx *c, Vmingest__ReturnKind kind)
{
	Vmingest__ImsMessage *m = c->m;
	const char *kw = kind == VMINGEST__RETURN_KIND__FTP ? "FTP" : "E-MAIL";
	char	 q[QUOTE_MAX * 4 + 1];

	if (c->ntk < 2) {
		msg_warn(c, "%s line without an address", kw);
		return;
	}
	if (m->return_kind != VMINGEST__RETURN_KIND__RETURN_UNSET) {
		msg_warn(c, "second return address (%s) ignored", kw);
		return;
	}
	set_str(&m->return_address, tok_dup(&c->tk[1]));
	m->return_kind = kind;
	if (!address_ok(&c->tk[1]))
		msg_warn(c, "bad %s address \"%s\"", kw,
		    quote(q, sizeof(q), c->tk[1].p, c->tk[1].n));
	if (c->ntk > 2)
		msg_warn(c, "extra fields after %s address", kw);
}

/* ---- request bodies ---- */

/* The line's keyword, upper case, for a warning (static buffer in ctx). */
static const char *
kwname(struct ims_ctx *c)
{
	size_t	 i, n = c->tk[0].n < sizeof(c->kw) - 1 ? c->tk[0].n :
	    sizeof(c->kw) - 1;

	for (i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)c->tk[0].p[i];

		c->kw[i] = isalnum(ch) || ch == '_' || ch == '-' ?
		    (char)toupper(ch) : '?';
	}
	c->kw[n] = '\0';
	return c->kw;
}

/* TIME [[date1 [time1]] TO [date2 [time2]]], or NOW / FOREVER. */
static int
time_env_ok(struct ims_ctx *c, size_t from)
{
	size_t	 i = from, side, n;
	double	 t;
	char	 q[QUOTE_MAX * 4 + 1];

	if (i >= c->ntk)
		return 1;		/* reset to the default */
	for (side = 0; side < 2; side++) {
		n = 0;
		while (i < c->ntk && !tok_is(&c->tk[i], "TO")) {
			const struct tok *d = &c->tk[i];
			const struct tok *tm = NULL;

			if (tok_is(d, "NOW") || tok_is(d, "FOREVER")) {
				i++;
				n++;
				continue;
			}
			if (i + 1 < c->ntk && time_tok_ok(&c->tk[i + 1]))
				tm = &c->tk[i + 1];
			if (parse_datetime(d->p, d->n, tm ? tm->p : NULL,
			    tm ? tm->n : 0, &t) == -1) {
				msg_warn(c, "bad date/time \"%s\" in TIME",
				    quote(q, sizeof(q), d->p, d->n));
				return 0;
			}
			i += tm != NULL ? 2 : 1;
			n++;
		}
		if (n > 1) {
			msg_warn(c, "bad TIME range: more than one date "
			    "on a side of TO");
			return 0;
		}
		if (side == 0) {
			if (i >= c->ntk) {
				msg_warn(c, "bad TIME range: no TO");
				return 0;
			}
			i++;		/* TO */
		}
	}
	if (i < c->ntk) {
		msg_warn(c, "bad TIME range: more than one TO");
		return 0;
	}
	return 1;
}

static int
number_ok(const struct tok *t)
{
	char	 num[64], *end;

	if (t->n == 0 || t->n >= sizeof(num))
		return 0;
	memcpy(num, t->p, t->n);
	num[t->n] = '\0';
	(void)strtod(num, &end);
	return *end == '\0' && end != num;
}

/* KEYWORD [[low] TO [high]] with numbers. */
static int
range_env_ok(struct ims_ctx *c, size_t from)
{
	size_t	 i = from, to = 0, nums = 0;

	if (i >= c->ntk)
		return 1;
	for (; i < c->ntk; i++) {
		if (tok_is(&c->tk[i], "TO")) {
			if (to++)
				break;
		} else if (number_ok(&c->tk[i]))
			nums++;
		else
			break;
	}
	if (i < c->ntk || to != 1 || nums > 2 || nums == 0) {
		msg_warn(c, "bad range in %s line", kwname(c));
		return 0;
	}
	return 1;
}

/* KEYWORD [arg[, arg ...]]: comma-separated, '*' and '?' wildcards. */
static int
list_env_ok(struct ims_ctx *c, const struct tok *val)
{
	size_t	 i, item = 0;
	int	 after_comma = 0;

	for (i = 0; i <= val->n; i++) {
		char	 ch = i < val->n ? val->p[i] : ',';

		if (ch == ',') {
			if (item == 0)
				goto bad;
			item = 0;
			after_comma = 1;
		} else if (blank_ok(ch)) {
			if (item > 0 && !after_comma) {
				/* "A B" without a comma: blanks only after commas */
				size_t j = i;

				while (j < val->n && blank_ok(val->p[j]))
					j++;
				if (j < val->n && val->p[j] != ',')
					goto bad;
			}
		} else if (isalnum((unsigned char)ch) || ch == '*' ||
		    ch == '?' || ch == '_' || ch == '-' || ch == '.') {
			item++;
			after_comma = 0;
		} else
			goto bad;
	}
	return 1;
bad:
	msg_warn(c, "bad list in %s line", kwname(c));
	return 0;
}

/* Set (or with no value reset) one environment key. */
static void
env_set(struct ims_ctx *c)
{
	struct tok val = rest_after(c, 0);
	char	*key = upper_dup(c->tk[0].p, c->tk[0].n);
	char	*ent, *canon;
	size_t	 i, klen = strlen(key), n, k;
	int	 space = 0;

	for (i = 0; i < c->nenv; i++)
		if (strncmp(c->env[i], key, klen) == 0 &&
		    (c->env[i][klen] == ' ' || c->env[i][klen] == '\0'))
			break;
	if (val.n == 0) {
		/* a keyword with no arguments resets it to the default */
		if (i < c->nenv) {
			free(c->env[i]);
			memmove(&c->env[i], &c->env[i + 1],
			    (c->nenv - i - 1) * sizeof(char *));
			c->nenv--;
		}
		free(key);
		return;
	}
	/* "KEY value" with blank runs folded to one space */
	canon = xmalloc(klen + 1 + val.n + 1);
	memcpy(canon, key, klen);
	n = klen;
	canon[n++] = ' ';
	for (k = 0; k < val.n; k++) {
		if (blank_ok(val.p[k])) {
			space = 1;
			continue;
		}
		if (space)
			canon[n++] = ' ';
		space = 0;
		canon[n++] = val.p[k];
	}
	ent = rec_strndup(canon, n);
	free(canon);
	free(key);
	if (i < c->nenv) {
		free(c->env[i]);
		c->env[i] = ent;
	} else if (c->nenv < ENV_MAX)
		c->env[c->nenv++] = ent;
	else {
		msg_warn(c, "more than %d environment keywords, ignored",
		    ENV_MAX);
		free(ent);
	}
}

static void
line_env(struct ims_ctx *c, int kind)
{
	struct tok val = rest_after(c, 0);

	if (val.n == 0)
		kind = ENV_ANY;		/* no arguments: reset */
	switch (kind) {
	case ENV_TIME:
		(void)time_env_ok(c, 1);
		break;
	case ENV_RANGE:
		(void)range_env_ok(c, 1);
		break;
	case ENV_LIST:
		(void)list_env_ok(c, &val);
		break;
	default:
		break;
	}
	env_set(c);
}

static void
line_request(struct ims_ctx *c)
{
	Vmingest__ImsMessage *m = c->m;
	Vmingest__ImsRequest *r;
	struct tok kw, sub, fmt, subfmt;
	char	 q[QUOTE_MAX * 4 + 1];
	size_t	 i;
	int	 ok;

	ok = colon_pair(&c->tk[0], &kw, &sub);
	if (!word_in(&kw, req_keywords)) {
		msg_warn(c, "unknown keyword \"%s\"",
		    quote(q, sizeof(q), c->tk[0].p, c->tk[0].n));
		return;
	}
	if (tok_is(&kw, "HELP"))
		m->help = 1;
	if (m->n_requests >= c->l->ims_requests) {
		if (!c->req_full++)
			msg_warn(c, "more than %zu request lines "
			    "(ims_requests), rest not described",
			    c->l->ims_requests);
		return;
	}
	r = xmalloc(sizeof(*r));
	vmingest__ims_request__init(r);
	rec_push(&m->requests, &m->n_requests, r);
	r->keyword = upper_dup(kw.p, kw.n);
	if (!ok)
		msg_warn(c, "bad subtype in request line \"%s\"",
		    quote(q, sizeof(q), c->tk[0].p, c->tk[0].n));
	else if (sub.n > 0)
		r->subtype = upper_dup(sub.p, sub.n);
	if (c->ntk >= 2) {
		if (!colon_pair(&c->tk[1], &fmt, &subfmt))
			msg_warn(c, "bad format \"%s\" in request line",
			    quote(q, sizeof(q), c->tk[1].p, c->tk[1].n));
		else {
			r->format = upper_dup(fmt.p, fmt.n);
			if (subfmt.n > 0)
				r->sub_format = upper_dup(subfmt.p, subfmt.n);
		}
	}
	if (c->ntk > 2)
		msg_warn(c, "extra fields in request line");
	for (i = 0; i < c->nenv; i++)
		rec_push(&r->environment, &r->n_environment,
		    rec_strdup(c->env[i]));
}

/* ---- data sections ---- */

static const char *const data_types[] = {
	"LOG", "ERROR_LOG", "FTP_LOG", "WAVEFORM", "NETWORK", "STATION",
	"CHANNEL", "BEAM", "RESPONSE", "OUTAGE", "ARRIVAL", "ORIGIN",
	"EVENT", "BULLETIN", "COMMENT", "COMM_STATUS", "STA_STATUS",
	"CHAN_STATUS", "AUTH_STATUS", "DETECTION", "SLSD", "EXECSUM",
	"WAVE_MISSION", "WAVE_QUALITY", "HELP", "NETWORK_STATUS",
	"SAMPLEPHD", "BLANKPHD", "DETBKPHD", "GASBKPHD", "CALIBPHD",
	"QCPHD", "SPIKEPHD", "REGENPHD", "RMSSOH", "MET", "ALERT_FLOW",
	"ALERT_SYSTEM", "ALERT_TEMP", "ALERT_UPS", "RLR", "ARR", "RRR",
	"RNPS", "SSREB", "ARMR", "FPEB", "SPHDP", "SPHDF",
	NULL
};

static void
line_data_type(struct ims_ctx *c)
{
	Vmingest__ImsMessage *m = c->m;
	Vmingest__ImsSection *s;
	struct tok ty, sub, fmt, subfmt;
	char	 q[QUOTE_MAX * 4 + 1];
	int	 ok;

	end_section(c, c->line_off);
	c->in_section = 1;
	if (c->ntk >= 2) {
		(void)colon_pair(&c->tk[1], &ty, &sub);
		c->log_section = tok_is(&ty, "LOG") || tok_is(&ty, "ERROR_LOG");
	}
	c->t0 = c->t1 = -1;
	c->transmit = 0;
	c->sta_full = 0;
	if (c->reqlike)
		msg_warn(c, "DATA_TYPE in a %s message", m->msg_type);
	if (c->ntk < 2) {
		msg_warn(c, "DATA_TYPE without a type");
		return;
	}
	if (m->n_sections >= c->l->ims_sections) {
		if (!c->sec_full++)
			msg_warn(c, "more than %zu sections (ims_sections), "
			    "rest not described", c->l->ims_sections);
		return;
	}
	s = xmalloc(sizeof(*s));
	vmingest__ims_section__init(s);
	rec_push(&m->sections, &m->n_sections, s);
	c->sec = s;
	s->offset = c->line_off;
	s->part_path = rec_strdup(c->path);
	ok = colon_pair(&c->tk[1], &ty, &sub);
	s->data_type = upper_dup(ty.p, ty.n);
	if (!ok)
		msg_warn(c, "bad DATA_TYPE \"%s\"",
		    quote(q, sizeof(q), c->tk[1].p, c->tk[1].n));
	else if (sub.n > 0)
		s->subtype = upper_dup(sub.p, sub.n);
	if (!word_in(&ty, data_types))
		msg_warn(c, "unknown DATA_TYPE \"%s\"",
		    quote(q, sizeof(q), ty.p, ty.n));
	if (c->ntk >= 3) {
		if (!colon_pair(&c->tk[2], &fmt, &subfmt))
			msg_warn(c, "bad format \"%s\" in DATA_TYPE line",
			    quote(q, sizeof(q), c->tk[2].p, c->tk[2].n));
		else {
			s->format = upper_dup(fmt.p, fmt.n);
			if (subfmt.n > 0)
				s->sub_format = upper_dup(subfmt.p, subfmt.n);
		}
	}
	if (c->ntk > 3)
		msg_warn(c, "extra fields in DATA_TYPE line");
	c->sta_seen = g_hash_table_new_full(g_str_hash, g_str_equal, g_free,
	    NULL);
	c->chan_seen = g_hash_table_new_full(g_str_hash, g_str_equal, g_free,
	    NULL);
}

/* Add a code to stations or channels once (set in seen). */
static void
add_code(struct ims_ctx *c, GHashTable *seen, char ***arr, size_t *n,
    const char *p, size_t len)
{
	char	*code;

	while (len > 0 && blank_ok(*p)) {
		p++;
		len--;
	}
	while (len > 0 && blank_ok(p[len - 1]))
		len--;
	if (len == 0 || seen == NULL)
		return;
	code = rec_strndup(p, len);
	if (g_hash_table_contains(seen, code)) {
		free(code);
		return;
	}
	if (*n >= c->l->ims_stations) {
		if (!c->sta_full++)
			msg_warn(c, "more than %zu station or channel codes "
			    "(ims_stations), rest not described",
			    c->l->ims_stations);
		free(code);
		return;
	}
	g_hash_table_add(seen, g_strdup(code));
	rec_push(arr, n, code);
}

static void
widen(struct ims_ctx *c, double t0, double t1)
{
	if (c->t0 < 0 || t0 < c->t0)
		c->t0 = t0;
	if (c->t1 < 0 || t1 > c->t1)
		c->t1 = t1;
}

static double
field_num(const char *p, size_t n)
{
	char	 num[32], *end;
	double	 v;

	while (n > 0 && blank_ok(*p)) {
		p++;
		n--;
	}
	while (n > 0 && blank_ok(p[n - 1]))
		n--;
	if (n == 0 || n >= sizeof(num))
		return -1;
	memcpy(num, p, n);
	num[n] = '\0';
	v = strtod(num, &end);
	return *end == '\0' ? v : -1;
}

/*
 * WID2 (GSE2.1 table 7): date 6-15, time 17-28, station 30-34, channel
 * 36-38, samples 49-56, rate 58-68.  Lines that are not column-aligned
 * are read by tokens (date time station channel), without an end time.
 */
static void
line_wid2(struct ims_ctx *c)
{
	Vmingest__ImsSection *s = c->sec;
	const char *w = c->tk[0].p;
	size_t	 n = (size_t)(c->buf + c->blen - w);
	double	 t, samps, rate, end;

	if (n >= 38 && w[4] == ' ' && w[15] == ' ' && w[28] == ' ' &&
	    w[34] == ' ' && !blank_ok(w[5])) {
		add_code(c, c->sta_seen, &s->stations, &s->n_stations,
		    w + 29, 5);
		add_code(c, c->chan_seen, &s->channels, &s->n_channels,
		    w + 35, 3);
		if (parse_datetime(w + 5, 10, w + 16, 12, &t) == -1) {
			msg_warn(c, "bad WID2 date/time");
			return;
		}
		end = t;
		if (n >= 68) {
			samps = field_num(w + 48, 8);
			rate = field_num(w + 57, 11);
			if (samps >= 0 && rate > 0)
				end = t + samps / rate;
		}
		widen(c, t, end);
		return;
	}
	if (c->ntk < 5) {
		msg_warn(c, "short WID2 line");
		return;
	}
	add_code(c, c->sta_seen, &s->stations, &s->n_stations,
	    c->tk[3].p, c->tk[3].n);
	add_code(c, c->chan_seen, &s->channels, &s->n_channels,
	    c->tk[4].p, c->tk[4].n);
	if (parse_datetime(c->tk[1].p, c->tk[1].n, c->tk[2].p, c->tk[2].n,
	    &t) == -1) {
		msg_warn(c, "bad WID2 date/time");
		return;
	}
	widen(c, t, t);
}

/* "date time" at tokens i, i+1 of the current line. */
static int
tok_datetime(struct ims_ctx *c, size_t i, double *t)
{
	if (i + 1 >= c->ntk || parse_datetime(c->tk[i].p, c->tk[i].n,
	    c->tk[i + 1].p, c->tk[i + 1].n, t) == -1) {
		msg_warn(c, "bad date/time in PHD block");
		return -1;
	}
	return 0;
}

/*
 * PHD blocks (IMS2.0 radionuclide): #Header line 1 is "station detector
 * system geometry qualifier", line 4 the transmit time; #Collection line
 * 1 "start_date start_time stop_date stop_time volume"; #Acquisition
 * line 1 "start_date start_time real_time live_time".
 */
static void
line_phd(struct ims_ctx *c)
{
	Vmingest__ImsSection *s = c->sec;
	double	 t0, t1, real;

	c->phd_line++;
	switch (c->phd) {
	case PHD_HEADER:
		if (c->phd_line == 1 && c->ntk >= 1) {
			add_code(c, c->sta_seen, &s->stations, &s->n_stations,
			    c->tk[0].p, c->tk[0].n);
			if (c->ntk >= 2)
				add_code(c, c->chan_seen, &s->channels,
				    &s->n_channels, c->tk[1].p, c->tk[1].n);
		} else if (c->phd_line == 4 && tok_datetime(c, 0, &t0) == 0)
			c->transmit = (int64_t)t0;
		break;
	case PHD_COLLECTION:
		if (c->phd_line == 1 && tok_datetime(c, 0, &t0) == 0 &&
		    tok_datetime(c, 2, &t1) == 0)
			widen(c, t0, t1 > t0 ? t1 : t0);
		break;
	case PHD_ACQUISITION:
		if (c->phd_line == 1 && tok_datetime(c, 0, &t0) == 0) {
			real = c->ntk >= 3 ?
			    field_num(c->tk[2].p, c->tk[2].n) : -1;
			widen(c, t0, real > 0 ? t0 + real : t0);
		}
		break;
	default:
		break;
	}
}

static void
line_data(struct ims_ctx *c)
{
	const struct tok *k = &c->tk[0];

	if (c->sec == NULL)
		return;			/* section not described (limit) */
	if (c->in_dat2 && !tok_is(k, "CHK2") && !tok_is(k, "WID2"))
		return;
	if (tok_is(k, "WID2")) {
		c->in_dat2 = 0;
		line_wid2(c);
	} else if (tok_is(k, "DAT2"))
		c->in_dat2 = 1;
	else if (tok_is(k, "CHK2"))
		c->in_dat2 = 0;
	else if (k->p[0] == '#') {
		c->phd_line = 0;
		if (tok_is(k, "#Header"))
			c->phd = PHD_HEADER;
		else if (tok_is(k, "#Collection"))
			c->phd = PHD_COLLECTION;
		else if (tok_is(k, "#Acquisition"))
			c->phd = PHD_ACQUISITION;
		else
			c->phd = PHD_NONE;
	} else if (c->phd != PHD_NONE)
		line_phd(c);
}

/* ---- dispatch ---- */

static void
line_body(struct ims_ctx *c)
{
	const struct tok *k = &c->tk[0];
	static const char *const names[] = { "", "MSG_TYPE", "MSG_ID",
	    "REF_ID", "PROD_ID" };
	char	 q[QUOTE_MAX * 4 + 1];
	int	 rank, kind;

	if ((rank = envelope_rank(k)) != 0) {
		if (c->body)
			msg_warn(c, "%s after the body started", names[rank]);
		else if (rank < c->rank)
			msg_warn(c, "%s line out of order", names[rank]);
		if (rank > c->rank)
			c->rank = rank;
		if (rank == 1)
			line_msg_type(c);
		else if (rank == 2)
			line_msg_id(c);
		else if (rank == 3)
			line_ref_id(c);
		else
			line_prod_id(c);
		return;
	}
	if (tok_is(k, "E-MAIL")) {
		line_return(c, VMINGEST__RETURN_KIND__EMAIL);
		return;
	}
	if (tok_is(k, "FTP")) {
		line_return(c, VMINGEST__RETURN_KIND__FTP);
		return;
	}
	if (tok_is(k, "TIME_STAMP"))
		return;
	c->body = 1;
	if (tok_is(k, "DATA_TYPE")) {
		line_data_type(c);
		return;
	}
	if (c->reqlike) {
		if ((kind = env_kind(k)) >= 0)
			line_env(c, kind);
		else
			line_request(c);
		return;
	}
	msg_warn(c, "unknown keyword \"%s\"", quote(q, sizeof(q), k->p, k->n));
}

static void
line_inside(struct ims_ctx *c)
{
	const struct tok *k = &c->tk[0];

	if (c->line_over)
		msg_warn(c, "line longer than %zu bytes (ims_line_bytes), cut",
		    c->cap);
	/*
	 * A LOG or ERROR_LOG section may quote the request it answers,
	 * BEGIN to STOP (GSE2.1 example 4.0-3): that is data, nested.
	 */
	if (c->echo > 0) {
		if (tok_is(k, "STOP"))
			c->echo--;
		else if (tok_is(k, "BEGIN"))
			c->echo++;
		return;
	}
	if (c->log_section && tok_is(k, "BEGIN") && c->ntk == 2 &&
	    version_ok(&c->tk[1])) {
		c->echo = 1;
		return;
	}
	if (tok_is(k, "STOP")) {
		if (c->ntk > 1 && !c->in_section)
			msg_warn(c, "extra fields after STOP");
		end_message(c, c->line_off, 1);
		return;
	}
	if (tok_is(k, "BEGIN") && (!c->in_section ||
	    (c->ntk == 2 && version_ok(&c->tk[1])))) {
		end_message(c, c->line_off, 0);
		begin_message(c, c->ntk >= 2 ? &c->tk[1] : NULL);
		if (c->m != NULL && (c->ntk < 2 || !version_ok(&c->tk[1])))
			msg_warn(c, "bad BEGIN version");
		return;
	}
	if (k->p[0] == '%')
		return;			/* comment (GSE2.1) */
	if (c->in_section) {
		if (tok_is(k, "DATA_TYPE"))
			line_data_type(c);
		else
			line_data(c);
		return;
	}
	line_body(c);
}

/* Outside a message: only BEGIN matters (and a lone HELP, see below). */
static void
line_outside(struct ims_ctx *c, int *first, int *help_line)
{
	const struct tok *k = &c->tk[0];

	if (*first) {
		*first = 0;
		*help_line = c->ntk == 1 && tok_is(k, "HELP");
	}
	if (!tok_is(k, "BEGIN"))
		return;
	if (c->ntk >= 2 && version_ok(&c->tk[1])) {
		begin_message(c, &c->tk[1]);
		if (c->m != NULL && c->ntk > 2)
			msg_warn(c, "extra fields after BEGIN");
		return;
	}
	/* "Begin forwarded message:" is prose; "BEGIN" + MSG_TYPE is IMS */
	if (next_is_msg_type(c)) {
		begin_message(c, c->ntk >= 2 ? &c->tk[1] : NULL);
		msg_warn(c, "bad BEGIN version");
	}
}

void
ims_parse_part(const struct limits *l, Vmingest__Record *rec,
    const char *part_path, const char *text, size_t len)
{
	struct ims_ctx c;
	size_t	 before = rec->n_ims;
	int	 first = 1, help_line = 0;

	if (text == NULL || len == 0 || l->ims_line_bytes == 0)
		return;
	memset(&c, 0, sizeof(c));
	c.l = l;
	c.rec = rec;
	c.path = part_path != NULL ? part_path : "";
	c.text = text;
	c.len = len;
	c.cap = l->ims_line_bytes;
	c.buf = xmalloc(c.cap + 1);
	c.t0 = c.t1 = -1;

	for (;;) {
		if (c.m == NULL && !first)
			while (skip_line(&c, "Bb", 1))
				continue;
		else if (c.m != NULL && c.in_section && c.phd == PHD_NONE)
			while (skip_line(&c, c.in_dat2 ? "SsBbDdWwCc" :
			    "SsBbDdWwCc#%", 0))
				continue;
		if (!next_line(&c, !c.in_section))
			break;
		split_line(&c);
		if (c.ntk == 0)
			continue;
		if (c.m == NULL)
			line_outside(&c, &first, &help_line);
		else
			line_inside(&c);
	}
	if (c.m != NULL) {
		c.line_no = c.phys_no;
		end_message(&c, len, 0);
	}

	/*
	 * A HELP request needs no envelope (CRP243 2.2): a part whose first
	 * line is HELP alone and that holds no IMS message is one.
	 */
	if (rec->n_ims == before && help_line && before < l->ims_messages) {
		begin_message(&c, NULL);
		c.m->help = 1;
		set_str(&c.m->msg_type, rec_strdup("REQUEST"));
		c.m->complete = 1;
		c.line_no = 1;
		msg_warn(&c, "HELP without a message envelope");
		c.m = NULL;
	}
	env_clear(&c);
	sets_free(&c);
	free(c.buf);
}

/* ---- after all parts ---- */

static int
local_part_is(const char *addr, const char *lp)
{
	size_t	 n = strlen(lp);

	return addr != NULL && strncasecmp(addr, lp, n) == 0 &&
	    (addr[n] == '@' || addr[n] == '\0');
}

/* Delivery reports and mail from MAILER-DAEMON / postmaster. */
static int
bounce_ok(const Vmingest__Record *rec)
{
	size_t	 i, k;

	/* the null reverse-path; normalize strips the angle brackets */
	for (i = 0; i < rec->n_headers; i++) {
		const Vmingest__Header *h = rec->headers[i];
		const uint8_t *v = h->value.data;
		size_t	 n = h->value.len;

		if (h->name == NULL || strcasecmp(h->name, "Return-Path") != 0)
			continue;
		for (k = 0; k < n && (v[k] == ' ' || v[k] == '\t'); k++)
			continue;
		if (n - k >= 2 && v[k] == '<' && v[k + 1] == '>')
			return 1;
	}
	for (i = 0; i < rec->n_from; i++)
		if (local_part_is(rec->from[i]->address, "mailer-daemon") ||
		    local_part_is(rec->from[i]->address, "postmaster"))
			return 1;
	for (i = 0; i < rec->n_parts; i++) {
		const char *ct = rec->parts[i]->content_type;

		if (ct != NULL && (strcasecmp(ct, "multipart/report") == 0 ||
		    strcasecmp(ct, "message/delivery-status") == 0))
			return 1;
	}
	return 0;
}

/*
 * signer[i] = index of the innermost multipart/signed whose signed
 * content (its first child's subtree, in the pre-order parts list) holds
 * part i, or -1.  Cost: parts x mime_depth at most.
 */
static long *
signed_map(const Vmingest__Record *rec)
{
	long	*signer = xmalloc(rec->n_parts * sizeof(long));
	size_t	 i, j;

	for (i = 0; i < rec->n_parts; i++)
		signer[i] = -1;
	for (i = 0; i + 1 < rec->n_parts; i++) {
		const Vmingest__Part *p = rec->parts[i];
		uint32_t d = p->depth;

		if (p->content_type == NULL ||
		    strcasecmp(p->content_type, "multipart/signed") != 0 ||
		    rec->parts[i + 1]->depth != d + 1)
			continue;
		for (j = i + 1; j < rec->n_parts; j++) {
			if (j > i + 1 && rec->parts[j]->depth <= d + 1)
				break;
			signer[j] = (long)i;
		}
	}
	return signer;
}

static void
finish_smime(Vmingest__Record *rec)
{
	long	*signer;
	size_t	 i, j;

	if (rec->n_parts == 0)
		return;
	signer = signed_map(rec);
	for (i = 0; i < rec->n_ims; i++) {
		Vmingest__ImsMessage *m = rec->ims[i];
		const Vmingest__Part *s = NULL;

		for (j = 0; j < rec->n_parts; j++)
			if (rec->parts[j]->path != NULL && m->part_path != NULL &&
			    strcmp(rec->parts[j]->path, m->part_path) == 0)
				break;
		if (j < rec->n_parts) {
			if (signer[j] >= 0)
				s = rec->parts[signer[j]];
		} else if (rec->parts[0]->content_type != NULL &&
		    strcasecmp(rec->parts[0]->content_type,
		    "multipart/signed") == 0)
			s = rec->parts[0];	/* part unknown: mail level */
		if (s == NULL)
			continue;
		m->smime_signed = 1;
		set_str(&m->smime_protocol, rec_strdup(s->protocol));
	}
	free(signer);
}

static void
subject_help(const struct limits *l, Vmingest__Record *rec)
{
	Vmingest__ImsMessage *m;
	const char *s = rec->subject;
	size_t	 n;

	if (s == NULL || rec->n_ims > 0 || l->ims_messages == 0)
		return;
	while (blank_ok(*s))
		s++;
	n = strlen(s);
	while (n > 0 && blank_ok(s[n - 1]))
		n--;
	if (n != 4 || strncasecmp(s, "HELP", 4) != 0)
		return;
	m = xmalloc(sizeof(*m));
	vmingest__ims_message__init(m);
	m->msg_type = rec_strdup("REQUEST");
	m->help = 1;
	m->complete = 1;
	rec_push(&m->warnings, &m->n_warnings,
	    rec_strdup("HELP in the Subject, no message envelope"));
	rec_push(&rec->ims, &rec->n_ims, m);
}

void
ims_finish(const struct limits *l, Vmingest__Record *rec)
{
	size_t	 i, j;
	int	 bounce;
	char	 line[160], q[QUOTE_MAX * 4 + 1];

	subject_help(l, rec);
	bounce = bounce_ok(rec);
	for (i = 0; i < rec->n_ims; i++) {
		Vmingest__ImsMessage *m = rec->ims[i];

		m->index = (uint32_t)(i + 1);
		m->count = (uint32_t)rec->n_ims;
		m->bounce = bounce;
		if (m->msg_id == NULL || m->msg_id[0] == '\0')
			continue;
		/* several messages in one mail must have different MSG_IDs */
		for (j = 0; j < i; j++)
			if (rec->ims[j]->msg_id != NULL &&
			    strcmp(rec->ims[j]->msg_id, m->msg_id) == 0)
				break;
		if (j < i && m->n_warnings < l->warnings) {
			snprintf(line, sizeof(line), "MSG_ID \"%s\" repeats "
			    "message %zu of this mail", quote(q, sizeof(q),
			    m->msg_id, strlen(m->msg_id)), j + 1);
			rec_push(&m->warnings, &m->n_warnings,
			    rec_strdup(line));
		}
	}
	finish_smime(rec);
}

/* Append s lower-cased, anything outside [a-z0-9_-] as '_'. */
static int
topic_seg(char *buf, size_t bufsz, size_t *at, const char *s)
{
	for (; *s != '\0'; s++) {
		unsigned char ch = (unsigned char)tolower((unsigned char)*s);

		if (*at + 1 >= bufsz)
			return -1;
		buf[(*at)++] = (isalnum(ch) && ch < 0x80) || ch == '_' ||
		    ch == '-' ? (char)ch : '_';
	}
	buf[*at] = '\0';
	return 0;
}

int
ims_topic(const Vmingest__Record *rec, char *buf, size_t bufsz)
{
	const Vmingest__ImsMessage *m;
	const char *type, *what = "none";
	size_t	 at = 0;

	if (bufsz == 0)
		return -1;
	buf[0] = '\0';
	if (rec->n_ims == 0)
		return snprintf(buf, bufsz, "mail.other") < (int)bufsz ? 0 : -1;
	m = rec->ims[0];
	type = m->msg_type != NULL && m->msg_type[0] != '\0' ?
	    m->msg_type : "unknown";
	if (m->n_sections > 0 && m->sections[0]->data_type[0] != '\0')
		what = m->sections[0]->data_type;
	else if (m->n_requests > 0 && m->requests[0]->keyword[0] != '\0')
		what = m->requests[0]->keyword;
	else if (m->help)
		what = "help";
	if (snprintf(buf, bufsz, "ims.") >= (int)bufsz)
		return -1;
	at = 4;
	if (topic_seg(buf, bufsz, &at, type) == -1 ||
	    at + 1 >= bufsz) {
		buf[0] = '\0';
		return -1;
	}
	buf[at++] = '.';
	buf[at] = '\0';
	if (topic_seg(buf, bufsz, &at, what) == -1) {
		buf[0] = '\0';
		return -1;
	}
	return 0;
}
