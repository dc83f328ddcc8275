/*
 * parse_ceiling.c - GMime parse-only rate of a directory of messages.
 *
 * usage: parse_ceiling DIR [THREADS [MIN_SECONDS]]
 *
 * Loads every regular file of DIR into memory, then runs THREADS threads
 * (default: the number of online CPUs) that each parse a stride of the
 * messages with g_mime_parser_construct_message, the same way
 * lib/normalize.c does (a memory stream borrowing the bytes, no copy),
 * and drop the result.  The whole set is parsed again until MIN_SECONDS
 * (default 3) of wall time have passed, so a small set still gives a
 * stable rate.  Nothing else is done: no header walk, no decoding, no
 * sha256, no store - this is the ceiling a full ingest cannot beat.
 *
 * Output, one line on stdout:
 *   threads=T messages=M rounds=R seconds=S msgs_per_s=X mb_per_s=Y
 *   cpu_ms_per_msg=C
 * (MB are MiB; C is user+system CPU time of the measured rounds per
 * message, which a loaded machine disturbs less than the wall rate.)
 *
 * Exit status: 0, 1 on a load error, 2 usage.
 *
 * SECURITY: a benchmark tool run by the developer on messages it
 * generated; the files are still read with bounded sizes (64 MiB each).
 */
#include <sys/resource.h>
#include <sys/stat.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <gmime/gmime.h>

#define MAX_FILE_BYTES	(64u * 1024 * 1024)
#define MAX_THREADS	256

struct msg {
	guint8	*data;
	size_t	 len;
};

struct worker {
	pthread_t	 tid;
	unsigned	 id;
	unsigned	 nthreads;
	const struct msg *msgs;
	size_t		 n;
	unsigned	 rounds;
	size_t		 parsed;
	size_t		 failed;
};

static pthread_barrier_t start_bar;

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int
load_file(int dirfd, const char *name, struct msg *m)
{
	struct stat sb;
	size_t	 off = 0;
	ssize_t	 r;
	int	 fd;

	if ((fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) == -1)
		return -1;
	if (fstat(fd, &sb) == -1 || !S_ISREG(sb.st_mode) ||
	    (uint64_t)sb.st_size > MAX_FILE_BYTES) {
		close(fd);
		errno = EINVAL;
		return -1;
	}
	m->len = (size_t)sb.st_size;
	if ((m->data = malloc(m->len ? m->len : 1)) == NULL) {
		close(fd);
		return -1;
	}
	while (off < m->len) {
		r = read(fd, m->data + off, m->len - off);
		if (r == -1 && errno == EINTR)
			continue;
		if (r <= 0) {
			free(m->data);
			close(fd);
			errno = r == 0 ? EIO : errno;
			return -1;
		}
		off += (size_t)r;
	}
	close(fd);
	return 0;
}

static int
load_dir(const char *path, struct msg **out, size_t *nout, size_t *bytes)
{
	struct dirent *de;
	struct msg *v = NULL, *nv;
	size_t	 n = 0, cap = 0;
	DIR	*d;

	*bytes = 0;
	if ((d = opendir(path)) == NULL) {
		fprintf(stderr, "parse_ceiling: %s: %s\n", path, strerror(errno));
		return -1;
	}
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 1024;
			if ((nv = realloc(v, cap * sizeof(*v))) == NULL) {
				fprintf(stderr, "parse_ceiling: out of memory\n");
				goto fail;
			}
			v = nv;
		}
		if (load_file(dirfd(d), de->d_name, &v[n]) == -1) {
			fprintf(stderr, "parse_ceiling: %s/%s: %s\n", path,
			    de->d_name, strerror(errno));
			goto fail;
		}
		*bytes += v[n].len;
		n++;
	}
	closedir(d);
	*out = v;
	*nout = n;
	return 0;
fail:
	while (n > 0)
		free(v[--n].data);
	free(v);
	closedir(d);
	return -1;
}

static int
parse_one(const struct msg *m)
{
	GByteArray	*arr;
	GMimeStream	*stream;
	GMimeParser	*parser;
	GMimeMessage	*msg;

	arr = g_byte_array_new_take(m->data, m->len);
	stream = g_mime_stream_mem_new_with_byte_array(arr);
	g_mime_stream_mem_set_owner(GMIME_STREAM_MEM(stream), FALSE);
	parser = g_mime_parser_new_with_stream(stream);
	g_mime_parser_set_format(parser, GMIME_FORMAT_MESSAGE);
	msg = g_mime_parser_construct_message(parser, NULL);
	if (msg != NULL)
		g_object_unref(msg);
	g_object_unref(parser);
	g_object_unref(stream);
	g_byte_array_free(arr, FALSE);	/* the bytes stay ours */
	return msg != NULL ? 0 : -1;
}

static void *
worker_main(void *arg)
{
	struct worker *w = arg;
	unsigned r;
	size_t	 i;

	pthread_barrier_wait(&start_bar);
	for (r = 0; r < w->rounds; r++)
		for (i = w->id; i < w->n; i += w->nthreads) {
			if (parse_one(&w->msgs[i]) == 0)
				w->parsed++;
			else
				w->failed++;
		}
	return NULL;
}

/* Parse the whole set `rounds` times on nthreads threads; wall seconds. */
static double
cpu_s(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
	    (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static double
run(struct msg *msgs, size_t n, unsigned nthreads, unsigned rounds,
    size_t *parsed, size_t *failed)
{
	struct worker w[MAX_THREADS];
	double	 t0, t1;
	unsigned i;

	memset(w, 0, sizeof(w));
	pthread_barrier_init(&start_bar, NULL, nthreads + 1);
	for (i = 0; i < nthreads; i++) {
		w[i].id = i;
		w[i].nthreads = nthreads;
		w[i].msgs = msgs;
		w[i].n = n;
		w[i].rounds = rounds;
		if (pthread_create(&w[i].tid, NULL, worker_main, &w[i]) != 0) {
			fprintf(stderr, "parse_ceiling: pthread_create failed\n");
			exit(1);
		}
	}
	pthread_barrier_wait(&start_bar);
	t0 = now_s();
	*parsed = *failed = 0;
	for (i = 0; i < nthreads; i++) {
		pthread_join(w[i].tid, NULL);
		*parsed += w[i].parsed;
		*failed += w[i].failed;
	}
	t1 = now_s();
	pthread_barrier_destroy(&start_bar);
	return t1 - t0;
}

int
main(int argc, char **argv)
{
	struct msg *msgs = NULL;
	size_t	 n, bytes, parsed, failed, i;
	unsigned nthreads, rounds;
	double	 min_s = 3.0, secs, cpu0;
	long	 ncpu;
	char	*end;

	if (argc < 2 || argc > 4) {
		fprintf(stderr, "usage: parse_ceiling DIR [THREADS [MIN_SECONDS]]\n");
		return 2;
	}
	ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	nthreads = ncpu > 0 ? (unsigned)ncpu : 1;
	if (argc > 2) {
		unsigned long t = strtoul(argv[2], &end, 10);

		if (*end != '\0' || t < 1 || t > MAX_THREADS) {
			fprintf(stderr, "parse_ceiling: THREADS must be 1..%d\n",
			    MAX_THREADS);
			return 2;
		}
		nthreads = (unsigned)t;
	}
	if (argc > 3) {
		min_s = strtod(argv[3], &end);
		if (*end != '\0' || min_s < 0.1 || min_s > 3600) {
			fprintf(stderr, "parse_ceiling: MIN_SECONDS must be 0.1..3600\n");
			return 2;
		}
	}
	g_mime_init();
	if (load_dir(argv[1], &msgs, &n, &bytes) == -1)
		return 1;
	if (n == 0) {
		fprintf(stderr, "parse_ceiling: %s: no messages\n", argv[1]);
		return 1;
	}

	/* one warm-up round sizes the run: enough rounds for min_s */
	secs = run(msgs, n, nthreads, 1, &parsed, &failed);
	rounds = secs >= min_s ? 1 : (unsigned)(min_s / (secs > 1e-6 ? secs : 1e-6)) + 1;
	if (rounds > 100000)
		rounds = 100000;
	cpu0 = cpu_s();
	secs = run(msgs, n, nthreads, rounds, &parsed, &failed);
	cpu0 = cpu_s() - cpu0;
	if (failed > 0)
		fprintf(stderr, "parse_ceiling: %zu parse(s) returned no message\n",
		    failed);
	printf("threads=%u messages=%zu rounds=%u seconds=%.3f msgs_per_s=%.1f "
	    "mb_per_s=%.2f cpu_ms_per_msg=%.4f\n", nthreads, n, rounds, secs,
	    (double)(parsed + failed) / secs,
	    (double)bytes * rounds / secs / (1024.0 * 1024.0),
	    cpu0 * 1e3 / (double)(parsed + failed));

	for (i = 0; i < n; i++)
		free(msgs[i].data);
	free(msgs);
	g_mime_shutdown();
	return 0;
}
