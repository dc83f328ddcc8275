/*
 * limits.h - every input limit vmingest enforces, with its default.
 *
 * Each limit has a config key in [limits] (lib/config.c holds the table
 * with the bounds an operator may set it within).  A message that breaks a
 * limit is stored QUARANTINED with a reason naming the limit; it is never
 * dropped.  Defaults follow Postfix where Postfix has one
 * (message_size_limit, header_size_limit, mime_nesting_limit).
 */
/*
 * lib/ is on the quote include path, so GCC's <limits.h> chain
 * (syslimits.h: #include_next <limits.h>) can land here: hand it on to
 * the system header.
 */
#if defined(_GCC_NEXT_LIMITS_H)
#include_next <limits.h>
#else
#ifndef VMI_LIMITS_H
#define VMI_LIMITS_H

#include <stddef.h>

#define LIMIT_MESSAGE_BYTES	(50u * 1024 * 1024)	/* message_bytes */
#define LIMIT_HEADER_BYTES	(100u * 1024)		/* header_bytes: all headers */
#define LIMIT_HEADER_COUNT	1000u			/* header_count */
#define LIMIT_MIME_DEPTH	100u			/* mime_depth (Postfix 100) */
#define LIMIT_PART_COUNT	1000u			/* part_count */
#define LIMIT_TEXT_BYTES	(64u * 1024)		/* text_bytes kept per text part */
#define LIMIT_RECORD_BYTES	(8u * 1024 * 1024)	/* record_bytes: packed Record */
#define LIMIT_IMS_MESSAGES	64u			/* ims_messages per mail */
#define LIMIT_IMS_SECTIONS	1024u			/* ims_sections per IMS message */
#define LIMIT_IMS_LINE_BYTES	1024u			/* ims_line_bytes (GSE2.1) */
#define LIMIT_IMS_REQUESTS	1024u			/* ims_requests per IMS message */
#define LIMIT_IMS_STATIONS	4096u			/* ims_stations per section */
#define LIMIT_WARNINGS		256u			/* warnings kept per record */

struct limits {
	size_t	message_bytes;
	size_t	header_bytes;
	size_t	header_count;
	size_t	mime_depth;
	size_t	part_count;
	size_t	text_bytes;
	size_t	record_bytes;
	size_t	ims_messages;
	size_t	ims_sections;
	size_t	ims_line_bytes;
	size_t	ims_requests;
	size_t	ims_stations;
	size_t	warnings;
};

static inline void
limits_default(struct limits *l)
{
	l->message_bytes = LIMIT_MESSAGE_BYTES;
	l->header_bytes = LIMIT_HEADER_BYTES;
	l->header_count = LIMIT_HEADER_COUNT;
	l->mime_depth = LIMIT_MIME_DEPTH;
	l->part_count = LIMIT_PART_COUNT;
	l->text_bytes = LIMIT_TEXT_BYTES;
	l->record_bytes = LIMIT_RECORD_BYTES;
	l->ims_messages = LIMIT_IMS_MESSAGES;
	l->ims_sections = LIMIT_IMS_SECTIONS;
	l->ims_line_bytes = LIMIT_IMS_LINE_BYTES;
	l->ims_requests = LIMIT_IMS_REQUESTS;
	l->ims_stations = LIMIT_IMS_STATIONS;
	l->warnings = LIMIT_WARNINGS;
}

#endif
#endif /* _GCC_NEXT_LIMITS_H */
