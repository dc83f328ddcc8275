/*
 * metrics.c - readiness checks, Prometheus exposition and the /status
 * document, all computed from a snapshot of g_stats (see metrics.h).
 *
 *   metrics_snapshot     copy the used part of g_stats under its lock
 *   metrics_alive_ok     the main loop ticked within stall_s
 *   metrics_ready        every readiness check, the failing ones listed
 *   metrics_render       text format 0.0.4, passes `promtool check metrics`
 *   metrics_status_json  /status
 *   metrics_ready_json   /readyz
 *
 * Error policy: nothing here fails except on memory: a render that would
 * pass METRICS_MAX_BYTES returns -1 (the caller answers 500), a JSON
 * constructor that runs out of memory returns NULL.
 *
 * Why a snapshot: the HTTP thread must not hold g_stats.mu while it
 * formats text (the main loop takes the lock for every committed
 * message), so it copies the figures (a few KB) and formats outside.
 * The render reuses one buffer per caller, so a scrape costs one
 * memcpy of the result and no allocation once the buffer has grown.
 *
 * SECURITY: label values come from the configuration (queue names) and
 * from the publisher (topic names, which come from rules applied to
 * hostile mail; they are validated topics, but escaped here anyway as
 * the exposition format requires: backslash, double quote, newline).
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "metrics.h"

static const double lat_bounds[STATS_NBUCKETS] = STATS_LAT_BOUNDS;

static const char *const disp_names[STATS_NDISP] = {
	"unset", "stored", "quarantined", "duplicate", "published", "discarded"
};

const char *
metrics_disposition_name(unsigned d)
{
	return d < STATS_NDISP ? disp_names[d] : "unknown";
}

/* ---- buffer ---- */

void
mbuf_reset(struct mbuf *b)
{
	b->len = 0;
	b->overflow = 0;
	if (b->p != NULL)
		b->p[0] = '\0';
}

void
mbuf_free(struct mbuf *b)
{
	free(b->p);
	b->p = NULL;
	b->len = b->cap = 0;
	b->overflow = 0;
}

static int
mbuf_grow(struct mbuf *b, size_t need)
{
	size_t	 cap = b->cap ? b->cap : 8192;
	char	*p;

	if (need > METRICS_MAX_BYTES) {
		b->overflow = 1;
		return -1;
	}
	while (cap < need)
		cap *= 2;
	if (cap > METRICS_MAX_BYTES)
		cap = METRICS_MAX_BYTES;
	if ((p = realloc(b->p, cap)) == NULL)
		log_fatal("realloc");
	b->p = p;
	b->cap = cap;
	return 0;
}

void
mbuf_printf(struct mbuf *b, const char *fmt, ...)
{
	va_list	 ap;
	int	 n;

	if (b->overflow)
		return;
	if (b->cap - b->len < 256 && mbuf_grow(b, b->len + 256) == -1)
		return;
	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
		va_end(ap);
		if (n < 0) {
			b->overflow = 1;
			return;
		}
		if ((size_t)n < b->cap - b->len)
			break;
		/* truncated: grow to fit and format again */
		if (mbuf_grow(b, b->len + (size_t)n + 1) == -1) {
			b->p[b->len] = '\0';
			return;
		}
	}
	b->len += (size_t)n;
}

/* Append s as a label value: \ " and newline escaped (format 0.0.4). */
static void
mbuf_label(struct mbuf *b, const char *s)
{
	char	 tmp[512];
	size_t	 o = 0;

	for (; *s != '\0'; s++) {
		if (o + 3 >= sizeof(tmp)) {
			tmp[o] = '\0';
			mbuf_printf(b, "%s", tmp);
			o = 0;
		}
		if (*s == '\\' || *s == '"') {
			tmp[o++] = '\\';
			tmp[o++] = *s;
		} else if (*s == '\n') {
			tmp[o++] = '\\';
			tmp[o++] = 'n';
		} else
			tmp[o++] = *s;
	}
	tmp[o] = '\0';
	mbuf_printf(b, "%s", tmp);
}

/* ---- snapshot ---- */

void
metrics_snapshot(struct stats *out)
{
	size_t	 nq;

	pthread_mutex_lock(&g_stats.mu);
	memcpy(out, &g_stats, offsetof(struct stats, queues));
	nq = g_stats.n_queues <= CONFIG_MAX_QUEUES ? g_stats.n_queues :
	    CONFIG_MAX_QUEUES;
	memcpy(out->queues, g_stats.queues, nq * sizeof(out->queues[0]));
	pthread_mutex_unlock(&g_stats.mu);
	out->n_queues = nq;
}

/* ---- readiness ---- */

int
metrics_alive_ok(const struct stats *s, int64_t now_us)
{
	/*
	 * XXX the clock is CLOCK_REALTIME (as in stats.c): a step of the
	 * wall clock by more than stall_s reads as a stall until the next
	 * tick (at most a second later), or hides a stall for that long.
	 */
	return now_us - s->tick_us <= (int64_t)s->stall_s * 1000000;
}

static void
check_fail(struct metrics_check *out, size_t max, size_t *n, const char *name,
    const char *queue, const char *fmt, ...) __attribute__((format(printf, 6, 7)));

static void
check_fail(struct metrics_check *out, size_t max, size_t *n, const char *name,
    const char *queue, const char *fmt, ...)
{
	va_list	 ap;

	if (*n < max && out != NULL) {
		out[*n].name = name;
		snprintf(out[*n].queue, sizeof(out[*n].queue), "%s",
		    queue ? queue : "");
		va_start(ap, fmt);
		/* a truncated reason is still a reason: keep the prefix */
		(void)vsnprintf(out[*n].why, sizeof(out[*n].why), fmt, ap);
		va_end(ap);
	}
	(*n)++;
}

/* Free percentage of total, or -1 when unknown (total 0). */
static double
free_pct(uint64_t free_b, uint64_t total_b)
{
	if (total_b == 0)
		return -1;
	return 100.0 * (double)free_b / (double)total_b;
}

size_t
metrics_ready(const struct stats *s, const struct publisher_stats *ps,
    int64_t now_us, struct metrics_check *out, size_t max)
{
	size_t	 n = 0, i;
	double	 pct;
	int64_t	 stall_us = (int64_t)s->stall_s * 1000000;

	if (!metrics_alive_ok(s, now_us))
		check_fail(out, max, &n, "main_loop", NULL,
		    "the main loop last ticked %.1f s ago (stall_s %u)",
		    (double)(now_us - s->tick_us) / 1e6, s->stall_s);
	if (!s->store_open)
		check_fail(out, max, &n, "store_writable", NULL,
		    "the store %s is not open (yet)", s->store_path);
	else if (!s->store_writable)
		check_fail(out, max, &n, "store_writable", NULL,
		    "the last commit to %s failed: %s", s->store_path,
		    s->store_error[0] ? s->store_error : "unknown error");

	pct = free_pct(s->map_bytes >= s->used_bytes ? s->map_bytes -
	    s->used_bytes : 0, s->map_bytes);
	if (pct < 0)
		check_fail(out, max, &n, "map_headroom", NULL,
		    "the store map has not been measured yet");
	else if (pct < (double)s->min_free_pct)
		check_fail(out, max, &n, "map_headroom", NULL,
		    "%.1f%% of the store map is free (%zu of %zu bytes used), "
		    "below min_free_pct %u", pct, s->used_bytes, s->map_bytes,
		    s->min_free_pct);

	pct = free_pct(s->disk_free_bytes, s->disk_total_bytes);
	if (pct < 0)
		check_fail(out, max, &n, "disk_headroom", NULL,
		    "the store's file system has not been measured yet");
	else if (pct < (double)s->min_free_pct)
		check_fail(out, max, &n, "disk_headroom", NULL,
		    "%.1f%% of the store's file system is free (%llu bytes), "
		    "below min_free_pct %u", pct,
		    (unsigned long long)s->disk_free_bytes, s->min_free_pct);

	for (i = 0; i < s->n_queues; i++) {
		const struct queue_stats *q = &s->queues[i];
		int64_t	 idle_us;

		if (!q->readable)
			check_fail(out, max, &n, "maildir_readable", q->name,
			    "%s", q->error[0] ? q->error :
			    "the Maildir has not been opened yet");
		/*
		 * Stuck: files have been waiting for longer than stall_s and
		 * nothing of this queue committed for that long either.  A
		 * steady stream keeps the backlog non-empty, but progresses.
		 */
		if (q->backlog_files == 0 || q->waiting_since_us == 0)
			continue;
		idle_us = now_us - (q->last_progress_us > q->waiting_since_us ?
		    q->last_progress_us : q->waiting_since_us);
		if (idle_us > stall_us)
			check_fail(out, max, &n, "backlog_progress", q->name,
			    "%llu file(s) in %s/new, none committed for %.0f s "
			    "(stall_s %u)", (unsigned long long)q->backlog_files,
			    q->maildir, (double)idle_us / 1e6, s->stall_s);
	}

	if (ps == NULL || !ps->bound)
		check_fail(out, max, &n, "publisher_bound", NULL,
		    "the publisher's endpoints are not bound");
	return n;
}

/* ---- Prometheus text format 0.0.4 ---- */

static void
meta(struct mbuf *b, const char *name, const char *type, const char *help)
{
	mbuf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void
scalar_u(struct mbuf *b, const char *name, const char *type, const char *help,
    unsigned long long v)
{
	meta(b, name, type, help);
	mbuf_printf(b, "%s %llu\n", name, v);
}

static void
scalar_d(struct mbuf *b, const char *name, const char *type, const char *help,
    double v)
{
	meta(b, name, type, help);
	mbuf_printf(b, "%s %.9g\n", name, v);
}

static void
histogram(struct mbuf *b, const char *name, const char *help,
    const struct histogram *h)
{
	unsigned long long acc = 0;
	size_t	 i;

	meta(b, name, "histogram", help);
	for (i = 0; i < STATS_NBUCKETS; i++) {
		acc += h->buckets[i];
		mbuf_printf(b, "%s_bucket{le=\"%g\"} %llu\n", name, lat_bounds[i],
		    acc);
	}
	/* the snapshot was taken under the lock: acc == count */
	acc += h->buckets[STATS_NBUCKETS];
	mbuf_printf(b, "%s_bucket{le=\"+Inf\"} %llu\n", name, acc);
	mbuf_printf(b, "%s_sum %.9g\n%s_count %llu\n", name, h->sum, name,
	    (unsigned long long)h->count);
}

/* Per-queue series: name{queue="Q"} value, one line per queue. */
#define PER_QUEUE(b, s, mname, fmt, expr) do {				\
	size_t qi_;							\
	for (qi_ = 0; qi_ < (s)->n_queues; qi_++) {			\
		const struct queue_stats *q = &(s)->queues[qi_];	\
		mbuf_printf((b), "%s{queue=\"", (mname));		\
		mbuf_label((b), q->name);				\
		mbuf_printf((b), "\"} " fmt "\n", (expr));		\
	}								\
} while (0)

int
metrics_render(struct mbuf *b, const struct stats *s,
    const struct publisher_stats *ps, int64_t now_us)
{
	struct publisher_stats none;
	size_t	 i, d;

	if (ps == NULL) {
		memset(&none, 0, sizeof(none));
		ps = &none;
	}

	meta(b, "vmingest_build_info", "gauge",
	    "Version of the running vmingestd (value is always 1).");
	mbuf_printf(b, "vmingest_build_info{version=\"%s\"} 1\n", VMI_VERSION);
	scalar_u(b, "vmingest_start_time_seconds", "gauge",
	    "Start time of vmingestd, seconds since the Unix epoch.",
	    (unsigned long long)(s->start_us / 1000000));
	scalar_d(b, "vmingest_main_loop_tick_age_seconds", "gauge",
	    "Seconds since the main loop last ticked (healthz fails past stall_s).",
	    now_us > s->tick_us ? (double)(now_us - s->tick_us) / 1e6 : 0.0);
	scalar_u(b, "vmingest_ready", "gauge",
	    "1 when /readyz answers 200, 0 when a readiness check fails.",
	    metrics_ready(s, ps, now_us, NULL, 0) == 0);

	meta(b, "vmingest_messages_total", "counter",
	    "Messages committed to the store, by queue and disposition.");
	for (i = 0; i < s->n_queues; i++) {
		const struct queue_stats *q = &s->queues[i];

		for (d = 0; d < STATS_NDISP; d++) {
			/* "unset" never happens; show it only if it did */
			if (d == 0 && q->messages[0] == 0)
				continue;
			mbuf_printf(b, "vmingest_messages_total{queue=\"");
			mbuf_label(b, q->name);
			mbuf_printf(b, "\",disposition=\"%s\"} %llu\n",
			    disp_names[d], (unsigned long long)q->messages[d]);
		}
	}
	meta(b, "vmingest_bytes_total", "counter",
	    "Bytes of mail committed to the store, by queue.");
	PER_QUEUE(b, s, "vmingest_bytes_total", "%llu",
	    (unsigned long long)q->bytes);
	meta(b, "vmingest_backlog_files", "gauge",
	    "Files waiting in the queue's new/ at the last count.");
	PER_QUEUE(b, s, "vmingest_backlog_files", "%llu",
	    (unsigned long long)q->backlog_files);
	meta(b, "vmingest_backlog_oldest_seconds", "gauge",
	    "Age of the oldest file waiting in the queue's new/.");
	PER_QUEUE(b, s, "vmingest_backlog_oldest_seconds", "%.9g",
	    q->backlog_oldest_s);
	meta(b, "vmingest_maildir_readable", "gauge",
	    "1 when the queue's Maildir can be opened and read.");
	PER_QUEUE(b, s, "vmingest_maildir_readable", "%d", q->readable ? 1 : 0);

	meta(b, "vmingest_published_total", "counter",
	    "Records handed to subscribers, by topic.");
	for (i = 0; i < ps->n_topics && ps->topics != NULL; i++) {
		mbuf_printf(b, "vmingest_published_total{topic=\"");
		mbuf_label(b, ps->topics[i].topic);
		mbuf_printf(b, "\"} %llu\n",
		    (unsigned long long)ps->topics[i].published);
	}
	meta(b, "vmingest_topic_head_seq", "gauge",
	    "Last topic_seq assigned in the topic.");
	for (i = 0; i < ps->n_topics && ps->topics != NULL; i++) {
		mbuf_printf(b, "vmingest_topic_head_seq{topic=\"");
		mbuf_label(b, ps->topics[i].topic);
		mbuf_printf(b, "\"} %llu\n",
		    (unsigned long long)ps->topics[i].head_topic_seq);
	}
	scalar_u(b, "vmingest_publisher_bound", "gauge",
	    "1 when every publisher endpoint is bound.", ps->bound ? 1 : 0);
	scalar_u(b, "vmingest_subscribers", "gauge",
	    "Subscribers connected to the live feed.", ps->subscribers);
	scalar_u(b, "vmingest_auth_failures_total", "counter",
	    "CURVE/ZAP authentication failures.", ps->auth_failures);
	scalar_u(b, "vmingest_replay_requests_total", "counter",
	    "Replay requests served.", ps->replay_requests);
	scalar_u(b, "vmingest_replayed_records_total", "counter",
	    "Records sent in answer to replay requests.", ps->replayed_records);
	scalar_u(b, "vmingest_publish_dropped_total", "counter",
	    "Live sends dropped on overflow (subscribers recover them by replay).",
	    ps->dropped);

	scalar_u(b, "vmingest_store_writable", "gauge",
	    "1 when the store is open and the last commit succeeded.",
	    s->store_open && s->store_writable);
	scalar_u(b, "vmingest_store_map_bytes", "gauge",
	    "Size of the LMDB map.", (unsigned long long)s->map_bytes);
	scalar_u(b, "vmingest_store_used_bytes", "gauge",
	    "Bytes of the LMDB map in use.", (unsigned long long)s->used_bytes);
	scalar_u(b, "vmingest_disk_free_bytes", "gauge",
	    "Bytes free (for an unprivileged user) on the store's file system.",
	    s->disk_free_bytes);
	scalar_u(b, "vmingest_disk_size_bytes", "gauge",
	    "Size of the store's file system.", s->disk_total_bytes);
	scalar_u(b, "vmingest_last_seq", "gauge",
	    "Sequence number of the last committed record.", s->last_seq);
	scalar_u(b, "vmingest_quarantined_total", "counter",
	    "Messages stored quarantined since the start.", s->quarantined);
	scalar_u(b, "vmingest_pruned_records_total", "counter",
	    "Records removed by retention.", s->pruned_records);
	scalar_u(b, "vmingest_pruned_bytes_total", "counter",
	    "Bytes removed by retention.", s->pruned_bytes);
	scalar_u(b, "vmingest_reloads_total", "counter",
	    "Successful configuration reloads (SIGHUP).", s->reloads);
	scalar_u(b, "vmingest_reload_failures_total", "counter",
	    "Reloads refused (the running configuration was kept).",
	    s->reload_failures);

	histogram(b, "vmingest_ingest_latency_seconds",
	    "Time from the file's ctime (its rename into new/, coarse clock) to the durable commit.",
	    &s->ingest_latency);
	histogram(b, "vmingest_commit_seconds",
	    "Duration of one batch commit (write transaction with fsync).",
	    &s->commit_seconds);
	return b->overflow ? -1 : 0;
}

/* ---- JSON ---- */

/* A string from the configuration or an error text: paths may not be
 * UTF-8, which jansson refuses; those are sent escaped (\xHH). */
static json_t *
jstr(const char *s)
{
	char	 buf[2048];
	json_t	*j;

	if ((j = json_string(s)) != NULL)
		return j;
	return json_string(log_escape(buf, sizeof(buf), s, strlen(s)));
}

static json_t *
checks_json(const struct metrics_check *c, size_t n)
{
	json_t	*a = json_array();
	size_t	 i;

	for (i = 0; a != NULL && i < n; i++) {
		json_t	*o = json_pack("{s:s, s:o}", "check", c[i].name, "why",
		    jstr(c[i].why));

		if (o != NULL && c[i].queue[0] != '\0')
			json_object_set_new(o, "queue", jstr(c[i].queue));
		json_array_append_new(a, o);
	}
	return a;
}

json_t *
metrics_ready_json(const struct stats *s, const struct publisher_stats *ps,
    int64_t now_us)
{
	static __thread struct metrics_check c[METRICS_MAX_CHECKS];
	size_t	 n;

	n = metrics_ready(s, ps, now_us, c, METRICS_MAX_CHECKS);
	return json_pack("{s:b, s:o, s:I}", "ready", n == 0, "failing",
	    checks_json(c, n < METRICS_MAX_CHECKS ? n : METRICS_MAX_CHECKS),
	    "failing_count", (json_int_t)n);
}

static json_int_t
ji(uint64_t v)
{
	return v > (uint64_t)INT64_MAX ? (json_int_t)INT64_MAX : (json_int_t)v;
}

json_t *
metrics_status_json(const struct stats *s, const struct publisher_stats *ps,
    int64_t now_us)
{
	static __thread struct metrics_check c[METRICS_MAX_CHECKS];
	json_t	*o, *qa, *ta, *jq, *msgs;
	char	 ep[32];
	size_t	 i, d, n;

	n = metrics_ready(s, ps, now_us, c, METRICS_MAX_CHECKS);
	snprintf(ep, sizeof(ep), "%016llx", (unsigned long long)s->epoch);
	o = json_pack("{s:s, s:I, s:I, s:o, s:o, s:s, s:I, s:I, s:I, s:I, s:I,"
	    " s:b, s:o, s:I, s:I, s:I, s:I, s:b, s:b, s:o}",
	    "version", VMI_VERSION,
	    "start_time", (json_int_t)(s->start_us / 1000000),
	    "uptime_s", (json_int_t)((now_us - s->start_us) / 1000000),
	    "config_file", jstr(s->config_path),
	    "store_path", jstr(s->store_path),
	    "epoch", ep,
	    "last_seq", ji(s->last_seq),
	    "quarantined", ji(s->quarantined),
	    "subscribers", ji(ps ? ps->subscribers : 0),
	    "map_bytes", ji(s->map_bytes),
	    "used_bytes", ji(s->used_bytes),
	    "store_writable", s->store_open && s->store_writable,
	    "store_error", jstr(s->store_error),
	    "disk_free_bytes", ji(s->disk_free_bytes),
	    "disk_total_bytes", ji(s->disk_total_bytes),
	    "published_total", ji(ps ? ps->published_total : 0),
	    "pruned_records", ji(s->pruned_records),
	    "healthy", metrics_alive_ok(s, now_us),
	    "ready", n == 0,
	    "failing", checks_json(c, n < METRICS_MAX_CHECKS ? n :
	    METRICS_MAX_CHECKS));
	if (o == NULL)
		return NULL;

	qa = json_array();
	for (i = 0; qa != NULL && i < s->n_queues; i++) {
		const struct queue_stats *q = &s->queues[i];

		msgs = json_object();
		for (d = 1; msgs != NULL && d < STATS_NDISP; d++)
			json_object_set_new(msgs, disp_names[d],
			    json_integer(ji(q->messages[d])));
		jq = json_pack("{s:o, s:o, s:b, s:o, s:I, s:f, s:f, s:I, s:o}",
		    "name", jstr(q->name), "maildir", jstr(q->maildir),
		    "readable", q->readable != 0, "error", jstr(q->error),
		    "backlog_files", ji(q->backlog_files),
		    "backlog_oldest_s", q->backlog_oldest_s,
		    "rate_1m", q->rate_1m,
		    "bytes", ji(q->bytes),
		    "messages", msgs);
		json_array_append_new(qa, jq);
	}
	json_object_set_new(o, "queues", qa);

	ta = json_array();
	for (i = 0; ta != NULL && ps != NULL && ps->topics != NULL &&
	    i < ps->n_topics; i++)
		json_array_append_new(ta, json_pack("{s:o, s:I, s:I}",
		    "topic", jstr(ps->topics[i].topic),
		    "head_topic_seq", ji(ps->topics[i].head_topic_seq),
		    "published", ji(ps->topics[i].published)));
	json_object_set_new(o, "topics", ta);
	return o;
}
