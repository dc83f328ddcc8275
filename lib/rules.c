/*
 * rules.c - the Sieve rule processor: compile once, evaluate per message.
 *
 *   rules_limits_default  the [rules] defaults
 *   rules_compile         read a script file and compile it
 *   rules_compile_buf     compile a script held in memory
 *   rules_eval            run a compiled script on one record + raw bytes
 *   rules_eval_trace      the same, reporting every test's result
 *   rules_name            the script name given at compile time
 *   rules_free            release a compiled script
 *
 * Language: RFC 5228 core with fileinto, envelope, copy (RFC 3894),
 * regex (draft), variables (RFC 5229), body (RFC 5173), relational (RFC
 * 5231), comparator-i;ascii-numeric (RFC 4790) and vnd.vmingest (ims test,
 * quarantine, label); see docs/RULES.md.  Compilation is in
 * sieve_lex.c/sieve_parse.c; header access in sieve_msg.c; matching in
 * sieve_match.c; this file walks the tree.
 *
 * Header values are read from the RAW message (the record may not carry
 * them); the record supplies the IMS content, the envelope (return_path,
 * delivered_to; the raw Return-Path / Delivered-To / X-Original-To
 * headers when those are empty) and the size (raw_size, else rawlen).
 *
 * ERRORS: compile errors are "name:line:column: text".  A runtime error
 * (a limit, an invalid topic built from variables, a regex that fails)
 * ends the run: out->error says why and line:column, keep is forced and
 * every other action is dropped (RFC 5228 2.10.6).  Never fatal.
 *
 * THREADS: a compiled script is read-only during eval; all per-message
 * state lives on the caller's stack and heap (struct sv_ctx).
 *
 * SECURITY: the message is hostile: every value matched is bounded by
 * match_bytes, the actions per message by actions, expanded strings by
 * string_bytes; recursion depth is bounded by the nesting limit checked
 * at compile time.  The script is operator input with its own limits.
 */
#include <gmime/gmime.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "record.h"
#include "rules.h"
#include "sieve.h"

int	sieve_ims_field(const char *s, size_t len);	/* sieve_parse.c */

#define RULES_REGEX_SUBJECT_DEFAULT	(8u << 10)

void
rules_limits_default(struct rules_limits *l)
{
	l->script_bytes = 1 << 20;
	l->nesting = 32;
	l->actions = 64;
	l->string_bytes = 64 << 10;
	l->regex_bytes = 1024;
	l->match_bytes = 1 << 20;
	l->regex_subject_bytes = RULES_REGEX_SUBJECT_DEFAULT;
}

static pthread_once_t gmime_once = PTHREAD_ONCE_INIT;

static void
gmime_start(void)
{
	g_mime_init();
}

struct rules *
rules_compile_buf(const char *name, const char *src, size_t len,
    const struct rules_limits *lim, char *err, size_t errlen)
{
	struct rules_limits dl;
	struct sv_toks ts;
	struct rules *r;

	if (errlen > 0)
		err[0] = '\0';
	pthread_once(&gmime_once, gmime_start);
	if (lim == NULL) {
		rules_limits_default(&dl);
		lim = &dl;
	}
	if ((r = calloc(1, sizeof(*r))) == NULL ||
	    (r->name = strdup(name ? name : "script")) == NULL) {
		free(r);
		snprintf(err, errlen, "%s:1:1: out of memory", name);
		return NULL;
	}
	r->lim = *lim;
	if (sieve_lex(r->name, src, len, lim, &ts, err, errlen) == -1) {
		rules_free(r);
		return NULL;
	}
	if (sieve_parse(r, &ts, err, errlen) == -1) {
		sieve_toks_free(&ts);
		rules_free(r);
		return NULL;
	}
	sieve_toks_free(&ts);
	return r;
}

struct rules *
rules_compile(const char *path, const struct rules_limits *lim, char *err,
    size_t errlen)
{
	struct rules_limits dl;
	struct rules *r;
	struct stat st;
	char	*buf;
	ssize_t	 n;
	size_t	 got = 0;
	int	 fd;

	if (lim == NULL) {
		rules_limits_default(&dl);
		lim = &dl;
	}
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		snprintf(err, errlen, "%s:0:0: cannot open: %s", path,
		    strerror(errno));
		return NULL;
	}
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "%s:0:0: not a regular file", path);
		close(fd);
		return NULL;
	}
	if ((size_t)st.st_size > lim->script_bytes) {
		snprintf(err, errlen, "%s:1:1: script is %lld bytes, over "
		    "script_bytes limit %zu", path, (long long)st.st_size,
		    lim->script_bytes);
		close(fd);
		return NULL;
	}
	if ((buf = malloc((size_t)st.st_size + 1)) == NULL) {
		snprintf(err, errlen, "%s:0:0: out of memory", path);
		close(fd);
		return NULL;
	}
	while (got < (size_t)st.st_size &&
	    (n = read(fd, buf + got, (size_t)st.st_size - got)) != 0) {
		if (n == -1) {
			if (errno == EINTR)
				continue;
			snprintf(err, errlen, "%s:0:0: read: %s", path,
			    strerror(errno));
			free(buf);
			close(fd);
			return NULL;
		}
		got += (size_t)n;
	}
	close(fd);
	r = rules_compile_buf(path, buf, got, lim, err, errlen);
	free(buf);
	return r;
}

void
rules_free(struct rules *r)
{
	size_t	 i;

	if (r == NULL)
		return;
	sieve_block_free(&r->top);
	for (i = 0; i < r->nvars; i++)
		free(r->vars[i]);
	free(r->vars);
	free(r->name);
	free(r);
}

const char *
rules_name(const struct rules *r)
{
	return r->name;
}

/* ---- evaluation state ---- */

struct arena_blk {
	struct arena_blk *next;
	size_t	 used, cap;
	char	 data[];
};

struct sv_var {
	char	*s;
	size_t	 len;
};

struct sv_ctx {
	const struct rules *r;
	const Vmingest__Record *rec;
	struct sv_msg msg;
	Vmingest__RuleResult *out;
	struct sv_var *vars;
	struct sv_var mv[SV_NMATCH];
	size_t	 nmv;
	struct arena_blk *arena;
	size_t	 nactions;
	int	 implicit_keep, explicit_keep, discarded;
	int	 error;
	char	 errbuf[512];
	rules_trace_fn trace;
	void	*targ;
};

#define EV_OK	0
#define EV_STOP	1
#define EV_ERR	(-1)

static void __attribute__((format(printf, 4, 5)))
rt_error(struct sv_ctx *cx, unsigned line, unsigned col, const char *fmt, ...)
{
	va_list	 ap;
	int	 n;

	if (cx->error)
		return;
	cx->error = 1;
	n = snprintf(cx->errbuf, sizeof(cx->errbuf), "%s:%u:%u: ", cx->r->name,
	    line, col);
	if (n < 0 || (size_t)n >= sizeof(cx->errbuf))
		return;
	va_start(ap, fmt);
	vsnprintf(cx->errbuf + n, sizeof(cx->errbuf) - n, fmt, ap);
	va_end(ap);
}

static void *
arena_alloc(struct sv_ctx *cx, size_t n)
{
	struct arena_blk *b = cx->arena;
	void	*p;

	n = (n + 15) & ~(size_t)15;
	if (b == NULL || b->cap - b->used < n) {
		size_t	 cap = n > 8192 ? n : 8192;

		if ((b = malloc(sizeof(*b) + cap)) == NULL)
			return NULL;
		b->next = cx->arena;
		b->used = 0;
		b->cap = cap;
		cx->arena = b;
	}
	p = b->data + b->used;
	b->used += n;
	return p;
}

/* Expand variable references; literal strings are returned as they are. */
static int
expand(struct sv_ctx *cx, const struct sv_str *s, unsigned line, unsigned col,
    const char **pp, size_t *lenp)
{
	size_t	 i, total = 0, off = 0;
	char	*b;

	if (s->segs == NULL) {
		*pp = s->s;
		*lenp = s->len;
		return 0;
	}
	for (i = 0; i < s->nsegs; i++) {
		const struct sv_seg *g = &s->segs[i];

		if (g->kind == SEG_LIT)
			total += g->len;
		else if (g->kind == SEG_VAR)
			total += cx->vars[g->idx].len;
		else if (g->idx < cx->nmv)
			total += cx->mv[g->idx].len;
	}
	if (total > cx->r->lim.string_bytes) {
		rt_error(cx, line, col, "expanded string of %zu bytes is over "
		    "string_bytes limit %zu", total, cx->r->lim.string_bytes);
		return -1;
	}
	if ((b = arena_alloc(cx, total + 1)) == NULL) {
		rt_error(cx, line, col, "out of memory");
		return -1;
	}
	for (i = 0; i < s->nsegs; i++) {
		const struct sv_seg *g = &s->segs[i];
		const char *src = NULL;
		size_t	 n = 0;

		if (g->kind == SEG_LIT) {
			src = s->s + g->off;
			n = g->len;
		} else if (g->kind == SEG_VAR) {
			src = cx->vars[g->idx].s;
			n = cx->vars[g->idx].len;
		} else if (g->idx < cx->nmv) {
			src = cx->mv[g->idx].s;
			n = cx->mv[g->idx].len;
		}
		if (n > 0)
			memcpy(b + off, src, n);
		off += n;
	}
	b[off] = '\0';
	*pp = b;
	*lenp = off;
	return 0;
}

static int
setvar(struct sv_var *v, const char *s, size_t len)
{
	char	*n = realloc(v->s, len + 1);

	if (n == NULL)
		return -1;
	memcpy(n, s, len);
	n[len] = '\0';
	v->s = n;
	v->len = len;
	return 0;
}

/* ---- matching values against a test's keys ---- */

struct key {
	const char *p;
	size_t	 len;
	const regex_t *re;
};

#define MS_INLINE_KEYS	8

struct mstate {
	struct sv_ctx *cx;
	const struct sv_test *t;
	struct key inl[MS_INLINE_KEYS];
	struct key *keys;
	size_t	 nkeys;
	regex_t	*rt_re;		/* run-time compiled regexes */
	size_t	 nrt;
	size_t	 count;
	int	 matched;
};

static int
ms_begin(struct mstate *ms, struct sv_ctx *cx, const struct sv_test *t)
{
	size_t	 i;

	ms->cx = cx;
	ms->t = t;
	ms->nkeys = t->keys.n;
	ms->rt_re = NULL;
	ms->nrt = 0;
	ms->count = 0;
	ms->matched = 0;
	/* no allocation for the usual small literal key list */
	if (t->keys.n <= MS_INLINE_KEYS)
		ms->keys = ms->inl;
	else if ((ms->keys = arena_alloc(cx, t->keys.n * sizeof(*ms->keys)))
	    == NULL) {
		rt_error(cx, t->line, t->col, "out of memory");
		return -1;
	}
	for (i = 0; i < t->keys.n; i++) {
		const struct sv_str *k = &t->keys.v[i];

		if (expand(cx, k, t->line, t->col, &ms->keys[i].p,
		    &ms->keys[i].len) == -1)
			return -1;
		ms->keys[i].re = k->re;
		if (t->m.mtype == MT_REGEX && k->re == NULL) {
			char	 why[256];

			if (ms->rt_re == NULL && (ms->rt_re = calloc(t->keys.n,
			    sizeof(*ms->rt_re))) == NULL) {
				rt_error(cx, t->line, t->col, "out of memory");
				return -1;
			}
			if (sieve_regex_compile(&ms->rt_re[ms->nrt], ms->keys[i].p,
			    ms->keys[i].len, t->m.cmp, cx->r->lim.regex_bytes,
			    why, sizeof(why)) == -1) {
				rt_error(cx, t->line, t->col, "bad regex \"%s\": %s",
				    ms->keys[i].p, why);
				return -1;
			}
			ms->keys[i].re = &ms->rt_re[ms->nrt++];
		}
	}
	return 0;
}

static void
ms_end(struct mstate *ms)
{
	size_t	 i;

	for (i = 0; i < ms->nrt; i++)
		regfree(&ms->rt_re[i]);
	free(ms->rt_re);
}

static void
set_match_vars(struct sv_ctx *cx, const struct sv_caps *caps)
{
	size_t	 i;

	for (i = 0; i < caps->n && i < SV_NMATCH; i++)
		if (setvar(&cx->mv[i], caps->v[i].p, caps->v[i].len) == -1)
			break;
	cx->nmv = i;
}

/* One value: 1 when the test is decided (matched), 0 go on, -1 error. */
static int
ms_feed(struct mstate *ms, const char *v, size_t vlen)
{
	const struct sv_test *t = ms->t;
	struct sv_ctx *cx = ms->cx;
	struct sv_caps caps;
	int	 want_caps = (cx->r->caps & CAP_VARIABLES) &&
		    (t->m.mtype == MT_MATCHES || t->m.mtype == MT_REGEX);
	size_t	 i;

	if (t->m.mtype == MT_COUNT) {
		ms->count++;
		return 0;
	}
	if (vlen > cx->r->lim.match_bytes) {
		rt_error(cx, t->line, t->col, "value of %zu bytes is over "
		    "match_bytes limit %zu", vlen, cx->r->lim.match_bytes);
		return -1;
	}
	if (t->m.mtype == MT_REGEX) {
		size_t	 max = cx->r->lim.regex_subject_bytes ?
		    cx->r->lim.regex_subject_bytes : RULES_REGEX_SUBJECT_DEFAULT;

		if (vlen > max) {
			rt_error(cx, t->line, t->col, ":regex on a value of %zu "
			    "bytes, over regex_subject_bytes limit %zu", vlen, max);
			return -1;
		}
	}
	for (i = 0; i < ms->nkeys; i++) {
		int	 rc;

		caps.n = 0;
		rc = sieve_match_one(&t->m, v, vlen, ms->keys[i].p,
		    ms->keys[i].len, ms->keys[i].re, want_caps ? &caps : NULL);
		if (rc == -1) {
			rt_error(cx, t->line, t->col, "regex match failed");
			return -1;
		}
		if (rc == 1) {
			if (want_caps)
				set_match_vars(cx, &caps);
			ms->matched = 1;
			return 1;
		}
	}
	return 0;
}

/* The test's result once all values were fed. */
static int
ms_result(struct mstate *ms)
{
	size_t	 i;
	char	 num[32];
	int	 n;

	if (ms->t->m.mtype != MT_COUNT)
		return ms->matched;
	n = snprintf(num, sizeof(num), "%zu", ms->count);
	for (i = 0; i < ms->nkeys; i++)
		if (sieve_rel_ok(ms->t->m.cmp, ms->t->m.rel, num, (size_t)n,
		    ms->keys[i].p, ms->keys[i].len))
			return 1;
	return 0;
}

/* ---- tests ---- */

static int
hdr_name_eq(const struct sv_hdr *h, const char *n, size_t nlen, uint32_t hash)
{
	size_t	 i;

	if (h->hash != hash || h->nlen != nlen)
		return 0;
	for (i = 0; i < nlen; i++) {
		unsigned char a = (unsigned char)h->name[i], b = (unsigned char)n[i];

		if (a != b && ((a | 0x20) != (b | 0x20) || (a | 0x20) < 'a' ||
		    (a | 0x20) > 'z'))
			return 0;
	}
	return 1;
}

static int
name_of(struct sv_ctx *cx, const struct sv_test *t, size_t i, const char **p,
    size_t *len, uint32_t *hash)
{
	const struct sv_str *s = &t->names.v[i];

	if (expand(cx, s, t->line, t->col, p, len) == -1)
		return -1;
	*hash = s->segs ? sieve_hash_lower(*p, *len) : s->hash;
	return 0;
}

static int
feed_addrs(struct mstate *ms, size_t hi, int apart)
{
	const struct sv_hdr *h = &ms->cx->msg.h[hi];
	const struct sv_val *a;
	size_t	 n, i;
	int	 rc = 0;

	if (sieve_msg_addrs(&ms->cx->msg, hi, &a, &n) == -1) {
		rt_error(ms->cx, ms->t->line, ms->t->col, "out of memory");
		return -1;
	}
	if (n == 0 && apart == AP_ALL) {
		/* no address list: the whole value, for :all only (Pigeonhole) */
		const char *p = h->val, *e = h->val + h->vlen;
		char	*u;
		size_t	 k = 0;

		while (p < e && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n'))
			p++;
		while (e > p && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r' ||
		    e[-1] == '\n'))
			e--;
		if (p < e && (u = arena_alloc(ms->cx, e - p + 1)) != NULL) {
			for (; p < e; p++)
				if (*p != '\r' && *p != '\n')
					u[k++] = *p;
			rc = ms_feed(ms, u, k);
		}
	}
	for (i = 0; i < n && rc == 0; i++) {
		const char *p;
		size_t	 len;

		sieve_addr_part(a[i].p, a[i].len, apart, &p, &len);
		if (p != NULL)
			rc = ms_feed(ms, p, len);
	}
	return rc;
}

/* The first raw header called name, decoded; NULL if absent. */
static const char *
raw_header(struct sv_ctx *cx, const char *name, size_t *len)
{
	uint32_t h = sieve_hash_lower(name, strlen(name));
	int	 i;
	const char *p;

	for (i = sieve_msg_first(&cx->msg, h); i != -1; i = cx->msg.h[i].next)
		if (hdr_name_eq(&cx->msg.h[i], name, strlen(name), h)) {
			sieve_msg_value(&cx->msg, i, &p, len);
			return p;
		}
	return NULL;
}

static int
feed_envelope(struct mstate *ms, int to, int apart)
{
	struct sv_ctx *cx = ms->cx;
	const char *v = NULL;
	size_t	 len = 0;

	if (!to && cx->rec != NULL && cx->rec->return_path != NULL &&
	    cx->rec->return_path[0] != '\0') {
		v = cx->rec->return_path;
		len = strlen(v);
	} else if (to && cx->rec != NULL && cx->rec->delivered_to != NULL &&
	    cx->rec->delivered_to[0] != '\0') {
		v = cx->rec->delivered_to;
		len = strlen(v);
	} else if (!to)
		v = raw_header(cx, "return-path", &len);
	else if ((v = raw_header(cx, "delivered-to", &len)) == NULL)
		v = raw_header(cx, "x-original-to", &len);
	if (v == NULL)
		return 0;
	while (len > 0 && (*v == '<' || *v == ' '))
		v++, len--;
	while (len > 0 && (v[len - 1] == '>' || v[len - 1] == ' '))
		len--;
	if (len == 0)
		return ms_feed(ms, "", 0);	/* null reverse-path, RFC 5228 5.4 */
	{
		const char *p;
		size_t	 plen;

		sieve_addr_part(v, len, apart, &p, &plen);
		if (p == NULL)
			return 0;
		return ms_feed(ms, p, plen);
	}
}

static int
ctype_ok(const struct sv_test *t, struct sv_ctx *cx, const char *type)
{
	size_t	 i;

	if (t->bodyxf == BX_TEXT)
		return strncmp(type, "text/", 5) == 0;
	for (i = 0; i < t->ctypes.n; i++) {
		const char *c;
		size_t	 len;

		if (expand(cx, &t->ctypes.v[i], t->line, t->col, &c, &len) == -1)
			return -1;
		if (len == 0)
			return 1;
		if (memchr(c, '/', len) == NULL) {
			if (strlen(type) > len && type[len] == '/' &&
			    strncasecmp(type, c, len) == 0)
				return 1;
		} else if (strlen(type) == len && strncasecmp(type, c, len) == 0)
			return 1;
	}
	return 0;
}

static const char *
bool_s(protobuf_c_boolean b)
{
	return b ? "true" : "false";
}

static int
feed_s(struct mstate *ms, const char *s)
{
	if (s == NULL || s[0] == '\0')
		return 0;
	return ms_feed(ms, s, strlen(s));
}

static int
feed_ims(struct mstate *ms, int field)
{
	const Vmingest__Record *rec = ms->cx->rec;
	size_t	 i, j, k;
	int	 rc = 0;
	char	 num[32];

	if (field == IF_COUNT) {
		snprintf(num, sizeof(num), "%zu", rec ? rec->n_ims : 0);
		return ms_feed(ms, num, strlen(num));
	}
	if (rec == NULL)
		return 0;
	for (i = 0; i < rec->n_ims && rc == 0; i++) {
		const Vmingest__ImsMessage *m = rec->ims[i];

		switch (field) {
		case IF_VERSION: rc = feed_s(ms, m->version); break;
		case IF_MSG_TYPE: rc = feed_s(ms, m->msg_type); break;
		case IF_MSG_ID: rc = feed_s(ms, m->msg_id); break;
		case IF_SOURCE: rc = feed_s(ms, m->source); break;
		case IF_REF_ID:
			if (m->ref_id)
				rc = feed_s(ms, m->ref_id->id);
			break;
		case IF_REF_SOURCE:
			if (m->ref_id)
				rc = feed_s(ms, m->ref_id->source);
			break;
		case IF_PROD_ID:
			if (m->prod_id)
				rc = feed_s(ms, m->prod_id->product);
			break;
		case IF_DELIVERY:
			if (m->prod_id)
				rc = feed_s(ms, m->prod_id->delivery);
			break;
		case IF_RETURN_ADDRESS: rc = feed_s(ms, m->return_address); break;
		case IF_RETURN_KIND:
			if (m->return_kind == VMINGEST__RETURN_KIND__EMAIL)
				rc = feed_s(ms, "EMAIL");
			else if (m->return_kind == VMINGEST__RETURN_KIND__FTP)
				rc = feed_s(ms, "FTP");
			break;
		case IF_HELP: rc = feed_s(ms, bool_s(m->help)); break;
		case IF_BOUNCE: rc = feed_s(ms, bool_s(m->bounce)); break;
		case IF_SMIME: rc = feed_s(ms, bool_s(m->smime_signed)); break;
		case IF_COMPLETE: rc = feed_s(ms, bool_s(m->complete)); break;
		case IF_REQUEST:
			for (j = 0; j < m->n_requests && rc == 0; j++)
				rc = feed_s(ms, m->requests[j]->keyword);
			break;
		case IF_DATA_TYPE: case IF_SUBTYPE: case IF_FORMAT:
		case IF_SUB_FORMAT: case IF_STATION: case IF_CHANNEL:
			for (j = 0; j < m->n_sections && rc == 0; j++) {
				const Vmingest__ImsSection *s = m->sections[j];

				if (field == IF_DATA_TYPE)
					rc = feed_s(ms, s->data_type);
				else if (field == IF_SUBTYPE)
					rc = feed_s(ms, s->subtype);
				else if (field == IF_FORMAT)
					rc = feed_s(ms, s->format);
				else if (field == IF_SUB_FORMAT)
					rc = feed_s(ms, s->sub_format);
				else if (field == IF_STATION)
					for (k = 0; k < s->n_stations && rc == 0; k++)
						rc = feed_s(ms, s->stations[k]);
				else
					for (k = 0; k < s->n_channels && rc == 0; k++)
						rc = feed_s(ms, s->channels[k]);
			}
			if (field == IF_DATA_TYPE || field == IF_STATION ||
			    field == IF_CHANNEL)
				break;
			for (j = 0; j < m->n_requests && rc == 0; j++) {
				const Vmingest__ImsRequest *q = m->requests[j];

				rc = feed_s(ms, field == IF_SUBTYPE ? q->subtype :
				    field == IF_FORMAT ? q->format : q->sub_format);
			}
			break;
		}
	}
	return rc;
}

static int eval_test(struct sv_ctx *, const struct sv_test *);

static const char *test_names[] = { "address", "envelope", "header", "exists",
    "size", "allof", "anyof", "not", "true", "false", "body", "string", "ims" };

static int
eval_match_test(struct sv_ctx *cx, const struct sv_test *t)
{
	struct mstate ms;
	size_t	 i;
	int	 rc = 0, hj;

	if (ms_begin(&ms, cx, t) == -1) {
		ms_end(&ms);
		return -1;
	}
	switch (t->kind) {
	case T_HEADER:
	case T_ADDRESS:
		for (i = 0; i < t->names.n && rc == 0; i++) {
			const char *n;
			size_t	 nlen;
			uint32_t hash;

			if (name_of(cx, t, i, &n, &nlen, &hash) == -1) {
				rc = -1;
				break;
			}
			for (hj = sieve_msg_first(&cx->msg, hash); hj != -1 &&
			    rc == 0; hj = cx->msg.h[hj].next) {
				const char *v;
				size_t	 vlen;

				if (!hdr_name_eq(&cx->msg.h[hj], n, nlen, hash))
					continue;
				if (t->kind == T_HEADER) {
					sieve_msg_value(&cx->msg, hj, &v, &vlen);
					rc = ms_feed(&ms, v, vlen);
				} else
					rc = feed_addrs(&ms, hj, t->apart);
			}
		}
		break;
	case T_ENVELOPE:
		for (i = 0; i < t->names.n && rc == 0; i++) {
			const char *n;
			size_t	 nlen;

			if (expand(cx, &t->names.v[i], t->line, t->col, &n,
			    &nlen) == -1) {
				rc = -1;
				break;
			}
			if (nlen == 4 && strncasecmp(n, "from", 4) == 0)
				rc = feed_envelope(&ms, 0, t->apart);
			else if (nlen == 2 && strncasecmp(n, "to", 2) == 0)
				rc = feed_envelope(&ms, 1, t->apart);
		}
		break;
	case T_STRING:
		for (i = 0; i < t->names.n && rc == 0; i++) {
			const char *v;
			size_t	 vlen;

			if (expand(cx, &t->names.v[i], t->line, t->col, &v,
			    &vlen) == -1) {
				rc = -1;
				break;
			}
			/* RFC 5229 5: :count counts the non-empty strings */
			if (t->m.mtype == MT_COUNT && vlen == 0)
				continue;
			rc = ms_feed(&ms, v, vlen);
		}
		break;
	case T_IMS:
		for (i = 0; i < t->names.n && rc == 0; i++) {
			int	 f = t->fields[i];

			if (f == -1) {
				const char *n;
				size_t	 nlen;

				if (expand(cx, &t->names.v[i], t->line, t->col,
				    &n, &nlen) == -1) {
					rc = -1;
					break;
				}
				if ((f = sieve_ims_field(n, nlen)) == -1)
					continue;	/* no such field: no values */
			}
			rc = feed_ims(&ms, f);
		}
		break;
	case T_BODY:
		if (t->bodyxf == BX_RAW) {
			rc = ms_feed(&ms, cx->msg.raw + cx->msg.body_off,
			    cx->msg.len - cx->msg.body_off);
			break;
		}
		if (sieve_msg_parts(&cx->msg, cx->r->lim.match_bytes) == -1) {
			rt_error(cx, t->line, t->col, "out of memory reading "
			    "the body");
			rc = -1;
			break;
		}
		for (i = 0; i < cx->msg.nparts && rc == 0; i++) {
			int	 ok = ctype_ok(t, cx, cx->msg.parts[i].type);

			if (ok == -1)
				rc = -1;
			else if (ok)
				rc = ms_feed(&ms, cx->msg.parts[i].text,
				    cx->msg.parts[i].len);
		}
		break;
	}
	if (rc != -1)
		rc = ms_result(&ms);
	ms_end(&ms);
	return rc;
}

static int
eval_test(struct sv_ctx *cx, const struct sv_test *t)
{
	size_t	 i;
	int	 rc = 0;

	switch (t->kind) {
	case T_TRUE:
		rc = 1;
		break;
	case T_FALSE:
		rc = 0;
		break;
	case T_NOT:
		rc = eval_test(cx, t->kids[0]);
		if (rc != -1)
			rc = !rc;
		break;
	case T_ALLOF:
		rc = 1;
		for (i = 0; i < t->nkids && rc == 1; i++)
			rc = eval_test(cx, t->kids[i]);
		break;
	case T_ANYOF:
		rc = 0;
		for (i = 0; i < t->nkids && rc == 0; i++)
			rc = eval_test(cx, t->kids[i]);
		break;
	case T_SIZE: {
		uint64_t sz = (cx->rec != NULL && cx->rec->raw_size != 0) ?
		    cx->rec->raw_size : cx->msg.len;

		rc = t->over ? sz > t->size : sz < t->size;
		break;
	}
	case T_EXISTS:
		rc = 1;
		for (i = 0; i < t->names.n && rc == 1; i++) {
			const char *n;
			size_t	 nlen;
			uint32_t hash;
			int	 j;

			if (name_of(cx, t, i, &n, &nlen, &hash) == -1) {
				rc = -1;
				break;
			}
			rc = 0;
			for (j = sieve_msg_first(&cx->msg, hash); j != -1;
			    j = cx->msg.h[j].next)
				if (hdr_name_eq(&cx->msg.h[j], n, nlen, hash)) {
					rc = 1;
					break;
				}
		}
		break;
	default:
		rc = eval_match_test(cx, t);
	}
	if (cx->trace != NULL)
		cx->trace(cx->targ, t->line, t->col, test_names[t->kind], rc);
	return rc;
}

/* ---- actions ---- */

static int
count_action(struct sv_ctx *cx, const struct sv_cmd *c)
{
	uint32_t *nl;

	if (++cx->nactions > cx->r->lim.actions) {
		rt_error(cx, c->line, c->col, "more than %zu actions (actions "
		    "limit)", cx->r->lim.actions);
		return -1;
	}
	nl = realloc(cx->out->fired_lines, (cx->out->n_fired_lines + 1) *
	    sizeof(*nl));
	if (nl == NULL) {
		rt_error(cx, c->line, c->col, "out of memory");
		return -1;
	}
	cx->out->fired_lines = nl;
	nl[cx->out->n_fired_lines++] = c->line;
	return 0;
}

/* Append `verb` or `verb "arg"` (arg quoted as a Sieve string) to actions. */
static void
push_action(struct sv_ctx *cx, const char *verb, const char *arg, size_t len)
{
	char	 buf[1024];
	size_t	 i, o;

	o = strlen(verb);
	if (o > sizeof(buf) - 8)
		o = sizeof(buf) - 8;
	memcpy(buf, verb, o);
	if (arg != NULL) {
		buf[o++] = ' ';
		buf[o++] = '"';
		for (i = 0; i < len && o + 4 < sizeof(buf); i++) {
			if (arg[i] == '"' || arg[i] == '\\')
				buf[o++] = '\\';
			buf[o++] = arg[i];
		}
		buf[o++] = '"';
	}
	buf[o] = '\0';
	rec_push(&cx->out->actions, &cx->out->n_actions, rec_strdup(buf));
}

static int
has_str(char **arr, size_t n, const char *s, size_t len)
{
	size_t	 i;

	for (i = 0; i < n; i++)
		if (strlen(arr[i]) == len && memcmp(arr[i], s, len) == 0)
			return 1;
	return 0;
}

static int
do_set(struct sv_ctx *cx, const struct sv_cmd *c)
{
	const char *v;
	size_t	 len, i, o;
	char	*b;
	char	 num[32];

	if (expand(cx, &c->arg, c->line, c->col, &v, &len) == -1)
		return -1;
	/* modifiers by precedence: case 40, first-letter 30, quote 20, length 10 */
	if ((b = arena_alloc(cx, 2 * len + 1)) == NULL) {
		rt_error(cx, c->line, c->col, "out of memory");
		return -1;
	}
	memcpy(b, v, len);
	for (i = 0; i < len; i++) {
		if (c->mods & SM_LOWER)
			b[i] = tolower((unsigned char)b[i]);
		else if (c->mods & SM_UPPER)
			b[i] = toupper((unsigned char)b[i]);
	}
	if (len > 0 && (c->mods & SM_LOWERFIRST))
		b[0] = tolower((unsigned char)b[0]);
	if (len > 0 && (c->mods & SM_UPPERFIRST))
		b[0] = toupper((unsigned char)b[0]);
	if (c->mods & SM_QUOTEWILD) {
		char	*q = arena_alloc(cx, 2 * len + 1);

		if (q == NULL) {
			rt_error(cx, c->line, c->col, "out of memory");
			return -1;
		}
		for (i = 0, o = 0; i < len; i++) {
			if (b[i] == '*' || b[i] == '?' || b[i] == '\\')
				q[o++] = '\\';
			q[o++] = b[i];
		}
		b = q;
		len = o;
	}
	if (c->mods & SM_LENGTH) {
		/* characters, not octets: count UTF-8 lead bytes */
		size_t	 chars = 0;

		for (i = 0; i < len; i++)
			if (((unsigned char)b[i] & 0xc0) != 0x80)
				chars++;
		snprintf(num, sizeof(num), "%zu", chars);
		b = num;
		len = strlen(num);
	}
	if (len > cx->r->lim.string_bytes) {
		rt_error(cx, c->line, c->col, "variable value over string_bytes "
		    "limit %zu", cx->r->lim.string_bytes);
		return -1;
	}
	if (setvar(&cx->vars[c->var], b, len) == -1) {
		rt_error(cx, c->line, c->col, "out of memory");
		return -1;
	}
	return 0;
}

static int
eval_block(struct sv_ctx *cx, const struct sv_block *b)
{
	size_t	 i, j;

	for (i = 0; i < b->n; i++) {
		const struct sv_cmd *c = b->c[i];
		const char *v;
		size_t	 len;
		int	 rc;

		switch (c->kind) {
		case C_IF:
			for (j = 0; j < c->nbr; j++) {
				if (c->br[j].test != NULL) {
					rc = eval_test(cx, c->br[j].test);
					if (rc == -1)
						return EV_ERR;
					if (rc == 0)
						continue;
				}
				rc = eval_block(cx, &c->br[j].blk);
				if (rc != EV_OK)
					return rc;
				break;
			}
			break;
		case C_STOP:
			return EV_STOP;
		case C_KEEP:
			if (count_action(cx, c) == -1)
				return EV_ERR;
			cx->explicit_keep = 1;
			push_action(cx, "keep", NULL, 0);
			break;
		case C_DISCARD:
			if (count_action(cx, c) == -1)
				return EV_ERR;
			cx->discarded = 1;
			cx->implicit_keep = 0;
			push_action(cx, "discard", NULL, 0);
			break;
		case C_FILEINTO:
			if (expand(cx, &c->arg, c->line, c->col, &v, &len) == -1)
				return EV_ERR;
			if (!sieve_topic_ok(v, len)) {
				char	 esc[128];

				log_escape(esc, sizeof(esc), v, len);
				rt_error(cx, c->line, c->col, "fileinto: \"%s\" "
				    "is not a valid topic", esc);
				return EV_ERR;
			}
			/* a second fileinto to the same topic is ignored
			 * entirely, :copy or not (as Pigeonhole does) */
			if (has_str(cx->out->topics, cx->out->n_topics, v, len))
				break;
			if (count_action(cx, c) == -1)
				return EV_ERR;
			if (!c->copy)
				cx->implicit_keep = 0;
			push_action(cx, c->copy ? "fileinto :copy" : "fileinto",
			    v, len);
			rec_push(&cx->out->topics, &cx->out->n_topics,
			    rec_strndup(v, len));
			break;
		case C_QUARANTINE:
			if (expand(cx, &c->arg, c->line, c->col, &v, &len) == -1 ||
			    count_action(cx, c) == -1)
				return EV_ERR;
			cx->implicit_keep = 0;
			if (!cx->out->quarantine) {
				cx->out->quarantine = 1;
				if (cx->out->quarantine_reason != NULL &&
				    cx->out->quarantine_reason !=
				    protobuf_c_empty_string)
					free(cx->out->quarantine_reason);
				cx->out->quarantine_reason = rec_strndup(v, len);
			}
			push_action(cx, "quarantine", v, len);
			break;
		case C_LABEL:
			if (expand(cx, &c->arg, c->line, c->col, &v, &len) == -1 ||
			    count_action(cx, c) == -1)
				return EV_ERR;
			push_action(cx, "label", v, len);
			if (!has_str(cx->out->labels, cx->out->n_labels, v, len))
				rec_push(&cx->out->labels, &cx->out->n_labels,
				    rec_strndup(v, len));
			break;
		case C_SET:
			if (do_set(cx, c) == -1)
				return EV_ERR;
			break;
		}
	}
	return EV_OK;
}

static void
free_strs(char ***arr, size_t *n)
{
	size_t	 i;

	for (i = 0; i < *n; i++)
		free((*arr)[i]);
	free(*arr);
	*arr = NULL;
	*n = 0;
}

/* RFC 5228 2.10.6: on a runtime error only keep remains. */
static void
force_keep(struct sv_ctx *cx)
{
	Vmingest__RuleResult *o = cx->out;

	free_strs(&o->actions, &o->n_actions);
	free_strs(&o->topics, &o->n_topics);
	free_strs(&o->labels, &o->n_labels);
	free(o->fired_lines);
	o->fired_lines = NULL;
	o->n_fired_lines = 0;
	o->quarantine = 0;
	if (o->quarantine_reason != NULL &&
	    o->quarantine_reason != protobuf_c_empty_string)
		free(o->quarantine_reason);
	o->quarantine_reason = rec_strdup("");
	o->discard = 0;
	o->keep = 1;
	rec_push(&o->actions, &o->n_actions, rec_strdup("keep (error)"));
	if (o->error != NULL && o->error != protobuf_c_empty_string)
		free(o->error);
	o->error = rec_strdup(cx->errbuf);
}

int
rules_eval_trace(const struct rules *r, const Vmingest__Record *rec,
    const void *raw, size_t rawlen, Vmingest__RuleResult *out,
    rules_trace_fn fn, void *arg)
{
	struct sv_ctx cx;
	struct sv_var inl[16];
	struct arena_blk *b;
	size_t	 i;
	int	 rc;

	/* not memset: cx.msg holds the inline header index (kilobytes),
	 * sieve_msg_init sets what it uses */
	memset(cx.mv, 0, sizeof(cx.mv));
	cx.nmv = 0;
	cx.arena = NULL;
	cx.nactions = 0;
	cx.explicit_keep = cx.discarded = cx.error = 0;
	cx.errbuf[0] = '\0';
	cx.r = r;
	cx.rec = rec;
	cx.out = out;
	cx.trace = fn;
	cx.targ = arg;
	cx.implicit_keep = 1;
	if (raw == NULL)
		rawlen = 0;
	sieve_msg_init(&cx.msg, raw ? raw : "", rawlen);
	if (r->nvars <= 16) {
		memset(inl, 0, sizeof(inl));
		cx.vars = inl;
	} else if ((cx.vars = calloc(r->nvars, sizeof(*cx.vars))) == NULL) {
		snprintf(cx.errbuf, sizeof(cx.errbuf), "%s:0:0: out of memory",
		    r->name);
		cx.error = 1;
	}
	if (out->script == NULL || out->script == protobuf_c_empty_string)
		out->script = rec_strdup(r->name);

	rc = cx.error ? EV_ERR : eval_block(&cx, &r->top);
	if (rc == EV_ERR || cx.error) {
		if (!cx.error)
			snprintf(cx.errbuf, sizeof(cx.errbuf), "%s:0:0: error",
			    r->name);
		force_keep(&cx);
		rc = -1;
	} else {
		out->keep = cx.explicit_keep || cx.implicit_keep;
		if (cx.implicit_keep)
			rec_push(&out->actions, &out->n_actions,
			    rec_strdup("keep (implicit)"));
		out->discard = cx.discarded && !out->keep && out->n_topics == 0;
		rc = 0;
	}

	for (i = 0; cx.vars != NULL && i < r->nvars; i++)
		free(cx.vars[i].s);
	if (cx.vars != inl)
		free(cx.vars);
	for (i = 0; i < SV_NMATCH; i++)
		free(cx.mv[i].s);
	while ((b = cx.arena) != NULL) {
		cx.arena = b->next;
		free(b);
	}
	sieve_msg_free(&cx.msg);
	return rc;
}

int
rules_eval(const struct rules *r, const Vmingest__Record *rec,
    const void *raw, size_t rawlen, Vmingest__RuleResult *out)
{
	return rules_eval_trace(r, rec, raw, rawlen, out, NULL, NULL);
}
