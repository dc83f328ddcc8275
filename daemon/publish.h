/*
 * publish.h - the ZeroMQ side of vmingestd: live PUB feed, heartbeats,
 * replay ROUTER, CURVE/ZAP (docs/PROTOCOL.md).
 *
 *   publisher_start   bind the sockets and start the publisher thread(s)
 *   publisher_submit  hand over a committed record (main thread only; never blocks)
 *   publisher_flush   wake the publisher for what was handed over (after a batch)
 *   publisher_stop    flush what can be flushed, close, join
 *   publisher_stats   counters for /metrics and /status (any thread)
 *
 * Ownership: publisher_submit takes `rec` (a record from the store write,
 * seq and topics[].topic_seq set) and `packed`, the bytes the store wrote
 * for it (store_add_packed; NULL: the publisher packs rec itself), and
 * frees both when they have been sent.  Records are submitted in seq
 * order; publisher_flush() wakes the PUB thread for them (once per batch).
 */
#ifndef VMI_PUBLISH_H
#define VMI_PUBLISH_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "store.h"
#include "vmingest.pb-c.h"

/* Topic frame of heartbeats: not a valid topic, so it never collides. */
#define PUBLISH_HB_TOPIC	"!hb"

struct publisher;

struct publisher_topic_stat {
	char	 topic[256];
	uint64_t head_topic_seq;
	uint64_t published;
};

struct publisher_stats {
	int	 bound;			/* every endpoint is bound */
	uint64_t published_total;
	uint64_t subscribers;
	uint64_t auth_failures;
	uint64_t replay_requests;
	uint64_t replayed_records;
	uint64_t dropped;		/* submit queue overflow (recovered via log) */
	size_t	 n_topics;
	struct publisher_topic_stat *topics;	/* malloc'd; caller frees */
};

int	publisher_start(struct publisher **, const struct config *, struct store *,
	    char *err, size_t errlen);
void	publisher_submit(struct publisher *, Vmingest__Record *rec,
	    uint8_t *packed, size_t plen);
void	publisher_flush(struct publisher *);
void	publisher_stop(struct publisher *);
void	publisher_stats(struct publisher *, struct publisher_stats *);

#endif
