/*
 * http_load.c - a paced HTTP/1.1 keep-alive load generator for
 * bench/http.sh: RATE requests per second for SECONDS over CONNS
 * connections (or until SIGINT/SIGTERM), so the ingest rate can be measured under a known
 * /metrics load (ab only knows "as fast as possible", which on a small
 * machine measures ab's CPU use more than the daemon's).
 *
 *   usage: http_load HOST PORT PATH RATE SECONDS CONNS
 *   prints: sent=N ok=N errors=N rate=R p50_ms=X p99_ms=Y max_ms=Z
 *
 * Request k is due at start + k/RATE; a due request goes out on an idle
 * connection (one request in flight per connection); when none is idle
 * it waits, so an overloaded server shows as rate < RATE.  Responses are
 * read by Content-Length.  A connection that fails is reopened.
 *
 * SECURITY: a benchmark tool for loopback; it trusts nothing it reads
 * beyond the buffer it has (responses over BUF_BYTES count as errors).
 */
#include <sys/epoll.h>
#include <sys/socket.h>

#include <errno.h>
#include <netdb.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define BUF_BYTES	(1024 * 1024)
#define MAX_CONNS	256
#define NLAT		(1 << 20)

struct conn {
	int	 fd;
	int	 busy;
	int64_t	 sent_us;
	size_t	 len;
	char	*buf;
};

static struct addrinfo *addr;
static char	 req[512];
static size_t	 reqlen;
static int	 ep;
static uint32_t	*lat;		/* latencies in us */
static size_t	 nlat;
static unsigned long long n_sent, n_ok, n_err;
static volatile sig_atomic_t stop;

static void
on_signal(int sig)
{
	stop = 1;
}

static int64_t
now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void
conn_open(struct conn *c)
{
	struct epoll_event ev = { .events = EPOLLIN };

	c->fd = socket(addr->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->fd == -1 || connect(c->fd, addr->ai_addr, addr->ai_addrlen) == -1) {
		perror("connect");
		exit(1);
	}
	ev.data.ptr = c;
	if (epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev) == -1) {
		perror("epoll_ctl");
		exit(1);
	}
	c->busy = 0;
	c->len = 0;
}

static void
conn_reset(struct conn *c)
{
	close(c->fd);
	n_err++;
	conn_open(c);
}

/* A complete response in c->buf?  1 done (ok set), 0 not yet, -1 bad. */
static int
response_done(struct conn *c, int *ok)
{
	char	*end, *cl;
	size_t	 hl, bl;

	c->buf[c->len] = '\0';
	if ((end = strstr(c->buf, "\r\n\r\n")) == NULL)
		return c->len >= BUF_BYTES ? -1 : 0;
	hl = (size_t)(end + 4 - c->buf);
	if ((cl = strcasestr(c->buf, "\r\nContent-Length:")) == NULL || cl > end)
		return -1;
	bl = strtoul(cl + 17, NULL, 10);
	if (hl + bl > c->len)
		return hl + bl >= BUF_BYTES ? -1 : 0;
	*ok = !strncmp(c->buf, "HTTP/1.1 200", 12);
	memmove(c->buf, c->buf + hl + bl, c->len - hl - bl);
	c->len -= hl + bl;
	return 1;
}

static int
cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

int
main(int argc, char **argv)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM };
	struct epoll_event evs[64];
	struct conn *conns;
	double	 rate;
	int64_t	 t0, t_end, now;
	unsigned long long due = 0;
	int	 nconn, secs, i, n, w;

	if (argc != 7) {
		fprintf(stderr, "usage: http_load HOST PORT PATH RATE SECONDS CONNS\n");
		return 2;
	}
	rate = atof(argv[4]);
	secs = atoi(argv[5]);
	nconn = atoi(argv[6]);
	if (rate <= 0 || secs <= 0 || nconn <= 0 || nconn > MAX_CONNS) {
		fprintf(stderr, "http_load: bad RATE, SECONDS or CONNS\n");
		return 2;
	}
	if (getaddrinfo(argv[1], argv[2], &hints, &addr) != 0) {
		fprintf(stderr, "http_load: cannot resolve %s\n", argv[1]);
		return 2;
	}
	w = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: %s:%s\r\n\r\n",
	    argv[3], argv[1], argv[2]);
	if (w < 0 || (size_t)w >= sizeof(req))
		return 2;
	reqlen = (size_t)w;
	if ((ep = epoll_create1(EPOLL_CLOEXEC)) == -1 ||
	    (conns = calloc((size_t)nconn, sizeof(*conns))) == NULL ||
	    (lat = calloc(NLAT, sizeof(*lat))) == NULL)
		return 1;
	for (i = 0; i < nconn; i++) {
		if ((conns[i].buf = malloc(BUF_BYTES + 1)) == NULL)
			return 1;
		conn_open(&conns[i]);
	}

	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	t0 = now_us();
	t_end = t0 + (int64_t)secs * 1000000;
	while ((now = now_us()) < t_end && !stop) {
		/* send every request that is due, on idle connections */
		for (i = 0; i < nconn && (double)due * 1e6 / rate <= (double)(now - t0); i++) {
			struct conn *c = &conns[i];

			if (c->busy)
				continue;
			if (send(c->fd, req, reqlen, MSG_NOSIGNAL) != (ssize_t)reqlen) {
				conn_reset(c);
				continue;
			}
			c->busy = 1;
			c->sent_us = now;
			n_sent++;
			due++;
		}
		if ((n = epoll_wait(ep, evs, 64, 1)) == -1 && errno != EINTR) {
			perror("epoll_wait");
			return 1;
		}
		for (i = 0; i < n; i++) {
			struct conn *c = evs[i].data.ptr;
			ssize_t	 r;
			int	 ok = 0, d;

			r = recv(c->fd, c->buf + c->len, BUF_BYTES - c->len, 0);
			if (r <= 0) {
				conn_reset(c);
				continue;
			}
			c->len += (size_t)r;
			while (c->busy && (d = response_done(c, &ok)) != 0) {
				if (d == -1) {
					conn_reset(c);
					break;
				}
				c->busy = 0;
				if (ok)
					n_ok++;
				else
					n_err++;
				if (nlat < NLAT)
					lat[nlat++] = (uint32_t)(now_us() - c->sent_us);
			}
		}
	}
	qsort(lat, nlat, sizeof(*lat), cmp_u32);
	printf("sent=%llu ok=%llu errors=%llu rate=%.0f p50_ms=%.2f p99_ms=%.2f "
	    "max_ms=%.2f\n", n_sent, n_ok, n_err,
	    (double)n_ok * 1e6 / (double)(now_us() - t0),
	    nlat ? lat[nlat / 2] / 1000.0 : 0, nlat ? lat[nlat * 99 / 100] / 1000.0 : 0,
	    nlat ? lat[nlat - 1] / 1000.0 : 0);
	return 0;
}
