/*
 * sieve_parse.c - tokens -> checked command tree (RFC 5228 section 8.2).
 *
 *   sieve_parse        build rules->top from the tokens, checking every
 *                      command, test, tag and argument
 *   sieve_block_free   release a tree
 *   sieve_str_free     release one compiled string
 *   sieve_hash_lower   hash of a lower-cased header name
 *   sieve_topic_ok     1 if a fileinto target is a valid topic
 *
 * Grammar is parsed generically (identifier, arguments, tests, block) and
 * each command/test then validated against its own signature, so that
 * every error points at the line:column of the offending token.  Strings
 * with "${...}" are cut into segments here when "variables" is required;
 * literal :regex keys are compiled here (regcomp), so a bad pattern is a
 * compile error, not a runtime surprise.
 *
 * ERRORS: the first error ends the parse with "name:line:col: text".
 * SECURITY: the script is operator input, bounded by rules_limits
 * (nesting, string_bytes, regex_bytes); recursion depth is limited by
 * the nesting limit.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sieve.h"

struct parser {
	struct rules *r;
	const struct sv_toks *ts;
	size_t	 i;
	char	*err;
	size_t	 errlen;
	int	 failed;
};

/* A generic argument before it is assigned to a parameter. */
enum { GA_TAG, GA_NUM, GA_STRS };
struct garg {
	int	 type;
	unsigned line, col;
	const char *tag;	/* borrowed from the token */
	uint64_t num;
	struct sv_strlist sl;	/* owned until moved */
};

struct gargs {
	struct garg *a;
	size_t	 n;
};

static struct sv_test *parse_test(struct parser *, size_t depth);

static void __attribute__((format(printf, 4, 5)))
perr(struct parser *p, unsigned line, unsigned col, const char *fmt, ...)
{
	va_list	 ap;
	int	 n;

	if (p->failed)
		return;
	p->failed = 1;
	n = snprintf(p->err, p->errlen, "%s:%u:%u: ", p->r->name, line, col);
	if (n < 0 || (size_t)n >= p->errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(p->err + n, p->errlen - n, fmt, ap);
	va_end(ap);
}

static const struct sv_tok *
peek(struct parser *p)
{
	return &p->ts->t[p->i];
}

static const struct sv_tok *
next(struct parser *p)
{
	const struct sv_tok *t = &p->ts->t[p->i];

	if (t->type != TK_EOF)
		p->i++;
	return t;
}

static const char *
tok_what(const struct sv_tok *t)
{
	switch (t->type) {
	case TK_EOF: return "end of script";
	case TK_ID: return "identifier";
	case TK_TAG: return "tag";
	case TK_NUM: return "number";
	case TK_STR: return "string";
	case TK_LBRACKET: return "'['";
	case TK_RBRACKET: return "']'";
	case TK_LPAREN: return "'('";
	case TK_RPAREN: return "')'";
	case TK_COMMA: return "','";
	case TK_SEMI: return "';'";
	case TK_LBRACE: return "'{'";
	case TK_RBRACE: return "'}'";
	}
	return "token";
}

uint32_t
sieve_hash_lower(const char *s, size_t len)
{
	uint32_t h = 2166136261u;
	size_t	 i;

	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		h ^= (c >= 'A' && c <= 'Z') ? c + 32 : c;
		h *= 16777619u;
	}
	return h;
}

int
sieve_topic_ok(const char *s, size_t len)
{
	size_t	 i, seg = 0;

	if (len == 0 || len > 255)
		return 0;
	for (i = 0; i < len; i++) {
		char	 c = s[i];

		if (c == '.') {
			if (seg == 0)
				return 0;
			seg = 0;
			continue;
		}
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		    c == '_' || c == '-'))
			return 0;
		seg++;
	}
	return seg > 0;
}

void
sieve_str_free(struct sv_str *s)
{
	free(s->s);
	free(s->segs);
	if (s->re != NULL) {
		regfree(s->re);
		free(s->re);
	}
	memset(s, 0, sizeof(*s));
}

static void
strlist_free(struct sv_strlist *l)
{
	size_t	 i;

	for (i = 0; i < l->n; i++)
		sieve_str_free(&l->v[i]);
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

static void
test_free(struct sv_test *t)
{
	size_t	 i;

	if (t == NULL)
		return;
	strlist_free(&t->names);
	strlist_free(&t->keys);
	strlist_free(&t->ctypes);
	free(t->fields);
	for (i = 0; i < t->nkids; i++)
		test_free(t->kids[i]);
	free(t->kids);
	free(t);
}

static void
cmd_free(struct sv_cmd *c)
{
	size_t	 i;

	if (c == NULL)
		return;
	for (i = 0; i < c->nbr; i++) {
		test_free(c->br[i].test);
		sieve_block_free(&c->br[i].blk);
	}
	free(c->br);
	sieve_str_free(&c->arg);
	free(c);
}

void
sieve_block_free(struct sv_block *b)
{
	size_t	 i;

	for (i = 0; i < b->n; i++)
		cmd_free(b->c[i]);
	free(b->c);
	b->c = NULL;
	b->n = 0;
}

static void
gargs_free(struct gargs *g)
{
	size_t	 i;

	for (i = 0; i < g->n; i++)
		strlist_free(&g->a[i].sl);
	free(g->a);
	g->a = NULL;
	g->n = 0;
}

static void *
grow(void *arr, size_t n, size_t sz)
{
	/* arrays grow one by one; scripts are small and bounded */
	return realloc(arr, (n + 1) * sz);
}

/* ---- variables: split "${...}" references into segments ---- */

static int
var_index(struct parser *p, const char *name, size_t len, size_t *idx)
{
	size_t	 i;
	char	*lc, **nv;

	for (i = 0; i < p->r->nvars; i++)
		if (strlen(p->r->vars[i]) == len &&
		    strncasecmp(p->r->vars[i], name, len) == 0) {
			*idx = i;
			return 0;
		}
	if ((lc = strndup(name, len)) == NULL)
		return -1;
	for (i = 0; i < len; i++)
		lc[i] = tolower((unsigned char)lc[i]);
	if ((nv = grow(p->r->vars, p->r->nvars, sizeof(*nv))) == NULL) {
		free(lc);
		return -1;
	}
	p->r->vars = nv;
	nv[p->r->nvars] = lc;
	*idx = p->r->nvars++;
	return 0;
}

static int
add_seg(struct sv_str *s, int kind, size_t off, size_t len, size_t idx)
{
	struct sv_seg *ns;

	if (kind == SEG_LIT && len == 0)
		return 0;
	if ((ns = grow(s->segs, s->nsegs, sizeof(*ns))) == NULL)
		return -1;
	s->segs = ns;
	ns[s->nsegs].kind = kind;
	ns[s->nsegs].off = off;
	ns[s->nsegs].len = len;
	ns[s->nsegs].idx = idx;
	s->nsegs++;
	return 0;
}

/*
 * RFC 5229 section 3: "${" [namespace "."] name "}" or "${" digits "}".
 * A reference that is not well formed stays literal text.
 */
static int
prep_vars(struct parser *p, struct sv_str *s, unsigned line, unsigned col)
{
	size_t	 i = 0, lit = 0;
	int	 any = 0;

	if (!(p->r->caps & CAP_VARIABLES) || memmem(s->s, s->len, "${", 2) == NULL)
		return 0;
	while (i + 1 < s->len) {
		size_t	 j, k, idx;
		int	 digits = 1, dot = 0, ok = 1;

		if (!(s->s[i] == '$' && s->s[i + 1] == '{')) {
			i++;
			continue;
		}
		j = i + 2;
		for (k = j; k < s->len && s->s[k] != '}'; k++) {
			char	 c = s->s[k];

			if (!isdigit((unsigned char)c))
				digits = 0;
			if (c == '.')
				dot = 1;
			else if (!(isalnum((unsigned char)c) || c == '_'))
				ok = 0;
		}
		if (k >= s->len || k == j || !ok ||
		    (!digits && isdigit((unsigned char)s->s[j]) && !dot)) {
			i++;
			continue;
		}
		if (dot) {
			perr(p, line, col, "variable namespace in '${%.*s}' is not "
			    "supported", (int)(k - j), s->s + j);
			return -1;
		}
		if (add_seg(s, SEG_LIT, lit, i - lit, 0) == -1)
			return -1;
		if (digits) {
			size_t	 n = 0;

			for (idx = j; idx < k && n < 1000; idx++)
				n = n * 10 + (s->s[idx] - '0');
			if (add_seg(s, SEG_MATCH, 0, 0, n) == -1)
				return -1;
		} else {
			if (var_index(p, s->s + j, k - j, &idx) == -1 ||
			    add_seg(s, SEG_VAR, 0, 0, idx) == -1)
				return -1;
		}
		any = 1;
		i = k + 1;
		lit = i;
	}
	if (!any)
		return 0;
	return add_seg(s, SEG_LIT, lit, s->len - lit, 0);
}

/* ---- generic syntax ---- */

static int
parse_strlist(struct parser *p, struct sv_strlist *sl)
{
	const struct sv_tok *t = next(p);
	int	 bracket = (t->type == TK_LBRACKET);

	memset(sl, 0, sizeof(*sl));
	if (bracket)
		t = next(p);
	for (;;) {
		struct sv_str *nv;

		if (t->type != TK_STR) {
			perr(p, t->line, t->col, "expected a string, found %s",
			    tok_what(t));
			return -1;
		}
		if ((nv = grow(sl->v, sl->n, sizeof(*nv))) == NULL)
			return -1;
		sl->v = nv;
		memset(&nv[sl->n], 0, sizeof(*nv));
		if ((nv[sl->n].s = malloc(t->len + 1)) == NULL)
			return -1;
		memcpy(nv[sl->n].s, t->s, t->len + 1);
		nv[sl->n].len = t->len;
		sl->n++;
		if (prep_vars(p, &nv[sl->n - 1], t->line, t->col) == -1)
			return -1;
		if (!bracket)
			return 0;
		t = next(p);
		if (t->type == TK_RBRACKET)
			return 0;
		if (t->type != TK_COMMA) {
			perr(p, t->line, t->col, "expected ',' or ']' in string "
			    "list, found %s", tok_what(t));
			return -1;
		}
		t = next(p);
	}
}

static int
parse_args(struct parser *p, struct gargs *g)
{
	memset(g, 0, sizeof(*g));
	for (;;) {
		const struct sv_tok *t = peek(p);
		struct garg *na;

		if (t->type != TK_TAG && t->type != TK_NUM && t->type != TK_STR &&
		    t->type != TK_LBRACKET)
			return 0;
		if ((na = grow(g->a, g->n, sizeof(*na))) == NULL)
			return -1;
		g->a = na;
		na = &g->a[g->n++];
		memset(na, 0, sizeof(*na));
		na->line = t->line;
		na->col = t->col;
		if (t->type == TK_TAG) {
			na->type = GA_TAG;
			na->tag = t->s;
			next(p);
		} else if (t->type == TK_NUM) {
			na->type = GA_NUM;
			na->num = t->num;
			next(p);
		} else {
			na->type = GA_STRS;
			if (parse_strlist(p, &na->sl) == -1)
				return -1;
		}
	}
}

/* ---- tagged arguments shared by the match tests ---- */

#define ALLOW_CMP	0x01
#define ALLOW_MATCH	0x02
#define ALLOW_APART	0x04
#define ALLOW_BODYXF	0x08

static int
take_string(struct parser *p, struct gargs *g, size_t *i, const char *what,
    struct sv_str *out)
{
	struct garg *a = &g->a[*i];

	if (*i + 1 >= g->n || g->a[*i + 1].type != GA_STRS ||
	    g->a[*i + 1].sl.n != 1) {
		perr(p, a->line, a->col, ":%s needs one string argument", what);
		return -1;
	}
	(*i)++;
	*out = g->a[*i].sl.v[0];
	free(g->a[*i].sl.v);
	g->a[*i].sl.v = NULL;
	g->a[*i].sl.n = 0;
	g->a[*i].type = -1;	/* consumed */
	return 0;
}

/*
 * Consume the tags of a match test into t->m, t->apart, t->bodyxf;
 * positional arguments are left in g (type GA_STRS/GA_NUM), consumed
 * ones have type -1.
 */
static int
take_tags(struct parser *p, struct gargs *g, struct sv_test *t, int allow,
    const char *test)
{
	size_t	 i;
	int	 have_cmp = 0, have_mt = 0, have_ap = 0, have_bx = 0;

	t->m.cmp = CMP_CASEMAP;
	t->m.mtype = MT_IS;
	t->apart = AP_ALL;
	t->bodyxf = BX_TEXT;
	for (i = 0; i < g->n; i++) {
		struct garg *a = &g->a[i];
		const char *tg = a->tag;
		struct sv_str s;

		if (a->type != GA_TAG)
			continue;
		a->type = -1;
		if ((allow & ALLOW_CMP) && strcasecmp(tg, "comparator") == 0) {
			if (have_cmp++) {
				perr(p, a->line, a->col, "%s: more than one "
				    ":comparator", test);
				return -1;
			}
			if (take_string(p, g, &i, "comparator", &s) == -1)
				return -1;
			if (strcasecmp(s.s, "i;ascii-casemap") == 0)
				t->m.cmp = CMP_CASEMAP;
			else if (strcasecmp(s.s, "i;octet") == 0)
				t->m.cmp = CMP_OCTET;
			else if (strcasecmp(s.s, "i;ascii-numeric") == 0) {
				if (!(p->r->caps & CAP_NUMERIC)) {
					perr(p, a->line, a->col, "comparator "
					    "'i;ascii-numeric' needs require "
					    "\"comparator-i;ascii-numeric\"");
					sieve_str_free(&s);
					return -1;
				}
				t->m.cmp = CMP_NUMERIC;
			} else {
				perr(p, a->line, a->col, "unknown comparator '%s'",
				    s.s);
				sieve_str_free(&s);
				return -1;
			}
			sieve_str_free(&s);
			continue;
		}
		if ((allow & ALLOW_MATCH) && (strcasecmp(tg, "is") == 0 ||
		    strcasecmp(tg, "contains") == 0 ||
		    strcasecmp(tg, "matches") == 0 ||
		    strcasecmp(tg, "regex") == 0 ||
		    strcasecmp(tg, "value") == 0 ||
		    strcasecmp(tg, "count") == 0)) {
			if (have_mt++) {
				perr(p, a->line, a->col, "%s: more than one match "
				    "type", test);
				return -1;
			}
			if (strcasecmp(tg, "is") == 0)
				t->m.mtype = MT_IS;
			else if (strcasecmp(tg, "contains") == 0)
				t->m.mtype = MT_CONTAINS;
			else if (strcasecmp(tg, "matches") == 0)
				t->m.mtype = MT_MATCHES;
			else if (strcasecmp(tg, "regex") == 0) {
				if (!(p->r->caps & CAP_REGEX)) {
					perr(p, a->line, a->col, ":regex needs "
					    "require \"regex\"");
					return -1;
				}
				t->m.mtype = MT_REGEX;
			} else {
				static const char *ops[] = { "gt", "ge", "lt",
				    "le", "eq", "ne" };
				size_t	 k;

				if (!(p->r->caps & CAP_RELATIONAL)) {
					perr(p, a->line, a->col, ":%s needs require "
					    "\"relational\"", tg);
					return -1;
				}
				t->m.mtype = strcasecmp(tg, "value") == 0 ?
				    MT_VALUE : MT_COUNT;
				if (take_string(p, g, &i, tg, &s) == -1)
					return -1;
				for (k = 0; k < 6; k++)
					if (strcasecmp(s.s, ops[k]) == 0)
						break;
				if (k == 6 || s.segs != NULL) {
					perr(p, a->line, a->col, "unknown relational "
					    "operator '%s' (gt ge lt le eq ne)", s.s);
					sieve_str_free(&s);
					return -1;
				}
				t->m.rel = (int)k;
				sieve_str_free(&s);
			}
			continue;
		}
		if ((allow & ALLOW_APART) && (strcasecmp(tg, "all") == 0 ||
		    strcasecmp(tg, "localpart") == 0 ||
		    strcasecmp(tg, "domain") == 0)) {
			if (have_ap++) {
				perr(p, a->line, a->col, "%s: more than one "
				    "address part", test);
				return -1;
			}
			t->apart = strcasecmp(tg, "all") == 0 ? AP_ALL :
			    strcasecmp(tg, "localpart") == 0 ? AP_LOCAL : AP_DOMAIN;
			continue;
		}
		if ((allow & ALLOW_BODYXF) && (strcasecmp(tg, "raw") == 0 ||
		    strcasecmp(tg, "text") == 0 ||
		    strcasecmp(tg, "content") == 0)) {
			if (have_bx++) {
				perr(p, a->line, a->col, "body: more than one "
				    "transform");
				return -1;
			}
			if (strcasecmp(tg, "raw") == 0)
				t->bodyxf = BX_RAW;
			else if (strcasecmp(tg, "text") == 0)
				t->bodyxf = BX_TEXT;
			else {
				t->bodyxf = BX_CONTENT;
				if (i + 1 >= g->n || g->a[i + 1].type != GA_STRS) {
					perr(p, a->line, a->col, ":content needs a "
					    "string list of content types");
					return -1;
				}
				i++;
				t->ctypes = g->a[i].sl;
				memset(&g->a[i].sl, 0, sizeof(g->a[i].sl));
				g->a[i].type = -1;
			}
			continue;
		}
		perr(p, a->line, a->col, "%s: unknown or misplaced tag ':%s'", test, tg);
		return -1;
	}
	if (t->m.cmp == CMP_NUMERIC && (t->m.mtype == MT_CONTAINS ||
	    t->m.mtype == MT_MATCHES || t->m.mtype == MT_REGEX)) {
		perr(p, t->line, t->col, "%s: comparator 'i;ascii-numeric' does "
		    "not support substring or pattern matches", test);
		return -1;
	}
	if (t->bodyxf != BX_RAW && t->kind == T_BODY)
		p->r->uses_body = 1;
	return 0;
}

/* Positional arguments left after the tags: exactly `want` string lists. */
static int
take_positional(struct parser *p, struct gargs *g, struct sv_test *t,
    const char *test, size_t want, struct sv_strlist *a, struct sv_strlist *b)
{
	size_t	 i, got = 0;

	for (i = 0; i < g->n; i++) {
		struct garg *x = &g->a[i];

		if (x->type == -1)
			continue;
		if (x->type != GA_STRS || got >= want) {
			perr(p, x->line, x->col, "%s: unexpected %s argument", test,
			    x->type == GA_NUM ? "number" : "string");
			return -1;
		}
		*(got == 0 ? a : b) = x->sl;
		memset(&x->sl, 0, sizeof(x->sl));
		x->type = -1;
		got++;
	}
	if (got != want) {
		perr(p, t->line, t->col, "%s: needs %zu string argument%s, got %zu",
		    test, want, want == 1 ? "" : "s", got);
		return -1;
	}
	return 0;
}

static int
header_names_ok(struct parser *p, struct sv_test *t, const char *test)
{
	size_t	 i, j;

	for (i = 0; i < t->names.n; i++) {
		struct sv_str *s = &t->names.v[i];

		s->hash = sieve_hash_lower(s->s, s->len);
		if (s->segs != NULL)
			continue;
		if (s->len == 0) {
			perr(p, t->line, t->col, "%s: empty header name", test);
			return -1;
		}
		for (j = 0; j < s->len; j++)
			if ((unsigned char)s->s[j] <= ' ' ||
			    (unsigned char)s->s[j] >= 127 || s->s[j] == ':') {
				perr(p, t->line, t->col, "%s: invalid header name "
				    "'%s'", test, s->s);
				return -1;
			}
	}
	return 0;
}

static int
regex_keys(struct parser *p, struct sv_test *t)
{
	size_t	 i;
	char	 why[256];

	if (t->m.mtype != MT_REGEX)
		return 0;
	t->m.regex_cflags = REG_EXTENDED | (t->m.cmp == CMP_CASEMAP ? REG_ICASE : 0);
	for (i = 0; i < t->keys.n; i++) {
		struct sv_str *k = &t->keys.v[i];

		if (k->segs != NULL)
			continue;	/* compiled at run time */
		if ((k->re = malloc(sizeof(*k->re))) == NULL)
			return -1;
		if (sieve_regex_compile(k->re, k->s, k->len, t->m.cmp,
		    p->r->lim.regex_bytes, why, sizeof(why)) == -1) {
			free(k->re);
			k->re = NULL;
			perr(p, t->line, t->col, "bad regex \"%s\": %s", k->s, why);
			return -1;
		}
	}
	return 0;
}

static const char *ims_field_names[IF_NFIELDS] = {
	"version", "msg_type", "msg_id", "source", "ref_id", "ref_source",
	"prod_id", "delivery", "return_address", "return_kind", "data_type",
	"subtype", "format", "sub_format", "request", "station", "channel",
	"help", "bounce", "smime", "complete", "count"
};

static int
ims_fields(struct parser *p, struct sv_test *t)
{
	size_t	 i, k;

	if ((t->fields = calloc(t->names.n ? t->names.n : 1, sizeof(int))) == NULL)
		return -1;
	for (i = 0; i < t->names.n; i++) {
		t->fields[i] = -1;
		if (t->names.v[i].segs != NULL)
			continue;
		for (k = 0; k < IF_NFIELDS; k++)
			if (strcasecmp(t->names.v[i].s, ims_field_names[k]) == 0)
				t->fields[i] = (int)k;
		if (t->fields[i] == -1) {
			perr(p, t->line, t->col, "ims: unknown field '%s'",
			    t->names.v[i].s);
			return -1;
		}
	}
	return 0;
}

/* The field number of a name, for names built at run time; -1 if none. */
int
sieve_ims_field(const char *s, size_t len)
{
	size_t	 k;

	for (k = 0; k < IF_NFIELDS; k++)
		if (strlen(ims_field_names[k]) == len &&
		    strncasecmp(s, ims_field_names[k], len) == 0)
			return (int)k;
	return -1;
}

static int
need_cap(struct parser *p, const struct sv_tok *t, unsigned cap,
    const char *what, const char *ext)
{
	if (p->r->caps & cap)
		return 0;
	perr(p, t->line, t->col, "%s needs require \"%s\"", what, ext);
	return -1;
}

static int
parse_testlist(struct parser *p, struct sv_test *t, size_t depth)
{
	const struct sv_tok *tk = next(p);

	if (tk->type != TK_LPAREN) {
		perr(p, tk->line, tk->col, "expected '(' and a test list, found %s",
		    tok_what(tk));
		return -1;
	}
	for (;;) {
		struct sv_test *k, **nk;

		if ((k = parse_test(p, depth + 1)) == NULL)
			return -1;
		if ((nk = grow(t->kids, t->nkids, sizeof(*nk))) == NULL) {
			test_free(k);
			return -1;
		}
		t->kids = nk;
		nk[t->nkids++] = k;
		tk = next(p);
		if (tk->type == TK_RPAREN)
			return 0;
		if (tk->type != TK_COMMA) {
			perr(p, tk->line, tk->col, "expected ',' or ')' in test "
			    "list, found %s", tok_what(tk));
			return -1;
		}
	}
}

static int
no_args(struct parser *p, struct gargs *g, const char *what)
{
	if (g->n == 0)
		return 0;
	perr(p, g->a[0].line, g->a[0].col, "%s takes no arguments", what);
	return -1;
}

static struct sv_test *
parse_test(struct parser *p, size_t depth)
{
	const struct sv_tok *tk = next(p);
	struct sv_test *t;
	struct gargs g;
	const char *id;

	if (tk->type != TK_ID) {
		perr(p, tk->line, tk->col, "expected a test, found %s", tok_what(tk));
		return NULL;
	}
	if (depth > p->r->lim.nesting) {
		perr(p, tk->line, tk->col, "tests nested deeper than nesting "
		    "limit %zu", p->r->lim.nesting);
		return NULL;
	}
	if ((t = calloc(1, sizeof(*t))) == NULL)
		return NULL;
	t->line = tk->line;
	t->col = tk->col;
	id = tk->s;
	if (parse_args(p, &g) == -1)
		goto fail;

	if (strcasecmp(id, "allof") == 0 || strcasecmp(id, "anyof") == 0) {
		t->kind = (tolower((unsigned char)id[1]) == 'l') ? T_ALLOF : T_ANYOF;
		if (no_args(p, &g, id) == -1 || parse_testlist(p, t, depth) == -1)
			goto fail;
	} else if (strcasecmp(id, "not") == 0) {
		struct sv_test *k;

		t->kind = T_NOT;
		if (no_args(p, &g, "not") == -1)
			goto fail;
		if ((k = parse_test(p, depth + 1)) == NULL)
			goto fail;
		if ((t->kids = malloc(sizeof(*t->kids))) == NULL) {
			test_free(k);
			goto fail;
		}
		t->kids[0] = k;
		t->nkids = 1;
	} else if (strcasecmp(id, "true") == 0 || strcasecmp(id, "false") == 0) {
		t->kind = strcasecmp(id, "true") == 0 ? T_TRUE : T_FALSE;
		if (no_args(p, &g, id) == -1)
			goto fail;
	} else if (strcasecmp(id, "header") == 0) {
		t->kind = T_HEADER;
		if (take_tags(p, &g, t, ALLOW_CMP | ALLOW_MATCH, "header") == -1 ||
		    take_positional(p, &g, t, "header", 2, &t->names, &t->keys) == -1 ||
		    header_names_ok(p, t, "header") == -1 || regex_keys(p, t) == -1)
			goto fail;
	} else if (strcasecmp(id, "address") == 0) {
		t->kind = T_ADDRESS;
		if (take_tags(p, &g, t, ALLOW_CMP | ALLOW_MATCH | ALLOW_APART,
		    "address") == -1 ||
		    take_positional(p, &g, t, "address", 2, &t->names, &t->keys) == -1 ||
		    header_names_ok(p, t, "address") == -1 || regex_keys(p, t) == -1)
			goto fail;
	} else if (strcasecmp(id, "envelope") == 0) {
		size_t	 i;

		t->kind = T_ENVELOPE;
		if (need_cap(p, tk, CAP_ENVELOPE, "envelope", "envelope") == -1 ||
		    take_tags(p, &g, t, ALLOW_CMP | ALLOW_MATCH | ALLOW_APART,
		    "envelope") == -1 ||
		    take_positional(p, &g, t, "envelope", 2, &t->names, &t->keys) == -1 ||
		    regex_keys(p, t) == -1)
			goto fail;
		for (i = 0; i < t->names.n; i++)
			if (t->names.v[i].segs == NULL &&
			    strcasecmp(t->names.v[i].s, "from") != 0 &&
			    strcasecmp(t->names.v[i].s, "to") != 0) {
				perr(p, t->line, t->col, "envelope: unknown "
				    "envelope part '%s' (from, to)",
				    t->names.v[i].s);
				goto fail;
			}
	} else if (strcasecmp(id, "exists") == 0) {
		t->kind = T_EXISTS;
		if (take_tags(p, &g, t, 0, "exists") == -1 ||
		    take_positional(p, &g, t, "exists", 1, &t->names, NULL) == -1 ||
		    header_names_ok(p, t, "exists") == -1)
			goto fail;
	} else if (strcasecmp(id, "size") == 0) {
		int	 have = 0, have_num = 0;
		size_t	 i;

		t->kind = T_SIZE;
		for (i = 0; i < g.n; i++) {
			struct garg *a = &g.a[i];

			if (a->type == GA_TAG && (strcasecmp(a->tag, "over") == 0 ||
			    strcasecmp(a->tag, "under") == 0) && !have) {
				have = 1;
				t->over = strcasecmp(a->tag, "over") == 0;
			} else if (a->type == GA_NUM && have && !have_num) {
				have_num = 1;
				t->size = a->num;
			} else {
				perr(p, a->line, a->col, "size: expected :over or "
				    ":under and then a number");
				goto fail;
			}
		}
		if (!have_num) {
			perr(p, t->line, t->col, "size: needs :over or :under and "
			    "a number");
			goto fail;
		}
	} else if (strcasecmp(id, "body") == 0) {
		t->kind = T_BODY;
		if (need_cap(p, tk, CAP_BODY, "body", "body") == -1 ||
		    take_tags(p, &g, t, ALLOW_CMP | ALLOW_MATCH | ALLOW_BODYXF,
		    "body") == -1 ||
		    take_positional(p, &g, t, "body", 1, &t->keys, NULL) == -1 ||
		    regex_keys(p, t) == -1)
			goto fail;
	} else if (strcasecmp(id, "string") == 0) {
		t->kind = T_STRING;
		if (need_cap(p, tk, CAP_VARIABLES, "string", "variables") == -1 ||
		    take_tags(p, &g, t, ALLOW_CMP | ALLOW_MATCH, "string") == -1 ||
		    take_positional(p, &g, t, "string", 2, &t->names, &t->keys) == -1 ||
		    regex_keys(p, t) == -1)
			goto fail;
	} else if (strcasecmp(id, "ims") == 0) {
		t->kind = T_IMS;
		if (need_cap(p, tk, CAP_VMINGEST, "ims", "vnd.vmingest") == -1 ||
		    take_tags(p, &g, t, ALLOW_CMP | ALLOW_MATCH, "ims") == -1 ||
		    take_positional(p, &g, t, "ims", 2, &t->names, &t->keys) == -1 ||
		    ims_fields(p, t) == -1 || regex_keys(p, t) == -1)
			goto fail;
	} else {
		perr(p, tk->line, tk->col, "unknown test '%s'", id);
		goto fail;
	}
	gargs_free(&g);
	return t;
fail:
	if (!p->failed)
		perr(p, tk->line, tk->col, "out of memory");
	gargs_free(&g);
	test_free(t);
	return NULL;
}

/* ---- commands ---- */

static int parse_block(struct parser *, struct sv_block *, size_t depth, int top);

static int
end_command(struct parser *p, const char *what)
{
	const struct sv_tok *t = next(p);

	if (t->type == TK_SEMI)
		return 0;
	perr(p, t->line, t->col, "expected ';' after %s, found %s", what,
	    tok_what(t));
	return -1;
}

static int
one_string(struct parser *p, struct gargs *g, const struct sv_tok *tk,
    const char *what, struct sv_str *out)
{
	size_t	 i, got = 0;

	for (i = 0; i < g->n; i++) {
		if (g->a[i].type == -1)
			continue;
		if (g->a[i].type != GA_STRS || g->a[i].sl.n != 1 || got) {
			perr(p, g->a[i].line, g->a[i].col, "%s: expected one "
			    "string", what);
			return -1;
		}
		*out = g->a[i].sl.v[0];
		free(g->a[i].sl.v);
		g->a[i].sl.v = NULL;
		g->a[i].sl.n = 0;
		g->a[i].type = -1;
		got = 1;
	}
	if (!got) {
		perr(p, tk->line, tk->col, "%s: missing string argument", what);
		return -1;
	}
	return 0;
}

static const struct {
	const char *name;
	unsigned cap;
} capabilities[] = {
	{ "fileinto", CAP_FILEINTO },
	{ "copy", CAP_COPY },
	{ "regex", CAP_REGEX },
	{ "variables", CAP_VARIABLES },
	{ "body", CAP_BODY },
	{ "relational", CAP_RELATIONAL },
	{ "envelope", CAP_ENVELOPE },
	{ "comparator-i;ascii-numeric", CAP_NUMERIC },
	{ "comparator-i;octet", 0 },
	{ "comparator-i;ascii-casemap", 0 },
	{ "vnd.vmingest", CAP_VMINGEST },
};

static int
do_require(struct parser *p, struct gargs *g, const struct sv_tok *tk)
{
	size_t	 i, k;

	if (g->n != 1 || g->a[0].type != GA_STRS) {
		perr(p, tk->line, tk->col, "require: expected a string list of "
		    "capabilities");
		return -1;
	}
	for (i = 0; i < g->a[0].sl.n; i++) {
		const char *c = g->a[0].sl.v[i].s;

		for (k = 0; k < sizeof(capabilities) / sizeof(capabilities[0]); k++)
			if (strcmp(c, capabilities[k].name) == 0)
				break;
		if (k == sizeof(capabilities) / sizeof(capabilities[0])) {
			const char *why = "";

			if (strcmp(c, "reject") == 0 || strcmp(c, "ereject") == 0 ||
			    strcmp(c, "vacation") == 0 || strcmp(c, "redirect") == 0)
				why = ": mail leaves this system only as published "
				    "records";
			perr(p, g->a[0].line, g->a[0].col, "require: unsupported "
			    "extension '%s'%s", c, why);
			return -1;
		}
		p->r->caps |= capabilities[k].cap;
	}
	return 0;
}

static struct sv_cmd *
new_cmd(int kind, const struct sv_tok *tk)
{
	struct sv_cmd *c = calloc(1, sizeof(*c));

	if (c != NULL) {
		c->kind = kind;
		c->line = tk->line;
		c->col = tk->col;
	}
	return c;
}

static int
add_branch(struct parser *p, struct sv_cmd *c, struct sv_test *t, size_t depth)
{
	struct sv_branch *nb = grow(c->br, c->nbr, sizeof(*nb));
	const struct sv_tok *tk;

	if (nb == NULL) {
		test_free(t);
		return -1;
	}
	c->br = nb;
	memset(&nb[c->nbr], 0, sizeof(*nb));
	nb[c->nbr].test = t;
	c->nbr++;
	tk = next(p);
	if (tk->type != TK_LBRACE) {
		perr(p, tk->line, tk->col, "expected '{' to open a block, found %s",
		    tok_what(tk));
		return -1;
	}
	if (parse_block(p, &nb[c->nbr - 1].blk, depth + 1, 0) == -1)
		return -1;
	tk = next(p);
	if (tk->type != TK_RBRACE) {
		perr(p, tk->line, tk->col, "expected '}' to close a block, found %s",
		    tok_what(tk));
		return -1;
	}
	return 0;
}

static const char *set_mod_names[] = { "lower", "upper", "lowerfirst",
    "upperfirst", "quotewildcard", "length" };

static struct sv_cmd *
parse_command(struct parser *p, size_t depth, int *seen_other, int top)
{
	const struct sv_tok *tk = next(p);
	struct sv_cmd *c = NULL;
	struct gargs g;
	const char *id = tk->s;

	memset(&g, 0, sizeof(g));
	if (tk->type != TK_ID) {
		perr(p, tk->line, tk->col, "expected a command, found %s",
		    tok_what(tk));
		return NULL;
	}
	if (strcasecmp(id, "require") == 0) {
		if (!top || *seen_other) {
			perr(p, tk->line, tk->col, "require must come before any "
			    "other command");
			return NULL;
		}
		if (parse_args(p, &g) == -1 || do_require(p, &g, tk) == -1 ||
		    end_command(p, "require") == -1)
			goto fail;
		gargs_free(&g);
		return NULL;	/* no node; p->failed says whether it worked */
	}
	*seen_other = 1;
	if (strcasecmp(id, "if") == 0) {
		struct sv_test *t;

		if ((c = new_cmd(C_IF, tk)) == NULL)
			goto fail;
		if ((t = parse_test(p, depth + 1)) == NULL ||
		    add_branch(p, c, t, depth) == -1)
			goto fail;
		for (;;) {
			const struct sv_tok *e = peek(p);

			if (e->type != TK_ID)
				break;
			if (strcasecmp(e->s, "elsif") == 0) {
				next(p);
				if ((t = parse_test(p, depth + 1)) == NULL ||
				    add_branch(p, c, t, depth) == -1)
					goto fail;
			} else if (strcasecmp(e->s, "else") == 0) {
				next(p);
				if (add_branch(p, c, NULL, depth) == -1)
					goto fail;
				break;
			} else
				break;
		}
		return c;
	}
	if (strcasecmp(id, "elsif") == 0 || strcasecmp(id, "else") == 0) {
		perr(p, tk->line, tk->col, "'%s' without a preceding 'if'", id);
		return NULL;
	}
	if (parse_args(p, &g) == -1)
		goto fail;
	if (strcasecmp(id, "stop") == 0 || strcasecmp(id, "keep") == 0 ||
	    strcasecmp(id, "discard") == 0) {
		if ((c = new_cmd(strcasecmp(id, "stop") == 0 ? C_STOP :
		    strcasecmp(id, "keep") == 0 ? C_KEEP : C_DISCARD, tk)) == NULL)
			goto fail;
		if (no_args(p, &g, id) == -1)
			goto fail;
	} else if (strcasecmp(id, "fileinto") == 0) {
		size_t	 i;

		if (need_cap(p, tk, CAP_FILEINTO, "fileinto", "fileinto") == -1 ||
		    (c = new_cmd(C_FILEINTO, tk)) == NULL)
			goto fail;
		for (i = 0; i < g.n; i++) {
			if (g.a[i].type != GA_TAG)
				continue;
			if (strcasecmp(g.a[i].tag, "copy") == 0 && !c->copy) {
				if (!(p->r->caps & CAP_COPY)) {
					perr(p, g.a[i].line, g.a[i].col, ":copy "
					    "needs require \"copy\"");
					goto fail;
				}
				c->copy = 1;
				g.a[i].type = -1;
			} else {
				perr(p, g.a[i].line, g.a[i].col, "fileinto: unknown "
				    "tag ':%s'", g.a[i].tag);
				goto fail;
			}
		}
		if (one_string(p, &g, tk, "fileinto", &c->arg) == -1)
			goto fail;
		if (c->arg.segs == NULL && !sieve_topic_ok(c->arg.s, c->arg.len)) {
			perr(p, tk->line, tk->col, "fileinto: \"%s\" is not a valid "
			    "topic (dot-separated segments of [a-z0-9_-])",
			    c->arg.s);
			goto fail;
		}
	} else if (strcasecmp(id, "set") == 0) {
		struct sv_str name;
		size_t	 i, k;

		if (need_cap(p, tk, CAP_VARIABLES, "set", "variables") == -1 ||
		    (c = new_cmd(C_SET, tk)) == NULL)
			goto fail;
		for (i = 0; i < g.n; i++) {
			if (g.a[i].type != GA_TAG)
				continue;
			for (k = 0; k < 6; k++)
				if (strcasecmp(g.a[i].tag, set_mod_names[k]) == 0)
					break;
			if (k == 6 || (c->mods & (1 << k))) {
				perr(p, g.a[i].line, g.a[i].col, "set: unknown or "
				    "repeated modifier ':%s'", g.a[i].tag);
				goto fail;
			}
			c->mods |= 1 << k;
			g.a[i].type = -1;
		}
		if ((c->mods & SM_LOWER) && (c->mods & SM_UPPER)) {
			perr(p, tk->line, tk->col, "set: :lower and :upper together");
			goto fail;
		}
		if ((c->mods & SM_LOWERFIRST) && (c->mods & SM_UPPERFIRST)) {
			perr(p, tk->line, tk->col, "set: :lowerfirst and "
			    ":upperfirst together");
			goto fail;
		}
		for (i = 0, k = 0; i < g.n; i++)
			if (g.a[i].type != -1)
				k++;
		if (k != 2) {
			perr(p, tk->line, tk->col, "set: needs a name and a value");
			goto fail;
		}
		for (i = 0; g.a[i].type == -1; i++)
			;
		if (g.a[i].type != GA_STRS || g.a[i].sl.n != 1) {
			perr(p, g.a[i].line, g.a[i].col, "set: the name must be "
			    "one string");
			goto fail;
		}
		name = g.a[i].sl.v[0];
		if (name.segs != NULL || name.len == 0 ||
		    isdigit((unsigned char)name.s[0]) ||
		    strspn(name.s, "abcdefghijklmnopqrstuvwxyz"
		    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_") != name.len) {
			perr(p, g.a[i].line, g.a[i].col, "set: invalid variable "
			    "name '%s'", name.s);
			goto fail;
		}
		if (var_index(p, name.s, name.len, &c->var) == -1)
			goto fail;
		g.a[i].type = -1;
		if (one_string(p, &g, tk, "set", &c->arg) == -1)
			goto fail;
	} else if (strcasecmp(id, "quarantine") == 0 ||
	    strcasecmp(id, "label") == 0) {
		if (need_cap(p, tk, CAP_VMINGEST, id, "vnd.vmingest") == -1 ||
		    (c = new_cmd(strcasecmp(id, "label") == 0 ? C_LABEL :
		    C_QUARANTINE, tk)) == NULL ||
		    one_string(p, &g, tk, id, &c->arg) == -1)
			goto fail;
	} else if (strcasecmp(id, "redirect") == 0 ||
	    strcasecmp(id, "reject") == 0 || strcasecmp(id, "ereject") == 0 ||
	    strcasecmp(id, "vacation") == 0) {
		perr(p, tk->line, tk->col, "'%s' is not supported: mail leaves "
		    "this system only as published records", id);
		goto fail;
	} else {
		perr(p, tk->line, tk->col, "unknown command '%s'", id);
		goto fail;
	}
	if (end_command(p, id) == -1)
		goto fail;
	gargs_free(&g);
	return c;
fail:
	if (!p->failed)
		perr(p, tk->line, tk->col, "out of memory");
	gargs_free(&g);
	cmd_free(c);
	return NULL;
}

static int
parse_block(struct parser *p, struct sv_block *b, size_t depth, int top)
{
	int	 seen_other = 0;

	if (depth > p->r->lim.nesting) {
		const struct sv_tok *t = peek(p);

		perr(p, t->line, t->col, "blocks nested deeper than nesting "
		    "limit %zu", p->r->lim.nesting);
		return -1;
	}
	for (;;) {
		const struct sv_tok *t = peek(p);
		struct sv_cmd *c, **nc;

		if (t->type == TK_EOF || t->type == TK_RBRACE)
			return 0;
		c = parse_command(p, depth, &seen_other, top);
		if (p->failed)
			return -1;
		if (c == NULL)
			continue;	/* require */
		if ((nc = grow(b->c, b->n, sizeof(*nc))) == NULL) {
			cmd_free(c);
			return -1;
		}
		b->c = nc;
		nc[b->n++] = c;
	}
}

int
sieve_parse(struct rules *r, const struct sv_toks *ts, char *err, size_t errlen)
{
	struct parser p = { r, ts, 0, err, errlen, 0 };
	const struct sv_tok *t;

	if (parse_block(&p, &r->top, 0, 1) == -1) {
		if (!p.failed)
			perr(&p, peek(&p)->line, peek(&p)->col, "out of memory");
		return -1;
	}
	t = peek(&p);
	if (t->type != TK_EOF) {
		perr(&p, t->line, t->col, "unexpected %s", tok_what(t));
		return -1;
	}
	return 0;
}
