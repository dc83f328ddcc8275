/*
 * sieve_lex.c - the Sieve lexer (RFC 5228 section 8.1).
 *
 *   sieve_lex        script bytes -> array of tokens with line:column
 *   sieve_toks_free  release the tokens
 *
 * Identifiers, tags, numbers with K/M/G, quoted strings with \" and \\,
 * multi-line "text:" strings with dot-stuffing, '#' and bracket comments.
 * CRLF and bare LF both end a line.  Multi-line string lines end in CRLF
 * whatever the script used, as the RFC defines them.
 *
 * ERRORS: the first error stops the lexer; err gets "name:line:col: text".
 * SECURITY: the script is operator input; every string is bounded by
 * limits->string_bytes, the script by limits->script_bytes.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sieve.h"

struct lexer {
	const char *name;
	const char *p, *end;
	unsigned line, col;
	const struct rules_limits *lim;
	char	*err;
	size_t	 errlen;
};

static void __attribute__((format(printf, 4, 5)))
lex_error(struct lexer *lx, unsigned line, unsigned col, const char *fmt, ...)
{
	va_list	 ap;
	int	 n;

	n = snprintf(lx->err, lx->errlen, "%s:%u:%u: ", lx->name, line, col);
	if (n < 0 || (size_t)n >= lx->errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(lx->err + n, lx->errlen - n, fmt, ap);
	va_end(ap);
}

static void
advance(struct lexer *lx)
{
	if (*lx->p == '\n') {
		lx->line++;
		lx->col = 1;
	} else
		lx->col++;
	lx->p++;
}

static int
push_tok(struct sv_toks *ts, const struct sv_tok *t)
{
	if (ts->n == ts->cap) {
		size_t	 ncap = ts->cap ? ts->cap * 2 : 64;
		struct sv_tok *nt = realloc(ts->t, ncap * sizeof(*nt));

		if (nt == NULL)
			return -1;
		ts->t = nt;
		ts->cap = ncap;
	}
	ts->t[ts->n++] = *t;
	return 0;
}

/* A growable string, bounded by limits->string_bytes. */
struct sbuf {
	char	*s;
	size_t	 len, cap;
};

static int
sbuf_add(struct sbuf *b, char c, size_t max)
{
	if (b->len >= max)
		return -1;
	if (b->len + 1 >= b->cap) {
		size_t	 ncap = b->cap ? b->cap * 2 : 32;
		char	*ns = realloc(b->s, ncap);

		if (ns == NULL)
			return -1;
		b->s = ns;
		b->cap = ncap;
	}
	b->s[b->len++] = c;
	b->s[b->len] = '\0';
	return 0;
}

static int
lex_quoted(struct lexer *lx, struct sv_tok *t)
{
	struct sbuf b = { NULL, 0, 0 };

	advance(lx);			/* the opening quote */
	for (;;) {
		char	 c;

		if (lx->p >= lx->end) {
			lex_error(lx, t->line, t->col, "unterminated string");
			goto fail;
		}
		c = *lx->p;
		if (c == '"') {
			advance(lx);
			break;
		}
		if (c == '\\') {
			advance(lx);
			if (lx->p >= lx->end)
				continue;
			c = *lx->p;
		}
		if (c == '\r' && lx->p + 1 < lx->end && lx->p[1] == '\n') {
			advance(lx);
			continue;	/* CRLF and LF both become CRLF below */
		}
		if (c == '\n' && sbuf_add(&b, '\r', lx->lim->string_bytes) == -1)
			goto toolong;
		if (sbuf_add(&b, c, lx->lim->string_bytes) == -1)
			goto toolong;
		advance(lx);
	}
	if (b.s == NULL && (b.s = strdup("")) == NULL)
		goto fail;
	t->type = TK_STR;
	t->s = b.s;
	t->len = b.len;
	return 0;
toolong:
	lex_error(lx, t->line, t->col, "string longer than string_bytes limit %zu",
	    lx->lim->string_bytes);
fail:
	free(b.s);
	return -1;
}

/* "text:" already consumed up to and including the colon. */
static int
lex_multiline(struct lexer *lx, struct sv_tok *t)
{
	struct sbuf b = { NULL, 0, 0 };
	size_t	 max = lx->lim->string_bytes;

	while (lx->p < lx->end && (*lx->p == ' ' || *lx->p == '\t'))
		advance(lx);
	if (lx->p < lx->end && *lx->p == '#') {
		while (lx->p < lx->end && *lx->p != '\n')
			advance(lx);
	} else if (lx->p < lx->end && *lx->p == '\r')
		advance(lx);
	if (lx->p >= lx->end || *lx->p != '\n') {
		lex_error(lx, lx->line, lx->col,
		    "expected end of line after 'text:'");
		return -1;
	}
	advance(lx);
	for (;;) {
		const char *ls = lx->p, *le;
		size_t	 n;

		if (lx->p >= lx->end) {
			lex_error(lx, t->line, t->col,
			    "unterminated multi-line string (no '.' line)");
			free(b.s);
			return -1;
		}
		le = memchr(ls, '\n', lx->end - ls);
		if (le == NULL)
			le = lx->end;
		n = le - ls;
		if (n > 0 && ls[n - 1] == '\r')
			n--;
		if (n == 1 && ls[0] == '.') {
			while (lx->p < le)
				advance(lx);
			if (lx->p < lx->end)
				advance(lx);
			break;
		}
		if (n > 0 && ls[0] == '.')
			ls++, n--;	/* dot-stuffing */
		while (n-- > 0)
			if (sbuf_add(&b, *ls++, max) == -1)
				goto toolong;
		if (sbuf_add(&b, '\r', max) == -1 || sbuf_add(&b, '\n', max) == -1)
			goto toolong;
		while (lx->p < le)
			advance(lx);
		if (lx->p < lx->end)
			advance(lx);
	}
	if (b.s == NULL && (b.s = strdup("")) == NULL)
		return -1;
	t->type = TK_STR;
	t->s = b.s;
	t->len = b.len;
	return 0;
toolong:
	lex_error(lx, t->line, t->col, "string longer than string_bytes limit %zu",
	    max);
	free(b.s);
	return -1;
}

static int
lex_number(struct lexer *lx, struct sv_tok *t)
{
	uint64_t v = 0, mul = 1;

	while (lx->p < lx->end && isdigit((unsigned char)*lx->p)) {
		unsigned d = *lx->p - '0';

		if (v > (UINT64_MAX - d) / 10) {
			lex_error(lx, t->line, t->col, "number too large");
			return -1;
		}
		v = v * 10 + d;
		advance(lx);
	}
	if (lx->p < lx->end) {
		switch (*lx->p) {
		case 'k': case 'K': mul = 1024; break;
		case 'm': case 'M': mul = 1024 * 1024; break;
		case 'g': case 'G': mul = 1024 * 1024 * 1024; break;
		}
		if (mul != 1)
			advance(lx);
	}
	if (v > UINT64_MAX / mul) {
		lex_error(lx, t->line, t->col, "number too large");
		return -1;
	}
	if (lx->p < lx->end && (isalnum((unsigned char)*lx->p) || *lx->p == '_')) {
		lex_error(lx, lx->line, lx->col, "bad character '%c' in number",
		    *lx->p);
		return -1;
	}
	t->type = TK_NUM;
	t->num = v * mul;
	return 0;
}

static int
ident_char_ok(char c, int first)
{
	return isalpha((unsigned char)c) || c == '_' ||
	    (!first && isdigit((unsigned char)c));
}

int
sieve_lex(const char *name, const char *src, size_t len,
    const struct rules_limits *lim, struct sv_toks *out, char *err,
    size_t errlen)
{
	struct lexer lx = { name, src, src + len, 1, 1, lim, err, errlen };
	struct sv_tok t;

	memset(out, 0, sizeof(*out));
	if (len > lim->script_bytes) {
		lex_error(&lx, 1, 1, "script is %zu bytes, over script_bytes limit %zu",
		    len, lim->script_bytes);
		return -1;
	}
	if (memchr(src, '\0', len) != NULL) {
		const char *z = memchr(src, '\0', len);

		while (lx.p < z)
			advance(&lx);
		lex_error(&lx, lx.line, lx.col, "NUL byte in script");
		return -1;
	}
	for (;;) {
		char	 c;

		memset(&t, 0, sizeof(t));
		/* whitespace and comments */
		while (lx.p < lx.end) {
			c = *lx.p;
			if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
				advance(&lx);
			} else if (c == '#') {
				while (lx.p < lx.end && *lx.p != '\n')
					advance(&lx);
			} else if (c == '/' && lx.p + 1 < lx.end && lx.p[1] == '*') {
				unsigned l = lx.line, cc = lx.col;

				advance(&lx);
				advance(&lx);
				while (lx.p + 1 < lx.end &&
				    !(lx.p[0] == '*' && lx.p[1] == '/'))
					advance(&lx);
				if (lx.p + 1 >= lx.end) {
					lex_error(&lx, l, cc, "unterminated comment");
					goto fail;
				}
				advance(&lx);
				advance(&lx);
			} else
				break;
		}
		t.line = lx.line;
		t.col = lx.col;
		if (lx.p >= lx.end) {
			t.type = TK_EOF;
			if (push_tok(out, &t) == -1)
				goto nomem;
			return 0;
		}
		c = *lx.p;
		switch (c) {
		case '[': t.type = TK_LBRACKET; advance(&lx); break;
		case ']': t.type = TK_RBRACKET; advance(&lx); break;
		case '(': t.type = TK_LPAREN; advance(&lx); break;
		case ')': t.type = TK_RPAREN; advance(&lx); break;
		case ',': t.type = TK_COMMA; advance(&lx); break;
		case ';': t.type = TK_SEMI; advance(&lx); break;
		case '{': t.type = TK_LBRACE; advance(&lx); break;
		case '}': t.type = TK_RBRACE; advance(&lx); break;
		case '"':
			if (lex_quoted(&lx, &t) == -1)
				goto fail;
			break;
		default:
			if (isdigit((unsigned char)c)) {
				if (lex_number(&lx, &t) == -1)
					goto fail;
			} else if (c == ':' || ident_char_ok(c, 1)) {
				const char *s;
				int	 tag = (c == ':');

				if (tag)
					advance(&lx);
				s = lx.p;
				if (lx.p >= lx.end || !ident_char_ok(*lx.p, 1)) {
					lex_error(&lx, t.line, t.col,
					    "expected a tag name after ':'");
					goto fail;
				}
				while (lx.p < lx.end && ident_char_ok(*lx.p, 0))
					advance(&lx);
				if (!tag && lx.p - s == 4 &&
				    strncasecmp(s, "text", 4) == 0 &&
				    lx.p < lx.end && *lx.p == ':') {
					advance(&lx);
					if (lex_multiline(&lx, &t) == -1)
						goto fail;
					break;
				}
				t.type = tag ? TK_TAG : TK_ID;
				t.len = lx.p - s;
				if ((t.s = strndup(s, t.len)) == NULL)
					goto nomem;
			} else {
				lex_error(&lx, t.line, t.col,
				    "unexpected character '%s%c'",
				    isprint((unsigned char)c) ? "" : "\\x",
				    isprint((unsigned char)c) ? c : '?');
				goto fail;
			}
		}
		if (push_tok(out, &t) == -1) {
			free(t.s);
			goto nomem;
		}
	}
nomem:
	lex_error(&lx, lx.line, lx.col, "out of memory");
fail:
	sieve_toks_free(out);
	return -1;
}

void
sieve_toks_free(struct sv_toks *ts)
{
	size_t	 i;

	for (i = 0; i < ts->n; i++)
		free(ts->t[i].s);
	free(ts->t);
	memset(ts, 0, sizeof(*ts));
}
