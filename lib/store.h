/*
 * store.h - the durable log: records and raw messages in LMDB.
 *
 * Named databases in one environment (directory PATH):
 *   records    seq (uint64, MDB_INTEGERKEY) -> packed Record
 *   raw        seq -> raw message bytes exactly as read
 *   by_sha256  sha256 (32 bytes) -> seq of the first record with those bytes
 *   by_name    "queue/maildir_name" -> seq (crash recovery: same file seen again)
 *   by_topic   topic NUL topic_seq(BE64) -> seq
 *   by_time    received_at_us(BE64) seq(BE64) -> ""
 *   topics     topic -> head topic_seq (uint64)
 *   reprocessed  old seq -> seq of the last record that re-ran it (added
 *              later: a store made before has entries only from then on)
 *   meta       "schema", "epoch", "next_seq", "created_us", "restore" (a
 *              backup not yet opened for writing: store_mark_restore)
 *
 * Writes (one write transaction at a time, LMDB serialises writers: in
 * the daemon the committer thread for batches, the main loop for
 * retention's small prunes):
 *   store_wbegin, store_find_name, store_find_sha, store_add,
 *   store_add_packed, store_wcommit (full durability: fsync), store_wabort
 * Reads (any thread, each with its own transaction; MDB_NOTLS):
 *   store_rbegin, store_rend, store_rreset, store_rrenew, store_head,
 *   store_first, store_get, store_get_raw, store_cursor_*, store_topic_find,
 *   store_topics, store_time_seek
 *
 * Return codes: 0, or a negative STORE_E_*; store_strerror() names it.
 * Pointers returned by reads point into the map and are valid until the
 * read transaction ends (store_rend/store_rreset) - copy what must outlive it.
 *
 * A daemon opens with STORE_EXCL: an flock on PATH/vmingestd.lock
 * refuses a second daemon on the same store (STORE_E_LOCKED).
 */
#ifndef VMI_STORE_H
#define VMI_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "vmingest.pb-c.h"

#define STORE_SCHEMA	1

#define STORE_E_NOTFOUND	(-1)
#define STORE_E_FULL		(-2)	/* map full */
#define STORE_E_NOSPC		(-3)	/* disk full */
#define STORE_E_LOCKED		(-4)	/* another daemon holds the store */
#define STORE_E_IO		(-5)
#define STORE_E_CORRUPT		(-6)
#define STORE_E_SCHEMA		(-7)	/* written by a newer vmingest */
#define STORE_E_NOSTORE		(-8)	/* read-only open of a missing store */
#define STORE_E_TOOBIG		(-9)	/* record over limits.record_bytes */
#define STORE_E_READERS		(-10)	/* too many readers */
#define STORE_E_PERM		(-11)	/* no permission (not in its group?) */

/* LMDB keeps a value of at most 4 GiB - 1: no raw message can be bigger */
#define STORE_MAX_VALUE	0xffffffffUL

#define STORE_RDONLY	0x01
#define STORE_EXCL	0x02

struct store;
struct store_txn;
struct store_rtxn;
struct store_cursor;

struct store_stat {
	uint64_t epoch;
	uint64_t head_seq;	/* last seq written, 0 if none */
	uint64_t first_seq;	/* oldest seq still stored, 0 if none */
	uint64_t records;	/* entries in records */
	uint64_t raw_bytes;	/* approximate: pages of raw db * page size */
	size_t	 map_size;
	size_t	 used_bytes;	/* last page number * page size */
	unsigned page_size;
	int64_t	 created_us;
};

int	 store_open(struct store **, const char *path, size_t map_size, int flags);
void	 store_close(struct store *);
const char *store_strerror(int);
uint64_t store_epoch(const struct store *);
const char *store_path(const struct store *);
int	 store_stat(struct store *, struct store_stat *);
/* Release the map pages this process has resident (they stay cached). */
void	 store_trim_resident(struct store *);

int	 store_wbegin(struct store *, struct store_txn **);
/* If queue/name was stored before: 0 with *seq and its sha256 in sha. */
int	 store_find_name(struct store_txn *, const char *queue, const char *name,
	    uint64_t *seq, uint8_t sha[32]);
int	 store_find_sha(struct store_txn *, const uint8_t sha[32], uint64_t *seq);
/*
 * Assign rec->seq and a topic_seq to every rec->topics[] entry, then
 * write the record, its raw bytes and the indexes.  On STORE_E_FULL or
 * STORE_E_NOSPC the transaction is dead: store_wabort() it.
 */
int	 store_add(struct store_txn *, Vmingest__Record *rec, const void *raw,
	    size_t len, size_t record_limit);
/*
 * store_add that also gives back the packed record it stored (malloc'd,
 * the caller frees it): the publisher sends these bytes as they are.
 * *packed is set only when 0 is returned.
 */
int	 store_add_packed(struct store_txn *, Vmingest__Record *rec,
	    const void *raw, size_t len, size_t record_limit, uint8_t **packed,
	    size_t *plen);
/*
 * store_add_packed with the file name for by_name given as read from the
 * directory (`name`, any bytes but '/'), where rec->maildir_name holds it
 * repaired to UTF-8: store_find_name() looks up what the directory says.
 * name NULL: rec->maildir_name.
 */
int	 store_add_named(struct store_txn *, Vmingest__Record *rec,
	    const char *name, const void *raw, size_t len, size_t record_limit,
	    uint8_t **packed, size_t *plen);
/* Rewrite the stored record seq (same seq); used by reprocess/retention. */
int	 store_put_record(struct store_txn *, const Vmingest__Record *rec);
int	 store_wcommit(struct store_txn *);
void	 store_wabort(struct store_txn *);
/* The store's next seq as seen by this write transaction. */
uint64_t store_wnext_seq(struct store_txn *);

int	 store_rbegin(struct store *, struct store_rtxn **);
void	 store_rend(struct store_rtxn *);
void	 store_rreset(struct store_rtxn *);	/* release the snapshot, keep the handle */
int	 store_rrenew(struct store_rtxn *);	/* take a fresh snapshot */
uint64_t store_head(struct store_rtxn *);
uint64_t store_first(struct store_rtxn *);
/* Oldest seq that still has raw bytes (retention), 0 if none. */
uint64_t store_first_raw(struct store_rtxn *);
int	 store_get(struct store_rtxn *, uint64_t seq, const void **rec, size_t *len);
int	 store_get_raw(struct store_rtxn *, uint64_t seq, const void **raw, size_t *len);
int	 store_get_record(struct store_rtxn *, uint64_t seq, Vmingest__Record **out);
/*
 * Mark a copy as a backup (vmingest backup): the first writable open of it
 * (the daemon's, once it is put in place) gives it a new epoch, since the
 * seqs after its head will be given to other mail than the original's.
 */
int	 store_mark_restore(struct store *);
/* The seq of the last record that re-ran seq (reprocessed_from = seq). */
int	 store_find_reprocessed(struct store_rtxn *, uint64_t seq, uint64_t *newseq);

/* Iterate records from seq `from` upward. */
int	 store_cursor_open(struct store_rtxn *, uint64_t from, struct store_cursor **);
int	 store_cursor_next(struct store_cursor *, uint64_t *seq, const void **rec,
	    size_t *len);
void	 store_cursor_close(struct store_cursor *);

/* seq of the first record of `topic` with topic_seq >= ts. */
int	 store_topic_find(struct store_rtxn *, const char *topic, uint64_t ts,
	    uint64_t *seq, uint64_t *found_ts);
typedef int (*store_topic_fn)(const char *topic, uint64_t head, void *arg);
int	 store_topics(struct store_rtxn *, store_topic_fn, void *arg);
/* First seq with received_at_us >= us (STORE_E_NOTFOUND if none). */
int	 store_time_seek(struct store_rtxn *, int64_t us, uint64_t *seq);

/* Retention: delete records (and raw) with seq < before_seq, at most max of
 * them, in one write transaction; raw_only keeps the records.  *done gets
 * the count deleted, *bytes the raw bytes freed. */
int	 store_prune(struct store *, uint64_t before_seq, size_t max, int raw_only,
	    uint64_t *done, uint64_t *bytes);
/* Compacted copy into an empty directory (mdb_env_copy2 + MDB_CP_COMPACT). */
int	 store_copy(struct store *, const char *dir, int compact);

#endif
