/*
 * metrics.h - what the status endpoint says, rendered from a snapshot.
 *
 *   metrics_snapshot     copy g_stats (the used queues only) under its lock
 *   metrics_ready        judge readiness: fill the failing checks, 1/0
 *   metrics_render       Prometheus text format 0.0.4 into a reusable buffer
 *   metrics_status_json  the /status document (jansson)
 *   metrics_ready_json   the /readyz document (jansson)
 *   mbuf_*               the growing text buffer metrics_render writes
 *
 * Everything here is pure: it reads a `struct stats` copy and a
 * `struct publisher_stats` the caller took, and a clock value `now_us`
 * (CLOCK_REALTIME microseconds, the clock stats.h uses), so the unit test
 * can drive it with made-up figures.  No function touches the store, a
 * socket or g_stats except metrics_snapshot (which only takes the lock
 * and copies).
 *
 * Threading: any thread; a `struct mbuf` belongs to one thread at a time.
 */
#ifndef VMI_METRICS_H
#define VMI_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "publish.h"
#include "stats.h"

/* Upper bound of one rendered /metrics body; a render past it fails. */
#define METRICS_MAX_BYTES	(16u * 1024 * 1024)
/* At most this many failing checks are reported (2 per queue + 6). */
#define METRICS_MAX_CHECKS	(2 * CONFIG_MAX_QUEUES + 8)

struct mbuf {
	char	*p;
	size_t	 len;
	size_t	 cap;
	int	 overflow;	/* an append did not fit METRICS_MAX_BYTES */
};

void	mbuf_reset(struct mbuf *);	/* len = 0, keep the memory */
void	mbuf_free(struct mbuf *);	/* release; the struct may be reused */
void	mbuf_printf(struct mbuf *, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));

/* One readiness check that failed.  `queue` is "" for global checks. */
struct metrics_check {
	const char *name;	/* static: "main_loop", "store_writable", ... */
	char	 queue[65];
	char	 why[320];
};

/*
 * Copy the global part of g_stats and its first n_queues queues into *out
 * under g_stats.mu (the mutex inside *out must not be used).  Cheaper
 * than stats_copy(), which copies every CONFIG_MAX_QUEUES slot.
 */
void	metrics_snapshot(struct stats *out);

/* 1 if the main loop ticked within stall_s of now_us. */
int	metrics_alive_ok(const struct stats *, int64_t now_us);

/*
 * Evaluate every readiness check: main loop alive, store open and
 * writable, map and disk headroom >= min_free_pct, each queue's Maildir
 * readable, no queue's backlog waiting without progress for longer than
 * stall_s, publisher bound.  Writes up to max failing checks into out
 * (may be NULL with max 0) and returns how many failed (0 = ready; the
 * count may exceed max).
 */
size_t	metrics_ready(const struct stats *, const struct publisher_stats *,
	    int64_t now_us, struct metrics_check *out, size_t max);

/*
 * Append the Prometheus text exposition (format 0.0.4) of the snapshot to
 * b.  Returns 0, or -1 if the buffer would pass METRICS_MAX_BYTES (then
 * b->overflow is set and the body must not be served).
 */
int	metrics_render(struct mbuf *b, const struct stats *,
	    const struct publisher_stats *, int64_t now_us);

/* New references (caller json_decref's); NULL only if out of memory. */
json_t	*metrics_status_json(const struct stats *, const struct publisher_stats *,
	    int64_t now_us);
json_t	*metrics_ready_json(const struct stats *, const struct publisher_stats *,
	    int64_t now_us);

/* Name of a disposition as used in the label value ("published"). */
const char *metrics_disposition_name(unsigned d);

#endif
