/*
 * normalize_int.h - what lib/normalize.c shares with lib/mime_header.c.
 *
 * Internal to normalize: struct norm is the state of one
 * normalize_message() call (one thread, one message); nothing here is
 * for other modules.
 *
 *   norm_warn        append a warning to the record (bounded)
 *   norm_quarantine  quarantine with a reason (first one kept)
 *   norm_xmalloc     malloc or log_fatal
 *   mime_header_scan      pre-scan the top header block (limits, oddities)
 *   mime_header_envelope  message_id, date, addresses, subject, ids, envelope
 *   mime_header_list      every top-level header in order, raw values
 *   mime_header_strdup    record copy of a decoded header string
 */
#ifndef VMI_NORMALIZE_INT_H
#define VMI_NORMALIZE_INT_H

#include <stddef.h>

#include <gmime/gmime.h>

#include "limits.h"
#include "mime_guard.h"
#include "vmingest.pb-c.h"

struct norm {
	const struct limits *l;
	Vmingest__Record *rec;
	GMimeParserOptions *opts;
	guint32	 gmime_seen;	/* GMimeParserWarning codes already recorded */
	size_t	 nparts;
	size_t	 reparsed;	/* bytes of encoded message/rfc822 re-parsed */
	size_t	 hdr_total;	/* header fields GMime parsed, all entities */
	size_t	 hdr_budget;
	GMimeStream *stream;	/* the top-level parser's input */
	const char *orig;	/* the bytes parsed, before mime_guard */
	struct mime_guard_hit *hits;	/* address fields renamed for GMime */
	size_t	 nhits;
	int	 part_limit_hit;
	int	 depth_limit_hit;
};

/* What the pre-scan of the top-level header block found. */
struct hscan {
	size_t	 count;		/* header fields */
	size_t	 bytes;		/* bytes of the block incl. the blank line */
	size_t	 nocolon;	/* lines that are neither field nor folding */
	size_t	 first_bad;	/* offset of the first such line */
	int	 eightbit;	/* bytes >= 0x80 seen */
	int	 leading_ws;	/* block starts with a folded line */
};

void	 norm_warn(struct norm *, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));
void	 norm_quarantine(struct norm *, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));
void	*norm_xmalloc(size_t);
/* rec_strdup/rec_strndup with a fast path for ASCII (most header data):
 * same result, without rec_utf8ndup's 3x buffer and validation. */
char	*norm_strdup(const char *s);
char	*norm_strndup(const char *s, size_t len);

void	 mime_header_scan(const char *p, size_t len, struct hscan *h);
void	 mime_header_envelope(struct norm *, GMimeMessage *);
void	 mime_header_list(struct norm *, GMimeMessage *);
char	*mime_header_strdup(struct norm *, const char *what, const char *s);

#endif
