/*
 * replay.h - the replay service: a ROUTER socket on [publish]
 * replay_endpoint that streams stored records from the durable log in
 * credit-controlled batches (docs/PROTOCOL.md, "Replay").
 *
 *   replay_start   bind the ROUTER (CURVE via zap) and start its thread
 *   replay_stop    stop the thread, close the socket (NULL is a no-op)
 *   replay_counts  requests served, records sent, rejected handshakes
 *
 * Threads: the replay thread owns the ROUTER socket and its monitor; each
 * batch is read in its own short read transaction (store_rrenew ..
 * store_rreset), so the ingest writer is never held up and no snapshot
 * stays pinned between batches.  replay_counts may be called from any
 * thread.
 *
 * SECURITY: requests come from the network.  Every request is size-checked
 * and unpacked with protobuf-c; bad ones get an ERROR reply.  Per-peer
 * state is bounded (REPLAY_MAX_STREAMS, idle streams expire) and a peer
 * that disappears is forgotten at the next send (ZMQ_ROUTER_MANDATORY).
 */
#ifndef VMI_REPLAY_H
#define VMI_REPLAY_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "store.h"
#include "zap.h"

#define REPLAY_MAX_STREAMS	256
#define REPLAY_MAX_CREDIT	65536
#define REPLAY_REQUEST_BYTES	65536
#define REPLAY_IDLE_MS		60000
#define REPLAY_BATCH_BYTES	(8u << 20)

struct replay;

struct replay_counts {
	uint64_t requests;
	uint64_t records;
	uint64_t errors;
	uint64_t auth_failures;
	uint64_t connected;
};

int	replay_start(struct replay **, void *ctx, const struct config *,
	    struct store *, struct zap *, char *err, size_t errlen);
void	replay_stop(struct replay *);
void	replay_counts(struct replay *, struct replay_counts *);

#endif
