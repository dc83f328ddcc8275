/*
 * mkstore.c - build a store directly through lib/store.h, fast, for
 * benchmarks (bench/replay.sh) and for tests that need records the daemon
 * could not make on its own clock (backdated received_at_us, for the
 * retention e2e test).
 *
 * usage: mkstore DIR N [--size BYTES] [--start-us US] [--step-us US]
 *                [--map BYTES] [--batch N] [--topic T] [--queue Q]
 *
 * Appends N PUBLISHED records to the store in DIR (made if missing):
 * record i (0-based) is received at START + i*STEP (default: now - N*STEP,
 * STEP 1000 us) and its raw message is a small RFC 5322 mail padded with
 * printable junk to BYTES (default 2048).  Commits every --batch records.
 * Prints "first_seq last_seq" on stdout.  The daemon must not be running
 * on DIR (the store would refuse to be opened for writing by two).
 *
 * SECURITY: a test tool; writes only what it generates.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <glib.h>

#include "log.h"
#include "record.h"
#include "store.h"

static int64_t
now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void
usage(void)
{
	fprintf(stderr, "usage: mkstore DIR N [--size BYTES] [--start-us US] "
	    "[--step-us US] [--map BYTES] [--batch N] [--topic T] [--queue Q]\n");
	exit(2);
}

int
main(int argc, char **argv)
{
	struct store *st;
	struct store_txn *t = NULL;
	const char *dir, *topic = "bench.data", *queue = "default";
	long long n, size = 2048, step = 1000, batch = 1000, i;
	long long start = -1, map = 8LL << 30;
	uint64_t first = 0, last = 0;
	char	*raw;
	int	 a, rc;

	if (argc < 3)
		usage();
	dir = argv[1];
	n = atoll(argv[2]);
	for (a = 3; a + 1 < argc; a += 2) {
		if (!strcmp(argv[a], "--size")) size = atoll(argv[a + 1]);
		else if (!strcmp(argv[a], "--start-us")) start = atoll(argv[a + 1]);
		else if (!strcmp(argv[a], "--step-us")) step = atoll(argv[a + 1]);
		else if (!strcmp(argv[a], "--map")) map = atoll(argv[a + 1]);
		else if (!strcmp(argv[a], "--batch")) batch = atoll(argv[a + 1]);
		else if (!strcmp(argv[a], "--topic")) topic = argv[a + 1];
		else if (!strcmp(argv[a], "--queue")) queue = argv[a + 1];
		else usage();
	}
	if (a != argc || n < 0 || size < 200 || size > (64 << 20) || batch < 1 ||
	    step < 0 || map < (1 << 20))
		usage();
	if (start < 0)
		start = now_us() - n * step;
	log_init("mkstore", 0);
	if ((rc = store_open(&st, dir, (size_t)map, STORE_EXCL)) != 0) {
		fprintf(stderr, "mkstore: %s: %s\n", dir, store_strerror(rc));
		return 1;
	}
	if ((raw = malloc((size_t)size)) == NULL)
		return 1;
	for (i = 0; i < n; i++) {
		Vmingest__Record *rec = record_new();
		Vmingest__TopicSeq *ts;
		GChecksum *ck;
		char	 name[64], subj[64];
		int	 hl;
		long long k;
		gsize	 dl = 32;

		hl = snprintf(raw, (size_t)size, "From: bench@example.org\n"
		    "To: ops@example.org\nSubject: bench %lld\n"
		    "Message-ID: <%lld.mkstore@example.org>\n\n", i, i);
		if (hl < 0 || hl >= size)
			return 1;
		for (k = hl; k < size; k++)
			raw[k] = (k % 73 == 72) ? '\n' : (char)('!' + (k * 7 + i) % 90);
		raw[size - 1] = '\n';

		snprintf(name, sizeof(name), "%lld.M%lldP1.mkstore", start / 1000000, i);
		snprintf(subj, sizeof(subj), "bench %lld", i);
		rec->queue = rec_strdup(queue);
		rec->topic = rec_strdup(topic);
		rec->maildir_name = rec_strdup(name);
		rec->subject = rec_strdup(subj);
		rec->received_at_us = start + i * step;
		rec->ctime_us = rec->received_at_us;
		rec->raw_size = (uint64_t)size;
		rec->disposition = VMINGEST__DISPOSITION__PUBLISHED;
		rec->sha256.data = malloc(32);
		rec->sha256.len = 32;
		ck = g_checksum_new(G_CHECKSUM_SHA256);
		g_checksum_update(ck, (const guchar *)raw, (gssize)size);
		g_checksum_get_digest(ck, rec->sha256.data, &dl);
		g_checksum_free(ck);
		ts = malloc(sizeof(*ts));
		vmingest__topic_seq__init(ts);
		ts->topic = rec_strdup(topic);
		rec_push(&rec->topics, &rec->n_topics, ts);

		if (t == NULL && (rc = store_wbegin(st, &t)) != 0)
			goto fail;
		if ((rc = store_add(t, rec, raw, (size_t)size, 0)) != 0)
			goto fail;
		if (first == 0)
			first = rec->seq;
		last = rec->seq;
		record_free(rec);
		if ((i + 1) % batch == 0 || i + 1 == n) {
			if ((rc = store_wcommit(t)) != 0) {
				t = NULL;
				goto fail;
			}
			t = NULL;
		}
	}
	printf("%llu %llu\n", (unsigned long long)first, (unsigned long long)last);
	free(raw);
	store_close(st);
	return 0;
fail:
	fprintf(stderr, "mkstore: %s\n", store_strerror(rc));
	store_wabort(t);
	store_close(st);
	return 1;
}
