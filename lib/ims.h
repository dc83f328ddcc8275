/*
 * ims.h - find and parse IMS2.0 / IMS1.0 / GSE2.x messages in decoded text.
 *
 *   ims_parse_part  scan one decoded text part; append one Vmingest__ImsMessage
 *                   to rec->ims per BEGIN...STOP found (or BEGIN...EOF,
 *                   kept with complete = 0 and a warning)
 *   ims_finish      after all parts: set index/count, S/MIME fields from
 *                   rec->parts (multipart/signed and its protocol)
 *   ims_topic       derive "ims.<msg_type>.<first data_type or request
 *                   keyword>" (lower case) or "mail.other"; writes into buf
 *
 * Deviations from the grammar are warnings on the ImsMessage, never
 * failures.  Limits: limits->ims_messages, ims_sections, ims_line_bytes,
 * ims_requests, ims_stations.
 *
 * THREADS: no global state; safe to call from several threads on
 * different records.
 * SECURITY: the text is hostile; all work is linear in its size.
 */
#ifndef VMI_IMS_H
#define VMI_IMS_H

#include <stddef.h>

#include "limits.h"
#include "vmingest.pb-c.h"

void	ims_parse_part(const struct limits *, Vmingest__Record *rec,
	    const char *part_path, const char *text, size_t len);
void	ims_finish(const struct limits *, Vmingest__Record *rec);
int	ims_topic(const Vmingest__Record *rec, char *buf, size_t bufsz);

#endif
