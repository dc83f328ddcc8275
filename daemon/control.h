/*
 * control.h - the daemon's local control socket (reprocess, quarantine
 * release), served on the main loop thread.
 *
 *   control_start  bind [daemon] control_socket (mode 0660) and hook it
 *                  into the loop; NULL with err set on failure
 *   control_free   close every connection, remove the socket (NULL: no-op)
 *
 * PROTOCOL (a Unix stream socket; one JSON object per line, both ways):
 *   request   {"op":"ping"}
 *             {"op":"reprocess","seqs":[N,...],"dry_run":false,
 *              "quarantined_only":false,"release":false,"force":false,
 *              "epoch":"%016x"}
 *             at most CONTROL_MAX_SEQS seqs, CONTROL_REQ_MAX bytes a line;
 *             a seq listed twice is done once; a client may send the next
 *             request after the "done" line.  quarantined_only: refuse a
 *             seq not QUARANTINED.  release: refuse a seq released already
 *             (a record re-ran it, or one is being made) unless force.
 *             epoch (optional): the store the seqs were chosen in; a
 *             request for another store is refused.  A DUPLICATE record
 *             re-run stays DUPLICATE (of the same first record).
 *   replies   per seq, in request order of completion:
 *             {"seq":OLD,"new_seq":NEW,"changed":B,"old":{S},"new":{S}}
 *             where S = {"disposition":..,"topics":[..],"reason":..};
 *             "new_seq" only when not dry_run, sent once the new record is
 *             durably committed (it is then published as usual);
 *             {"seq":OLD,"error":"why"} when a seq cannot be reprocessed;
 *             finally {"done":true,"count":N,"errors":E,"changed":C}.
 *             A bad request gets {"done":true,"error":"why"}; so does a
 *             line over CONTROL_REQ_MAX, whose rest is dropped up to its
 *             newline.  The connection stays usable either way.
 *   Closing the connection cancels what was not yet handed to the loop.
 *
 * THREADS: everything runs on the main loop thread (ingest_add_fd and
 * ingest_add_timer callbacks).  Work is done in chunks of at most
 * CONTROL_CHUNK messages or CONTROL_CHUNK_US per callback.
 */
#ifndef VMI_CONTROL_H
#define VMI_CONTROL_H

#include <stddef.h>

#include "ingest.h"

#define CONTROL_REQ_MAX		(1 << 20)
#define CONTROL_MAX_SEQS	65536
#define CONTROL_MAX_CLIENTS	3
#define CONTROL_CHUNK		64
#define CONTROL_CHUNK_US	5000
#define CONTROL_OUT_MAX		(256 * 1024)	/* pause a job above this */
#define CONTROL_OUT_HARD	(4 << 20)	/* close a client that reads nothing */
#define CONTROL_IDLE_US		(60 * 1000000)	/* close a connection idle this long */
#define CONTROL_READS		4		/* recv()s per wake-up, at most */

struct control;

struct control *control_start(struct ingest *, char *err, size_t errlen);
void	control_free(struct control *);

#endif
