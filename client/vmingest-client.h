/*
 * vmingest-client.h - libvmingest-client: receive every vmingest record,
 * in order, exactly once, from vmingestd's live ZeroMQ feed backed by its
 * durable log (docs/PROTOCOL.md describes the wire protocol).
 *
 * A subscriber connects a SUB socket to the daemon's PUB endpoint and a
 * DEALER socket to its replay endpoint.  It subscribes first, then asks
 * the log for everything after its start position, buffering the live
 * feed meanwhile (the zguide's Clone pattern); records it has already
 * delivered are dropped at the seam.  While live it watches every
 * topic_seq and every heartbeat: a jump, or a heartbeat announcing a head
 * it has not seen, makes it fetch the missing records from the log before
 * delivering anything newer.  Daemon restarts and reconnects are handled
 * the same way (ZeroMQ reconnects; the next heartbeat or a silence
 * timeout triggers a catch-up from the log).
 *
 *   vmi_sub_open        create a subscriber (connects, does not block)
 *   vmi_sub_next        the next record, in seq order, or a timeout/error
 *   vmi_sub_checkpoint  write the checkpoint now (see "Checkpoints")
 *   vmi_sub_stats       counters (gaps, resyncs, duplicates dropped, ...)
 *   vmi_sub_error       text of the last error
 *   vmi_sub_close       close (writes the checkpoint if one is configured)
 *   vmi_sub_close_unprocessed
 *                       close, the last record returned not processed
 *   vmi_msg_clear       free what vmi_sub_next handed out
 *   vmi_strerror        name a VMI_E_* code
 *
 * Ordering and uniqueness: vmi_sub_next returns each record matching the
 * subscription once.  Within a topic, records come in increasing
 * topic_seq with no gap.  Across topics they come in increasing global
 * `seq`, except after a loss: a record of topic B recovered from the log
 * may come after a newer record of topic A that arrived live before the
 * loss on B could be noticed.  (Gaps in seq are normal: quarantined and
 * discarded records are not published, other topics are filtered out.)
 * A record published on several subscribed topics is returned once.
 *
 * Epochs: every store has a random 64-bit epoch.  If the daemon's epoch
 * changes (the store was recreated) or differs from the checkpoint's,
 * vmi_sub_next returns VMI_E_EPOCH and keeps returning it: the caller
 * decides (typically: alert, move the checkpoint away, start again).
 * Streams of two epochs are never mixed.
 *
 * Checkpoints: with opts.checkpoint set, the subscriber keeps the position
 * of the last record the application has *processed* - a record counts as
 * processed when the application calls vmi_sub_next again (or
 * vmi_sub_checkpoint / vmi_sub_close).  The file is written atomically
 * (temp file, fsync, rename, fsync of the directory) every
 * opts.checkpoint_every records and whenever vmi_sub_next is about to
 * wait.  On open, an existing checkpoint overrides opts.from: the
 * subscriber resumes right after the checkpointed records (the file keeps
 * each topic's last topic_seq and a seq below which everything was
 * processed).  A consumer that crashes between processing and the next
 * checkpoint sees those records again (at-least-once); it never misses
 * one.
 *
 * Losses: the log keeps records only as long as retention allows.  When
 * the subscriber finds that records it was due to deliver are no longer
 * there (a topic_seq jump inside the log, or a topic's head past what it
 * has with nothing left to fetch), vmi_sub_next returns VMI_E_LOST once
 * for that finding; vmi_sub_error names the first topic and its
 * topic_seq range, stats.lost counts the records.  Not sticky: the next
 * call goes on, starting with the record that revealed the loss.  A
 * subscriber that starts from the log's beginning (or at a seq) is not
 * told of records removed before its start position on topics it had
 * never seen.
 *
 * Other non-sticky returns of vmi_sub_next: VMI_E_SERVER (the replay
 * service refused a request: vmi_sub_error has its reason; it is retried),
 * VMI_E_CHECKPOINT (the checkpoint file could not be written; said once,
 * retried every second; records go on being delivered).
 *
 * Threads: a struct vmi_sub belongs to one thread at a time (it owns two
 * ZeroMQ sockets).  Different subscribers may run in different threads.
 *
 * Security: set server_key (the daemon's public key, Z85) and the
 * client's own public_key/secret_key (Z85, from `vmingest keygen`) to use
 * CurveZMQ; the daemon admits only keys in its authorized_keys_dir.
 */
#ifndef VMINGEST_CLIENT_H
#define VMINGEST_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "vmingest.pb-c.h"

#define VMI_OK		0
#define VMI_E_TIMEOUT	(-1)	/* no record within the timeout */
#define VMI_E_EPOCH	(-2)	/* the store's epoch changed: a different stream */
#define VMI_E_ZMQ	(-3)	/* socket error (see vmi_sub_error) */
#define VMI_E_CHECKPOINT (-4)	/* checkpoint file unreadable or unwritable */
#define VMI_E_INVAL	(-5)	/* bad option */
#define VMI_E_SERVER	(-6)	/* the replay service refused our request */
#define VMI_E_LOST	(-7)	/* records of the subscription are no longer
				   in the log (see "Losses") */

/* start positions (opts.from) when there is no checkpoint */
#define VMI_FROM_NOW	0	/* only records committed after the start */
#define VMI_FROM_START	1	/* every record in the log */
#define VMI_FROM_SEQ	2	/* records with seq >= opts.from_seq */

/* topic frame of heartbeats, and heads per heartbeat part (docs/PROTOCOL.md) */
#define VMI_HEARTBEAT_TOPIC	"!hb"
#define VMI_HEARTBEAT_MAX_HEADS	512

struct vmi_sub;

struct vmi_sub_opts {
	const char *endpoint;		/* PUB endpoint, e.g. "tcp://127.0.0.1:8426" */
	const char *replay_endpoint;	/* e.g. "tcp://127.0.0.1:8427" */
	const char *const *prefixes;	/* topic prefixes; none = every topic */
	size_t	 n_prefixes;
	int	 from;			/* VMI_FROM_* */
	uint64_t from_seq;		/* with VMI_FROM_SEQ */
	const char *checkpoint;		/* checkpoint file path, or NULL */
	unsigned checkpoint_every;	/* records between writes (0 = 1000) */
	const char *server_key;		/* Z85 (40 chars) or NULL: no CURVE */
	const char *public_key;		/* Z85 client keys, with server_key */
	const char *secret_key;
	unsigned replay_timeout_ms;	/* replay silence before a retry (0 = 3000) */
	unsigned silence_ms;		/* live silence before a catch-up (0 = 5000) */
	unsigned credit;		/* replay records per batch (0 = 1000) */
	int	 rcvhwm;		/* SUB receive HWM (0 = libzmq default) */
};

/*
 * One record.  `rec` is owned by the caller from vmi_sub_next until
 * vmi_msg_clear (which frees it with vmingest__record__free_unpacked).
 */
struct vmi_msg {
	Vmingest__Record *rec;
	char	 topic[256];		/* topic it arrived on (first match) */
	uint64_t epoch;
	uint64_t seq;
	uint64_t topic_seq;		/* within `topic` */
	int	 replayed;		/* 1: from the log, 0: live */
	int64_t	 sent_at_us;		/* when the daemon sent it (its clock) */
};

struct vmi_sub_stats {
	uint64_t delivered;
	uint64_t live;			/* delivered from the live feed */
	uint64_t replayed;		/* delivered from the log */
	uint64_t duplicates;		/* dropped: already delivered */
	uint64_t gaps;			/* topic_seq jumps / heads ahead seen */
	uint64_t resyncs;		/* catch-ups from the log */
	uint64_t heartbeats;
	uint64_t buffered_dropped;	/* live messages not buffered during a catch-up */
	uint64_t checkpoints;		/* checkpoint files written */
	uint64_t head_seq;		/* daemon's head seq at the last heartbeat */
	uint64_t lost;			/* records no longer in the log when they
					   were to be delivered (VMI_E_LOST) */
	uint64_t malformed;		/* messages from the daemon that do not
					   decode or name a bad topic: dropped */
};

/*
 * Create a subscriber.  Returns VMI_OK and *out, or a VMI_E_* code with a
 * message in err (VMI_E_INVAL: no endpoints, bad CURVE keys, more than 64
 * prefixes or one outside [a-z0-9_.-] or of 256 bytes or more).  Reads
 * the checkpoint file if opts->checkpoint names one that exists.  The
 * strings in opts are copied.
 */
int	 vmi_sub_open(struct vmi_sub **out, const struct vmi_sub_opts *opts,
	    char *err, size_t errlen);

/*
 * Wait up to timeout_ms (-1: for ever) for the next record.  VMI_OK with
 * *msg filled, VMI_E_TIMEOUT, VMI_E_LOST / VMI_E_SERVER /
 * VMI_E_CHECKPOINT (call again to go on), or an error (VMI_E_EPOCH is
 * sticky).
 */
int	 vmi_sub_next(struct vmi_sub *, struct vmi_msg *msg, int timeout_ms);

/* Write the checkpoint (position after the last record returned). */
int	 vmi_sub_checkpoint(struct vmi_sub *);
void	 vmi_sub_stats(const struct vmi_sub *, struct vmi_sub_stats *);
const char *vmi_sub_error(const struct vmi_sub *);
/* Close; the record last returned counts as processed (checkpoint). */
void	 vmi_sub_close(struct vmi_sub *);

/*
 * Close when the record last returned by vmi_sub_next could not be
 * processed (its output failed, the consumer is giving up on it): the
 * checkpoint, if one is configured, is written at the position before
 * that record, so a subscriber restarted from it receives the record
 * again.  Records returned before it count as processed, as with
 * vmi_sub_close.  Calling vmi_sub_checkpoint after vmi_sub_next makes
 * the record processed; this then closes as vmi_sub_close does.
 */
void	 vmi_sub_close_unprocessed(struct vmi_sub *);
void	 vmi_msg_clear(struct vmi_msg *);
const char *vmi_strerror(int);

#endif
