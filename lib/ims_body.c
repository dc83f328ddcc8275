/*
 * ims_body.c - the bodies of IMS messages: request and subscription
 * environment and request lines, data sections (DATA_TYPE, WID2, the PHD
 * #Header/#Collection/#Acquisition blocks), and the date/time grammar.
 *
 *   ims_line_env        an environment line: check it, set or reset it
 *   ims_line_request    a request line: one ImsRequest with the
 *                       environment in force
 *   ims_line_data_type  open a section (closing the one before)
 *   ims_line_data       one line inside a section
 *   ims_end_section     close it: length, time range
 *   ims_parse_datetime  "yyyy[/mm[/dd]] [hh[:mm[:ss[.sss]]]]" to seconds
 *
 * Error policy as in ims.c: deviations are warnings (ims_warn), limits
 * (ims_requests, ims_sections, ims_stations) stop the description with a
 * warning, nothing fails.
 *
 * SECURITY: every line is hostile; numbers are parsed with bounded digit
 * counts, codes are de-duplicated with a hash set per section so the work
 * stays linear, and no value read from the text sizes an allocation
 * beyond the line buffer.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <glib.h>

#include "ims_int.h"
#include "log.h"
#include "record.h"

/* ---- dates and times ---- */

int
ims_parse_uint(const char *p, size_t n, size_t maxdig, long *out)
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
int
ims_parse_datetime(const char *d, size_t dn, const char *t, size_t tn,
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
		if (k >= 3 || ims_parse_uint(d + start, i - start, k ? 2 : 4,
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
			if (k >= 3 || ims_parse_uint(t + start, i - start, 2,
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

/* Environment keyword: its kind, or -1.  Any "*_LIST" is a list. */
int
ims_env_kind(const struct tok *t)
{
	size_t	 i;

	for (i = 0; env_keywords[i].name != NULL; i++)
		if (tok_is(t, env_keywords[i].name))
			return (int)env_keywords[i].kind;
	if (t->n > 5 && strncasecmp(t->p + t->n - 5, "_LIST", 5) == 0)
		return ENV_LIST;
	return -1;
}

void
ims_env_clear(struct ims_ctx *c)
{
	while (c->nenv > 0)
		free(c->env[--c->nenv]);
}

void
ims_sets_free(struct ims_ctx *c)
{
	if (c->sta_seen != NULL)
		g_hash_table_destroy(c->sta_seen);
	if (c->chan_seen != NULL)
		g_hash_table_destroy(c->chan_seen);
	c->sta_seen = c->chan_seen = NULL;
}

void
ims_end_section(struct ims_ctx *c, size_t end_off)
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
	ims_sets_free(c);
	c->sec = NULL;
	c->in_section = 0;
	c->log_section = 0;
	c->echo = 0;
	c->in_dat2 = 0;
	c->phd = PHD_NONE;
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
	char	 q[QUOTE_BUF];

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
			if (ims_parse_datetime(d->p, d->n, tm ? tm->p : NULL,
			    tm ? tm->n : 0, &t) == -1) {
				ims_warn(c, "bad date/time \"%s\" in TIME",
				    ims_quote(q, sizeof(q), d->p, d->n));
				return 0;
			}
			i += tm != NULL ? 2 : 1;
			n++;
		}
		if (n > 1) {
			ims_warn(c, "bad TIME range: more than one date "
			    "on a side of TO");
			return 0;
		}
		if (side == 0) {
			if (i >= c->ntk) {
				ims_warn(c, "bad TIME range: no TO");
				return 0;
			}
			i++;		/* TO */
		}
	}
	if (i < c->ntk) {
		ims_warn(c, "bad TIME range: more than one TO");
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
		ims_warn(c, "bad range in %s line", kwname(c));
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
	ims_warn(c, "bad list in %s line", kwname(c));
	return 0;
}

/* Set (or with no value reset) one environment key. */
static void
env_set(struct ims_ctx *c)
{
	struct tok val = ims_rest_after(c, 0);
	char	*key = ims_upper_dup(c->tk[0].p, c->tk[0].n);
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
	canon = ims_xmalloc(klen + 1 + val.n + 1);
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
		ims_warn(c, "more than %d environment keywords, ignored",
		    ENV_MAX);
		free(ent);
	}
}

void
ims_line_env(struct ims_ctx *c, int kind)
{
	struct tok val = ims_rest_after(c, 0);

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

void
ims_line_request(struct ims_ctx *c)
{
	Vmingest__ImsMessage *m = c->m;
	Vmingest__ImsRequest *r;
	struct tok kw, sub, fmt, subfmt;
	char	 q[QUOTE_BUF];
	size_t	 i;
	int	 ok;

	ok = ims_colon_pair(&c->tk[0], &kw, &sub);
	if (!ims_word_in(&kw, req_keywords)) {
		ims_warn(c, "unknown keyword \"%s\"",
		    ims_quote(q, sizeof(q), c->tk[0].p, c->tk[0].n));
		return;
	}
	if (tok_is(&kw, "HELP"))
		m->help = 1;
	if (m->n_requests >= c->l->ims_requests) {
		if (!c->req_full++)
			ims_warn(c, "more than %zu request lines "
			    "(ims_requests), rest not described",
			    c->l->ims_requests);
		return;
	}
	r = ims_xmalloc(sizeof(*r));
	vmingest__ims_request__init(r);
	rec_push(&m->requests, &m->n_requests, r);
	r->keyword = ims_upper_dup(kw.p, kw.n);
	if (!ok)
		ims_warn(c, "bad subtype in request line \"%s\"",
		    ims_quote(q, sizeof(q), c->tk[0].p, c->tk[0].n));
	else if (sub.n > 0)
		r->subtype = ims_upper_dup(sub.p, sub.n);
	if (c->ntk >= 2) {
		if (!ims_colon_pair(&c->tk[1], &fmt, &subfmt))
			ims_warn(c, "bad format \"%s\" in request line",
			    ims_quote(q, sizeof(q), c->tk[1].p, c->tk[1].n));
		else {
			r->format = ims_upper_dup(fmt.p, fmt.n);
			if (subfmt.n > 0)
				r->sub_format = ims_upper_dup(subfmt.p, subfmt.n);
		}
	}
	if (c->ntk > 2)
		ims_warn(c, "extra fields in request line");
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

void
ims_line_data_type(struct ims_ctx *c)
{
	Vmingest__ImsMessage *m = c->m;
	Vmingest__ImsSection *s;
	struct tok ty, sub, fmt, subfmt;
	char	 q[QUOTE_BUF];
	int	 ok;

	ims_end_section(c, c->line_off);
	c->in_section = 1;
	if (c->ntk >= 2) {
		(void)ims_colon_pair(&c->tk[1], &ty, &sub);
		c->log_section = tok_is(&ty, "LOG") || tok_is(&ty, "ERROR_LOG");
	}
	c->t0 = c->t1 = -1;
	c->transmit = 0;
	c->sta_full = 0;
	if (c->reqlike)
		ims_warn(c, "DATA_TYPE in a %s message", m->msg_type);
	if (c->ntk < 2) {
		ims_warn(c, "DATA_TYPE without a type");
		return;
	}
	if (m->n_sections >= c->l->ims_sections) {
		if (!c->sec_full++)
			ims_warn(c, "more than %zu sections (ims_sections), "
			    "rest not described", c->l->ims_sections);
		return;
	}
	s = ims_xmalloc(sizeof(*s));
	vmingest__ims_section__init(s);
	rec_push(&m->sections, &m->n_sections, s);
	c->sec = s;
	s->offset = c->line_off;
	s->part_path = rec_strdup(c->path);
	ok = ims_colon_pair(&c->tk[1], &ty, &sub);
	s->data_type = ims_upper_dup(ty.p, ty.n);
	if (!ok)
		ims_warn(c, "bad DATA_TYPE \"%s\"",
		    ims_quote(q, sizeof(q), c->tk[1].p, c->tk[1].n));
	else if (sub.n > 0)
		s->subtype = ims_upper_dup(sub.p, sub.n);
	if (!ims_word_in(&ty, data_types))
		ims_warn(c, "unknown DATA_TYPE \"%s\"",
		    ims_quote(q, sizeof(q), ty.p, ty.n));
	if (c->ntk >= 3) {
		if (!ims_colon_pair(&c->tk[2], &fmt, &subfmt))
			ims_warn(c, "bad format \"%s\" in DATA_TYPE line",
			    ims_quote(q, sizeof(q), c->tk[2].p, c->tk[2].n));
		else {
			s->format = ims_upper_dup(fmt.p, fmt.n);
			if (subfmt.n > 0)
				s->sub_format = ims_upper_dup(subfmt.p, subfmt.n);
		}
	}
	if (c->ntk > 3)
		ims_warn(c, "extra fields in DATA_TYPE line");
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
			ims_warn(c, "more than %zu station or channel codes "
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
		if (ims_parse_datetime(w + 5, 10, w + 16, 12, &t) == -1) {
			ims_warn(c, "bad WID2 date/time");
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
		ims_warn(c, "short WID2 line");
		return;
	}
	add_code(c, c->sta_seen, &s->stations, &s->n_stations,
	    c->tk[3].p, c->tk[3].n);
	add_code(c, c->chan_seen, &s->channels, &s->n_channels,
	    c->tk[4].p, c->tk[4].n);
	if (ims_parse_datetime(c->tk[1].p, c->tk[1].n, c->tk[2].p, c->tk[2].n,
	    &t) == -1) {
		ims_warn(c, "bad WID2 date/time");
		return;
	}
	widen(c, t, t);
}

/* "date time" at tokens i, i+1 of the current line. */
static int
tok_datetime(struct ims_ctx *c, size_t i, double *t)
{
	if (i + 1 >= c->ntk || ims_parse_datetime(c->tk[i].p, c->tk[i].n,
	    c->tk[i + 1].p, c->tk[i + 1].n, t) == -1) {
		ims_warn(c, "bad date/time in PHD block");
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

void
ims_line_data(struct ims_ctx *c)
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

