/*
 * pipeline.h - one message through normalize -> rules -> routing decision.
 *
 *   pipeline_run   raw bytes + queue settings -> a record ready for the store
 *
 * The daemon's workers, `vmingest reprocess` and tests share this, so a
 * message is routed the same way wherever it runs.  The result:
 *   - QUARANTINED (normalize or a rule said so): no topics, reason set;
 *   - DISCARDED (rules discard, no keep): no topics;
 *   - otherwise PUBLISHED with rec->topics = fileinto targets, plus the
 *     queue's default topic on keep (explicit or implicit); "auto" derives
 *     it from the IMS content (ims_topic()).
 * The store assigns seq and topic_seq; DUPLICATE is decided there too.
 *
 * THREADS: safe from several threads (rules are immutable once compiled).
 */
#ifndef VMI_PIPELINE_H
#define VMI_PIPELINE_H

#include <stddef.h>
#include <stdint.h>

#include "limits.h"
#include "rules.h"
#include "vmingest.pb-c.h"

struct pipeline_in {
	const char	*queue;
	const char	*topic;		/* default topic or "auto" */
	const struct rules *rules;	/* NULL: implicit keep only */
	const char	*rules_path;
	const char	*maildir_name;
	int64_t		 received_at_us;
	int64_t		 ctime_us;
};

/* Always returns a record (never NULL). */
Vmingest__Record *pipeline_run(const struct limits *, const struct pipeline_in *,
	    const void *raw, size_t len);
/* Add a topic to rec->topics unless present. */
void	pipeline_add_topic(Vmingest__Record *rec, const char *topic);

#endif
