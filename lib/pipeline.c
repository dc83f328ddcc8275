/*
 * pipeline.c - normalize, run the rules, decide topics and disposition.
 *
 * Error policy: nothing here fails a message.  A normalize problem or a
 * rules runtime error is written into the record (reason, warnings,
 * rules.error) and the message goes on; only "no usable bytes at all"
 * quarantines.  See pipeline.h for the routing table.
 */
#include <stdlib.h>
#include <string.h>

#include "ims.h"
#include "normalize.h"
#include "pipeline.h"
#include "record.h"

void
pipeline_add_topic(Vmingest__Record *rec, const char *topic)
{
	Vmingest__TopicSeq *ts;
	size_t	 i;

	for (i = 0; i < rec->n_topics; i++)
		if (!strcmp(rec->topics[i]->topic, topic))
			return;
	if ((ts = malloc(sizeof(*ts))) == NULL)
		abort();
	vmingest__topic_seq__init(ts);
	ts->topic = rec_strdup(topic);
	rec_push(&rec->topics, &rec->n_topics, ts);
}

Vmingest__Record *
pipeline_run(const struct limits *lim, const struct pipeline_in *in,
    const void *raw, size_t len)
{
	Vmingest__Record *rec = record_new();
	Vmingest__RuleResult *rr;
	char	 deftopic[256];
	size_t	 i;

	rec_set_str(&rec->queue, in->queue ? in->queue : "");
	rec_set_str(&rec->maildir_name, in->maildir_name ? in->maildir_name : "");
	rec->received_at_us = in->received_at_us;
	rec->ctime_us = in->ctime_us;

	normalize_message(lim, raw, len, rec);

	if (in->topic == NULL || !strcmp(in->topic, "auto")) {
		if (ims_topic(rec, deftopic, sizeof(deftopic)) != 0)
			snprintf(deftopic, sizeof(deftopic), "mail.other");
	} else
		snprintf(deftopic, sizeof(deftopic), "%s", in->topic);

	if (rec->disposition == VMINGEST__DISPOSITION__QUARANTINED) {
		rec_set_str(&rec->topic, deftopic);
		return rec;
	}

	if (in->rules != NULL) {
		rr = malloc(sizeof(*rr));
		if (rr == NULL)
			abort();
		vmingest__rule_result__init(rr);
		rr->script = rec_strdup(in->rules_path ? in->rules_path : "");
		rec->rules = rr;
		rules_eval(in->rules, rec, raw, len, rr);
		for (i = 0; i < rr->n_labels; i++)
			rec_push(&rec->labels, &rec->n_labels,
			    rec_strdup(rr->labels[i]));
		if (rr->quarantine) {
			rec->disposition = VMINGEST__DISPOSITION__QUARANTINED;
			rec_set_str(&rec->reason, rr->quarantine_reason &&
			    rr->quarantine_reason[0] ? rr->quarantine_reason :
			    "quarantined by rule");
			rec_set_str(&rec->topic, deftopic);
			return rec;
		}
		for (i = 0; i < rr->n_topics; i++)
			pipeline_add_topic(rec, rr->topics[i]);
		if (rr->keep)
			pipeline_add_topic(rec, deftopic);
	} else
		pipeline_add_topic(rec, deftopic);

	if (rec->n_topics == 0) {
		rec->disposition = VMINGEST__DISPOSITION__DISCARDED;
		rec_set_str(&rec->reason, "discarded by rule");
		rec_set_str(&rec->topic, deftopic);
	} else {
		rec->disposition = VMINGEST__DISPOSITION__PUBLISHED;
		rec_set_str(&rec->topic, rec->topics[0]->topic);
	}
	return rec;
}
