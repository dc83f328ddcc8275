/*
 * cmd_status.c - `vmingest status`: ask the running daemon how it is.
 *
 *   cmd_status   GET /status from the daemon's HTTP endpoint, print it as
 *                a table (or the JSON as received with --json), exit
 *                0 ready / 1 not ready / 2 unreachable
 *
 * The HTTP client is a plain blocking-with-deadline socket GET (HTTP/1.0,
 * Connection: close): the endpoint is local and the answer small, so no
 * libcurl.  Where the endpoint is: --http URL, else [http] listen of -c
 * FILE (or of the embedded default, 127.0.0.1:8425); a wildcard listen
 * address (0.0.0.0, ::) is asked on loopback.
 *
 * Error policy: anything that keeps us from a well-formed /status answer
 * (bad URL, refused, timeout, not HTTP, not JSON, answer over
 * STATUS_MAX_BYTES) prints one line on stderr and exits 2.
 *
 * SECURITY: the answer comes from whatever listens on that port: it is
 * size-capped, parsed by jansson, and control characters in its strings
 * are replaced before they reach the terminal.
 */
#include <sys/socket.h>
#include <sys/types.h>

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "cmd_common.h"
#include "cmds.h"
#include "config.h"

#define STATUS_MAX_BYTES	(8u * 1024 * 1024)
#define STATUS_TIMEOUT_MS	5000

static const char status_usage[] =
"usage: vmingest status [-c FILE | --http URL] [--json] [--timeout SECONDS]\n"
"\n"
"Ask the running vmingestd for its status over its HTTP endpoint (GET\n"
"/status) and print it: version, uptime, store (path, epoch, last seq,\n"
"map and disk use), each queue (backlog, age of the oldest waiting file,\n"
"rate over the last minute, whether its Maildir can be read), each topic\n"
"(head topic_seq, records published), quarantined count, subscribers,\n"
"and every failing readiness check with the reason.\n"
"\n"
"Options:\n"
"  -c, --config FILE   the daemon's configuration: ask on its [http]\n"
"                      listen address (without -c and --http: the\n"
"                      embedded default, 127.0.0.1:8425)\n"
"      --http URL      ask here instead: http://HOST:PORT, HOST:PORT or\n"
"                      [IPV6]:PORT (a path in the URL is ignored)\n"
"      --json          print the daemon's JSON document unchanged\n"
"      --timeout S     give up after S seconds (default 5)\n"
"  -h, --help          this text\n"
"\n"
"Exit status:\n"
"  0  the daemon answered and is ready (every readiness check passes)\n"
"  1  the daemon answered and is not ready (the failing checks are shown)\n"
"  2  usage error, [http] listen = off, or the daemon could not be\n"
"     reached or gave no valid answer\n"
"\n"
"Examples:\n"
"  vmingest status -c /etc/vmingest/vmingestd.conf\n"
"  vmingest status --http http://127.0.0.1:8425 --json | jq .queues\n"
"  vmingest status -c /etc/vmingest/vmingestd.conf >/dev/null || alert\n"
"\n"
"See also: /readyz and /metrics on the same endpoint, vmingestd(8).\n";

static int64_t
mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * Split "http://HOST:PORT/...", "HOST:PORT" or "[V6]:PORT" (also a
 * listen value); wildcard hosts become loopback.  0 ok, -1 bad.
 */
static int
split_hostport(const char *in, char *host, size_t hl, char *port, size_t pl)
{
	const char *s = in, *e, *colon;
	size_t	 n;

	if (!strncmp(s, "http://", 7))
		s += 7;
	e = s + strcspn(s, "/?#");
	if (*s == '[') {
		const char *close = memchr(s, ']', (size_t)(e - s));

		if (close == NULL)
			return -1;
		n = (size_t)(close - s - 1);
		if (n == 0 || n >= hl)
			return -1;
		memcpy(host, s + 1, n);
		host[n] = '\0';
		colon = close + 1 < e && close[1] == ':' ? close + 1 : NULL;
		if (colon == NULL && close + 1 != e)
			return -1;
	} else {
		for (colon = e; colon > s && colon[-1] != ':'; colon--)
			;
		colon = colon > s ? colon - 1 : NULL;
		n = (size_t)((colon ? colon : e) - s);
		if (n == 0 || n >= hl)
			return -1;
		memcpy(host, s, n);
		host[n] = '\0';
	}
	if (colon == NULL) {
		snprintf(port, pl, "80");
	} else {
		n = (size_t)(e - colon - 1);
		if (n == 0 || n >= pl || n > 5)
			return -1;
		memcpy(port, colon + 1, n);
		port[n] = '\0';
		if (strspn(port, "0123456789") != n || atoi(port) > 65535)
			return -1;
	}
	if (!strcmp(host, "0.0.0.0") || !strcmp(host, "*"))
		snprintf(host, hl, "127.0.0.1");
	else if (!strcmp(host, "::"))
		snprintf(host, hl, "::1");
	return 0;
}

/* Wait for fd to become ready for ev until deadline; 0 ok, -1 timeout/error. */
static int
wait_fd(int fd, short ev, int64_t deadline)
{
	struct pollfd pfd = { .fd = fd, .events = ev };
	int64_t	 left;
	int	 n;

	for (;;) {
		if ((left = deadline - mono_ms()) <= 0) {
			errno = ETIMEDOUT;
			return -1;
		}
		n = poll(&pfd, 1, (int)left);
		if (n > 0)
			return 0;
		if (n == -1 && errno != EINTR)
			return -1;
	}
}

static int
connect_to(const char *host, const char *port, int64_t deadline, char *err,
    size_t errlen)
{
	struct addrinfo hints, *res, *ai;
	int	 fd = -1, rc, soerr = 0;
	socklen_t sl = sizeof(soerr);

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV;
	if ((rc = getaddrinfo(host, port, &hints, &res)) != 0) {
		snprintf(err, errlen, "%s", gai_strerror(rc));
		return -1;
	}
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		if ((fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK |
		    SOCK_CLOEXEC, ai->ai_protocol)) == -1)
			continue;
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
			break;
		if (errno == EINPROGRESS && wait_fd(fd, POLLOUT, deadline) == 0 &&
		    getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == 0 &&
		    soerr == 0)
			break;
		if (soerr != 0)
			errno = soerr;
		snprintf(err, errlen, "%s", strerror(errno));
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	return fd;
}

/*
 * GET path; on success *body is malloc'd (NUL-terminated) and *code is
 * the HTTP status.  0 ok, -1 with err set.
 */
static int
http_get(const char *host, const char *port, const char *path, int timeout_ms,
    int *code, char **body, char *err, size_t errlen)
{
	int64_t	 deadline = mono_ms() + timeout_ms;
	char	 req[1024], *buf = NULL, *hdr_end;
	size_t	 len = 0, cap = 0, off;
	ssize_t	 n;
	int	 fd, w, rc = -1;

	*body = NULL;
	w = snprintf(req, sizeof(req), "GET %s HTTP/1.0\r\nHost: %s%s%s:%s\r\n"
	    "User-Agent: vmingest/%s\r\nAccept: application/json\r\n"
	    "Connection: close\r\n\r\n", path, strchr(host, ':') ? "[" : "",
	    host, strchr(host, ':') ? "]" : "", port, VMI_VERSION);
	if (w < 0 || (size_t)w >= sizeof(req)) {
		snprintf(err, errlen, "host name too long");
		return -1;
	}
	if ((fd = connect_to(host, port, deadline, err, errlen)) == -1)
		return -1;
	for (off = 0; off < (size_t)w; ) {
		n = send(fd, req + off, (size_t)w - off, MSG_NOSIGNAL);
		if (n > 0) {
			off += (size_t)n;
			continue;
		}
		if (n == -1 && (errno == EAGAIN || errno == EINTR) &&
		    wait_fd(fd, POLLOUT, deadline) == 0)
			continue;
		snprintf(err, errlen, "send: %s", strerror(errno));
		goto out;
	}
	for (;;) {
		if (cap - len < 4096) {
			char *p;

			if (cap >= STATUS_MAX_BYTES) {
				snprintf(err, errlen, "answer larger than %u bytes",
				    STATUS_MAX_BYTES);
				goto out;
			}
			cap = cap ? cap * 2 : 16384;
			if ((p = realloc(buf, cap + 1)) == NULL) {
				snprintf(err, errlen, "out of memory");
				goto out;
			}
			buf = p;
		}
		n = recv(fd, buf + len, cap - len, 0);
		if (n > 0) {
			len += (size_t)n;
			continue;
		}
		if (n == 0)
			break;
		if ((errno == EAGAIN || errno == EINTR) &&
		    wait_fd(fd, POLLIN, deadline) == 0)
			continue;
		snprintf(err, errlen, "%s", errno == ETIMEDOUT ?
		    "no answer in time" : strerror(errno));
		goto out;
	}
	if (buf == NULL) {
		snprintf(err, errlen, "empty answer");
		goto out;
	}
	buf[len] = '\0';
	if (len < 12 || strncmp(buf, "HTTP/1.", 7) != 0 || buf[8] != ' ' ||
	    sscanf(buf + 9, "%3d", code) != 1 ||
	    (hdr_end = strstr(buf, "\r\n\r\n")) == NULL) {
		snprintf(err, errlen, "not an HTTP answer");
		goto out;
	}
	off = (size_t)(hdr_end + 4 - buf);
	memmove(buf, buf + off, len - off + 1);
	*body = buf;
	buf = NULL;
	rc = 0;
out:
	free(buf);
	close(fd);
	return rc;
}

/* ---- printing ---- */

/* A string from the answer, safe for a terminal (controls become '?'). */
static const char *
sv(json_t *o, const char *key)
{
	static char bufs[4][1024];
	static int k;
	const char *s = json_string_value(json_object_get(o, key));
	char	*b = bufs[k++ & 3];
	size_t	 i;

	if (s == NULL)
		return "-";
	for (i = 0; s[i] != '\0' && i + 1 < sizeof(bufs[0]); i++)
		b[i] = (unsigned char)s[i] < 0x20 || s[i] == 0x7f ? '?' : s[i];
	b[i] = '\0';
	return b;
}

static long long
iv(json_t *o, const char *key)
{
	return json_integer_value(json_object_get(o, key));
}

static double
dv(json_t *o, const char *key)
{
	return json_number_value(json_object_get(o, key));
}

static const char *
human_bytes(char *buf, size_t n, double v)
{
	static const char *u[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB" };
	size_t	 i = 0;

	while (v >= 1024 && i + 1 < sizeof(u) / sizeof(u[0])) {
		v /= 1024;
		i++;
	}
	snprintf(buf, n, i ? "%.1f %s" : "%.0f %s", v, u[i]);
	return buf;
}

static const char *
human_secs(char *buf, size_t n, double s)
{
	long long t = (long long)s;

	if (t < 60)
		snprintf(buf, n, "%llds", t);
	else if (t < 3600)
		snprintf(buf, n, "%lldm%02llds", t / 60, t % 60);
	else if (t < 86400)
		snprintf(buf, n, "%lldh%02lldm", t / 3600, t / 60 % 60);
	else
		snprintf(buf, n, "%lldd%02lldh", t / 86400, t / 3600 % 24);
	return buf;
}

static void
print_status(json_t *j, const char *where)
{
	json_t	*qa = json_object_get(j, "queues");
	json_t	*ta = json_object_get(j, "topics");
	json_t	*fa = json_object_get(j, "failing");
	json_t	*v;
	char	 b1[64], b2[64];
	size_t	 i, wq = 5, wt = 5;
	double	 map = dv(j, "map_bytes"), used = dv(j, "used_bytes");
	int	 ready = json_is_true(json_object_get(j, "ready"));

	printf("vmingestd %s at %s: %s\n", sv(j, "version"), where,
	    ready ? "READY" : "NOT READY");
	printf("  %-12s %s\n", "uptime", human_secs(b1, sizeof(b1),
	    dv(j, "uptime_s")));
	printf("  %-12s %s\n", "config", sv(j, "config_file"));
	printf("  %-12s %s (epoch %s, last seq %lld)\n", "store",
	    sv(j, "store_path"), sv(j, "epoch"), iv(j, "last_seq"));
	printf("  %-12s %s used of %s (%.1f%%)%s%s\n", "map",
	    human_bytes(b1, sizeof(b1), used), human_bytes(b2, sizeof(b2), map),
	    map > 0 ? 100.0 * used / map : 0.0,
	    json_is_true(json_object_get(j, "store_writable")) ? "" :
	    ", NOT WRITABLE: ", json_is_true(json_object_get(j,
	    "store_writable")) ? "" : sv(j, "store_error"));
	printf("  %-12s %s free of %s\n", "disk",
	    human_bytes(b1, sizeof(b1), dv(j, "disk_free_bytes")),
	    human_bytes(b2, sizeof(b2), dv(j, "disk_total_bytes")));
	printf("  %-12s %lld\n", "quarantined", iv(j, "quarantined"));
	printf("  %-12s %lld\n", "subscribers", iv(j, "subscribers"));
	printf("  %-12s %lld\n", "published", iv(j, "published_total"));

	json_array_foreach(qa, i, v)
		if (strlen(sv(v, "name")) > wq)
			wq = strlen(sv(v, "name"));
	printf("\n%-*s %9s %8s %8s  %-5s %s\n", (int)wq, "QUEUE", "BACKLOG",
	    "OLDEST", "RATE/S", "STATE", "MAILDIR");
	json_array_foreach(qa, i, v)
		printf("%-*s %9lld %8s %8.2f  %-5s %s\n", (int)wq, sv(v, "name"),
		    iv(v, "backlog_files"), human_secs(b1, sizeof(b1),
		    dv(v, "backlog_oldest_s")), dv(v, "rate_1m"),
		    json_is_true(json_object_get(v, "readable")) ? "ok" : "ERROR",
		    sv(v, "maildir"));

	if (json_array_size(ta) > 0) {
		json_array_foreach(ta, i, v)
			if (strlen(sv(v, "topic")) > wt)
				wt = strlen(sv(v, "topic"));
		printf("\n%-*s %12s %12s\n", (int)wt, "TOPIC", "HEAD",
		    "PUBLISHED");
		json_array_foreach(ta, i, v)
			printf("%-*s %12lld %12lld\n", (int)wt, sv(v, "topic"),
			    iv(v, "head_topic_seq"), iv(v, "published"));
	}
	if (json_array_size(fa) > 0) {
		printf("\nfailing checks:\n");
		json_array_foreach(fa, i, v) {
			if (json_object_get(v, "queue") != NULL)
				printf("  %s [%s]: %s\n", sv(v, "check"),
				    sv(v, "queue"), sv(v, "why"));
			else
				printf("  %s: %s\n", sv(v, "check"), sv(v, "why"));
		}
	}
}

enum { O_HTTP = 256, O_JSON, O_TIMEOUT };

int
cmd_status(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "http", required_argument, NULL, O_HTTP },
		{ "json", no_argument, NULL, O_JSON },
		{ "timeout", required_argument, NULL, O_TIMEOUT },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	const char *cfpath = NULL, *url = NULL;
	struct config *cf = NULL;
	char	 host[256], port[16], where[320], err[512], *body = NULL;
	json_error_t jerr;
	json_t	*j = NULL;
	uint64_t tmo = STATUS_TIMEOUT_MS / 1000;
	int	 ch, json = 0, code = 0, rc = 2;

	optind = 1;
	while ((ch = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
		switch (ch) {
		case 'c': cfpath = optarg; break;
		case O_HTTP: url = optarg; break;
		case O_JSON: json = 1; break;
		case O_TIMEOUT:
			if (cli_parse_u64(optarg, &tmo) == -1 || tmo == 0 ||
			    tmo > 3600)
				goto usage;
			break;
		case 'h': fputs(status_usage, stdout); return 0;
		default: goto usage;
		}
	}
	if (optind != argc || (cfpath != NULL && url != NULL))
		goto usage;

	if (url == NULL) {
		if ((cf = cli_load_config("status", cfpath)) == NULL)
			return 2;
		if (cf->http.listen == NULL || !strcmp(cf->http.listen, "off")) {
			fprintf(stderr, "vmingest status: %s has [http] listen = "
			    "off: the daemon has no status endpoint\n",
			    cfpath ? cfpath : "the embedded default");
			config_free(cf);
			return 2;
		}
		url = cf->http.listen;
	}
	if (split_hostport(url, host, sizeof(host), port, sizeof(port)) == -1) {
		fprintf(stderr, "vmingest status: %s: expected http://HOST:PORT, "
		    "HOST:PORT or [IPV6]:PORT\n", url);
		goto out;
	}
	snprintf(where, sizeof(where), "http://%s%s%s:%s", strchr(host, ':') ?
	    "[" : "", host, strchr(host, ':') ? "]" : "", port);
	if (http_get(host, port, "/status", (int)tmo * 1000, &code, &body, err,
	    sizeof(err)) == -1) {
		fprintf(stderr, "vmingest status: cannot reach %s: %s\n", where,
		    err);
		goto out;
	}
	if (code != 200) {
		fprintf(stderr, "vmingest status: %s/status answered HTTP %d\n",
		    where, code);
		goto out;
	}
	if ((j = json_loads(body, 0, &jerr)) == NULL || !json_is_object(j) ||
	    !json_is_boolean(json_object_get(j, "ready"))) {
		fprintf(stderr, "vmingest status: %s/status: not a vmingestd "
		    "status document%s%s\n", where, j ? "" : ": ",
		    j ? "" : jerr.text);
		goto out;
	}
	if (json)
		fputs(body, stdout), fputc('\n', stdout);
	else
		print_status(j, where);
	rc = json_is_true(json_object_get(j, "ready")) ? 0 : 1;
out:
	json_decref(j);
	free(body);
	config_free(cf);
	return rc;
usage:
	fputs(status_usage, stderr);
	return 2;
}
