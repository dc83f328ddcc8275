/*
 * ims.c - find and parse IMS2.0 / IMS1.0 / GSE2.x messages in decoded
 * mail text and describe them on the record (Record.ims).
 *
 * This file is the scanner (lines, tokens, BEGIN..STOP), the envelope
 * and the dispatch of body lines; lib/ims_body.c reads request bodies
 * and data sections, lib/ims_finish.c the whole-mail facts and the
 * topic.  lib/ims_int.h is their shared, private context.
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

#include "ims_int.h"
#include "log.h"
#include "record.h"

/* ---- small helpers ---- */

void *
ims_xmalloc(size_t n)
{
	void	*p = malloc(n ? n : 1);

	if (p == NULL)
		log_fatal("malloc %zu", n);
	return p;
}

char *
ims_tok_dup(const struct tok *t)
{
	return rec_strndup(t->p, t->n);
}

char *
ims_upper_dup(const char *p, size_t n)
{
	char	*s = rec_strndup(p, n);
	char	*q;

	for (q = s; *q != '\0'; q++)
		*q = (char)toupper((unsigned char)*q);
	return s;
}

/* Escaped, shortened copy of hostile text for a warning. */
const char *
ims_quote(char *dst, size_t dstsz, const char *p, size_t n)
{
	return log_escape(dst, dstsz, p, n > QUOTE_MAX ? QUOTE_MAX : n);
}

void
ims_set_str(char **field, char *val)
{
	if (*field != NULL && *field != protobuf_c_empty_string)
		free(*field);
	*field = val;
}

/* A warning on the current message, prefixed with the line number. */
void
ims_warn(struct ims_ctx *c, const char *fmt, ...)
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
struct tok
ims_rest_after(const struct ims_ctx *c, size_t i)
{
	struct tok r;
	const char *e = c->buf + c->blen;

	r.p = c->tk[i].p + c->tk[i].n;
	while (r.p < e && blank_ok(*r.p))
		r.p++;
	r.n = (size_t)(e - r.p);
	return r;
}

/* ---- the message ---- */

static const char *const msg_types[] = {
	"REQUEST", "DATA", "SUBSCRIPTION", "COMMAND_REQUEST",
	"COMMAND_RESPONSE", NULL
};

int
ims_word_in(const struct tok *t, const char *const *list)
{
	size_t	 i;

	for (i = 0; list[i] != NULL; i++)
		if (tok_is(t, list[i]))
			return 1;
	return 0;
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
int
ims_colon_pair(const struct tok *t, struct tok *a, struct tok *b)
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
end_message(struct ims_ctx *c, size_t end_off, int complete)
{
	Vmingest__ImsMessage *m = c->m;

	if (c->echo > 0)
		ims_warn(c, "message quoted in a LOG section has no STOP");
	ims_end_section(c, end_off);
	if (m == NULL)
		return;
	m->complete = complete;
	if (!complete)
		ims_warn(c, "missing STOP: message incomplete");
	if (m->msg_type[0] == '\0')
		ims_warn(c, "missing MSG_TYPE");
	if (m->msg_id[0] == '\0')
		ims_warn(c, "missing MSG_ID");
	if (c->reqlike && m->n_requests == 0 && !m->help)
		ims_warn(c, "request message without request lines");
	ims_env_clear(c);
	c->m = NULL;
}

static void
begin_message(struct ims_ctx *c, const struct tok *version)
{
	Vmingest__ImsMessage *m;

	if (c->rec->n_ims >= c->l->ims_messages) {
		size_t	 i;

		/* one record warning, naming the first part cut short */
		for (i = 0; i < c->rec->n_warnings; i++)
			if (strncmp(c->rec->warnings[i], "ims: more than",
			    14) == 0)
				break;
		if (i == c->rec->n_warnings)
			record_warn(c->rec, c->l->warnings,
			    "ims: more than %zu IMS messages (ims_messages), "
			    "part %s line %zu and later not described",
			    c->l->ims_messages, c->path[0] ? c->path : "(top)",
			    c->line_no);
		c->pos = c->len;	/* nothing more to find */
		return;
	}
	m = ims_xmalloc(sizeof(*m));
	vmingest__ims_message__init(m);
	m->version = version != NULL ? ims_tok_dup(version) : rec_strdup("");
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
	char	 q[QUOTE_BUF];

	if (m->msg_type[0] != '\0') {
		ims_warn(c, "second MSG_TYPE line ignored");
		return;
	}
	if (c->ntk < 2) {
		ims_warn(c, "MSG_TYPE without a type");
		return;
	}
	ims_set_str(&m->msg_type, ims_upper_dup(c->tk[1].p, c->tk[1].n));
	if (!ims_word_in(&c->tk[1], msg_types))
		ims_warn(c, "unknown MSG_TYPE \"%s\"",
		    ims_quote(q, sizeof(q), c->tk[1].p, c->tk[1].n));
	c->reqlike = strcmp(m->msg_type, "REQUEST") == 0 ||
	    strcmp(m->msg_type, "SUBSCRIPTION") == 0 ||
	    strcmp(m->msg_type, "COMMAND_REQUEST") == 0;
	if (c->ntk > 2)
		ims_warn(c, "extra fields after MSG_TYPE");
}

static void
line_msg_id(struct ims_ctx *c)
{
	Vmingest__ImsMessage *m = c->m;
	const struct tok *id = &c->tk[1], *src = &c->tk[2];

	if (m->msg_id[0] != '\0') {
		ims_warn(c, "second MSG_ID line ignored");
		return;
	}
	if (c->ntk < 2) {
		ims_warn(c, "MSG_ID without an id");
		return;
	}
	ims_set_str(&m->msg_id, ims_tok_dup(id));
	if (id->n > 20)
		ims_warn(c, "MSG_ID id is %zu characters (at most 20)", id->n);
	if (memchr(id->p, '\\', id->n) != NULL)
		ims_warn(c, "MSG_ID id contains a backslash");
	if (c->ntk >= 3) {
		ims_set_str(&m->source, ims_tok_dup(src));
		if (src->n > 8)
			ims_warn(c, "MSG_ID source is %zu characters "
			    "(at most 8)", src->n);
	}
	if (c->ntk > 3)
		ims_warn(c, "extra fields after MSG_ID");
}

static int
part_number(struct ims_ctx *c, const struct tok *t, const char *what,
    uint32_t *out)
{
	long	 v;

	if (ims_parse_uint(t->p, t->n, 9, &v) == -1 || v == 0) {
		ims_warn(c, "REF_ID %s is not a positive number", what);
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
		ims_warn(c, "second REF_ID line ignored");
		return;
	}
	if (c->ntk < 2) {
		ims_warn(c, "REF_ID without an id");
		return;
	}
	r = ims_xmalloc(sizeof(*r));
	vmingest__ref_id__init(r);
	m->ref_id = r;
	r->id = ims_tok_dup(&c->tk[1]);
	if (i < c->ntk && !tok_is(&c->tk[i], "PART"))
		r->source = ims_tok_dup(&c->tk[i++]);
	if (i < c->ntk && tok_is(&c->tk[i], "PART")) {
		if (i + 1 >= c->ntk) {
			ims_warn(c, "REF_ID PART without a number");
			return;
		}
		if (part_number(c, &c->tk[i + 1], "PART", &r->part) == -1)
			return;
		i += 2;
		if (i < c->ntk && tok_is(&c->tk[i], "OF")) {
			if (i + 1 >= c->ntk) {
				ims_warn(c, "REF_ID OF without a number");
				return;
			}
			if (part_number(c, &c->tk[i + 1], "OF", &r->of) == -1)
				return;
			i += 2;
			if (r->part > r->of)
				ims_warn(c, "REF_ID PART %u OF %u", r->part,
				    r->of);
		}
	}
	if (i < c->ntk)
		ims_warn(c, "extra fields in REF_ID line");
}

static void
line_prod_id(struct ims_ctx *c)
{
	Vmingest__ImsMessage *m = c->m;
	Vmingest__ProdId *p;

	if (m->prod_id != NULL) {
		ims_warn(c, "second PROD_ID line ignored");
		return;
	}
	if (c->ntk < 2) {
		ims_warn(c, "PROD_ID without a product id");
		return;
	}
	p = ims_xmalloc(sizeof(*p));
	vmingest__prod_id__init(p);
	m->prod_id = p;
	p->product = ims_tok_dup(&c->tk[1]);
	if (c->ntk >= 3)
		p->delivery = ims_tok_dup(&c->tk[2]);
	if (c->ntk > 3)
		ims_warn(c, "extra fields in PROD_ID line");
}

static void
line_return(struct ims_ctx *c, Vmingest__ReturnKind kind)
{
	Vmingest__ImsMessage *m = c->m;
	const char *kw = kind == VMINGEST__RETURN_KIND__FTP ? "FTP" : "E-MAIL";
	char	 q[QUOTE_BUF];

	if (c->ntk < 2) {
		ims_warn(c, "%s line without an address", kw);
		return;
	}
	if (m->return_kind != VMINGEST__RETURN_KIND__RETURN_UNSET) {
		ims_warn(c, "second return address (%s) ignored", kw);
		return;
	}
	ims_set_str(&m->return_address, ims_tok_dup(&c->tk[1]));
	m->return_kind = kind;
	if (!address_ok(&c->tk[1]))
		ims_warn(c, "bad %s address \"%s\"", kw,
		    ims_quote(q, sizeof(q), c->tk[1].p, c->tk[1].n));
	/* an AutoDRM does not answer these (IMS-NOTES: loops, bounces) */
	if (c->reqlike && (strcasestr(m->return_address, "AUTODRM") != NULL ||
	    strcasestr(m->return_address, "POSTMASTER") != NULL ||
	    strcasestr(m->return_address, "MAILER-DAEMON") != NULL))
		ims_warn(c, "%s address is a mailer address: no reply", kw);
	if (c->ntk > 2)
		ims_warn(c, "extra fields after %s address", kw);
}

/* ---- dispatch ---- */

static void
line_body(struct ims_ctx *c)
{
	const struct tok *k = &c->tk[0];
	static const char *const names[] = { "", "MSG_TYPE", "MSG_ID",
	    "REF_ID", "PROD_ID" };
	char	 q[QUOTE_BUF];
	int	 rank, kind;

	if ((rank = envelope_rank(k)) != 0) {
		if (c->body)
			ims_warn(c, "%s after the body started", names[rank]);
		else if (rank < c->rank)
			ims_warn(c, "%s line out of order", names[rank]);
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
		ims_line_data_type(c);
		return;
	}
	if (c->reqlike) {
		if ((kind = ims_env_kind(k)) >= 0)
			ims_line_env(c, kind);
		else
			ims_line_request(c);
		return;
	}
	ims_warn(c, "unknown keyword \"%s\"", ims_quote(q, sizeof(q), k->p, k->n));
}

static void
line_inside(struct ims_ctx *c)
{
	const struct tok *k = &c->tk[0];

	if (c->line_over)
		ims_warn(c, "line longer than %zu bytes (ims_line_bytes), cut",
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
			ims_warn(c, "extra fields after STOP");
		end_message(c, c->line_off, 1);
		return;
	}
	if (tok_is(k, "BEGIN") && (!c->in_section ||
	    (c->ntk == 2 && version_ok(&c->tk[1])))) {
		end_message(c, c->line_off, 0);
		begin_message(c, c->ntk >= 2 ? &c->tk[1] : NULL);
		if (c->m != NULL && (c->ntk < 2 || !version_ok(&c->tk[1])))
			ims_warn(c, "bad BEGIN version");
		return;
	}
	if (k->p[0] == '%')
		return;			/* comment (GSE2.1) */
	if (c->in_section) {
		if (tok_is(k, "DATA_TYPE"))
			ims_line_data_type(c);
		else
			ims_line_data(c);
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
			ims_warn(c, "extra fields after BEGIN");
		return;
	}
	/* "Begin forwarded message:" is prose; "BEGIN" + MSG_TYPE is IMS */
	if (next_is_msg_type(c)) {
		begin_message(c, c->ntk >= 2 ? &c->tk[1] : NULL);
		ims_warn(c, "bad BEGIN version");
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
	c.buf = ims_xmalloc(c.cap + 1);
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
		ims_set_str(&c.m->msg_type, rec_strdup("REQUEST"));
		c.m->complete = 1;
		c.line_no = 1;
		ims_warn(&c, "HELP without a message envelope");
		c.m = NULL;
	}
	ims_env_clear(&c);
	ims_sets_free(&c);
	free(c.buf);
}

