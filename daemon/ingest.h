/*
 * ingest.h - the main loop: Maildir pickup -> workers -> batched commit ->
 * file removal -> publish.
 *
 *   ingest_new    open every queue's Maildir, compile rules, start workers
 *   ingest_run    the event loop; returns the exit status (0 on SIGTERM)
 *   ingest_free   join workers, close everything
 *
 * A committer thread started here runs the batch write transactions, one
 * batch at a time handed over by the loop; workers only read files and
 * run the pure pipeline (lib/pipeline.h).  See docs/ARCHITECTURE.md for
 * the exactly-once protocol.
 */
#ifndef VMI_INGEST_H
#define VMI_INGEST_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "publish.h"
#include "store.h"

struct ingest;

/* err gets a message when NULL is returned (e.g. a rules file that fails). */
struct ingest *ingest_new(struct config *, struct store *, struct publisher *,
	    char *err, size_t errlen);
int	ingest_run(struct ingest *);
void	ingest_free(struct ingest *);
/*
 * Hand the loop a record built elsewhere (reprocess): it is committed in
 * the next batch like a worker's result, with no file to remove and no
 * duplicate check (its bytes are stored already, by design).  Takes
 * ownership of rec and raw (malloc'd).  Thread-safe.  done(arg, seq) is
 * called on the main loop thread once it is committed.  Returns 0 or -1.
 */
int	ingest_inject(struct ingest *, const char *queue, Vmingest__Record *rec,
	    uint8_t *raw, size_t len, void (*done)(void *, uint64_t), void *arg);
/*
 * The rules and default topic of a queue, for reprocess.  MAIN THREAD ONLY
 * (a SIGHUP may swap them): callers on other threads must not use this.
 */
const struct rules *ingest_queue_rules(struct ingest *, const char *queue,
	    const char **topic);
/*
 * Main-loop hooks for other daemon modules (control socket, retention):
 * fn runs on the main loop thread, so it may use ingest_queue_rules(),
 * open short store transactions and call ingest_inject().  Keep each call
 * short (a few ms): it holds up ingestion while it runs.
 */
int	ingest_add_fd(struct ingest *, int fd, void (*fn)(int fd, void *), void *arg);
void	ingest_del_fd(struct ingest *, int fd);
int	ingest_add_timer(struct ingest *, unsigned every_ms, void (*fn)(void *),
	    void *arg);
struct store *ingest_store(struct ingest *);
const struct config *ingest_config(struct ingest *);
/* Optional hook called once when the store is open and queues are watched. */
void	ingest_set_ready_hook(struct ingest *, void (*fn)(void *), void *arg);

#endif
