/*
 * mime_guard.h - keep hostile header fields away from GMime's weak spots.
 *
 *   mime_guard_scan        find address fields (From, To, Cc, ...) that
 *                          GMime 3.2 cannot parse safely, count lines and
 *                          boundary-like lines
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
 * GMime also builds an object for every part it finds whatever our
 * part_count: a 7 MB message of "--x\n\na\n" made it allocate 1.3 GB.
 * Every part starts at a line beginning "--", so counting those lines
 * bounds what GMime may build.
 *
 * OWNERSHIP: g->hits is malloc'd, the caller frees it.
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

struct mime_guard {
	struct mime_guard_hit *hits;	/* malloc'd or NULL; caller frees */
	size_t	 nhits;
	size_t	 lines;		/* lines in the buffer */
	size_t	 dash_cut;	/* offset of the line that made more than
				   max_dash lines starting "--", or len */
};

/*
 * One pass over len bytes at p: address fields with more than max_sep
 * separators (hits, in order), the line count, and where the lines that
 * start with "--" (boundary candidates) first exceed max_dash.
 */
void	mime_guard_scan(const char *p, size_t len, size_t max_sep,
	    size_t max_dash, struct mime_guard *g);

/* Rename each hit in buf (a copy of what was scanned): first byte of the
 * name becomes 'X', so "To:" reads "Xo:" to GMime. */
void	mime_guard_neutralize(char *buf, const struct mime_guard_hit *hits,
	    size_t nhits);

#endif
