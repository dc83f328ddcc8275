/*
 * cmd_rules.c - `vmingest rules check|test`: compile a Sieve script and
 * show what it would do to messages, without a daemon.
 *
 *   cmd_rules   the subcommand (argv[0] == "rules"); returns the exit code
 *
 * `check FILE` compiles and prints the errors as file:line:column.
 * `test [--json] [--trace] FILE MESSAGE...` normalizes each message
 * (normalize_message() into a record_new() record) and evaluates the
 * script on it, printing the actions and topics like Pigeonhole's
 * sieve-test, or one JSON object per message in argument order.
 *
 * ERRORS: exit 0 when the script compiled (even if a message could not be
 * read: its object carries "error"), 1 when it did not, 2 on usage.
 * SECURITY: message files are untrusted mail: opened O_NOFOLLOW-free but
 * read with a size cap (LIMIT_MESSAGE_BYTES) and only ever parsed by the
 * library; nothing from them reaches the terminal unescaped in text mode.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "limits.h"
#include "log.h"
#include "normalize.h"
#include "record.h"
#include "rules.h"
#include "util.h"

int	cmd_rules(int argc, char **argv);

static const char usage_text[] =
"NAME\n"
"    vmingest rules - check a Sieve rules file, or test it on messages\n"
"\n"
"SYNOPSIS\n"
"    vmingest rules check FILE\n"
"    vmingest rules test [--json] [--trace] FILE MESSAGE...\n"
"    vmingest rules --help\n"
"\n"
"DESCRIPTION\n"
"    check compiles FILE, the Sieve script vmingestd runs on every message\n"
"    (RFC 5228 with fileinto, copy, envelope, regex, variables, body,\n"
"    relational, comparator-i;ascii-numeric and vnd.vmingest; see\n"
"    docs/RULES.md).  Errors are printed as FILE:LINE:COLUMN: text.\n"
"\n"
"    test compiles FILE and runs it on each MESSAGE (a file holding one\n"
"    RFC 5322 message, as in a Maildir), printing the actions it would\n"
"    take: the topics it files into (fileinto), whether the message is\n"
"    kept (explicit keep or implicit keep: published on the queue's\n"
"    default topic), discarded (stored, never published) or quarantined,\n"
"    and its labels.  No daemon is needed and nothing is published.\n"
"    The envelope is taken from the message's Return-Path and\n"
"    Delivered-To (or X-Original-To) headers, as Postfix writes them.\n"
"\n"
"OPTIONS\n"
"    --json    print one JSON object per message, in argument order:\n"
"              {\"message\": PATH, \"topics\": [...], \"keep\": BOOL,\n"
"               \"discard\": BOOL, \"actions\": [...], \"labels\": [...],\n"
"               \"quarantine\": BOOL, \"error\": null or \"text\"}\n"
"    --trace   also show every test evaluated, its position and result\n"
"              (in JSON as \"trace\": [\"LINE:COL TEST true|false\", ...])\n"
"    --help    print this text\n"
"\n"
"EXIT STATUS\n"
"    0  the script compiled (for test: even if some messages could not be\n"
"       read; their output carries the error)\n"
"    1  the script did not compile (errors on stderr)\n"
"    2  usage error\n"
"\n"
"EXAMPLES\n"
"    vmingest rules check /etc/vmingest/rules.sieve\n"
"    vmingest rules test /etc/vmingest/rules.sieve ~/Maildir/new/*\n"
"    vmingest rules test --json --trace rules.sieve msg.eml | jq .topics\n";

struct trace_buf {
	json_t	*arr;		/* --json */
	int	 text;		/* print as we go */
};

static void
trace_cb(void *arg, unsigned line, unsigned col, const char *test, int result)
{
	struct trace_buf *tb = arg;
	char	 buf[128];
	const char *r = result == 1 ? "true" : result == 0 ? "false" : "error";

	snprintf(buf, sizeof(buf), "%u:%u %s %s", line, col, test, r);
	if (tb->arr != NULL)
		json_array_append_new(tb->arr, json_string(buf));
	if (tb->text)
		printf("  trace: %s\n", buf);
}

/* Read a whole file, at most LIMIT_MESSAGE_BYTES; NULL with *why set. */
static char *
read_message(const char *path, size_t *len, char *why, size_t whylen)
{
	struct stat st;
	char	*buf;
	int	 fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)) == -1) {
		snprintf(why, whylen, "cannot open: %s", strerror(errno));
		return NULL;
	}
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode)) {
		snprintf(why, whylen, "not a regular file");
		close(fd);
		return NULL;
	}
	if ((size_t)st.st_size > LIMIT_MESSAGE_BYTES) {
		snprintf(why, whylen, "message_bytes limit %u exceeded",
		    LIMIT_MESSAGE_BYTES);
		close(fd);
		return NULL;
	}
	if ((buf = util_read_upto(fd, (size_t)st.st_size, len)) == NULL) {
		if (errno == ENOMEM)
			snprintf(why, whylen, "out of memory");
		else
			snprintf(why, whylen, "read: %s", strerror(errno));
		close(fd);
		return NULL;
	}
	close(fd);
	return buf;
}

static json_t *
str_array(char **v, size_t n)
{
	json_t	*a = json_array();
	size_t	 i;

	for (i = 0; i < n; i++)
		json_array_append_new(a, json_string(v[i]));
	return a;
}

static void
print_text(const char *path, const Vmingest__RuleResult *res, const char *err)
{
	char	 esc[1024];
	size_t	 i;

	log_escape(esc, sizeof(esc), path, strlen(path));
	printf("## message: %s\n", esc);
	if (err != NULL) {
		printf("  error: %s\n\n", err);
		return;
	}
	printf("Performed actions:\n");
	for (i = 0; i < res->n_actions; i++) {
		log_escape(esc, sizeof(esc), res->actions[i], strlen(res->actions[i]));
		printf(" * %s\n", esc);
	}
	if (res->n_actions == 0)
		printf("  (none)\n");
	printf("Topics:");
	for (i = 0; i < res->n_topics; i++)
		printf(" %s", res->topics[i]);
	printf("%s\n", res->n_topics ? "" : " (none)");
	printf("Keep: %s\nDiscard: %s\n", res->keep ? "yes" : "no",
	    res->discard ? "yes" : "no");
	if (res->n_labels > 0) {
		printf("Labels:");
		for (i = 0; i < res->n_labels; i++) {
			log_escape(esc, sizeof(esc), res->labels[i],
			    strlen(res->labels[i]));
			printf(" \"%s\"", esc);
		}
		printf("\n");
	}
	if (res->quarantine) {
		log_escape(esc, sizeof(esc), res->quarantine_reason,
		    strlen(res->quarantine_reason));
		printf("Quarantine: %s\n", esc);
	}
	if (res->error != NULL && res->error[0] != '\0') {
		log_escape(esc, sizeof(esc), res->error, strlen(res->error));
		printf("Runtime error: %s\n", esc);
	}
	printf("\n");
}

static void
test_one(const struct rules *r, const char *path, int json, int trace)
{
	struct limits lim;
	Vmingest__Record *rec = NULL;
	Vmingest__RuleResult *res = NULL;
	struct trace_buf tb = { NULL, 0 };
	char	 why[256];
	const char *err = NULL;
	char	*raw;
	size_t	 len = 0;
	json_t	*o;

	if (!json)
		tb.text = trace;
	if (json && trace)
		tb.arr = json_array();
	if ((raw = read_message(path, &len, why, sizeof(why))) == NULL)
		err = why;
	else {
		limits_default(&lim);
		rec = record_new();
		normalize_message(&lim, raw, len, rec);
		if ((res = malloc(sizeof(*res))) == NULL) {
			err = "out of memory";
		} else {
			vmingest__rule_result__init(res);
			if (!json && trace) {
				char	 esc[512];

				log_escape(esc, sizeof(esc), path, strlen(path));
				printf("## trace: %s\n", esc);
			}
			rules_eval_trace(r, rec, raw, len, res, trace ? trace_cb :
			    NULL, &tb);
		}
	}
	if (!json) {
		print_text(path, res, err);
	} else {
		o = json_object();
		json_object_set_new(o, "message", json_string(path));
		json_object_set_new(o, "topics", res ? str_array(res->topics,
		    res->n_topics) : json_array());
		json_object_set_new(o, "keep", json_boolean(res && res->keep));
		json_object_set_new(o, "discard", json_boolean(res && res->discard));
		json_object_set_new(o, "actions", res ? str_array(res->actions,
		    res->n_actions) : json_array());
		json_object_set_new(o, "labels", res ? str_array(res->labels,
		    res->n_labels) : json_array());
		json_object_set_new(o, "quarantine", json_boolean(res &&
		    res->quarantine));
		if (res && res->quarantine)
			json_object_set_new(o, "quarantine_reason",
			    json_string(res->quarantine_reason));
		if (err != NULL)
			json_object_set_new(o, "error", json_string(err));
		else if (res->error != NULL && res->error[0] != '\0')
			json_object_set_new(o, "error", json_string(res->error));
		else
			json_object_set_new(o, "error", json_null());
		if (tb.arr != NULL) {
			json_object_set_new(o, "trace", tb.arr);
			tb.arr = NULL;
		}
		{
			char	*s = json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII);

			if (s != NULL) {
				puts(s);
				free(s);
			}
		}
		json_decref(o);
	}
	json_decref(tb.arr);
	if (res != NULL)
		vmingest__rule_result__free_unpacked(res, NULL);
	record_free(rec);
	free(raw);
}

int
cmd_rules(int argc, char **argv)
{
	struct rules_limits lim;
	struct rules *r;
	char	 err[2048];
	int	 i, json = 0, trace = 0, check;
	const char *file;

	if (argc < 2 || strcmp(argv[1], "--help") == 0 ||
	    strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
		fputs(usage_text, argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	if (strcmp(argv[1], "check") == 0)
		check = 1;
	else if (strcmp(argv[1], "test") == 0)
		check = 0;
	else {
		fprintf(stderr, "vmingest rules: unknown subcommand '%s' (check, "
		    "test; see --help)\n", argv[1]);
		return 2;
	}
	for (i = 2; i < argc && argv[i][0] == '-' && argv[i][1] == '-'; i++) {
		if (strcmp(argv[i], "--") == 0) {
			i++;
			break;
		}
		if (strcmp(argv[i], "--help") == 0) {
			fputs(usage_text, stdout);
			return 0;
		}
		if (!check && strcmp(argv[i], "--json") == 0)
			json = 1;
		else if (!check && strcmp(argv[i], "--trace") == 0)
			trace = 1;
		else {
			fprintf(stderr, "vmingest rules %s: unknown option '%s'\n",
			    argv[1], argv[i]);
			return 2;
		}
	}
	if (i >= argc || (check && i + 1 != argc) || (!check && i + 2 > argc)) {
		fprintf(stderr, "usage: vmingest rules check FILE\n"
		    "       vmingest rules test [--json] [--trace] FILE MESSAGE...\n");
		return 2;
	}
	file = argv[i++];
	rules_limits_default(&lim);
	normalize_init();
	if ((r = rules_compile(file, &lim, err, sizeof(err))) == NULL) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	if (check) {
		printf("%s: ok\n", file);
		rules_free(r);
		return 0;
	}
	for (; i < argc; i++)
		test_one(r, argv[i], json, trace);
	rules_free(r);
	return 0;
}
