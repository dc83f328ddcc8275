/* test_store.c - the LMDB log (lib/store.c). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "pipeline.h"
#include "record.h"
#include "store.h"

static char dir[256];

static int
setup(void **state)
{
	snprintf(dir, sizeof(dir), "/tmp/vmi-test-store-XXXXXX");
	if (mkdtemp(dir) == NULL)
		return -1;
	return 0;
}

static int
teardown(void **state)
{
	char	 cmd[300];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static Vmingest__Record *
mkrec(const char *queue, const char *name, const char *topic, int shaval, int64_t us)
{
	Vmingest__Record *r = record_new();

	r->queue = rec_strdup(queue);
	r->maildir_name = rec_strdup(name);
	r->received_at_us = us;
	r->sha256.data = malloc(32);
	memset(r->sha256.data, shaval, 32);
	r->sha256.len = 32;
	r->disposition = VMINGEST__DISPOSITION__PUBLISHED;
	if (topic != NULL)
		pipeline_add_topic(r, topic);
	return r;
}

static void
add(struct store *st, Vmingest__Record *r, const char *raw)
{
	struct store_txn *t;

	assert_int_equal(store_wbegin(st, &t), 0);
	assert_int_equal(store_add(t, r, raw, strlen(raw), 0), 0);
	assert_int_equal(store_wcommit(t), 0);
}

static void
test_open_epoch_and_seq(void **state)
{
	struct store *st;
	struct store_rtxn *r;
	uint64_t epoch;
	Vmingest__Record *a = mkrec("q", "n1", "rn.phd", 1, 10);
	Vmingest__Record *b = mkrec("q", "n2", "rn.phd", 2, 20);
	Vmingest__Record *c = mkrec("q", "n3", "seismic.waveform", 3, 30);

	assert_int_equal(store_open(&st, dir, 16 << 20, STORE_EXCL), 0);
	epoch = store_epoch(st);
	assert_true(epoch != 0);
	add(st, a, "raw-a");
	add(st, b, "raw-b");
	add(st, c, "raw-c");
	assert_int_equal(a->seq, 1);
	assert_int_equal(b->seq, 2);
	assert_int_equal(c->seq, 3);
	/* per-topic sequences, assigned in the same transaction */
	assert_int_equal(a->topics[0]->topic_seq, 1);
	assert_int_equal(b->topics[0]->topic_seq, 2);
	assert_int_equal(c->topics[0]->topic_seq, 1);
	store_close(st);

	/* reopen: same epoch, seq continues, data is there */
	assert_int_equal(store_open(&st, dir, 16 << 20, STORE_RDONLY), 0);
	assert_true(store_epoch(st) == epoch);
	assert_int_equal(store_rbegin(st, &r), 0);
	assert_int_equal(store_head(r), 3);
	assert_int_equal(store_first(r), 1);
	{
		const void *p;
		size_t	 n;
		Vmingest__Record *got;
		uint64_t seq, ts;

		assert_int_equal(store_get_raw(r, 2, &p, &n), 0);
		assert_int_equal(n, 5);
		assert_memory_equal(p, "raw-b", 5);
		assert_int_equal(store_get_record(r, 3, &got), 0);
		assert_string_equal(got->maildir_name, "n3");
		assert_string_equal(got->topics[0]->topic, "seismic.waveform");
		record_free(got);
		assert_int_equal(store_get(r, 4, &p, &n), STORE_E_NOTFOUND);
		assert_int_equal(store_topic_find(r, "rn.phd", 2, &seq, &ts), 0);
		assert_int_equal(seq, 2);
		assert_int_equal(ts, 2);
		assert_int_equal(store_topic_find(r, "rn.phd", 3, &seq, &ts),
		    STORE_E_NOTFOUND);
		assert_int_equal(store_topic_find(r, "rn", 1, &seq, &ts),
		    STORE_E_NOTFOUND);
		assert_int_equal(store_time_seek(r, 15, &seq), 0);
		assert_int_equal(seq, 2);
		assert_int_equal(store_time_seek(r, 31, &seq), STORE_E_NOTFOUND);
	}
	store_rend(r);
	store_close(st);
	record_free(a);
	record_free(b);
	record_free(c);
}

/* The bytes store_add_packed hands back are the record as stored. */
static void
test_add_packed(void **state)
{
	struct store *st;
	struct store_txn *t;
	struct store_rtxn *r;
	Vmingest__Record *a = mkrec("q", "p1", "rn.phd", 7, 10);
	Vmingest__Record *got;
	const void *p;
	uint8_t	*packed = NULL;
	size_t	 plen = 0, n;

	assert_int_equal(store_open(&st, dir, 16 << 20, STORE_EXCL), 0);
	assert_int_equal(store_wbegin(st, &t), 0);
	/* refused: nothing handed back */
	assert_int_equal(store_add_packed(t, a, "raw", 3, 8, &packed, &plen),
	    STORE_E_TOOBIG);
	assert_null(packed);
	assert_int_equal(store_add_packed(t, a, "raw", 3, 0, &packed, &plen), 0);
	assert_int_equal(store_wcommit(t), 0);
	assert_non_null(packed);

	assert_int_equal(store_rbegin(st, &r), 0);
	assert_int_equal(store_get(r, a->seq, &p, &n), 0);
	assert_int_equal(n, plen);
	assert_memory_equal(p, packed, n);
	/* seq and topic_seq were set before packing */
	got = vmingest__record__unpack(NULL, plen, packed);
	assert_non_null(got);
	assert_int_equal(got->seq, 1);
	assert_int_equal(got->n_topics, 1);
	assert_int_equal(got->topics[0]->topic_seq, 1);
	vmingest__record__free_unpacked(got, NULL);
	store_rend(r);
	store_close(st);
	free(packed);
	record_free(a);
}

static int
count_topic(const char *topic, uint64_t head, void *arg)
{
	int	*n = arg;

	if (!strcmp(topic, "rn.phd"))
		assert_int_equal(head, 2);
	(*n)++;
	return 0;
}

static void
test_lookup_cursor_topics(void **state)
{
	struct store *st;
	struct store_txn *t;
	struct store_rtxn *r;
	struct store_cursor *c;
	uint8_t	 sha[32], want[32];
	uint64_t seq, s;
	const void *p;
	size_t	 n;
	int	 k = 0, ntopics = 0;
	Vmingest__Record *a = mkrec("q", "n1", "rn.phd", 7, 1);
	Vmingest__Record *b = mkrec("q", "n2", "rn.phd", 8, 2);

	assert_int_equal(store_open(&st, dir, 16 << 20, 0), 0);
	add(st, a, "x");
	add(st, b, "y");
	assert_int_equal(store_wbegin(st, &t), 0);
	memset(want, 7, 32);
	assert_int_equal(store_find_name(t, "q", "n1", &seq, sha), 0);
	assert_int_equal(seq, 1);
	assert_memory_equal(sha, want, 32);
	assert_int_equal(store_find_name(t, "q", "nope", &seq, sha), STORE_E_NOTFOUND);
	assert_int_equal(store_find_name(t, "other", "n1", &seq, sha), STORE_E_NOTFOUND);
	assert_int_equal(store_find_sha(t, want, &seq), 0);
	assert_int_equal(seq, 1);
	memset(want, 9, 32);
	assert_int_equal(store_find_sha(t, want, &seq), STORE_E_NOTFOUND);
	store_wabort(t);

	assert_int_equal(store_rbegin(st, &r), 0);
	assert_int_equal(store_cursor_open(r, 2, &c), 0);
	while (store_cursor_next(c, &s, &p, &n) == 0)
		assert_int_equal(s, 2 + k++);
	assert_int_equal(k, 1);
	store_cursor_close(c);
	assert_int_equal(store_topics(r, count_topic, &ntopics), 0);
	assert_int_equal(ntopics, 1);
	store_rend(r);
	store_close(st);
	record_free(a);
	record_free(b);
}

static void
test_abort_keeps_seq(void **state)
{
	struct store *st;
	struct store_txn *t;
	struct store_rtxn *r;
	Vmingest__Record *a = mkrec("q", "n1", "t", 1, 1);
	Vmingest__Record *b = mkrec("q", "n2", "t", 2, 1);

	assert_int_equal(store_open(&st, dir, 16 << 20, 0), 0);
	assert_int_equal(store_wbegin(st, &t), 0);
	assert_int_equal(store_add(t, a, "a", 1, 0), 0);
	assert_int_equal(a->seq, 1);
	store_wabort(t);	/* a crash before commit: it never happened */
	add(st, b, "b");
	assert_int_equal(b->seq, 1);
	assert_int_equal(b->topics[0]->topic_seq, 1);
	assert_int_equal(store_rbegin(st, &r), 0);
	assert_int_equal(store_head(r), 1);
	store_rend(r);
	store_close(st);
	record_free(a);
	record_free(b);
}

static void
test_exclusive_and_missing(void **state)
{
	struct store *st, *st2;
	char	 missing[300];

	assert_int_equal(store_open(&st, dir, 16 << 20, STORE_EXCL), 0);
	assert_int_equal(store_open(&st2, dir, 16 << 20, STORE_EXCL), STORE_E_LOCKED);
	/* readers are not locked out */
	assert_int_equal(store_open(&st2, dir, 0, STORE_RDONLY), 0);
	store_close(st2);
	store_close(st);
	snprintf(missing, sizeof(missing), "%s/nothing-here", dir);
	assert_int_equal(store_open(&st2, missing, 0, STORE_RDONLY), STORE_E_NOSTORE);
	assert_string_equal(store_strerror(STORE_E_LOCKED),
	    "store is in use by another vmingestd");
}

static void
test_map_full(void **state)
{
	struct store *st;
	struct store_txn *t;
	char	*big = malloc(256 * 1024);
	int	 i, rc = 0;

	memset(big, 'x', 256 * 1024);
	assert_int_equal(store_open(&st, dir, 1 << 20, 0), 0);
	for (i = 0; i < 20 && rc == 0; i++) {
		Vmingest__Record *r = mkrec("q", "n", NULL, i, 1);
		char	 name[16];

		snprintf(name, sizeof(name), "n%d", i);
		rec_set_str(&r->maildir_name, name);
		assert_int_equal(store_wbegin(st, &t), 0);
		rc = store_add(t, r, big, 256 * 1024, 0);
		if (rc == 0)
			rc = store_wcommit(t);
		else
			store_wabort(t);
		record_free(r);
	}
	assert_int_equal(rc, STORE_E_FULL);
	assert_true(i > 1 && i < 20);
	store_close(st);
	free(big);
}

static void
test_too_big_and_prune(void **state)
{
	struct store *st;
	struct store_txn *t;
	struct store_rtxn *r;
	uint64_t done, bytes, seq;
	uint8_t	 sha[32];
	int	 i;

	assert_int_equal(store_open(&st, dir, 16 << 20, 0), 0);
	{
		Vmingest__Record *a = mkrec("q", "big", NULL, 1, 1);

		rec_set_str(&a->subject, "a subject longer than the limit");
		assert_int_equal(store_wbegin(st, &t), 0);
		assert_int_equal(store_add(t, a, "r", 1, 10), STORE_E_TOOBIG);
		store_wabort(t);
		record_free(a);
	}
	for (i = 0; i < 10; i++) {
		char	 name[16];
		Vmingest__Record *a;

		snprintf(name, sizeof(name), "n%d", i);
		a = mkrec("q", name, "t", 10 + i, 100 + i);
		add(st, a, "0123456789");
		record_free(a);
	}
	assert_int_equal(store_prune(st, 5, 100, 1, &done, &bytes), 0);
	assert_int_equal(done, 4);		/* raw of seqs 1..4 */
	assert_int_equal(bytes, 40);
	assert_int_equal(store_prune(st, 4, 2, 0, &done, &bytes), 0);
	assert_int_equal(done, 2);		/* records 1, 2; bounded by max */
	assert_int_equal(store_rbegin(st, &r), 0);
	assert_int_equal(store_first(r), 3);
	assert_int_equal(store_head(r), 10);	/* next_seq is never pruned */
	{
		const void *p;
		size_t	 n;

		assert_int_equal(store_get_raw(r, 3, &p, &n), STORE_E_NOTFOUND);
		assert_int_equal(store_get(r, 3, &p, &n), 0);
		assert_int_equal(store_get_raw(r, 5, &p, &n), 0);
	}
	store_rend(r);
	assert_int_equal(store_wbegin(st, &t), 0);
	assert_int_equal(store_find_name(t, "q", "n0", &seq, sha), STORE_E_NOTFOUND);
	assert_int_equal(store_find_name(t, "q", "n2", &seq, sha), 0);
	store_wabort(t);
	store_close(st);
}

/*
 * A reprocessed record takes over its file's by_name entry and is indexed
 * under the seq it re-ran; pruning the original leaves both to the new one.
 */
static void
test_reprocessed_index_and_prune(void **state)
{
	struct store *st;
	struct store_txn *t;
	struct store_rtxn *r;
	Vmingest__Record *a;
	uint64_t done, bytes, seq;
	uint8_t	 sha[32];

	assert_int_equal(store_open(&st, dir, 16 << 20, 0), 0);
	a = mkrec("q", "file1", "t", 1, 100);
	add(st, a, "raw");					/* seq 1 */
	record_free(a);
	a = mkrec("q", "file1", "t", 1, 200);
	a->reprocessed_from = 1;
	add(st, a, "raw");					/* seq 2 */
	record_free(a);
	assert_int_equal(store_rbegin(st, &r), 0);
	assert_int_equal(store_find_reprocessed(r, 1, &seq), 0);
	assert_int_equal(seq, 2);
	assert_int_equal(store_find_reprocessed(r, 2, &seq), STORE_E_NOTFOUND);
	store_rend(r);
	assert_int_equal(store_wbegin(st, &t), 0);
	assert_int_equal(store_find_name(t, "q", "file1", &seq, sha), 0);
	assert_int_equal(seq, 2);
	store_wabort(t);
	assert_int_equal(store_prune(st, 2, 10, 0, &done, &bytes), 0);
	assert_int_equal(done, 1);
	assert_int_equal(store_wbegin(st, &t), 0);
	/* still found: by_name pointed at seq 2, not at the pruned seq 1 */
	assert_int_equal(store_find_name(t, "q", "file1", &seq, sha), 0);
	assert_int_equal(seq, 2);
	store_wabort(t);
	assert_int_equal(store_rbegin(st, &r), 0);
	assert_int_equal(store_find_reprocessed(r, 1, &seq), STORE_E_NOTFOUND);
	store_rend(r);
	store_close(st);
}

/*
 * The daemon keeps the transaction after STORE_E_TOOBIG (it stores a
 * shrunk record in its place): the refused add must not have moved the
 * topic heads, or the topic stream has a gap no record fills.
 */
static void
test_too_big_leaves_no_topic_gap(void **state)
{
	struct store *st;
	struct store_txn *t;
	struct store_rtxn *r;
	uint64_t seq, ts;
	Vmingest__Record *a = mkrec("q", "big", "t", 1, 1);
	Vmingest__Record *b = mkrec("q", "next", "t", 2, 2);

	assert_int_equal(store_open(&st, dir, 16 << 20, 0), 0);
	rec_set_str(&a->subject, "a subject longer than the limit");
	pipeline_add_topic(a, "u");
	assert_int_equal(store_wbegin(st, &t), 0);
	assert_int_equal(store_add(t, a, "r", 1, 10), STORE_E_TOOBIG);
	assert_int_equal(store_add(t, b, "s", 1, 0), 0);
	assert_int_equal(store_wcommit(t), 0);
	assert_int_equal(b->seq, 1);
	assert_int_equal(b->topics[0]->topic_seq, 1);
	assert_int_equal(store_rbegin(st, &r), 0);
	assert_int_equal(store_topic_find(r, "t", 1, &seq, &ts), 0);
	assert_int_equal(seq, 1);
	assert_int_equal(ts, 1);
	assert_int_equal(store_topic_find(r, "u", 1, &seq, &ts), STORE_E_NOTFOUND);
	store_rend(r);
	store_close(st);
	record_free(a);
	record_free(b);
}

static long
rss_file_kb(void)
{
	char	 line[256];
	long	 kb = -1;
	FILE	*f = fopen("/proc/self/status", "r");

	assert_non_null(f);
	while (fgets(line, sizeof(line), f) != NULL)
		if (sscanf(line, "RssFile: %ld kB", &kb) == 1)
			break;
	fclose(f);
	return kb;
}

/* Reading the map makes it resident; trimming gives it back. */
static void
test_trim_resident(void **state)
{
	struct store *st;
	struct store_rtxn *r;
	char	*raw = malloc(64 * 1024);
	long	 before, touched, after;
	volatile unsigned sum = 0;
	int	 i;

	memset(raw, 'r', 64 * 1024);
	assert_int_equal(store_open(&st, dir, 64 << 20, 0), 0);
	for (i = 0; i < 400; i++) {
		struct store_txn *t;
		Vmingest__Record *a;
		char	 name[16];

		snprintf(name, sizeof(name), "n%d", i);
		a = mkrec("q", name, "t", i, i);
		assert_int_equal(store_wbegin(st, &t), 0);
		assert_int_equal(store_add(t, a, raw, 64 * 1024, 0), 0);
		assert_int_equal(store_wcommit(t), 0);
		record_free(a);
	}
	store_trim_resident(st);
	before = rss_file_kb();
	assert_int_equal(store_rbegin(st, &r), 0);
	for (i = 1; i <= 400; i++) {
		const void *p;
		size_t	 n, k;

		assert_int_equal(store_get_raw(r, i, &p, &n), 0);
		for (k = 0; k < n; k += 4096)
			sum += ((const unsigned char *)p)[k];
	}
	store_rend(r);
	touched = rss_file_kb();
	store_trim_resident(st);
	after = rss_file_kb();
	/* 400 x 64 KiB = 25 MiB read through the map */
	assert_true(touched - before > 20 * 1024);
	assert_true(touched - after > 20 * 1024);
	store_close(st);
	free(raw);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_open_epoch_and_seq, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lookup_cursor_topics, setup, teardown),
		cmocka_unit_test_setup_teardown(test_add_packed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_abort_keeps_seq, setup, teardown),
		cmocka_unit_test_setup_teardown(test_exclusive_and_missing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_map_full, setup, teardown),
		cmocka_unit_test_setup_teardown(test_too_big_and_prune, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reprocessed_index_and_prune, setup, teardown),
		cmocka_unit_test_setup_teardown(test_trim_resident, setup, teardown),
		cmocka_unit_test_setup_teardown(test_too_big_leaves_no_topic_gap, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
