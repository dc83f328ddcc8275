/*
 * normalize.h - raw message bytes in, Vmingest__Record out (GMime 3).
 *
 *   normalize_init      once per process, before any thread calls normalize
 *   normalize_message   parse one message into a record
 *
 * normalize_message() fills, on a record from record_new(): raw_size,
 * sha256 (of the raw bytes), message_id, date_unix/date_raw, from, sender,
 * reply_to, to, cc, subject (RFC 2047 decoded, UTF-8), in_reply_to,
 * references, return_path, delivered_to, headers (in order, raw values),
 * parts (MIME tree, pre-order, with decoded sizes, sha256 and text), ims
 * (by calling ims_parse_part() for every text leaf and ims_finish() at the
 * end), and warnings (every deviation met).  It does not touch seq, queue,
 * topic, received_at_us, maildir_name or the rules.
 *
 * A message that breaks a limit or is no message at all still gets a
 * record: disposition = QUARANTINED with a reason naming the problem
 * ("message_bytes limit 52428800 exceeded", "no header fields", ...), and
 * as much of the record filled as could safely be.
 *
 * Returns 0 (record usable, possibly quarantined) or -1 on an internal
 * error (the record is then quarantined with the reason set too).
 *
 * THREADS: after normalize_init(), any number of threads may call
 * normalize_message() concurrently on different inputs.
 *
 * SECURITY: the input is hostile mail.  Every loop is bounded by struct
 * limits; nothing read from the message sizes an allocation beyond them.
 */
#ifndef VMI_NORMALIZE_H
#define VMI_NORMALIZE_H

#include <stddef.h>

#include "limits.h"
#include "vmingest.pb-c.h"

void	normalize_init(void);
int	normalize_message(const struct limits *, const void *raw, size_t len,
	    Vmingest__Record *rec);

#endif
