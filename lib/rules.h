/*
 * rules.h - the Sieve rule processor (RFC 5228 and extensions).
 *
 *   rules_compile   parse a script file once into a compiled form
 *   rules_compile_buf  the same from memory (name used in messages)
 *   rules_eval      run it against one record and its raw message
 *   rules_free      release a compiled script (NULL is a no-op)
 *
 * rules_compile() returns NULL on error and writes
 * "file:line:column: what is wrong" (one line per error, like sievec) into
 * err.  rules_eval() fills out (a RuleResult from vmingest__rule_result__init,
 * strings malloc'd per record.h) with actions, topics (fileinto targets),
 * keep, discard, labels, quarantine, fired_lines; returns 0, or -1 when a
 * runtime limit was hit (out->error says which, keep is forced to 1 and
 * no other action is kept, as RFC 5228 2.10.6 asks on error).
 *
 * THREADS: a compiled script is immutable; any number of threads may call
 * rules_eval() on it at once.
 */
#ifndef VMI_RULES_H
#define VMI_RULES_H

#include <stddef.h>

#include "vmingest.pb-c.h"

struct rules;

struct rules_limits {
	size_t	script_bytes;	/* [rules] script_bytes, default 1 MiB */
	size_t	nesting;	/* [rules] nesting, default 32 */
	size_t	actions;	/* [rules] actions, default 64 per message */
	size_t	string_bytes;	/* [rules] string_bytes, default 64 KiB */
	size_t	regex_bytes;	/* [rules] regex_bytes: max pattern, default 1 KiB */
	size_t	match_bytes;	/* [rules] match_bytes: max subject of a match, default 1 MiB */
	/* added (issue 5): glibc regexec() is quadratic or worse on patterns
	 * like "a.*x" (12 s on 64 KiB here), so :regex subjects get their
	 * own, smaller bound.  0 means the default. */
	size_t	regex_subject_bytes; /* [rules] regex_subject_bytes, default 8 KiB */
};

void	rules_limits_default(struct rules_limits *);
struct rules *rules_compile(const char *path, const struct rules_limits *,
	    char *err, size_t errlen);
struct rules *rules_compile_buf(const char *name, const char *src, size_t len,
	    const struct rules_limits *, char *err, size_t errlen);
int	rules_eval(const struct rules *, const Vmingest__Record *rec,
	    const void *raw, size_t rawlen, Vmingest__RuleResult *out);
void	rules_free(struct rules *);

/*
 * Additions (issue 5), not in the original contract:
 *
 * rules_eval_trace() is rules_eval() calling fn once per test evaluated,
 * with the test's script position, its name ("header", "anyof", ...) and
 * its result (1 true, 0 false, -1 error); for `vmingest rules test
 * --trace`.  fn may be NULL.
 * rules_name() is the name given at compile time (borrowed, lives as
 * long as the rules).
 */
typedef void (*rules_trace_fn)(void *arg, unsigned line, unsigned col,
	    const char *test, int result);
int	rules_eval_trace(const struct rules *, const Vmingest__Record *rec,
	    const void *raw, size_t rawlen, Vmingest__RuleResult *out,
	    rules_trace_fn fn, void *arg);
const char *rules_name(const struct rules *);

#endif
