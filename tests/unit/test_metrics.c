/*
 * test_metrics.c - unit tests for daemon/metrics.c: readiness checks one
 * by one (each failing alone, with its name and reason), the Prometheus
 * exposition (series present, histogram cumulative, label escaping,
 * counters following the figures), the JSON documents, and the buffer.
 *
 * The figures are made up in a struct stats here; no daemon runs.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "metrics.h"

#define NOW	((int64_t)1800000000 * 1000000)
#define SEC	((int64_t)1000000)

static struct stats S;
static struct publisher_stats P;
static struct publisher_topic_stat T[2];

/* A daemon in good shape: every check passes. */
static int
setup(void **state)
{
	memset(&S, 0, sizeof(S));
	memset(&P, 0, sizeof(P));
	S.start_us = NOW - 100 * SEC;
	S.tick_us = NOW - SEC / 2;
	S.store_open = 1;
	S.store_writable = 1;
	snprintf(S.store_path, sizeof(S.store_path), "/var/lib/vmingest/store");
	snprintf(S.config_path, sizeof(S.config_path), "/etc/vmingest/vmingestd.conf");
	S.epoch = 0x0123456789abcdefULL;
	S.last_seq = 812;
	S.map_bytes = 1000;
	S.used_bytes = 100;
	S.disk_free_bytes = 500;
	S.disk_total_bytes = 1000;
	S.min_free_pct = 5;
	S.stall_s = 30;
	S.n_queues = 2;
	snprintf(S.queues[0].name, sizeof(S.queues[0].name), "rms");
	snprintf(S.queues[0].maildir, sizeof(S.queues[0].maildir), "/srv/mail/rms");
	snprintf(S.queues[1].name, sizeof(S.queues[1].name), "ops");
	snprintf(S.queues[1].maildir, sizeof(S.queues[1].maildir), "/srv/mail/ops");
	S.queues[0].readable = S.queues[1].readable = 1;
	S.queues[0].last_progress_us = S.queues[1].last_progress_us = NOW - 5 * SEC;
	P.bound = 1;
	snprintf(T[0].topic, sizeof(T[0].topic), "rn.phd");
	T[0].head_topic_seq = 40;
	T[0].published = 41;
	snprintf(T[1].topic, sizeof(T[1].topic), "ims.req");
	T[1].head_topic_seq = 7;
	T[1].published = 7;
	P.topics = T;
	P.n_topics = 2;
	return 0;
}

static size_t
failing(struct metrics_check *c, size_t max)
{
	return metrics_ready(&S, &P, NOW, c, max);
}

/* Exactly one check fails, with this name, queue and a reason containing `in`. */
static void
expect_only(const char *name, const char *queue, const char *in)
{
	struct metrics_check c[METRICS_MAX_CHECKS];
	size_t	 n = failing(c, METRICS_MAX_CHECKS);

	assert_int_equal(n, 1);
	assert_string_equal(c[0].name, name);
	assert_string_equal(c[0].queue, queue);
	if (strstr(c[0].why, in) == NULL)
		fail_msg("reason \"%s\" lacks \"%s\"", c[0].why, in);
}

static void
test_ready_all_ok(void **state)
{
	assert_int_equal(failing(NULL, 0), 0);
	assert_true(metrics_alive_ok(&S, NOW));
}

static void
test_ready_loop_stalled(void **state)
{
	S.tick_us = NOW - 31 * SEC;
	assert_false(metrics_alive_ok(&S, NOW));
	expect_only("main_loop", "", "31.0 s ago");
	S.tick_us = NOW - 30 * SEC;
	assert_true(metrics_alive_ok(&S, NOW));
}

static void
test_ready_store(void **state)
{
	S.store_writable = 0;
	snprintf(S.store_error, sizeof(S.store_error), "MDB_MAP_FULL");
	expect_only("store_writable", "", "MDB_MAP_FULL");
	S.store_open = 0;
	expect_only("store_writable", "", "not open");
}

static void
test_ready_map_headroom(void **state)
{
	S.used_bytes = 960;		/* 4% free < 5% */
	expect_only("map_headroom", "", "below min_free_pct 5");
	S.used_bytes = 950;		/* exactly 5%: enough */
	assert_int_equal(failing(NULL, 0), 0);
	S.map_bytes = 0;		/* not measured yet: not ready */
	S.used_bytes = 0;
	expect_only("map_headroom", "", "not been measured");
	S.map_bytes = 100;		/* used > map cannot wrap around */
	S.used_bytes = 200;
	expect_only("map_headroom", "", "0.0%");
}

static void
test_ready_disk_headroom(void **state)
{
	S.disk_free_bytes = 10;
	expect_only("disk_headroom", "", "1.0%");
	S.min_free_pct = 0;		/* threshold 0 turns the check off */
	assert_int_equal(failing(NULL, 0), 0);
}

static void
test_ready_maildir(void **state)
{
	S.queues[1].readable = 0;
	snprintf(S.queues[1].error, sizeof(S.queues[1].error),
	    "new/ went away in /srv/mail/ops: No such file or directory");
	expect_only("maildir_readable", "ops", "went away");
}

static void
test_ready_backlog(void **state)
{
	/* waiting 40 s, last commit 50 s ago: stuck */
	S.queues[0].backlog_files = 3;
	S.queues[0].waiting_since_us = NOW - 40 * SEC;
	S.queues[0].last_progress_us = NOW - 50 * SEC;
	expect_only("backlog_progress", "rms", "3 file(s)");
	/* a steady stream: backlog non-empty for long, but committing */
	S.queues[0].last_progress_us = NOW - 2 * SEC;
	assert_int_equal(failing(NULL, 0), 0);
	/* files appeared only 10 s ago after a long quiet time: not stuck yet */
	S.queues[0].waiting_since_us = NOW - 10 * SEC;
	S.queues[0].last_progress_us = NOW - 3600 * SEC;
	assert_int_equal(failing(NULL, 0), 0);
	/* an empty backlog is never stuck */
	S.queues[0].backlog_files = 0;
	S.queues[0].waiting_since_us = 0;
	assert_int_equal(failing(NULL, 0), 0);
}

static void
test_ready_publisher(void **state)
{
	P.bound = 0;
	expect_only("publisher_bound", "", "not bound");
	assert_int_equal(metrics_ready(&S, NULL, NOW, NULL, 0), 1);
}

static void
test_ready_many(void **state)
{
	struct metrics_check c[2];

	S.store_writable = 0;
	S.queues[0].readable = 0;
	S.queues[1].readable = 0;
	P.bound = 0;
	/* the count is complete even when the array is short */
	assert_int_equal(failing(c, 2), 4);
	assert_string_equal(c[0].name, "store_writable");
	assert_string_equal(c[1].name, "maildir_readable");
	assert_string_equal(c[1].queue, "rms");
}

/* ---- exposition ---- */

static char *
render(void)
{
	static struct mbuf b;

	mbuf_reset(&b);
	assert_int_equal(metrics_render(&b, &S, &P, NOW), 0);
	assert_int_equal(strlen(b.p), b.len);
	return b.p;
}

static void
expect_line(const char *text, const char *line)
{
	const char *p = text;
	size_t	 n = strlen(line);

	while ((p = strstr(p, line)) != NULL) {
		if ((p == text || p[-1] == '\n') && p[n] == '\n')
			return;
		p += n;
	}
	fail_msg("no line \"%s\" in:\n%s", line, text);
}

static void
test_render_series(void **state)
{
	char	*t;

	S.queues[0].messages[4] = 17;
	S.queues[0].messages[2] = 2;
	S.queues[1].bytes = 123456;
	S.queues[1].backlog_files = 9;
	S.queues[1].backlog_oldest_s = 12.5;
	S.pruned_records = 3;
	P.subscribers = 4;
	P.auth_failures = 1;
	P.replay_requests = 6;
	P.replayed_records = 60;
	t = render();
	expect_line(t, "# TYPE vmingest_messages_total counter");
	expect_line(t, "vmingest_messages_total{queue=\"rms\",disposition=\"published\"} 17");
	expect_line(t, "vmingest_messages_total{queue=\"rms\",disposition=\"quarantined\"} 2");
	expect_line(t, "vmingest_messages_total{queue=\"ops\",disposition=\"stored\"} 0");
	expect_line(t, "vmingest_bytes_total{queue=\"ops\"} 123456");
	expect_line(t, "vmingest_backlog_files{queue=\"ops\"} 9");
	expect_line(t, "vmingest_backlog_oldest_seconds{queue=\"ops\"} 12.5");
	expect_line(t, "vmingest_published_total{topic=\"rn.phd\"} 41");
	expect_line(t, "vmingest_topic_head_seq{topic=\"ims.req\"} 7");
	expect_line(t, "vmingest_subscribers 4");
	expect_line(t, "vmingest_auth_failures_total 1");
	expect_line(t, "vmingest_replay_requests_total 6");
	expect_line(t, "vmingest_replayed_records_total 60");
	expect_line(t, "vmingest_store_map_bytes 1000");
	expect_line(t, "vmingest_store_used_bytes 100");
	expect_line(t, "vmingest_last_seq 812");
	expect_line(t, "vmingest_pruned_records_total 3");
	expect_line(t, "vmingest_build_info{version=\"" VMI_VERSION "\"} 1");
	expect_line(t, "vmingest_start_time_seconds 1799999900");
	expect_line(t, "vmingest_ready 1");
	/* no "unset" series unless it happened */
	assert_null(strstr(t, "disposition=\"unset\""));
	P.bound = 0;
	t = render();
	expect_line(t, "vmingest_ready 0");
	expect_line(t, "vmingest_publisher_bound 0");
}

static void
test_render_histogram(void **state)
{
	char	*t;

	stats_hist_add(&S.ingest_latency, 0.0001);	/* first bucket */
	stats_hist_add(&S.ingest_latency, 0.003);	/* le 0.005 */
	stats_hist_add(&S.ingest_latency, 0.003);
	stats_hist_add(&S.ingest_latency, 60);		/* +Inf only */
	t = render();
	expect_line(t, "# TYPE vmingest_ingest_latency_seconds histogram");
	expect_line(t, "vmingest_ingest_latency_seconds_bucket{le=\"0.0005\"} 1");
	expect_line(t, "vmingest_ingest_latency_seconds_bucket{le=\"0.0025\"} 1");
	expect_line(t, "vmingest_ingest_latency_seconds_bucket{le=\"0.005\"} 3");
	expect_line(t, "vmingest_ingest_latency_seconds_bucket{le=\"10\"} 3");
	expect_line(t, "vmingest_ingest_latency_seconds_bucket{le=\"+Inf\"} 4");
	expect_line(t, "vmingest_ingest_latency_seconds_count 4");
	expect_line(t, "vmingest_ingest_latency_seconds_sum 60.0061");
	expect_line(t, "vmingest_commit_seconds_count 0");
	expect_line(t, "vmingest_commit_seconds_bucket{le=\"+Inf\"} 0");
}

static void
test_render_escape(void **state)
{
	char	*t;

	snprintf(S.queues[0].name, sizeof(S.queues[0].name), "a\"b\\c\nd");
	t = render();
	expect_line(t, "vmingest_bytes_total{queue=\"a\\\"b\\\\c\\nd\"} 0");
}

/* Every line is a comment or NAME[{...}] VALUE; every sample's family has HELP and TYPE. */
static void
test_render_wellformed(void **state)
{
	char	*all = strdup(render()), *t = strdup(all), *line, *save = NULL;

	assert_non_null(t);
	for (line = strtok_r(t, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char	 fam[128], type[160];
		size_t	 n;

		if (line[0] == '#') {
			assert_true(!strncmp(line, "# HELP ", 7) ||
			    !strncmp(line, "# TYPE ", 7));
			continue;
		}
		n = strspn(line, "abcdefghijklmnopqrstuvwxyz_");
		assert_true(n > 0 && n < sizeof(fam));
		assert_true(line[n] == ' ' || line[n] == '{');
		memcpy(fam, line, n);
		fam[n] = '\0';
		/* histogram samples belong to the family without the suffix */
		{
			char	*u = strrchr(fam, '_'), h[160];

			snprintf(h, sizeof(h), "# TYPE %.*s histogram",
			    u ? (int)(u - fam) : 0, fam);
			if (u && (!strcmp(u, "_bucket") || !strcmp(u, "_sum") ||
			    !strcmp(u, "_count")) && strstr(all, h) != NULL)
				*u = '\0';
		}
		snprintf(type, sizeof(type), "# TYPE %s ", fam);
		if (strstr(all, type) == NULL)
			fail_msg("sample %s without TYPE", line);
		assert_non_null(strrchr(line, ' '));
	}
	free(t);
	free(all);
}

static void
test_render_reuses_buffer(void **state)
{
	struct mbuf b = { 0 };
	char	*first;
	size_t	 len;

	assert_int_equal(metrics_render(&b, &S, &P, NOW), 0);
	first = b.p;
	len = b.len;
	mbuf_reset(&b);
	assert_int_equal(metrics_render(&b, &S, &P, NOW), 0);
	assert_ptr_equal(b.p, first);	/* no regrowth for the same figures */
	assert_int_equal(b.len, len);
	mbuf_free(&b);
}

static void
test_mbuf_limit(void **state)
{
	struct mbuf b = { 0 };
	char	*big = malloc(1024 * 1024 + 1);
	int	 i;

	assert_non_null(big);
	memset(big, 'x', 1024 * 1024);
	big[1024 * 1024] = '\0';
	for (i = 0; i < 15; i++)
		mbuf_printf(&b, "%s", big);
	assert_false(b.overflow);
	assert_int_equal(b.len, 15u * 1024 * 1024);
	for (i = 0; i < 2; i++)
		mbuf_printf(&b, "%s", big);
	assert_true(b.overflow);
	assert_true(b.len <= METRICS_MAX_BYTES);
	mbuf_reset(&b);
	assert_false(b.overflow);
	mbuf_printf(&b, "%d", 42);
	assert_string_equal(b.p, "42");
	mbuf_free(&b);
	free(big);
}

/* ---- JSON ---- */

static void
test_status_json(void **state)
{
	json_t	*j, *q, *t;

	S.queues[0].backlog_files = 2;
	S.queues[0].rate_1m = 0.5;
	S.quarantined = 5;
	P.subscribers = 3;
	j = metrics_status_json(&S, &P, NOW);
	assert_non_null(j);
	assert_string_equal(json_string_value(json_object_get(j, "version")), VMI_VERSION);
	assert_int_equal(json_integer_value(json_object_get(j, "uptime_s")), 100);
	assert_string_equal(json_string_value(json_object_get(j, "epoch")), "0123456789abcdef");
	assert_int_equal(json_integer_value(json_object_get(j, "last_seq")), 812);
	assert_int_equal(json_integer_value(json_object_get(j, "quarantined")), 5);
	assert_int_equal(json_integer_value(json_object_get(j, "subscribers")), 3);
	assert_string_equal(json_string_value(json_object_get(j, "config_file")),
	    "/etc/vmingest/vmingestd.conf");
	assert_true(json_is_true(json_object_get(j, "ready")));
	q = json_array_get(json_object_get(j, "queues"), 0);
	assert_string_equal(json_string_value(json_object_get(q, "name")), "rms");
	assert_string_equal(json_string_value(json_object_get(q, "maildir")), "/srv/mail/rms");
	assert_int_equal(json_integer_value(json_object_get(q, "backlog_files")), 2);
	assert_true(json_real_value(json_object_get(q, "rate_1m")) == 0.5);
	t = json_array_get(json_object_get(j, "topics"), 0);
	assert_string_equal(json_string_value(json_object_get(t, "topic")), "rn.phd");
	assert_int_equal(json_integer_value(json_object_get(t, "head_topic_seq")), 40);
	json_decref(j);

	/* a path that is not UTF-8 is sent escaped, not dropped */
	snprintf(S.queues[1].maildir, sizeof(S.queues[1].maildir), "/srv/\xff");
	S.queues[1].readable = 0;
	j = metrics_status_json(&S, &P, NOW);
	assert_non_null(j);
	q = json_array_get(json_object_get(j, "queues"), 1);
	assert_string_equal(json_string_value(json_object_get(q, "maildir")), "/srv/\\xff");
	assert_false(json_is_true(json_object_get(j, "ready")));
	json_decref(j);
}

static void
test_ready_json(void **state)
{
	json_t	*j, *f;

	j = metrics_ready_json(&S, &P, NOW);
	assert_true(json_is_true(json_object_get(j, "ready")));
	assert_int_equal(json_array_size(json_object_get(j, "failing")), 0);
	json_decref(j);

	S.queues[1].readable = 0;
	snprintf(S.queues[1].error, sizeof(S.queues[1].error), "gone");
	P.bound = 0;
	j = metrics_ready_json(&S, &P, NOW);
	assert_false(json_is_true(json_object_get(j, "ready")));
	assert_int_equal(json_array_size(json_object_get(j, "failing")), 2);
	f = json_array_get(json_object_get(j, "failing"), 0);
	assert_string_equal(json_string_value(json_object_get(f, "check")), "maildir_readable");
	assert_string_equal(json_string_value(json_object_get(f, "queue")), "ops");
	assert_string_equal(json_string_value(json_object_get(f, "why")), "gone");
	f = json_array_get(json_object_get(j, "failing"), 1);
	assert_string_equal(json_string_value(json_object_get(f, "check")), "publisher_bound");
	assert_null(json_object_get(f, "queue"));
	json_decref(j);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_ready_all_ok, setup),
		cmocka_unit_test_setup(test_ready_loop_stalled, setup),
		cmocka_unit_test_setup(test_ready_store, setup),
		cmocka_unit_test_setup(test_ready_map_headroom, setup),
		cmocka_unit_test_setup(test_ready_disk_headroom, setup),
		cmocka_unit_test_setup(test_ready_maildir, setup),
		cmocka_unit_test_setup(test_ready_backlog, setup),
		cmocka_unit_test_setup(test_ready_publisher, setup),
		cmocka_unit_test_setup(test_ready_many, setup),
		cmocka_unit_test_setup(test_render_series, setup),
		cmocka_unit_test_setup(test_render_histogram, setup),
		cmocka_unit_test_setup(test_render_escape, setup),
		cmocka_unit_test_setup(test_render_wellformed, setup),
		cmocka_unit_test_setup(test_render_reuses_buffer, setup),
		cmocka_unit_test_setup(test_mbuf_limit, setup),
		cmocka_unit_test_setup(test_status_json, setup),
		cmocka_unit_test_setup(test_ready_json, setup),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
