/*
 * stats.c - the main loop's published state (see stats.h).
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "stats.h"

struct stats g_stats = { .mu = PTHREAD_MUTEX_INITIALIZER };

static const double lat_bounds[STATS_NBUCKETS] = STATS_LAT_BOUNDS;

void
stats_init(const struct config *cf)
{
	struct timespec ts;
	size_t	 i;

	pthread_mutex_lock(&g_stats.mu);
	clock_gettime(CLOCK_REALTIME, &ts);
	g_stats.start_us = (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
	g_stats.tick_us = g_stats.start_us;
	g_stats.n_queues = cf->n_queues;
	g_stats.min_free_pct = cf->store.min_free_pct;
	g_stats.stall_s = cf->http.stall_s;
	snprintf(g_stats.config_path, sizeof(g_stats.config_path), "%s",
	    cf->path ? cf->path : "(embedded default)");
	snprintf(g_stats.store_path, sizeof(g_stats.store_path), "%s",
	    cf->store.path);
	for (i = 0; i < cf->n_queues; i++) {
		snprintf(g_stats.queues[i].name, sizeof(g_stats.queues[i].name),
		    "%s", cf->queues[i].name);
		snprintf(g_stats.queues[i].maildir,
		    sizeof(g_stats.queues[i].maildir), "%s", cf->queues[i].maildir);
		g_stats.queues[i].last_progress_us = g_stats.start_us;
	}
	pthread_mutex_unlock(&g_stats.mu);
}

void
stats_hist_add(struct histogram *h, double v)
{
	size_t	 i;

	for (i = 0; i < STATS_NBUCKETS; i++)
		if (v <= lat_bounds[i])
			break;
	h->buckets[i]++;
	h->count++;
	h->sum += v;
}

void
stats_copy(struct stats *out)
{
	pthread_mutex_lock(&g_stats.mu);
	memcpy(out, &g_stats, sizeof(*out));
	pthread_mutex_unlock(&g_stats.mu);
}
