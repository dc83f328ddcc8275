/*
 * cmd_copy.c - `vmingest compact` and `vmingest backup`: copies of the
 * store made through LMDB (mdb_env_copy2, via store_copy()).
 *
 *   cmd_compact  a compacted copy (MDB_CP_COMPACT: free pages left out,
 *                so the copy is as small as the live data) for operators
 *                who need the disk back after retention
 *   cmd_backup   a consistent hot copy while the daemon runs
 *
 * Both read the store in one read-only transaction: the copy is the
 * store exactly as of one commit, whatever the daemon writes meanwhile
 * (LMDB's MVCC; the daemon is never blocked).  The copy is fsynced, then
 * opened read-only and its seq range printed, so a backup that does not
 * open is reported at once.
 *
 * Error policy: usage 2; the store cannot be opened or the copy fails or
 * does not verify: 2, with the reason.  A partial copy is removed.
 *
 * SECURITY: the output directory is created 0700 (the store holds every
 * message); an existing non-empty directory is refused, so nothing is
 * overwritten.
 */
#include <sys/stat.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmd_common.h"
#include "cmds.h"
#include "log.h"
#include "store.h"

static const char compact_usage[] =
"usage: vmingest compact (--store DIR | -c FILE) --out DIR [--json]\n"
"\n"
"Write a compacted copy of the store into DIR (made if missing; it must be\n"
"empty): free pages are left out, so the copy takes only what the live\n"
"records and raw messages need - the way to get disk space back after\n"
"retention deleted old mail (LMDB never shrinks its file in place).  The\n"
"copy is one consistent snapshot.  To put it in place of the store, make\n"
"it with vmingestd stopped (what the daemon commits after the copy would\n"
"be lost with it, and those files are gone from new/), then move the\n"
"copy's data.mdb over the store's (keep the old one until the daemon has\n"
"started) and start vmingestd.  The copy keeps the store's epoch.\n"
"\n"
"  --store DIR   the store to copy (or -c FILE: its [store] path)\n"
"  --out DIR     the new, empty directory for the copy\n"
"  --json        print the result as one JSON object\n"
"\n"
"Exit status: 0 copied and verified (the copy opens and has the same seq\n"
"range); 2 usage error, store unreadable, DIR not empty, copy failed.\n"
"\n"
"Examples:\n"
"  vmingest compact -c /etc/vmingest/vmingestd.conf --out /srv/vmingest.new\n";

static const char backup_usage[] =
"usage: vmingest backup (--store DIR | -c FILE) --out DIR [--compact] [--json]\n"
"\n"
"Make a consistent hot copy of the store in DIR (made if missing; it must\n"
"be empty) while vmingestd keeps running: the copy is the store as of one\n"
"commit (an LMDB read snapshot; ingestion is not paused).  The copy is\n"
"fsynced, opened read-only and its seq range printed.  A backup is a\n"
"complete store: `vmingest list --store DIR` reads it, and vmingestd can\n"
"run on it.  Put in place of the store (a restore), it rewinds the log:\n"
"the first vmingestd to open it gives it a new epoch, so subscribers see\n"
"a new stream (their checkpoints name records of the old one) instead of\n"
"taking new mail under old seqs for records they have.\n"
"\n"
"  --store DIR   the store to copy (or -c FILE: its [store] path)\n"
"  --out DIR     the new, empty directory for the copy\n"
"  --compact     leave free pages out (smaller, a little slower)\n"
"  --json        print the result as one JSON object\n"
"\n"
"Exit status: 0 copied and verified; 2 usage error, store unreadable, DIR\n"
"not empty, copy failed.\n"
"\n"
"Examples:\n"
"  vmingest backup -c /etc/vmingest/vmingestd.conf --out /backup/$(date +%F)\n";

static int
dir_empty_ok(const char *path)
{
	DIR	*d;
	struct dirent *e;
	int	 empty = 1;

	if ((d = opendir(path)) == NULL)
		return errno == ENOENT;
	while ((e = readdir(d)) != NULL)
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
			empty = 0;
			break;
		}
	closedir(d);
	return empty;
}

static int
sync_path(const char *path, int flags)
{
	int	 fd, rc;

	if ((fd = open(path, flags | O_CLOEXEC)) == -1)
		return -1;
	rc = fsync(fd);
	close(fd);
	return rc;
}

static void
remove_copy(const char *dir)
{
	char	 p[4096];

	if (snprintf(p, sizeof(p), "%s/data.mdb", dir) < (int)sizeof(p))
		unlink(p);
	if (snprintf(p, sizeof(p), "%s/lock.mdb", dir) < (int)sizeof(p))
		unlink(p);
	rmdir(dir);
}

static int
do_copy(const char *prog, const char *usage, int argc, char **argv, int compact,
    int backup)
{
	enum { O_STORE = 256, O_OUT, O_COMPACT, O_JSON };
	static const struct option opts[] = {
		{ "store", required_argument, NULL, O_STORE },
		{ "config", required_argument, NULL, 'c' },
		{ "out", required_argument, NULL, O_OUT },
		{ "compact", no_argument, NULL, O_COMPACT },
		{ "json", no_argument, NULL, O_JSON },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	const char *store = NULL, *cfg = NULL, *out = NULL;
	struct store *st = NULL, *cp = NULL;
	struct store_stat a, b;
	char	 p[4096];
	int	 ch, json = 0, rc, made = 0, status = 2;

	optind = 1;
	while ((ch = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
		switch (ch) {
		case O_STORE: store = optarg; break;
		case 'c': cfg = optarg; break;
		case O_OUT: out = optarg; break;
		case O_COMPACT:
			if (compact)
				goto bad;
			compact = 1;
			break;
		case O_JSON: json = 1; break;
		case 'h': fputs(usage, stdout); return 0;
		default: goto bad;
		}
	}
	if (optind != argc || out == NULL)
		goto bad;
	if (!dir_empty_ok(out)) {
		fprintf(stderr, "vmingest %s: %s exists and is not empty (or cannot "
		    "be read)\n", prog, out);
		return 2;
	}
	if (snprintf(p, sizeof(p), "%s/data.mdb", out) >= (int)sizeof(p)) {
		fprintf(stderr, "vmingest %s: path too long\n", prog);
		return 2;
	}
	if (cli_open_store(prog, store, cfg, &st) == -1)
		return 2;
	if (mkdir(out, 0700) == 0)
		made = 1;
	else if (errno != EEXIST) {
		fprintf(stderr, "vmingest %s: mkdir %s: %s\n", prog, out,
		    strerror(errno));
		goto out;
	}
	if ((rc = store_copy(st, out, compact)) != 0) {
		fprintf(stderr, "vmingest %s: copy to %s: %s\n", prog, out,
		    store_strerror(rc));
		goto fail;
	}
	/* LMDB creates the file 0644 under a usual umask: it holds all mail */
	if (chmod(p, 0600) == -1 || sync_path(p, O_RDONLY) == -1 || sync_path(out, O_RDONLY | O_DIRECTORY) == -1) {
		fprintf(stderr, "vmingest %s: fsync %s: %s\n", prog, out,
		    strerror(errno));
		goto fail;
	}
	if ((rc = store_open(&cp, out, 0, STORE_RDONLY)) != 0 ||
	    (rc = store_stat(cp, &b)) != 0) {
		fprintf(stderr, "vmingest %s: the copy does not open: %s\n", prog,
		    store_strerror(rc));
		goto fail;
	}
	if (store_epoch(cp) != store_epoch(st)) {
		fprintf(stderr, "vmingest %s: the copy has another epoch\n", prog);
		goto fail;
	}
	if (store_stat(st, &a) == 0 && b.head_seq > a.head_seq) {
		fprintf(stderr, "vmingest %s: the copy is ahead of the store?\n", prog);
		goto fail;
	}
	if (backup) {
		/* a new epoch when it is put back in place (store_mark_restore) */
		struct store *wr = NULL;

		store_close(cp);
		cp = NULL;
		if ((rc = store_open(&wr, out, 0, 0)) != 0 ||
		    (rc = store_mark_restore(wr)) != 0) {
			fprintf(stderr, "vmingest %s: mark the copy as a backup: %s\n",
			    prog, store_strerror(rc));
			store_close(wr);
			goto fail;
		}
		store_close(wr);
		if (chmod(p, 0600) == -1) {
			fprintf(stderr, "vmingest %s: chmod %s: %s\n", prog, p,
			    strerror(errno));
			goto fail;
		}
	}
	if (json) {
		cli_print_json(json_pack("{s:s,s:s,s:b,s:I,s:I,s:I,s:I}", "store",
		    store_path(st), "copy", out, "compact", compact, "first_seq",
		    (json_int_t)b.first_seq, "head_seq", (json_int_t)b.head_seq,
		    "records", (json_int_t)b.records, "used_bytes",
		    (json_int_t)b.used_bytes));
	} else {
		printf("%s: %s -> %s%s: seq %llu..%llu, %llu records, %zu bytes\n",
		    prog, store_path(st), out, compact ? " (compacted)" : "",
		    (unsigned long long)b.first_seq, (unsigned long long)b.head_seq,
		    (unsigned long long)b.records, b.used_bytes);
	}
	status = 0;
	goto out;
fail:
	store_close(cp);
	cp = NULL;
	if (made)
		remove_copy(out);
	else {
		unlink(p);
		if (snprintf(p, sizeof(p), "%s/lock.mdb", out) < (int)sizeof(p))
			unlink(p);
	}
out:
	store_close(cp);
	store_close(st);
	return status;
bad:
	fputs(usage, stderr);
	return 2;
}

int
cmd_compact(int argc, char **argv)
{
	log_set_quiet(1);
	return do_copy("compact", compact_usage, argc, argv, 1, 0);
}

int
cmd_backup(int argc, char **argv)
{
	log_set_quiet(1);
	return do_copy("backup", backup_usage, argc, argv, 0, 1);
}
