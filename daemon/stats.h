/*
 * stats.h - what the main loop knows, published for the HTTP thread.
 *
 * The main loop owns `struct stats` and updates it under stats.mu at each
 * tick and commit (stats_lock/stats_unlock); readers (HTTP, sd_notify)
 * take the lock only to copy what they need (stats_copy).  Counters that
 * other threads own (publisher) are read through their own calls.
 *
 * Histogram buckets are cumulative-free counts per bucket (le bounds in
 * STATS_LAT_BOUNDS); the exporter accumulates.
 */
#ifndef VMI_STATS_H
#define VMI_STATS_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

#define STATS_NDISP	6	/* Vmingest__Disposition values 0..5 */
#define STATS_NBUCKETS	14
/* seconds: 0.5ms 1ms 2.5ms 5ms 10ms 25ms 50ms 100ms 250ms 500ms 1s 2.5s 5s 10s */
#define STATS_LAT_BOUNDS { 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, \
	0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0 }

struct histogram {
	uint64_t buckets[STATS_NBUCKETS + 1];	/* last = +Inf */
	uint64_t count;
	double	 sum;
};

struct queue_stats {
	char	 name[65];
	char	 maildir[1024];
	uint64_t messages[STATS_NDISP];	/* by disposition */
	uint64_t bytes;
	uint64_t backlog_files;		/* files in new/ at the last count */
	double	 backlog_oldest_s;	/* age of the oldest waiting file */
	int	 readable;		/* new/ could be opened and read */
	char	 error[256];		/* why not readable */
	int64_t	 last_progress_us;	/* last time a file of this queue committed */
	int64_t	 waiting_since_us;	/* backlog non-empty since (0 = empty) */
	double	 rate_1m;		/* messages/s over the last minute */
	uint64_t ring[60];		/* per-second counts for rate_1m */
};

struct stats {
	pthread_mutex_t mu;
	int64_t	 start_us;
	int64_t	 tick_us;		/* main loop's last tick (healthz) */
	int	 store_open;
	int	 store_writable;	/* last commit succeeded / no full condition */
	char	 store_error[256];
	char	 store_path[1024];
	char	 config_path[1024];
	uint64_t epoch;
	uint64_t last_seq;
	uint64_t quarantined;
	size_t	 map_bytes;
	size_t	 used_bytes;
	uint64_t disk_free_bytes;
	uint64_t disk_total_bytes;
	unsigned min_free_pct;
	unsigned stall_s;
	uint64_t pruned_records;
	uint64_t pruned_bytes;
	uint64_t reloads;
	uint64_t reload_failures;
	struct histogram ingest_latency;	/* rename into new/ -> commit */
	struct histogram commit_seconds;
	size_t	 n_queues;
	struct queue_stats queues[CONFIG_MAX_QUEUES];
};

extern struct stats g_stats;

void	stats_init(const struct config *);
void	stats_hist_add(struct histogram *, double v);
/* Copy the whole struct under the lock (the mutex in *out is not usable). */
void	stats_copy(struct stats *out);

#endif
