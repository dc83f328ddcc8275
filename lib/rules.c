/* rules.c - placeholder until the Sieve engine lands (issue 5). */
#include <stdio.h>
#include "rules.h"

void
rules_limits_default(struct rules_limits *l)
{
	l->script_bytes = 1 << 20;
	l->nesting = 32;
	l->actions = 64;
	l->string_bytes = 64 << 10;
	l->regex_bytes = 1024;
	l->match_bytes = 1 << 20;
}

struct rules *
rules_compile(const char *path, const struct rules_limits *l, char *err, size_t errlen)
{
	snprintf(err, errlen, "%s:1:1: rules engine not built yet", path);
	return NULL;
}

struct rules *
rules_compile_buf(const char *name, const char *src, size_t len,
    const struct rules_limits *l, char *err, size_t errlen)
{
	snprintf(err, errlen, "%s:1:1: rules engine not built yet", name);
	return NULL;
}

int
rules_eval(const struct rules *r, const Vmingest__Record *rec,
    const void *raw, size_t rawlen, Vmingest__RuleResult *out)
{
	return -1;
}

void
rules_free(struct rules *r)
{
}
