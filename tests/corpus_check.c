/*
 * corpus_check.c - run every file of a corpus through normalize_message().
 *
 *   corpus_check [-v] DIR...
 *
 * Walks each DIR recursively (symlinks not followed) and normalizes
 * every regular file, whatever it is: metadata, specs and binary files
 * are hostile input like any other.  For each file it checks that the
 * record packs, unpacks and packs again to the same bytes, then frees
 * it.  A watchdog (alarm(2), WATCHDOG_S seconds per file) turns a hang
 * into a failure naming the file; a crash is reported by ASan/UBSan
 * (check-corpus builds this under both) with the file named by the
 * sanitizer death callback.  Leaks are left to LSan at exit, after
 * g_mime_shutdown() has released GMime's caches.
 *
 * With -v, one line per file: disposition, warning count, reason, path.
 * Prints one line with the counts: clean (no warning), with warnings,
 * quarantined, and total, plus the slowest file.  Exit 0 when every
 * file went through, 1 on a timeout or a record that does not
 * round-trip, 2 on a usage or I/O error.
 *
 * SECURITY: reads files from a corpus of hostile mail; nothing is
 * written.  Files are read whole but capped at twice the message_bytes
 * limit (normalize itself parses at most message_bytes).
 */
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <gmime/gmime.h>

#include "normalize.h"
#include "record.h"

#define WATCHDOG_S	10

static struct limits lim;
static unsigned long n_total, n_clean, n_warn, n_quar, n_bad, n_ioerr;
static double slowest;
static char slowest_path[4096];
static char current[4096];
static int verbose;

/* Declared weak so that a build without sanitizers links too. */
void	__sanitizer_set_death_callback(void (*)(void)) __attribute__((weak));

static void
write_current(void)
{
	const char msg[] = "corpus_check: died on ";

	(void)!write(2, msg, sizeof(msg) - 1);
	(void)!write(2, current, strlen(current));
	(void)!write(2, "\n", 1);
}

static void
on_alarm(int sig)
{
	const char msg[] = "corpus_check: TIMEOUT (watchdog) on ";

	(void)!write(2, msg, sizeof(msg) - 1);
	(void)!write(2, current, strlen(current));
	(void)!write(2, "\n", 1);
	_exit(1);
}

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static char *
read_file(const char *path, size_t *len)
{
	struct stat st;
	char	*buf;
	size_t	 want, got = 0;
	ssize_t	 n;
	int	 fd;

	if ((fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) == -1)
		return NULL;
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode)) {
		close(fd);
		return NULL;
	}
	want = (size_t)st.st_size;
	if (want > 2 * lim.message_bytes)
		want = 2 * lim.message_bytes;
	if ((buf = malloc(want ? want : 1)) == NULL) {
		close(fd);
		return NULL;
	}
	while (got < want && (n = read(fd, buf + got, want - got)) > 0)
		got += (size_t)n;
	close(fd);
	*len = got;
	return buf;
}

static int
check_file(const char *path)
{
	Vmingest__Record *r, *u;
	uint8_t	*p1 = NULL, *p2 = NULL;
	size_t	 len = 0, l1, l2;
	char	*buf;
	double	 t0, dt;
	int	 ok = 1;

	snprintf(current, sizeof(current), "%s", path);
	if ((buf = read_file(path, &len)) == NULL) {
		fprintf(stderr, "corpus_check: %s: cannot read\n", path);
		n_ioerr++;
		return 0;
	}
	r = record_new();
	t0 = now();
	alarm(WATCHDOG_S);
	normalize_message(&lim, buf, len, r);
	alarm(0);
	dt = now() - t0;
	if (dt > slowest) {
		slowest = dt;
		snprintf(slowest_path, sizeof(slowest_path), "%s", path);
	}
	n_total++;
	if (r->disposition == VMINGEST__DISPOSITION__QUARANTINED)
		n_quar++;
	else if (r->n_warnings > 0)
		n_warn++;
	else
		n_clean++;

	if (verbose)
		printf("%s\t%zu\t%s\t%s\n", disposition_name(r->disposition),
		    r->n_warnings, r->reason, path);
	if (record_pack(r, &p1, &l1) != 0 ||
	    (u = record_unpack(p1, l1)) == NULL) {
		fprintf(stderr, "corpus_check: %s: record does not "
		    "pack/unpack\n", path);
		ok = 0;
	} else {
		if (record_pack(u, &p2, &l2) != 0 || l1 != l2 ||
		    memcmp(p1, p2, l1) != 0) {
			fprintf(stderr, "corpus_check: %s: record changes in a "
			    "pack/unpack round trip\n", path);
			ok = 0;
		}
		record_free(u);
	}
	if (!ok)
		n_bad++;
	free(p1);
	free(p2);
	record_free(r);
	free(buf);
	return ok;
}

static int
visit(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	if (type == FTW_F && S_ISREG(st->st_mode))
		check_file(path);
	else if (type == FTW_DNR || type == FTW_NS) {
		fprintf(stderr, "corpus_check: %s: cannot read\n", path);
		n_ioerr++;
	}
	return 0;
}

int
main(int argc, char **argv)
{
	struct sigaction sa;
	int	 i;

	if (argc > 1 && strcmp(argv[1], "-v") == 0) {
		verbose = 1;
		argv++;
		argc--;
	}
	if (argc < 2) {
		fprintf(stderr, "usage: corpus_check [-v] DIR...\n");
		return 2;
	}
	limits_default(&lim);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_alarm;
	sigaction(SIGALRM, &sa, NULL);
	if (__sanitizer_set_death_callback != NULL)
		__sanitizer_set_death_callback(write_current);
	normalize_init();
	for (i = 1; i < argc; i++) {
		struct stat st;

		if (stat(argv[i], &st) == -1) {
			fprintf(stderr, "corpus_check: %s: not found\n",
			    argv[i]);
			return 2;
		}
		if (nftw(argv[i], visit, 32, FTW_PHYS) == -1) {
			perror(argv[i]);
			return 2;
		}
	}
	g_mime_shutdown();
	printf("corpus: %lu files: %lu clean, %lu with warnings, "
	    "%lu quarantined; %lu bad records, %lu unreadable; "
	    "slowest %.3f s (%s)\n",
	    n_total, n_clean, n_warn, n_quar, n_bad, n_ioerr, slowest,
	    slowest_path[0] ? slowest_path : "-");
	if (n_ioerr > 0)
		return 2;
	return n_bad > 0 ? 1 : 0;
}
