/*
 * retention.h - the background pass that deletes old records and raw
 * bytes ([store] retain_days, retain_raw_days, retain_bytes).
 *
 *   retention_start  register the pass with the main loop (every
 *                    RETENTION_EVERY_MS); NULL when no limit is set
 *   retention_free   release (NULL is a no-op)
 *   retention_pass   one bounded pass on a store at time now_us; used by
 *                    the timer and by tests (MAIN/WRITER THREAD ONLY: it
 *                    opens write transactions)
 *
 * Rules, each applied oldest seq first and stopping at the first record
 * that does not qualify (so nothing received after the cutoff ever goes,
 * even if an older-looking record follows it):
 *   retain_days      records (and their raw bytes) received before
 *                    now - retain_days go;
 *   retain_raw_days  raw bytes of records received before
 *                    now - retain_raw_days go, records stay;
 *   retain_bytes     while the raw database holds more than retain_bytes
 *                    (pages * page size), the oldest records go.
 * Each write transaction deletes at most RETENTION_BATCH records; one pass
 * does at most RETENTION_TXNS transactions or RETENTION_BUDGET_US, so the
 * loop commits ingest batches in between.
 */
#ifndef VMI_RETENTION_H
#define VMI_RETENTION_H

#include <stdint.h>

#include "config.h"
#include "ingest.h"
#include "store.h"

#define RETENTION_EVERY_MS	1000
#define RETENTION_BATCH		256
#define RETENTION_TXNS		8
#define RETENTION_BUDGET_US	20000

struct retention;

struct retention_result {
	uint64_t records;	/* records deleted (with their raw bytes) */
	uint64_t raw_only;	/* raw messages deleted, records kept */
	uint64_t bytes;		/* raw bytes freed */
	int	 error;		/* last store error, 0 if none */
};

struct retention *retention_start(struct ingest *);
void	retention_free(struct retention *);
/* Returns 0, or a STORE_E_* (the pass stopped there; res counts what went). */
int	retention_pass(struct store *, const struct config *, int64_t now_us,
	    struct retention_result *res);

#endif
