/*
 * util.c - clocks, allocate-or-die, small shared helpers (see util.h).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

static int64_t
clock_us(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t
util_now_us(void)
{
	return clock_us(CLOCK_REALTIME);
}

int64_t
util_mono_us(void)
{
	return clock_us(CLOCK_MONOTONIC);
}

void *
xmalloc(size_t n)
{
	void	*p = malloc(n ? n : 1);

	if (p == NULL)
		log_fatal("malloc %zu", n);
	return p;
}

void *
xcalloc(size_t n, size_t m)
{
	void	*p = calloc(n ? n : 1, m ? m : 1);

	if (p == NULL)
		log_fatal("calloc %zu x %zu", n, m);
	return p;
}

void *
xrealloc(void *p, size_t n)
{
	void	*q = realloc(p, n ? n : 1);

	if (q == NULL)
		log_fatal("realloc %zu", n);
	return q;
}

char *
xstrdup(const char *s)
{
	char	*p = strdup(s);

	if (p == NULL)
		log_fatal("strdup");
	return p;
}

int
topic_prefix_match(const char *topic, char *const *prefixes, size_t n)
{
	size_t	 i;

	if (n == 0)
		return 1;
	for (i = 0; i < n; i++)
		if (!strncmp(topic, prefixes[i], strlen(prefixes[i])))
			return 1;
	return 0;
}

char *
util_read_upto(int fd, size_t n, size_t *len)
{
	char	*buf;
	size_t	 got = 0;
	ssize_t	 k;

	if (n == SIZE_MAX || (buf = malloc(n + 1)) == NULL) {
		errno = ENOMEM;
		return NULL;
	}
	while (got < n && (k = read(fd, buf + got, n - got)) != 0) {
		if (k == -1) {
			if (errno == EINTR)
				continue;
			free(buf);
			return NULL;
		}
		got += (size_t)k;
	}
	buf[got] = '\0';
	*len = got;
	return buf;
}

int
topic_chars_ok(const char *t, int empty_ok)
{
	size_t	 n = strlen(t);

	return (n > 0 || empty_ok) && n < 256 &&
	    strspn(t, "abcdefghijklmnopqrstuvwxyz0123456789_-.") == n;
}

int
util_cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}
