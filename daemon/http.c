/*
 * http.c - the status endpoint: libmicrohttpd on its own polling thread.
 *
 *   http_start   parse [http] listen, start the daemon (listen = off: none)
 *   http_stop    stop it and free everything (NULL is a no-op)
 *
 * Endpoints (GET and HEAD only; other methods 405, other paths 404):
 *   /healthz   200 "ok" while the main loop ticks within [http] stall_s,
 *              else 503 saying how long ago it last ticked
 *   /readyz    200 when every readiness check passes, else 503; the JSON
 *              body lists each failing check and why (metrics_ready)
 *   /metrics   Prometheus text format 0.0.4 (rendered at most every
 *              METRICS_FRESH_US = 0.1 s; in between the same body is sent)
 *   /status    JSON for people and `vmingest status`
 *
 * Threads: MHD runs one internal polling thread (MHD_USE_AUTO picks
 * epoll, with an inter-thread channel so http_stop wakes it).  Handlers
 * read a copy of g_stats taken under its lock (metrics_snapshot) and
 * publisher_stats(), which is safe from any thread; they never touch the
 * store or a ZeroMQ socket, and a slow client never holds a lock (the
 * response is a copied buffer MHD writes at the client's pace).
 *
 * Error policy: a listen address that does not parse or bind is a
 * start-up error (http_start returns -1 with err set; main exits 1).
 * After that nothing here is fatal: a render that fails answers 500.
 * MHD's own complaints (connection limit reached, a client that breaks
 * the protocol) are logged at most LOG_BURST lines per LOG_WINDOW_S.
 *
 * SECURITY: every byte of a request comes from whoever can reach the
 * port (loopback by default).  MHD parses it, bounded by
 * [http] request_bytes (its per-connection memory pool: an oversized
 * request line or header gets 431/414 and the connection is closed),
 * max_connections, per_ip and timeout_s (a slowloris holds a slot for
 * at most timeout_s, and per_ip < max_connections keeps one address from
 * taking every slot).  The handler looks only at the method, the path
 * and whether a body is announced; they are compared, never logged or
 * echoed, and MHD's own log lines are escaped (log_escape) in case they
 * quote the client.  No request can change anything.
 */
#include <sys/socket.h>
#include <sys/types.h>

#include <netdb.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <microhttpd.h>

#include "http.h"
#include "log.h"
#include "metrics.h"
#include "stats.h"
#include "util.h"

#define LOG_BURST	20
#define LOG_WINDOW_S	60
/* A /metrics body is rendered at most this often (see serve_metrics). */
#define METRICS_FRESH_US	100000
/* MHD builds response headers in the same pool as the request. */
#define POOL_EXTRA	4096

enum { C_200, C_404, C_405, C_413, C_500, C_503, C_N };
static const unsigned code_num[C_N] = { 200, 404, 405, 413, 500, 503 };

struct http {
	struct MHD_Daemon *d;
	struct publisher *pub;
	pthread_mutex_t	 mu;		/* snap, buf, rendered_us */
	struct stats	 snap;
	struct mbuf	 buf;		/* the last /metrics body */
	int64_t		 rendered_us;	/* when (CLOCK_MONOTONIC) */
	atomic_ullong	 requests[C_N];
	/* MHD logger rate limit (MHD thread only) */
	time_t		 log_window;
	unsigned	 log_lines;
	unsigned long	 log_dropped;
};

static void
mhd_log(void *arg, const char *fmt, va_list ap)
{
	struct http *h = arg;
	char	 line[512], esc[1024];
	time_t	 now = time(NULL);
	size_t	 n;

	if (now - h->log_window >= LOG_WINDOW_S) {
		if (h->log_dropped > 0)
			log_warnx("http: %lu more libmicrohttpd message(s) "
			    "suppressed", h->log_dropped);
		h->log_window = now;
		h->log_lines = 0;
		h->log_dropped = 0;
	}
	if (h->log_lines >= LOG_BURST) {
		h->log_dropped++;
		return;
	}
	h->log_lines++;
	vsnprintf(line, sizeof(line), fmt, ap);
	n = strlen(line);
	while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
		line[--n] = '\0';
	/* MHD may quote what a client sent: escape it */
	log_warnx("http: %s", log_escape(esc, sizeof(esc), line, n));
}

static enum MHD_Result
reply(struct http *h, struct MHD_Connection *c, unsigned code, int ci,
    const char *ctype, const char *body, size_t len)
{
	struct MHD_Response *r;
	enum MHD_Result ret;

	atomic_fetch_add_explicit(&h->requests[ci], 1, memory_order_relaxed);
	r = MHD_create_response_from_buffer(len, (void *)(uintptr_t)body,
	    MHD_RESPMEM_MUST_COPY);
	if (r == NULL)
		return MHD_NO;
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
	MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	if (code == MHD_HTTP_METHOD_NOT_ALLOWED)
		MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
	ret = MHD_queue_response(c, code, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result
reply_text(struct http *h, struct MHD_Connection *c, unsigned code, int ci,
    const char *text)
{
	return reply(h, c, code, ci, "text/plain; charset=utf-8", text,
	    strlen(text));
}

static enum MHD_Result
reply_json(struct http *h, struct MHD_Connection *c, unsigned code, int ci,
    json_t *j)
{
	enum MHD_Result ret;
	char	*s;

	if (j == NULL || (s = json_dumps(j, JSON_INDENT(1))) == NULL) {
		json_decref(j);
		return reply_text(h, c, 500, C_500, "out of memory\n");
	}
	json_decref(j);
	ret = reply(h, c, code, ci, "application/json", s, strlen(s));
	free(s);
	return ret;
}

static enum MHD_Result
serve_healthz(struct http *h, struct MHD_Connection *c)
{
	int64_t	 tick, now = util_now_us();
	unsigned stall;
	char	 msg[128];

	pthread_mutex_lock(&g_stats.mu);
	tick = g_stats.tick_us;
	stall = g_stats.stall_s;
	pthread_mutex_unlock(&g_stats.mu);
	if (now - tick <= (int64_t)stall * 1000000)
		return reply_text(h, c, 200, C_200, "ok\n");
	snprintf(msg, sizeof(msg), "stalled: the main loop last ticked %.1f s "
	    "ago (stall_s %u)\n", (double)(now - tick) / 1e6, stall);
	return reply_text(h, c, 503, C_503, msg);
}

static int
topic_cmp(const void *a, const void *b)
{
	return strcmp(((const struct publisher_topic_stat *)a)->topic,
	    ((const struct publisher_topic_stat *)b)->topic);
}

/* Snapshot of g_stats and the publisher's figures, under h->mu. */
static void
take_figures(struct http *h, struct publisher_stats *ps)
{
	memset(ps, 0, sizeof(*ps));
	metrics_snapshot(&h->snap);
	if (h->pub != NULL)
		publisher_stats(h->pub, ps);
	/* the publisher hands topics in hash order: sort for stable output */
	if (ps->topics != NULL && ps->n_topics > 1)
		qsort(ps->topics, ps->n_topics, sizeof(ps->topics[0]), topic_cmp);
}

/*
 * /metrics.  A body younger than METRICS_FRESH_US is served again as it
 * is: a scrape storm then costs a memcpy per request, not a render, and
 * no figure is older than that (Prometheus scrapes every few seconds).
 */
static enum MHD_Result
serve_metrics(struct http *h, struct MHD_Connection *c)
{
	struct publisher_stats ps;
	enum MHD_Result ret;
	int64_t	 mono = util_mono_us();
	size_t	 i;

	pthread_mutex_lock(&h->mu);
	if (h->buf.len == 0 || mono - h->rendered_us >= METRICS_FRESH_US) {
		take_figures(h, &ps);
		mbuf_reset(&h->buf);
		if (metrics_render(&h->buf, &h->snap, &ps, util_now_us()) == 0) {
			mbuf_printf(&h->buf, "# HELP vmingest_http_requests_total "
			    "Requests answered by the status endpoint, by status "
			    "code.\n# TYPE vmingest_http_requests_total counter\n");
			for (i = 0; i < C_N; i++)
				mbuf_printf(&h->buf, "vmingest_http_requests_total"
				    "{code=\"%u\"} %llu\n", code_num[i],
				    atomic_load_explicit(&h->requests[i],
				    memory_order_relaxed));
		}
		free(ps.topics);
		h->rendered_us = mono;
		if (h->buf.overflow)
			h->buf.len = 0;		/* never served from the cache */
	}
	if (h->buf.overflow)
		ret = reply_text(h, c, 500, C_500, "metrics too large\n");
	else
		ret = reply(h, c, 200, C_200,
		    "text/plain; version=0.0.4; charset=utf-8", h->buf.p,
		    h->buf.len);
	pthread_mutex_unlock(&h->mu);
	return ret;
}

/* /readyz and /status: always from a fresh snapshot. */
static enum MHD_Result
serve_stats(struct http *h, struct MHD_Connection *c, const char *url)
{
	struct publisher_stats ps;
	enum MHD_Result ret;
	int64_t	 now;
	json_t	*j;

	pthread_mutex_lock(&h->mu);
	take_figures(h, &ps);
	now = util_now_us();

	if (!strcmp(url, "/readyz")) {
		j = metrics_ready_json(&h->snap, &ps, now);
		ret = reply_json(h, c, j && json_is_true(json_object_get(j,
		    "ready")) ? 200 : 503, j && json_is_true(json_object_get(j,
		    "ready")) ? C_200 : C_503, j);
	} else {
		j = metrics_status_json(&h->snap, &ps, now);
		ret = reply_json(h, c, 200, C_200, j);
	}
	pthread_mutex_unlock(&h->mu);
	free(ps.topics);
	return ret;
}

static enum MHD_Result
handler(void *cls, struct MHD_Connection *c, const char *url,
    const char *method, const char *version, const char *upload_data,
    size_t *upload_data_size, void **con_cls)
{
	static int seen;
	struct http *h = cls;

	if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 &&
	    strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
		return reply_text(h, c, MHD_HTTP_METHOD_NOT_ALLOWED, C_405,
		    "method not allowed: GET and HEAD only\n");
	/*
	 * MHD calls once with the headers, then with any body, then once
	 * more with nothing: answering on that last call keeps the
	 * connection alive.  A request that announces a body gets 413 on
	 * the first call, and MHD closes the connection instead of reading
	 * the body (MHD only allows an early answer before the body).
	 */
	if (*con_cls == NULL) {
		const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
		    MHD_HTTP_HEADER_CONTENT_LENGTH);

		if ((cl != NULL && strcmp(cl, "0") != 0) ||
		    MHD_lookup_connection_value(c, MHD_HEADER_KIND,
		    MHD_HTTP_HEADER_TRANSFER_ENCODING) != NULL)
			return reply_text(h, c, MHD_HTTP_CONTENT_TOO_LARGE, C_413,
			    "a request body is not accepted\n");
		*con_cls = &seen;
		return MHD_YES;
	}
	if (*upload_data_size != 0)
		return MHD_NO;		/* a body nobody announced: close */
	if (!strcmp(url, "/healthz"))
		return serve_healthz(h, c);
	if (!strcmp(url, "/metrics"))
		return serve_metrics(h, c);
	if (!strcmp(url, "/readyz") || !strcmp(url, "/status"))
		return serve_stats(h, c, url);
	return reply_text(h, c, MHD_HTTP_NOT_FOUND, C_404,
	    "not found: try /healthz /readyz /metrics /status\n");
}

/*
 * "host:port" or "[v6]:port" into a socket address (numeric hosts, or a
 * name resolving to one).  0 ok, -1 with err set.
 */
static int
parse_listen(const char *spec, struct sockaddr_storage *ss, socklen_t *sslen,
    int *v6, char *err, size_t errlen)
{
	struct addrinfo hints, *res = NULL;
	char	 host[256];
	const char *colon, *port;
	size_t	 hl;
	int	 rc;

	if (spec[0] == '[') {
		const char *close = strchr(spec, ']');

		if (close == NULL || close[1] != ':') {
			snprintf(err, errlen, "[http] listen %s: expected "
			    "[ADDRESS]:PORT", spec);
			return -1;
		}
		hl = (size_t)(close - spec - 1);
		colon = close + 1;
		spec++;
	} else {
		if ((colon = strrchr(spec, ':')) == NULL) {
			snprintf(err, errlen, "[http] listen %s: expected "
			    "HOST:PORT, [ADDRESS]:PORT or off", spec);
			return -1;
		}
		hl = (size_t)(colon - spec);
	}
	port = colon + 1;
	if (hl == 0 || hl >= sizeof(host) || *port == '\0' ||
	    strspn(port, "0123456789") != strlen(port) || strlen(port) > 5 ||
	    atoi(port) > 65535) {
		snprintf(err, errlen, "[http] listen %s: bad host or port", spec);
		return -1;
	}
	memcpy(host, spec, hl);
	host[hl] = '\0';

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV | AI_PASSIVE;
	if ((rc = getaddrinfo(host, port, &hints, &res)) != 0 || res == NULL) {
		snprintf(err, errlen, "[http] listen %s: %s", host,
		    rc ? gai_strerror(rc) : "no address");
		return -1;
	}
	if (res->ai_addrlen > sizeof(*ss)) {
		freeaddrinfo(res);
		snprintf(err, errlen, "[http] listen %s: address too long", host);
		return -1;
	}
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	*sslen = res->ai_addrlen;
	*v6 = res->ai_family == AF_INET6;
	freeaddrinfo(res);
	return 0;
}

int
http_start(struct http **out, const struct config *cf, struct publisher *pub,
    char *err, size_t errlen)
{
	struct sockaddr_storage ss;
	socklen_t sslen;
	const union MHD_DaemonInfo *di;
	struct http *h;
	unsigned flags;
	int	 v6 = 0;

	*out = NULL;
	if (cf->http.listen == NULL || !strcmp(cf->http.listen, "off")) {
		log_notice("http: disabled ([http] listen = off)");
		return 0;
	}
	if (parse_listen(cf->http.listen, &ss, &sslen, &v6, err, errlen) == -1)
		return -1;
	if ((h = calloc(1, sizeof(*h))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	h->pub = pub;
	pthread_mutex_init(&h->mu, NULL);

	flags = MHD_USE_AUTO | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ITC |
	    MHD_USE_ERROR_LOG;
	if (v6)
		flags |= MHD_USE_IPv6;
	h->d = MHD_start_daemon(flags, 0, NULL, NULL, handler, h,
	    MHD_OPTION_EXTERNAL_LOGGER, mhd_log, h,
	    MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
	    MHD_OPTION_CONNECTION_LIMIT, (unsigned int)cf->http.max_connections,
	    MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned int)cf->http.per_ip,
	    MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)cf->http.timeout_s,
	    MHD_OPTION_CONNECTION_MEMORY_LIMIT,
	    (size_t)(cf->http.request_bytes + POOL_EXTRA),
	    MHD_OPTION_END);
	if (h->d == NULL) {
		snprintf(err, errlen, "cannot listen on %s (in use, or not an "
		    "address of this host)", cf->http.listen);
		pthread_mutex_destroy(&h->mu);
		free(h);
		return -1;
	}
	di = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
	log_notice("http: listening on %s (port %u), max_connections %u, "
	    "per_ip %u, timeout %u s", cf->http.listen,
	    di ? (unsigned)di->port : 0, cf->http.max_connections,
	    cf->http.per_ip, cf->http.timeout_s);
	*out = h;
	return 0;
}

void
http_stop(struct http *h)
{
	if (h == NULL)
		return;
	MHD_stop_daemon(h->d);
	mbuf_free(&h->buf);
	pthread_mutex_destroy(&h->mu);
	free(h);
}
