/*
 * mime_guard.h - keep hostile header fields away from GMime's weak spots.
 *
 *   mime_guard_addr_scan   find address fields (From, To, Cc, ...) that
 *                          GMime 3.2 cannot parse safely
 *   mime_guard_neutralize  rename those fields in a private copy so that
 *                          GMime does not parse them as addresses
 *
 * GMime 3.2's address-list parser recurses once per ':' (a group) and is
 * quadratic in the number of ','.  Measured: a 100 KB "To: a:a:a:..."
 * overflows an 8 MB stack (SIGSEGV); 40000 commas take 7 s.  The parser
 * runs on every message header block, including those of message/rfc822
 * parts, while g_mime_parser_construct_message() runs, so the guard scans
 * every line of the message, not just the top header block.
 *
 * OWNERSHIP: *hits is malloc'd, the caller frees it.
 * THREADS: no state.
 * SECURITY: linear in the input; the input is hostile.
 */
#ifndef VMI_MIME_GUARD_H
#define VMI_MIME_GUARD_H

#include <stddef.h>

/* ',' and ':' allowed in one address field: 1000 groups recurse ~200 KB
 * of stack and 1000 commas cost GMime ~5 ms. */
#define MIME_GUARD_ADDR_SEPARATORS	1000

struct mime_guard_hit {
	size_t	 offset;	/* of the field name, from the buffer start */
	size_t	 name_len;	/* bytes of the name before the colon */
	size_t	 separators;	/* ',' and ':' in the value */
	size_t	 bytes;		/* of the whole field, folded lines included */
};

/*
 * Scan len bytes at p for address fields with more than max_sep
 * separators.  Returns the number of hits; *hits (malloc'd, or NULL when
 * there are none) lists them in order.
 */
size_t	mime_guard_addr_scan(const char *p, size_t len, size_t max_sep,
	    struct mime_guard_hit **hits);

/* Rename each hit in buf (a copy of what was scanned): first byte of the
 * name becomes 'X', so "To:" reads "Xo:" to GMime. */
void	mime_guard_neutralize(char *buf, const struct mime_guard_hit *hits,
	    size_t nhits);

#endif
