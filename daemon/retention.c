/*
 * retention.c - delete what is older than the configured limits, a little
 * at a time, from the main loop (its write transactions take LMDB's
 * writer lock in turn with the ingest committer's batches).
 *
 *   retention_start  a timer on the loop every RETENTION_EVERY_MS
 *   retention_free   release
 *   retention_pass   one bounded pass (the timer's body; tests call it)
 *
 * How a limit becomes a delete: walk the records from the oldest seq and
 * count those that qualify (received_at_us before the cutoff) until the
 * first that does not or RETENTION_BATCH; then store_prune(before_seq =
 * that seq, max = the count).  Between the walk and the prune only the
 * committer writes, and it only appends seqs above the head, so the
 * counted range [first, before) is unchanged: exactly those records go.
 * Stopping at the first non-qualifying record means a record received
 * after the cutoff is never deleted, whatever follows it.
 *
 * Counters: g_stats.pruned_records / pruned_bytes (under g_stats.mu) feed
 * /status and /metrics.  raw_only deletes add to pruned_bytes only.
 *
 * Error policy: a store error stops this pass (logged by the store, and
 * once here); the next tick tries again.  Never fatal.
 *
 * SECURITY: reads only our own records; no outside input.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "record.h"
#include "retention.h"
#include "stats.h"
#include "util.h"

struct retention {
	struct ingest	*ing;
	int		 last_error;
};

/*
 * Count the records from `from` upward received before cutoff, at most
 * max; *before gets the seq just past the last one counted.
 */
static int
count_older(struct store *st, uint64_t from, int64_t cutoff, size_t max,
    size_t *n, uint64_t *before)
{
	struct store_rtxn *r;
	struct store_cursor *c;
	const void *p;
	size_t	 len;
	uint64_t seq;
	int	 rc;

	*n = 0;
	*before = 0;
	if ((rc = store_rbegin(st, &r)) != 0)
		return rc;
	if (from == 0)
		from = store_first(r);
	if (from == 0 || (rc = store_cursor_open(r, from, &c)) != 0) {
		store_rend(r);
		return from == 0 ? 0 : rc;
	}
	while (*n < max && (rc = store_cursor_next(c, &seq, &p, &len)) == 0) {
		Vmingest__Record *rec = record_unpack(p, len);
		int64_t	 t;

		if (rec == NULL) {
			/* unreadable: keep it (and everything after) */
			log_warnx("retention: seq=%llu does not unpack; stopping",
			    (unsigned long long)seq);
			break;
		}
		t = rec->received_at_us;
		record_free(rec);
		if (t >= cutoff)
			break;
		(*n)++;
		*before = seq + 1;
	}
	store_cursor_close(c);
	store_rend(r);
	return rc == STORE_E_NOTFOUND ? 0 : rc;
}

static uint64_t
first_raw(struct store *st)
{
	struct store_rtxn *r;
	uint64_t s;

	if (store_rbegin(st, &r) != 0)
		return 0;
	s = store_first_raw(r);
	store_rend(r);
	return s;
}

static void
account(struct retention_result *res, uint64_t recs, uint64_t raws,
    uint64_t bytes)
{
	res->records += recs;
	res->raw_only += raws;
	res->bytes += bytes;
	pthread_mutex_lock(&g_stats.mu);
	g_stats.pruned_records += recs;
	g_stats.pruned_bytes += bytes;
	pthread_mutex_unlock(&g_stats.mu);
}

int
retention_pass(struct store *st, const struct config *cf, int64_t now_us,
    struct retention_result *res)
{
	const int64_t day = 86400LL * 1000000;
	int64_t	 t0 = util_mono_us();
	unsigned txns = 0;
	uint64_t before, done, bytes;
	size_t	 n;
	int	 rc = 0;

	memset(res, 0, sizeof(*res));
#define BUDGET_LEFT() (txns < RETENTION_TXNS && util_mono_us() - t0 < RETENTION_BUDGET_US)

	/* 1. records older than retain_days, with their raw bytes */
	while (cf->store.retain_days > 0 && BUDGET_LEFT()) {
		int64_t cutoff = now_us - (int64_t)cf->store.retain_days * day;

		if ((rc = count_older(st, 0, cutoff, RETENTION_BATCH, &n, &before)) != 0)
			goto out;
		if (n == 0)
			break;
		txns++;
		if ((rc = store_prune(st, before, n, 0, &done, &bytes)) != 0)
			goto out;
		account(res, done, 0, bytes);
		log_info("retention: pruned records=%llu bytes=%llu before_seq=%llu "
		    "limit=retain_days", (unsigned long long)done,
		    (unsigned long long)bytes, (unsigned long long)before);
		if (done < n)
			break;
	}

	/* 2. raw bytes older than retain_raw_days; records stay */
	while (cf->store.retain_raw_days > 0 && BUDGET_LEFT()) {
		int64_t cutoff = now_us - (int64_t)cf->store.retain_raw_days * day;
		uint64_t from = first_raw(st);

		if (from == 0)
			break;
		if ((rc = count_older(st, from, cutoff, RETENTION_BATCH, &n,
		    &before)) != 0)
			goto out;
		if (n == 0)
			break;
		txns++;
		if ((rc = store_prune(st, before, n, 1, &done, &bytes)) != 0)
			goto out;
		account(res, 0, done, bytes);
		log_info("retention: pruned raw=%llu bytes=%llu before_seq=%llu "
		    "limit=retain_raw_days", (unsigned long long)done,
		    (unsigned long long)bytes, (unsigned long long)before);
		if (done < n)
			break;
	}

	/* 3. the oldest records while the raw data is over retain_bytes */
	while (cf->store.retain_bytes > 0 && BUDGET_LEFT()) {
		struct store_stat ss;

		if ((rc = store_stat(st, &ss)) != 0)
			goto out;
		if (ss.raw_bytes <= cf->store.retain_bytes || ss.first_seq == 0)
			break;
		txns++;
		/* a small step: the page count is re-read after each */
		if ((rc = store_prune(st, ss.first_seq + 64, 64, 0, &done,
		    &bytes)) != 0)
			goto out;
		account(res, done, 0, bytes);
		log_info("retention: pruned records=%llu bytes=%llu "
		    "limit=retain_bytes raw_db=%llu", (unsigned long long)done,
		    (unsigned long long)bytes, (unsigned long long)ss.raw_bytes);
		if (done == 0)
			break;
	}
#undef BUDGET_LEFT
out:
	res->error = rc;
	return rc;
}

static void
on_timer(void *arg)
{
	struct retention *ret = arg;
	struct retention_result res;
	int	 rc;

	rc = retention_pass(ingest_store(ret->ing), ingest_config(ret->ing),
	    util_now_us(), &res);
	if (rc != 0 && rc != ret->last_error)
		log_warnx("retention: %s; retrying", store_strerror(rc));
	ret->last_error = rc;
}

struct retention *
retention_start(struct ingest *ing)
{
	const struct config *cf = ingest_config(ing);
	struct retention *ret;

	if (cf->store.retain_days == 0 && cf->store.retain_raw_days == 0 &&
	    cf->store.retain_bytes == 0)
		return NULL;
	if ((ret = calloc(1, sizeof(*ret))) == NULL)
		log_fatal("calloc");
	ret->ing = ing;
	if (ingest_add_timer(ing, RETENTION_EVERY_MS, on_timer, ret) == -1) {
		log_warnx("retention: no room in the main loop; not running");
		free(ret);
		return NULL;
	}
	log_info("retention: retain_days=%u retain_raw_days=%u retain_bytes=%zu",
	    cf->store.retain_days, cf->store.retain_raw_days,
	    cf->store.retain_bytes);
	return ret;
}

void
retention_free(struct retention *ret)
{
	free(ret);
}
