/*
 * ingest.h - the main loop: Maildir pickup -> workers -> batched commit ->
 * file removal -> publish.
 *
 *   ingest_new    open every queue's Maildir, compile rules, start workers
 *   ingest_run    the event loop; returns the exit status (0 on SIGTERM)
 *   ingest_free   join workers, close everything
 *
 * The loop owns the LMDB write transaction; workers only read files and
 * run the pure pipeline (lib/pipeline.h).  See docs/ARCHITECTURE.md for
 * the exactly-once protocol.
 */
#ifndef VMI_INGEST_H
#define VMI_INGEST_H

#include "config.h"
#include "publish.h"
#include "store.h"

struct ingest;

/* err gets a message when NULL is returned (e.g. a rules file that fails). */
struct ingest *ingest_new(struct config *, struct store *, struct publisher *,
	    char *err, size_t errlen);
int	ingest_run(struct ingest *);
void	ingest_free(struct ingest *);
/* Optional hook called once when the store is open and queues are watched. */
void	ingest_set_ready_hook(struct ingest *, void (*fn)(void *), void *arg);

#endif
