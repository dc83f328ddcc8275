/*
 * sieve_eval.c - the tests of a compiled Sieve script, run on one message.
 *
 *   sieve_eval_test   evaluate one test (recursively for allof/anyof/not):
 *                     1 true, 0 false, -1 runtime error (cx->errbuf)
 *   sieve_expand      a string with its variable references expanded
 *   sieve_setvar      assign a variable or match variable
 *   sieve_arena_alloc per-eval scratch memory, freed when the eval ends
 *   sieve_rt_error    record the first runtime error, "name:line:col: text"
 *
 * Values are fed one at a time (struct mstate) into the match of the
 * test: header values from the raw message (sieve_msg.c), addresses,
 * the envelope from the record or the raw Return-Path / Delivered-To,
 * body parts, strings, IMS fields of the record.  :count counts the
 * values instead of matching them.
 *
 * ERRORS: a runtime error (a limit, a regex that fails) makes the test
 * return -1; the caller (rules.c) then forces keep.
 * SECURITY: values come from hostile mail; every value is checked
 * against match_bytes (and :regex ones against regex_subject_bytes)
 * before it is matched; loops are bounded by the header index, the
 * address list cap (1000 per header) and the record's arrays.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "record.h"
#include "sieve.h"

void
sieve_rt_error(struct sv_ctx *cx, unsigned line, unsigned col, const char *fmt, ...)
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

void *
sieve_arena_alloc(struct sv_ctx *cx, size_t n)
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
int
sieve_expand(struct sv_ctx *cx, const struct sv_str *s, unsigned line, unsigned col,
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
		sieve_rt_error(cx, line, col, "expanded string of %zu bytes is over "
		    "string_bytes limit %zu", total, cx->r->lim.string_bytes);
		return -1;
	}
	if ((b = sieve_arena_alloc(cx, total + 1)) == NULL) {
		sieve_rt_error(cx, line, col, "out of memory");
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

int
sieve_setvar(struct sv_var *v, const char *s, size_t len)
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
	else if ((ms->keys = sieve_arena_alloc(cx, t->keys.n * sizeof(*ms->keys)))
	    == NULL) {
		sieve_rt_error(cx, t->line, t->col, "out of memory");
		return -1;
	}
	for (i = 0; i < t->keys.n; i++) {
		const struct sv_str *k = &t->keys.v[i];

		if (sieve_expand(cx, k, t->line, t->col, &ms->keys[i].p,
		    &ms->keys[i].len) == -1)
			return -1;
		ms->keys[i].re = k->re;
		if (t->m.mtype == MT_REGEX && k->re == NULL) {
			char	 why[256];

			if (ms->rt_re == NULL && (ms->rt_re = calloc(t->keys.n,
			    sizeof(*ms->rt_re))) == NULL) {
				sieve_rt_error(cx, t->line, t->col, "out of memory");
				return -1;
			}
			if (sieve_regex_compile(&ms->rt_re[ms->nrt], ms->keys[i].p,
			    ms->keys[i].len, t->m.cmp, cx->r->lim.regex_bytes,
			    why, sizeof(why)) == -1) {
				sieve_rt_error(cx, t->line, t->col, "bad regex \"%s\": %s",
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
		if (sieve_setvar(&cx->mv[i], caps->v[i].p, caps->v[i].len) == -1)
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
		sieve_rt_error(cx, t->line, t->col, "value of %zu bytes is over "
		    "match_bytes limit %zu", vlen, cx->r->lim.match_bytes);
		return -1;
	}
	if (t->m.mtype == MT_REGEX) {
		size_t	 max = cx->r->lim.regex_subject_bytes ?
		    cx->r->lim.regex_subject_bytes : RULES_REGEX_SUBJECT_DEFAULT;

		if (vlen > max) {
			sieve_rt_error(cx, t->line, t->col, ":regex on a value of %zu "
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
			sieve_rt_error(cx, t->line, t->col, "regex match failed");
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

	if (sieve_expand(cx, s, t->line, t->col, p, len) == -1)
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
		sieve_rt_error(ms->cx, ms->t->line, ms->t->col, "out of memory");
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
		if (p < e && (u = sieve_arena_alloc(ms->cx, e - p + 1)) != NULL) {
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

		if (sieve_expand(cx, &t->ctypes.v[i], t->line, t->col, &c, &len) == -1)
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

			if (sieve_expand(cx, &t->names.v[i], t->line, t->col, &n,
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

			if (sieve_expand(cx, &t->names.v[i], t->line, t->col, &v,
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

				if (sieve_expand(cx, &t->names.v[i], t->line, t->col,
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
			sieve_rt_error(cx, t->line, t->col, "out of memory reading "
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

int
sieve_eval_test(struct sv_ctx *cx, const struct sv_test *t)
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
		rc = sieve_eval_test(cx, t->kids[0]);
		if (rc != -1)
			rc = !rc;
		break;
	case T_ALLOF:
		rc = 1;
		for (i = 0; i < t->nkids && rc == 1; i++)
			rc = sieve_eval_test(cx, t->kids[i]);
		break;
	case T_ANYOF:
		rc = 0;
		for (i = 0; i < t->nkids && rc == 0; i++)
			rc = sieve_eval_test(cx, t->kids[i]);
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
