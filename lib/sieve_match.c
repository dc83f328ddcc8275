/*
 * sieve_match.c - comparators and match types (RFC 5228 2.7, RFC 4790,
 * RFC 5231 relational, draft-ietf-sieve-regex, RFC 5229 match variables).
 *
 *   sieve_match_one      does one value match one key (:is :contains
 *                        :matches :regex :value)
 *   sieve_rel_ok         relational compare under a comparator
 *   sieve_regex_compile  regcomp a :regex key, refusing costly patterns
 *
 * Comparators: i;ascii-casemap (ASCII letters folded, other octets as
 * is), i;octet, i;ascii-numeric (leading digits as an unbounded integer,
 * no digits = positive infinity; only equality and ordering).
 *
 * :matches runs the classic one-star backtracking glob: O(len(value) x
 * len(key)) at worst, never exponential.  Wildcards match as little as
 * possible from the left, which fixes the match variables ${1}..${9}.
 *
 * SECURITY: values come from hostile mail, bounded by match_bytes before
 * they get here (the evaluator checks).  POSIX regexec() is the one
 * matcher whose cost we cannot bound tightly; sieve_regex_compile()
 * refuses back-references and repetition bounds over 255, and limits
 * the pattern to regex_bytes (see docs/RULES.md).
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "sieve.h"

static inline unsigned char
fold(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') ? c + 32 : c;
}

static int
eq_casemap(const char *a, size_t alen, const char *b, size_t blen)
{
	size_t	 i;

	if (alen != blen)
		return 0;
	for (i = 0; i < alen; i++)
		if (fold(a[i]) != fold(b[i]))
			return 0;
	return 1;
}

static int
contains_casemap(const char *v, size_t vlen, const char *k, size_t klen)
{
	size_t	 i, j;
	unsigned char f0;

	if (klen == 0)
		return 1;
	if (klen > vlen)
		return 0;
	f0 = fold(k[0]);
	for (i = 0; i + klen <= vlen; i++) {
		if (fold(v[i]) != f0)
			continue;
		for (j = 1; j < klen; j++)
			if (fold(v[i + j]) != fold(k[j]))
				break;
		if (j == klen)
			return 1;
	}
	return 0;
}

/* Digits of an i;ascii-numeric value: *inf = 1 when it has none. */
static void
numeric(const char *s, size_t len, const char **d, size_t *dlen, int *inf)
{
	size_t	 i = 0;

	while (i < len && isdigit((unsigned char)s[i]))
		i++;
	*inf = (i == 0);
	*d = s;
	*dlen = i;
	while (*dlen > 1 && **d == '0')
		(*d)++, (*dlen)--;
}

/* Three-way compare under a comparator. */
static int
compare(int cmp, const char *a, size_t alen, const char *b, size_t blen)
{
	size_t	 i, n = alen < blen ? alen : blen;

	if (cmp == CMP_NUMERIC) {
		const char *da, *db;
		size_t	 la, lb;
		int	 ia, ib, c;

		numeric(a, alen, &da, &la, &ia);
		numeric(b, blen, &db, &lb, &ib);
		if (ia || ib)
			return ia - ib;
		if (la != lb)
			return la < lb ? -1 : 1;
		c = memcmp(da, db, la);
		return c < 0 ? -1 : c > 0;
	}
	for (i = 0; i < n; i++) {
		unsigned char x = a[i], y = b[i];

		if (cmp == CMP_CASEMAP) {
			x = fold(x);
			y = fold(y);
		}
		if (x != y)
			return x < y ? -1 : 1;
	}
	return alen == blen ? 0 : alen < blen ? -1 : 1;
}

int
sieve_rel_ok(int cmp, int rel, const char *val, size_t vlen, const char *key,
    size_t klen)
{
	int	 c = compare(cmp, val, vlen, key, klen);

	switch (rel) {
	case REL_GT: return c > 0;
	case REL_GE: return c >= 0;
	case REL_LT: return c < 0;
	case REL_LE: return c <= 0;
	case REL_EQ: return c == 0;
	case REL_NE: return c != 0;
	}
	return 0;
}

static inline int
ceq(int cmp, unsigned char a, unsigned char b)
{
	return cmp == CMP_CASEMAP ? fold(a) == fold(b) : a == b;
}

/*
 * Glob with '*', '?' and '\' escapes.  On backtrack only the most recent
 * star grows, which is enough for a yes/no answer and gives each earlier
 * wildcard its shortest match.
 */
static int
glob(int cmp, const char *s, size_t n, const char *p, size_t m,
    struct sv_caps *caps)
{
	struct sv_val cap[SV_NMATCH];
	size_t	 si = 0, pi = 0, ci = 0, star_pi = (size_t)-1, star_si = 0,
		 star_ci = 0, i;

	for (;;) {
		if (si >= n) {
			while (pi < m && p[pi] == '*') {
				if (ci < SV_NMATCH - 1) {
					cap[ci + 1].p = s + si;
					cap[ci + 1].len = 0;
				}
				ci++;
				pi++;
			}
			if (pi == m)
				break;
			goto backtrack;
		}
		if (pi < m) {
			char	 c = p[pi];

			if (c == '*') {
				star_pi = pi;
				star_si = si;
				star_ci = ci;
				if (ci < SV_NMATCH - 1) {
					cap[ci + 1].p = s + si;
					cap[ci + 1].len = 0;
				}
				ci++;
				pi++;
				continue;
			}
			if (c == '?') {
				if (ci < SV_NMATCH - 1) {
					cap[ci + 1].p = s + si;
					cap[ci + 1].len = 1;
				}
				ci++;
				pi++;
				si++;
				continue;
			}
			if (c == '\\' && pi + 1 < m) {
				if (ceq(cmp, p[pi + 1], s[si])) {
					pi += 2;
					si++;
					continue;
				}
			} else if (ceq(cmp, c, s[si])) {
				pi++;
				si++;
				continue;
			}
		}
backtrack:
		if (star_pi == (size_t)-1 || star_si >= n)
			return 0;
		star_si++;
		si = star_si;
		pi = star_pi + 1;
		ci = star_ci + 1;
		if (star_ci < SV_NMATCH - 1)
			cap[star_ci + 1].len = star_si - (size_t)(cap[star_ci + 1].p - s);
	}
	if (caps != NULL) {
		caps->v[0].p = s;
		caps->v[0].len = n;
		caps->n = 1 + (ci < SV_NMATCH - 1 ? ci : SV_NMATCH - 1);
		for (i = 1; i < caps->n; i++)
			caps->v[i] = cap[i];
	}
	return 1;
}

int
sieve_match_one(const struct sv_match *m, const char *val, size_t vlen,
    const char *key, size_t klen, const regex_t *re, struct sv_caps *caps)
{
	switch (m->mtype) {
	case MT_IS:
		if (m->cmp == CMP_NUMERIC)
			return compare(CMP_NUMERIC, val, vlen, key, klen) == 0;
		if (m->cmp == CMP_CASEMAP)
			return eq_casemap(val, vlen, key, klen);
		return vlen == klen && memcmp(val, key, vlen) == 0;
	case MT_CONTAINS:
		if (m->cmp == CMP_CASEMAP)
			return contains_casemap(val, vlen, key, klen);
		return klen == 0 || memmem(val, vlen, key, klen) != NULL;
	case MT_MATCHES:
		return glob(m->cmp, val, vlen, key, klen, caps);
	case MT_VALUE:
		return sieve_rel_ok(m->cmp, m->rel, val, vlen, key, klen);
	case MT_REGEX: {
		regmatch_t pm[SV_NMATCH];
		size_t	 i;
		int	 rc;

		if (re == NULL)
			return -1;
		pm[0].rm_so = 0;
		pm[0].rm_eo = (regoff_t)vlen;
		rc = regexec(re, val, SV_NMATCH, pm, REG_STARTEND);
		if (rc == REG_NOMATCH)
			return 0;
		if (rc != 0)
			return -1;
		if (caps != NULL) {
			caps->n = SV_NMATCH;
			for (i = 0; i < SV_NMATCH; i++) {
				if (pm[i].rm_so < 0) {
					caps->v[i].p = "";
					caps->v[i].len = 0;
				} else {
					caps->v[i].p = val + pm[i].rm_so;
					caps->v[i].len = pm[i].rm_eo - pm[i].rm_so;
				}
			}
		}
		return 1;
	}
	}
	return 0;
}

int
sieve_regex_compile(regex_t *re, const char *pat, size_t len, int cmp,
    size_t maxbytes, char *err, size_t errlen)
{
	size_t	 i;
	int	 rc, inclass = 0;

	if (len > maxbytes) {
		snprintf(err, errlen, "pattern of %zu bytes is over regex_bytes "
		    "limit %zu", len, maxbytes);
		return -1;
	}
	if (memchr(pat, '\0', len) != NULL) {
		snprintf(err, errlen, "NUL in pattern");
		return -1;
	}
	for (i = 0; i < len; i++) {
		if (inclass) {
			if (pat[i] == ']' && i > 0 && pat[i - 1] != '[')
				inclass = 0;
			continue;
		}
		if (pat[i] == '[') {
			inclass = 1;
			if (i + 1 < len && pat[i + 1] == '^')
				i++;
			continue;
		}
		if (pat[i] == '\\' && i + 1 < len) {
			if (pat[i + 1] >= '1' && pat[i + 1] <= '9') {
				snprintf(err, errlen, "back-references are not "
				    "allowed (exponential matching)");
				return -1;
			}
			i++;
			continue;
		}
		if (pat[i] == '{') {
			unsigned long v = 0;
			size_t	 j;

			for (j = i + 1; j < len && (isdigit((unsigned char)pat[j]) ||
			    pat[j] == ','); j++) {
				if (pat[j] == ',') {
					v = 0;
					continue;
				}
				v = v * 10 + (pat[j] - '0');
				if (v > 255) {
					snprintf(err, errlen, "repetition bound "
					    "over 255");
					return -1;
				}
			}
		}
	}
	rc = regcomp(re, pat, REG_EXTENDED | (cmp == CMP_CASEMAP ? REG_ICASE : 0));
	if (rc != 0) {
		regerror(rc, re, err, errlen);
		return -1;	/* glibc frees a failed regcomp itself */
	}
	return 0;
}
