/* test_retention.c - the retention pass (daemon/retention.c) on a real store. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "config.h"
#include "log.h"
#include "pipeline.h"
#include "record.h"
#include "retention.h"
#include "stats.h"
#include "store.h"

#define DAY	(86400LL * 1000000)
#define NOW	(1800000000LL * 1000000)

static char dir[256];
static struct store *st;
static struct config *cf;

static int
setup(void **state)
{
	char	 err[256];

	snprintf(dir, sizeof(dir), "/tmp/vmi-test-retention-XXXXXX");
	if (mkdtemp(dir) == NULL)
		return -1;
	if (store_open(&st, dir, 64 << 20, 0) != 0)
		return -1;
	if ((cf = config_load(NULL, err, sizeof(err))) == NULL)
		return -1;
	cf->store.retain_days = cf->store.retain_raw_days = 0;
	cf->store.retain_bytes = 0;
	stats_init(cf);
	return 0;
}

static int
teardown(void **state)
{
	char	 cmd[300];

	store_close(st);
	config_free(cf);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd) == 0 ? 0 : -1;
}

/* Append one record received at `us` with `size` raw bytes. */
static uint64_t
add(int64_t us, size_t size)
{
	struct store_txn *t;
	Vmingest__Record *r = record_new();
	char	*raw = malloc(size);
	uint64_t seq;

	memset(raw, 'x', size);
	r->queue = rec_strdup("default");
	r->received_at_us = us;
	r->disposition = VMINGEST__DISPOSITION__PUBLISHED;
	pipeline_add_topic(r, "t.a");
	assert_int_equal(store_wbegin(st, &t), 0);
	assert_int_equal(store_add(t, r, raw, size, 0), 0);
	assert_int_equal(store_wcommit(t), 0);
	seq = r->seq;
	record_free(r);
	free(raw);
	return seq;
}

static int
has_record(uint64_t seq)
{
	struct store_rtxn *r;
	const void *p;
	size_t	 n;
	int	 rc;

	assert_int_equal(store_rbegin(st, &r), 0);
	rc = store_get(r, seq, &p, &n);
	store_rend(r);
	return rc == 0;
}

static int
has_raw(uint64_t seq)
{
	struct store_rtxn *r;
	const void *p;
	size_t	 n;
	int	 rc;

	assert_int_equal(store_rbegin(st, &r), 0);
	rc = store_get_raw(r, seq, &p, &n);
	store_rend(r);
	return rc == 0;
}

static void
test_nothing_configured(void **state)
{
	struct retention_result res;

	add(NOW - 100 * DAY, 100);
	assert_int_equal(retention_pass(st, cf, NOW, &res), 0);
	assert_int_equal(res.records, 0);
	assert_true(has_record(1));
}

static void
test_days_boundary(void **state)
{
	struct retention_result res;
	uint64_t a, b, c;

	cf->store.retain_days = 1;
	a = add(NOW - DAY - 1, 100);	/* one us too old */
	b = add(NOW - DAY, 100);	/* exactly at the limit: not older, stays */
	c = add(NOW, 100);
	assert_int_equal(retention_pass(st, cf, NOW, &res), 0);
	assert_int_equal(res.records, 1);
	assert_int_equal(res.bytes, 100);
	assert_false(has_record(a));
	assert_false(has_raw(a));
	assert_true(has_record(b) && has_raw(b) && has_record(c));
	/* a second pass at the same time does nothing */
	assert_int_equal(retention_pass(st, cf, NOW, &res), 0);
	assert_int_equal(res.records, 0);
	pthread_mutex_lock(&g_stats.mu);
	assert_int_equal(g_stats.pruned_records, 1);
	assert_int_equal(g_stats.pruned_bytes, 100);
	pthread_mutex_unlock(&g_stats.mu);
}

/* An old-looking record after a new one stays: nothing past the first
 * record that is not older than the limit is ever deleted. */
static void
test_stops_at_first_young_record(void **state)
{
	struct retention_result res;
	uint64_t old1, young, old2;

	cf->store.retain_days = 2;
	old1 = add(NOW - 10 * DAY, 10);
	young = add(NOW - DAY, 10);
	old2 = add(NOW - 10 * DAY, 10);
	assert_int_equal(retention_pass(st, cf, NOW, &res), 0);
	assert_int_equal(res.records, 1);
	assert_false(has_record(old1));
	assert_true(has_record(young));
	assert_true(has_record(old2));
}

/* More than one batch: several small transactions; a pass is bounded by
 * RETENTION_TXNS, the next pass goes on. */
static void
test_batches(void **state)
{
	struct retention_result res;
	uint64_t i, n = RETENTION_BATCH * (RETENTION_TXNS + 2), total = 0, last = 0;
	int	 passes = 0;

	cf->store.retain_days = 1;
	for (i = 0; i < n; i++)
		last = add(NOW - 5 * DAY + (int64_t)i, 10);
	add(NOW, 10);
	do {
		assert_int_equal(retention_pass(st, cf, NOW, &res), 0);
		assert_true(res.records <= (uint64_t)RETENTION_BATCH * RETENTION_TXNS);
		total += res.records;
		passes++;
	} while (res.records > 0 && passes < 100);
	assert_int_equal(total, n);
	assert_true(passes >= 3);
	assert_false(has_record(last));
	assert_true(has_record(last + 1));
}

static void
test_raw_days_keeps_records(void **state)
{
	struct retention_result res;
	uint64_t a, b, c;

	cf->store.retain_raw_days = 3;
	a = add(NOW - 5 * DAY, 1000);
	b = add(NOW - 4 * DAY, 1000);
	c = add(NOW - 2 * DAY, 1000);
	assert_int_equal(retention_pass(st, cf, NOW, &res), 0);
	assert_int_equal(res.records, 0);
	assert_int_equal(res.raw_only, 2);
	assert_int_equal(res.bytes, 2000);
	assert_true(has_record(a) && has_record(b) && has_record(c));
	assert_false(has_raw(a) || has_raw(b));
	assert_true(has_raw(c));
	/* with retain_days later on, the records without raw go too */
	cf->store.retain_days = 4;
	assert_int_equal(retention_pass(st, cf, NOW + 1, &res), 0);
	assert_int_equal(res.records, 2);
	assert_int_equal(res.bytes, 0);
	assert_true(has_record(c) && has_raw(c));
}

static void
test_bytes_oldest_first(void **state)
{
	struct retention_result res;
	struct store_stat ss;
	uint64_t i, first, total = 0;
	int	 passes = 0;

	cf->store.retain_bytes = 512 * 1024;
	for (i = 0; i < 300; i++)
		add(NOW, 6000);		/* two pages each */
	/* a pass may stop early on its time budget: run until one does nothing */
	do {
		assert_int_equal(retention_pass(st, cf, NOW, &res), 0);
		total += res.records;
	} while (res.records > 0 && ++passes < 100);
	assert_true(total > 0);
	assert_int_equal(store_stat(st, &ss), 0);
	assert_true(ss.raw_bytes <= 512 * 1024);
	assert_int_equal(ss.head_seq, 300);
	first = ss.first_seq;
	assert_int_equal(ss.records, 300 - (first - 1));
	assert_int_equal(total, first - 1);
	assert_true(has_record(300) && !has_record(first - 1));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_nothing_configured, setup, teardown),
		cmocka_unit_test_setup_teardown(test_days_boundary, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stops_at_first_young_record, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_batches, setup, teardown),
		cmocka_unit_test_setup_teardown(test_raw_days_keeps_records, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_bytes_oldest_first, setup, teardown),
	};

	log_init("test_retention", 0);
	log_set_quiet(1);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
