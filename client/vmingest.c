/*
 * vmingest.c - the operator's CLI: dispatch to a subcommand.
 *
 * Each subcommand lives in client/cmd_NAME.c as
 * `int cmd_NAME(int argc, char **argv)` (argv[0] is the subcommand) and
 * returns the exit status.  Commands are weak references, so the table
 * names every command the product has and a build lists only the ones
 * linked in.
 *
 * Exit status convention for every subcommand: 0 success, 1 the thing
 * asked about is not so (not found, not ready, rules do not compile),
 * 2 usage error or cannot reach / open what was named.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmds.h"
#include "log.h"

static const struct {
	const char *name;
	int	  (*fn)(int, char **);
	const char *what;
} cmds[] = {
	{ "list", cmd_list, "list records from the store" },
	{ "show", cmd_show, "show one record (--json) or its raw message (--raw)" },
	{ "stats", cmd_stats, "store statistics" },
	{ "sub", cmd_sub, "subscribe to the live feed, gaps recovered from the log" },
	{ "keygen", cmd_keygen, "make a CURVE key pair (NAME.pub, NAME.key)" },
	{ "rules", cmd_rules, "check a Sieve rules file or test it on messages" },
	{ "status", cmd_status, "the daemon's status (exit 0 ready, 1 not, 2 unreachable)" },
	{ "replay", cmd_replay, "write stored records or raw mail (json, raw, mbox, maildir)" },
	{ "reprocess", cmd_reprocess, "run the current pipeline again on stored mail" },
	{ "quarantine", cmd_quarantine, "list or release quarantined records" },
	{ "compact", cmd_compact, "make a compacted copy of the store" },
	{ "backup", cmd_backup, "make a consistent hot copy of the store" },
};

static void
usage(FILE *fp)
{
	size_t	 i;

	fprintf(fp,
	    "usage: vmingest COMMAND [OPTIONS] [ARGS]\n"
	    "       vmingest COMMAND --help\n"
	    "\n"
	    "Work with vmingestd's durable log of verification mail: read\n"
	    "records, subscribe to the feed, test rules, query the daemon.\n"
	    "Commands that read the store open it read-only and work while\n"
	    "the daemon runs.\n"
	    "\n"
	    "Commands:\n");
	for (i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		if (cmds[i].fn != NULL)
			fprintf(fp, "  %-11s %s\n", cmds[i].name, cmds[i].what);
	fprintf(fp,
	    "\n"
	    "Where the store is: --store DIR, or -c FILE (the daemon's config;\n"
	    "its [store] path), or the embedded default ./var/vmingest/store.\n"
	    "\n"
	    "Exit status: 0 success; 1 not found / not ready / check failed;\n"
	    "2 usage error or the store or daemon cannot be reached.\n"
	    "\n"
	    "See vmingest(1), vmingestd(8).\n");
}

/*
 * What a command printed must have reached standard output: a full disk,
 * a closed pipe (SIGPIPE ignored) or /dev/full turns a success into 2, so
 * that `vmingest list > file` never exits 0 with the file cut short.
 */
static int
output_checked(int rc)
{
	if (fflush(stdout) != 0 || ferror(stdout)) {
		fprintf(stderr, "vmingest: standard output: %s\n",
		    errno ? strerror(errno) : "write error");
		return 2;
	}
	return rc;
}

int
main(int argc, char **argv)
{
	size_t	 i;

	log_init("vmingest", 0);
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") ||
	    !strcmp(argv[1], "help")) {
		usage(stdout);
		return 0;
	}
	if (!strcmp(argv[1], "-V") || !strcmp(argv[1], "--version")) {
		printf("vmingest %s\n", VMI_VERSION);
		return 0;
	}
	for (i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		if (cmds[i].fn != NULL && !strcmp(cmds[i].name, argv[1]))
			return output_checked(cmds[i].fn(argc - 1, argv + 1));
	fprintf(stderr, "vmingest: unknown command \"%s\"; try vmingest --help\n",
	    argv[1]);
	return 2;
}
