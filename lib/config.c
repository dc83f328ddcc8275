/*
 * config.c - load vmingestd.conf with inih into struct config.
 *
 * One table lists every key of the fixed sections: its type, where it
 * lives in struct config, its default (as text, parsed by the same code
 * as the file) and the bounds an operator may set it within.  Defaults
 * are applied first, then the file; [queue NAME] sections are handled
 * apart since their names are the operator's.
 *
 * Error policy: the first error stops the parse; err gets
 * "FILE:LINE: [section] key: reason".  Nothing is half-applied: the
 * caller gets a complete config or NULL.
 *
 * SECURITY: the file is trusted (root/operator-owned) but still bounded:
 * every number has limits, every path is copied, nothing is evaluated.
 */
#include <errno.h>
#include <ctype.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <ini.h>

#include "config.h"
#include "log.h"
#include "util.h"

enum ctype { C_STR, C_BOOL, C_UINT, C_SIZE, C_LIST, C_STR_OPT };

struct ckey {
	const char	*section;
	const char	*key;
	enum ctype	 type;
	size_t		 off;
	const char	*def;
	unsigned long long min, max;
};

#define O(f)	offsetof(struct config, f)
#define KB	1024ULL
#define MB	(1024ULL * KB)
#define GB	(1024ULL * MB)
#define TB	(1024ULL * GB)

static const struct ckey ckeys[] = {
	{ "daemon", "state_dir", C_STR, O(daemon.state_dir), "./var/vmingest", 0, 0 },
	{ "daemon", "user", C_STR_OPT, O(daemon.user), "", 0, 0 },
	{ "daemon", "group", C_STR_OPT, O(daemon.group), "", 0, 0 },
	{ "daemon", "allow_root", C_BOOL, O(daemon.allow_root), "no", 0, 1 },
	{ "daemon", "workers", C_UINT, O(daemon.workers), "0", 0, 64 },
	{ "daemon", "control_socket", C_STR_OPT, O(daemon.control_socket), "", 0, 0 },
	{ "daemon", "watchdog_s", C_UINT, O(daemon.watchdog_s), "0", 0, 3600 },

	{ "store", "path", C_STR_OPT, O(store.path), "", 0, 0 },
	{ "store", "map_size", C_SIZE, O(store.map_size), "8G", 1 * MB, 64 * TB },
	{ "store", "batch_max", C_UINT, O(store.batch_max), "256", 1, 100000 },
	{ "store", "batch_delay_ms", C_UINT, O(store.batch_delay_ms), "2", 0, 10000 },
	{ "store", "rescan_s", C_UINT, O(store.rescan_s), "60", 1, 86400 },
	{ "store", "retain_days", C_UINT, O(store.retain_days), "0", 0, 36500 },
	{ "store", "retain_bytes", C_SIZE, O(store.retain_bytes), "0", 0, 64 * TB },
	{ "store", "retain_raw_days", C_UINT, O(store.retain_raw_days), "0", 0, 36500 },
	{ "store", "min_free_pct", C_UINT, O(store.min_free_pct), "5", 0, 90 },
	{ "store", "inflight", C_UINT, O(store.inflight), "256", 1, 65536 },

	{ "limits", "message_bytes", C_SIZE, O(limits.message_bytes), "50M", 1 * KB, 2 * GB },
	{ "limits", "header_bytes", C_SIZE, O(limits.header_bytes), "100K", 1 * KB, 64 * MB },
	{ "limits", "header_count", C_SIZE, O(limits.header_count), "1000", 1, 1000000 },
	{ "limits", "mime_depth", C_SIZE, O(limits.mime_depth), "100", 1, 10000 },
	{ "limits", "part_count", C_SIZE, O(limits.part_count), "1000", 1, 1000000 },
	{ "limits", "text_bytes", C_SIZE, O(limits.text_bytes), "64K", 0, 64 * MB },
	{ "limits", "record_bytes", C_SIZE, O(limits.record_bytes), "8M", 64 * KB, 1 * GB },
	{ "limits", "ims_messages", C_SIZE, O(limits.ims_messages), "64", 1, 100000 },
	{ "limits", "ims_sections", C_SIZE, O(limits.ims_sections), "1024", 1, 1000000 },
	{ "limits", "ims_line_bytes", C_SIZE, O(limits.ims_line_bytes), "1024", 80, 1 * MB },
	{ "limits", "ims_requests", C_SIZE, O(limits.ims_requests), "1024", 1, 1000000 },
	{ "limits", "ims_stations", C_SIZE, O(limits.ims_stations), "4096", 1, 1000000 },
	{ "limits", "warnings", C_SIZE, O(limits.warnings), "256", 1, 100000 },

	{ "rules", "script_bytes", C_SIZE, O(rules.script_bytes), "1M", 1 * KB, 64 * MB },
	{ "rules", "nesting", C_SIZE, O(rules.nesting), "32", 1, 1000 },
	{ "rules", "actions", C_SIZE, O(rules.actions), "64", 1, 10000 },
	{ "rules", "string_bytes", C_SIZE, O(rules.string_bytes), "64K", 64, 64 * MB },
	{ "rules", "regex_bytes", C_SIZE, O(rules.regex_bytes), "1K", 16, 1 * MB },
	{ "rules", "match_bytes", C_SIZE, O(rules.match_bytes), "1M", 1 * KB, 1 * GB },
	{ "rules", "regex_subject_bytes", C_SIZE, O(rules.regex_subject_bytes), "8K", 256, 1 * MB },

	{ "http", "listen", C_STR, O(http.listen), "127.0.0.1:8425", 0, 0 },
	{ "http", "max_connections", C_UINT, O(http.max_connections), "64", 1, 100000 },
	{ "http", "per_ip", C_UINT, O(http.per_ip), "32", 1, 100000 },
	{ "http", "timeout_s", C_UINT, O(http.timeout_s), "10", 1, 3600 },
	{ "http", "request_bytes", C_SIZE, O(http.request_bytes), "16K", 1 * KB, 1 * MB },
	{ "http", "stall_s", C_UINT, O(http.stall_s), "30", 1, 86400 },

	{ "publish", "endpoint", C_LIST, O(publish.endpoints), "tcp://127.0.0.1:8426", 0, 0 },
	{ "publish", "replay_endpoint", C_STR, O(publish.replay_endpoint), "tcp://127.0.0.1:8427", 0, 0 },
	{ "publish", "heartbeat_ms", C_UINT, O(publish.heartbeat_ms), "1000", 10, 3600000 },
	{ "publish", "sndhwm", C_UINT, O(publish.sndhwm), "10000", 1, 10000000 },
	{ "publish", "replay_batch", C_UINT, O(publish.replay_batch), "256", 1, 100000 },
	{ "publish", "replay_progress_ms", C_UINT, O(publish.replay_progress_ms), "1000", 1, 60000 },
	{ "publish", "curve_secret_key_file", C_STR_OPT, O(publish.curve_secret_key_file), "", 0, 0 },
	{ "publish", "authorized_keys_dir", C_STR_OPT, O(publish.authorized_keys_dir), "", 0, 0 },
	{ "publish", "allow_insecure", C_BOOL, O(publish.allow_insecure), "no", 0, 1 },
};

struct parse {
	struct config	*cf;
	const char	*file;
	char		 err[512];
	struct queue_cfg *q;		/* current [queue NAME] */
	char		 qsection[128];
	FILE		*fp;
	int		 line;		/* line inih is processing */
	int		 errline;	/* line of the first handler error */
};

/*
 * inih reads through this, so the handler knows the current line.  inih
 * hands us a buffer of INI_MAX_LINE bytes and would parse the rest of a
 * longer line as a line of its own (a commented-out key in a long comment
 * would be set, a long path cut): refuse such a line instead.
 */
static char *
reader(char *buf, int n, void *arg)
{
	struct parse *p = arg;
	char	*r = fgets(buf, n, p->fp);
	size_t	 len;

	if (r == NULL)
		return NULL;
	p->line++;
	len = strlen(buf);
	if (len + 1 == (size_t)n && buf[len - 1] != '\n' &&
	    ungetc(getc(p->fp), p->fp) != EOF) {
		if (p->errline == 0) {
			snprintf(p->err, sizeof(p->err), "line longer than %d "
			    "bytes", n - 2);
			p->errline = p->line;
		}
		return NULL;
	}
	return r;
}

int
config_parse_size(const char *s, size_t *out)
{
	unsigned long long v, mul = 1;
	char	*end;

	while (isspace((unsigned char)*s))
		s++;
	if (!isdigit((unsigned char)*s))
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0)
		return -1;
	switch (*end) {
	case 'k': case 'K': mul = KB; end++; break;
	case 'm': case 'M': mul = MB; end++; break;
	case 'g': case 'G': mul = GB; end++; break;
	case 't': case 'T': mul = TB; end++; break;
	default: break;
	}
	if (*end == 'i' || *end == 'B' || *end == 'b')	/* "16MiB", "16MB" */
		end++;
	if (*end == 'B')
		end++;
	if (*end != '\0')
		return -1;
	if (v > SIZE_MAX / mul)
		return -1;
	*out = (size_t)(v * mul);
	return 0;
}

static int
parse_bool(const char *s, int *out)
{
	if (!strcasecmp(s, "yes") || !strcasecmp(s, "true") ||
	    !strcasecmp(s, "on") || !strcmp(s, "1"))
		*out = 1;
	else if (!strcasecmp(s, "no") || !strcasecmp(s, "false") ||
	    !strcasecmp(s, "off") || !strcmp(s, "0"))
		*out = 0;
	else
		return -1;
	return 0;
}

int
config_topic_ok(const char *s)
{
	size_t	 seg = 0;

	if (*s == '\0' || strlen(s) > 255)
		return 0;
	for (; *s; s++) {
		if (*s == '.') {
			if (seg == 0)
				return 0;
			seg = 0;
			continue;
		}
		if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') ||
		    *s == '_' || *s == '-'))
			return 0;
		seg++;
	}
	return seg > 0;
}

/* Apply one value; returns NULL or a static reason. */
static const char *
set_key(struct config *cf, const struct ckey *k, const char *v, char *why, size_t whylen)
{
	char	*base = (char *)cf + k->off;
	size_t	 sz;
	int	 b;

	switch (k->type) {
	case C_STR:
		if (*v == '\0')
			return "empty value";
		/* FALLTHROUGH */
	case C_STR_OPT:
		free(*(char **)base);
		*(char **)base = *v ? xstrdup(v) : NULL;
		return NULL;
	case C_BOOL:
		if (parse_bool(v, &b) == -1)
			return "not a boolean (yes/no)";
		*(int *)base = b;
		return NULL;
	case C_UINT:
	case C_SIZE:
		if (config_parse_size(v, &sz) == -1)
			return k->type == C_UINT ? "not a number" :
			    "not a size (e.g. 64K, 16M, 8G)";
		if (sz < k->min || sz > k->max) {
			snprintf(why, whylen, "%s out of range %llu..%llu",
			    v, k->min, k->max);
			return why;
		}
		if (k->type == C_UINT)
			*(unsigned *)base = (unsigned)sz;
		else
			*(size_t *)base = sz;
		return NULL;
	case C_LIST: {
		/* endpoint list, separated by blanks or commas; replaces */
		char	*copy = xstrdup(v), *tok, *save = NULL;
		size_t	 n = 0, i;

		for (i = 0; i < cf->publish.n_endpoints; i++) {
			free(cf->publish.endpoints[i]);
			cf->publish.endpoints[i] = NULL;
		}
		for (tok = strtok_r(copy, " ,\t", &save); tok != NULL;
		    tok = strtok_r(NULL, " ,\t", &save)) {
			if (n == CONFIG_MAX_ENDPOINTS) {
				free(copy);
				cf->publish.n_endpoints = n;
				return "too many endpoints (max 8)";
			}
			if (strncmp(tok, "tcp://", 6) && strncmp(tok, "ipc://", 6)) {
				free(copy);
				cf->publish.n_endpoints = n;
				return "endpoint must start with tcp:// or ipc://";
			}
			cf->publish.endpoints[n++] = xstrdup(tok);
		}
		free(copy);
		cf->publish.n_endpoints = n;
		/* an empty list would publish every record to no one, silently */
		return n == 0 ? "no endpoint given" : NULL;
	}
	}
	return "bad key type";
}

static int
queue_key(struct parse *p, const char *name, const char *v)
{
	struct queue_cfg *q = p->q;

	if (!strcmp(name, "maildir")) {
		if (*v == '\0') {
			snprintf(p->err, sizeof(p->err), "empty value");
			return 0;
		}
		if (q->maildir != NULL) {
			/* inih merges a repeated [queue NAME] into one section */
			snprintf(p->err, sizeof(p->err), "maildir given twice for "
			    "queue \"%s\" (is the section repeated?)", q->name);
			return 0;
		}
		free(q->maildir);
		q->maildir = xstrdup(v);
	} else if (!strcmp(name, "topic")) {
		if (strcmp(v, "auto") && !config_topic_ok(v)) {
			snprintf(p->err, sizeof(p->err), "\"%s\" is not a topic "
			    "(dot-separated segments of [a-z0-9_-]) or \"auto\"", v);
			return 0;
		}
		free(q->topic);
		q->topic = xstrdup(v);
	} else if (!strcmp(name, "rules")) {
		free(q->rules);
		q->rules = *v ? xstrdup(v) : NULL;
	} else if (!strcmp(name, "keep")) {
		if (!strcmp(v, "none"))
			q->keep = CONFIG_KEEP_NONE;
		else if (!strcmp(v, "cur"))
			q->keep = CONFIG_KEEP_CUR;
		else {
			snprintf(p->err, sizeof(p->err), "must be none or cur");
			return 0;
		}
	} else {
		snprintf(p->err, sizeof(p->err), "unknown key");
		return 0;
	}
	return 1;
}

static int
name_ok(const char *s)
{
	if (*s == '\0' || strlen(s) > 64)
		return 0;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && *s != '_' && *s != '-')
			return 0;
	return 1;
}

static int handler_1(struct parse *, const char *, const char *, const char *);

static int
handler(void *user, const char *section, const char *name, const char *value)
{
	struct parse	*p = user;

	if (p->errline != 0)
		return 0;	/* report the first error only */
	if (handler_1(p, section, name, value))
		return 1;
	p->errline = p->line;
	/* name the section and key in front of the reason */
	{
		char	 why[320];

		snprintf(why, sizeof(why), "%.300s", p->err);
		if (name != NULL)
			snprintf(p->err, sizeof(p->err), "[%.80s] %.80s: %s",
			    section, name, why);
		else
			snprintf(p->err, sizeof(p->err), "[%.80s]: %s", section, why);
	}
	return 0;
}

static int
handler_1(struct parse *p, const char *section, const char *name, const char *value)
{
	struct config	*cf = p->cf;
	const char	*why;
	char		 whybuf[160];
	size_t		 i;

	if (!strncmp(section, "queue ", 6) || !strcmp(section, "queue")) {
		const char *qn = section + (section[5] ? 6 : 5);

		while (*qn == ' ')
			qn++;
		if (p->q == NULL || strcmp(p->qsection, section)) {
			if (!name_ok(qn)) {
				snprintf(p->err, sizeof(p->err), "queue name \"%s\" "
				    "must be 1-64 of [A-Za-z0-9_-]", qn);
				return 0;
			}
			if (config_queue(cf, qn) != NULL) {
				snprintf(p->err, sizeof(p->err),
				    "queue \"%s\" defined twice", qn);
				return 0;
			}
			if (cf->n_queues == CONFIG_MAX_QUEUES) {
				snprintf(p->err, sizeof(p->err), "too many queues");
				return 0;
			}
			p->q = &cf->queues[cf->n_queues++];
			memset(p->q, 0, sizeof(*p->q));
			p->q->name = xstrdup(qn);
			p->q->topic = xstrdup("auto");
			snprintf(p->qsection, sizeof(p->qsection), "%s", section);
		}
		if (name == NULL)
			return 1;
		return queue_key(p, name, value);
	}
	p->q = NULL;
	for (i = 0; i < sizeof(ckeys) / sizeof(ckeys[0]); i++) {
		if (strcmp(ckeys[i].section, section))
			continue;
		if (name == NULL)
			return 1;
		if (strcmp(ckeys[i].key, name))
			continue;
		why = set_key(cf, &ckeys[i], value, whybuf, sizeof(whybuf));
		if (why != NULL) {
			snprintf(p->err, sizeof(p->err), "%s", why);
			return 0;
		}
		return 1;
	}
	for (i = 0; i < sizeof(ckeys) / sizeof(ckeys[0]); i++)
		if (!strcmp(ckeys[i].section, section))
			break;
	if (i == sizeof(ckeys) / sizeof(ckeys[0]))
		snprintf(p->err, sizeof(p->err), "unknown section");
	else
		snprintf(p->err, sizeof(p->err), "unknown key");
	return 0;
}

/* Two maildir settings that name one directory (same path, or the same
 * directory once resolved if both exist). */
static int
same_dir(const char *a, const char *b)
{
	char	*ra, *rb;
	size_t	 la = strlen(a), lb = strlen(b);
	int	 same;

	ra = realpath(a, NULL);
	rb = realpath(b, NULL);
	if (ra != NULL && rb != NULL)
		same = strcmp(ra, rb) == 0;
	else {
		while (la > 1 && a[la - 1] == '/')
			la--;
		while (lb > 1 && b[lb - 1] == '/')
			lb--;
		same = la == lb && memcmp(a, b, la) == 0;
	}
	free(ra);
	free(rb);
	return same;
}

static char *
join(const char *dir, const char *file)
{
	size_t	 n = strlen(dir) + strlen(file) + 2;
	char	*s = malloc(n);

	if (s == NULL)
		log_fatal("malloc");
	snprintf(s, n, "%s/%s", dir, file);
	return s;
}

struct config *
config_load(const char *path, char *err, size_t errlen)
{
	struct config	*cf;
	struct parse	 p;
	char		 why[160];
	size_t		 i;
	int		 line;
	FILE		*f;

	if ((cf = calloc(1, sizeof(*cf))) == NULL)
		log_fatal("calloc");
	for (i = 0; i < sizeof(ckeys) / sizeof(ckeys[0]); i++)
		if (set_key(cf, &ckeys[i], ckeys[i].def, why, sizeof(why)) != NULL)
			log_panic("config: bad default for %s.%s", ckeys[i].section,
			    ckeys[i].key);

	memset(&p, 0, sizeof(p));
	p.cf = cf;
	p.file = path;
	if (path != NULL) {
		cf->path = xstrdup(path);
		if ((f = fopen(path, "r")) == NULL) {
			snprintf(err, errlen, "%s: %s", path, strerror(errno));
			config_free(cf);
			return NULL;
		}
		p.fp = f;
		line = ini_parse_stream(reader, &p, handler, &p);
		fclose(f);
		if (line != 0 || p.errline != 0) {
			if (line == -2)
				log_fatal("config: out of memory");
			if (p.errline == 0 || (line > 0 && line < p.errline)) {
				snprintf(p.err, sizeof(p.err), "syntax error");
				p.errline = line;
			}
			snprintf(err, errlen, "%s:%d: %s", path, p.errline, p.err);
			config_free(cf);
			return NULL;
		}
	} else {
		/* embedded default: one queue on ./var/maildir */
		struct queue_cfg *q = &cf->queues[cf->n_queues++];

		q->name = xstrdup("default");
		q->maildir = xstrdup("./var/maildir");
		q->topic = xstrdup("auto");
		/* the embedded default is for a local try-out (./var): it runs
		 * as whoever starts it, root included */
		cf->daemon.allow_root = 1;
	}

	/* derived defaults and cross-key checks */
	if (cf->store.path == NULL)
		cf->store.path = join(cf->daemon.state_dir, "store");
	if (cf->daemon.control_socket == NULL)
		cf->daemon.control_socket = join(cf->daemon.state_dir, "control.sock");
	if (cf->n_queues == 0) {
		snprintf(err, errlen, "%s: no [queue NAME] section: nothing to "
		    "ingest", path ? path : "(default)");
		config_free(cf);
		return NULL;
	}
	for (i = 0; i < cf->n_queues; i++) {
		if (cf->queues[i].maildir == NULL) {
			snprintf(err, errlen, "%s: [queue %s] maildir: missing",
			    path ? path : "(default)", cf->queues[i].name);
			config_free(cf);
			return NULL;
		}
	}
	/*
	 * Two queues on one Maildir would both read every file: two records
	 * (the second a DUPLICATE) for one delivery, and each queue unlinking
	 * under the other.
	 */
	for (i = 0; i < cf->n_queues; i++) {
		size_t	 j;

		for (j = i + 1; j < cf->n_queues; j++) {
			if (!same_dir(cf->queues[i].maildir, cf->queues[j].maildir))
				continue;
			snprintf(err, errlen, "%s: queues %s and %s share maildir %s",
			    path ? path : "(default)", cf->queues[i].name,
			    cf->queues[j].name, cf->queues[j].maildir);
			config_free(cf);
			return NULL;
		}
	}
	if ((cf->publish.curve_secret_key_file == NULL) !=
	    (cf->publish.authorized_keys_dir == NULL)) {
		snprintf(err, errlen, "%s: [publish] curve_secret_key_file and "
		    "authorized_keys_dir go together", path ? path : "(default)");
		config_free(cf);
		return NULL;
	}
	return cf;
}

void
config_free(struct config *cf)
{
	size_t	 i;

	if (cf == NULL)
		return;
	for (i = 0; i < sizeof(ckeys) / sizeof(ckeys[0]); i++) {
		char *base = (char *)cf + ckeys[i].off;

		if (ckeys[i].type == C_STR || ckeys[i].type == C_STR_OPT)
			free(*(char **)base);
	}
	for (i = 0; i < cf->publish.n_endpoints; i++)
		free(cf->publish.endpoints[i]);
	for (i = 0; i < cf->n_queues; i++) {
		free(cf->queues[i].name);
		free(cf->queues[i].maildir);
		free(cf->queues[i].topic);
		free(cf->queues[i].rules);
	}
	free(cf->path);
	free(cf);
}

const struct queue_cfg *
config_queue(const struct config *cf, const char *name)
{
	size_t	 i;

	for (i = 0; i < cf->n_queues; i++)
		if (!strcmp(cf->queues[i].name, name))
			return &cf->queues[i];
	return NULL;
}

void
config_dump(const struct config *cf, FILE *fp)
{
	const char *sec = "";
	size_t	 i, j;

	for (i = 0; i < sizeof(ckeys) / sizeof(ckeys[0]); i++) {
		const struct ckey *k = &ckeys[i];
		const char *base = (const char *)cf + k->off;

		if (strcmp(sec, k->section)) {
			fprintf(fp, "%s[%s]\n", i ? "\n" : "", k->section);
			sec = k->section;
		}
		switch (k->type) {
		case C_STR:
		case C_STR_OPT:
			fprintf(fp, "%s = %s\n", k->key,
			    *(char * const *)base ? *(char * const *)base : "");
			break;
		case C_BOOL:
			fprintf(fp, "%s = %s\n", k->key,
			    *(const int *)base ? "yes" : "no");
			break;
		case C_UINT:
			fprintf(fp, "%s = %u\n", k->key, *(const unsigned *)base);
			break;
		case C_SIZE:
			fprintf(fp, "%s = %zu\n", k->key, *(const size_t *)base);
			break;
		case C_LIST:
			fprintf(fp, "%s =", k->key);
			for (j = 0; j < cf->publish.n_endpoints; j++)
				fprintf(fp, " %s", cf->publish.endpoints[j]);
			fprintf(fp, "\n");
			break;
		}
	}
	for (i = 0; i < cf->n_queues; i++) {
		const struct queue_cfg *q = &cf->queues[i];

		fprintf(fp, "\n[queue %s]\nmaildir = %s\ntopic = %s\nrules = %s\n"
		    "keep = %s\n", q->name, q->maildir, q->topic,
		    q->rules ? q->rules : "", q->keep ? "cur" : "none");
	}
}
