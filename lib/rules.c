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
 * sieve_match.c; the tests in sieve_eval.c; this file runs the commands
 * and builds the RuleResult.
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
#include "util.h"

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
	size_t	 got;
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
	if ((buf = util_read_upto(fd, (size_t)st.st_size, &got)) == NULL) {
		if (errno == ENOMEM)
			snprintf(err, errlen, "%s:0:0: out of memory", path);
		else
			snprintf(err, errlen, "%s:0:0: read: %s", path,
			    strerror(errno));
		close(fd);
		return NULL;
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

/* ---- actions ---- */

static int
count_action(struct sv_ctx *cx, const struct sv_cmd *c)
{
	uint32_t *nl;

	if (++cx->nactions > cx->r->lim.actions) {
		sieve_rt_error(cx, c->line, c->col, "more than %zu actions (actions "
		    "limit)", cx->r->lim.actions);
		return -1;
	}
	nl = realloc(cx->out->fired_lines, (cx->out->n_fired_lines + 1) *
	    sizeof(*nl));
	if (nl == NULL) {
		sieve_rt_error(cx, c->line, c->col, "out of memory");
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

	if (sieve_expand(cx, &c->arg, c->line, c->col, &v, &len) == -1)
		return -1;
	/* modifiers by precedence: case 40, first-letter 30, quote 20, length 10 */
	if ((b = sieve_arena_alloc(cx, 2 * len + 1)) == NULL) {
		sieve_rt_error(cx, c->line, c->col, "out of memory");
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
		char	*q = sieve_arena_alloc(cx, 2 * len + 1);

		if (q == NULL) {
			sieve_rt_error(cx, c->line, c->col, "out of memory");
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
		sieve_rt_error(cx, c->line, c->col, "variable value over string_bytes "
		    "limit %zu", cx->r->lim.string_bytes);
		return -1;
	}
	if (sieve_setvar(&cx->vars[c->var], b, len) == -1) {
		sieve_rt_error(cx, c->line, c->col, "out of memory");
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
					rc = sieve_eval_test(cx, c->br[j].test);
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
			if (sieve_expand(cx, &c->arg, c->line, c->col, &v, &len) == -1)
				return EV_ERR;
			if (!sieve_topic_ok(v, len)) {
				char	 esc[128];

				log_escape(esc, sizeof(esc), v, len);
				sieve_rt_error(cx, c->line, c->col, "fileinto: \"%s\" "
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
			if (sieve_expand(cx, &c->arg, c->line, c->col, &v, &len) == -1 ||
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
			if (sieve_expand(cx, &c->arg, c->line, c->col, &v, &len) == -1 ||
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
