/*
 * mime_guard.c - keep hostile header fields away from GMime's weak spots.
 *
 *   mime_guard_scan        find address fields GMime cannot parse safely,
 *                          count lines and boundary-like lines
 *   mime_guard_neutralize  rename them in a private copy
 *
 * See mime_guard.h for the GMime behaviour this defends against.  A line
 * is a candidate when it starts (column 0) with an address field name and
 * a colon; the field runs on over folded lines.  Body lines that happen
 * to look like "To: ..." are scanned too: harmless, since only fields
 * with more than max_sep separators are hits, and a hit in a body is
 * renamed in a copy GMime never shows as a header.
 *
 * Error policy: none; allocation failure is fatal.
 * SECURITY: one pass over the input, every loop advances.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"
#include "mime_guard.h"

/* Fields GMime parses as address lists (and Resent-*, to be safe). */
static const struct {
	const char *name;
	size_t	 len;
} addr_names[] = {
	{ "from", 4 }, { "sender", 6 }, { "reply-to", 8 }, { "to", 2 },
	{ "cc", 2 }, { "bcc", 3 }, { "resent-from", 11 },
	{ "resent-sender", 13 }, { "resent-reply-to", 15 },
	{ "resent-to", 9 }, { "resent-cc", 9 }, { "resent-bcc", 10 },
};

/* Length of the field name at p if it is an address field, else 0. */
static size_t
addr_name(const char *p, size_t len)
{
	size_t	 i, k, n;
	int	 c = p[0] | 0x20;

	for (i = 0; i < sizeof(addr_names) / sizeof(addr_names[0]); i++) {
		n = addr_names[i].len;
		/* most body lines fail on the first byte or the length */
		if (addr_names[i].name[0] != c || len <= n ||
		    strncasecmp(p, addr_names[i].name, n) != 0)
			continue;
		for (k = n; k < len && (p[k] == ' ' || p[k] == '\t'); k++)
			;
		if (k < len && p[k] == ':')
			return n;
	}
	return 0;
}

void
mime_guard_scan(const char *p, size_t len, size_t max_sep, size_t max_dash,
    struct mime_guard *g)
{
	const char *nl;
	size_t	 off = 0, end, i, sep, name, dashes = 0;
	struct mime_guard_hit *h = NULL;

	memset(g, 0, sizeof(*g));
	g->dash_cut = len;
	while (off < len) {
		nl = memchr(p + off, '\n', len - off);
		end = nl != NULL ? (size_t)(nl - p) + 1 : len;
		g->lines++;
		/* cheap first-byte filter: - f s r t c b */
		switch (p[off]) {
		case '-':
			if (end - off >= 2 && p[off + 1] == '-' &&
			    ++dashes > max_dash && g->dash_cut == len)
				g->dash_cut = off;
			off = end;
			continue;
		case 'f': case 's': case 'r': case 't': case 'c': case 'b':
		case 'F': case 'S': case 'R': case 'T': case 'C': case 'B':
			break;
		default:
			off = end;
			continue;
		}
		if ((name = addr_name(p + off, end - off)) == 0) {
			off = end;
			continue;
		}
		/* the field: this line and the folded ones after it */
		sep = 0;
		i = off + name;
		while (i < len && p[i] != ':')
			i++;
		for (i++; i < len; i++) {
			if (p[i] == '\n' && (i + 1 >= len ||
			    (p[i + 1] != ' ' && p[i + 1] != '\t')))
				break;
			if (p[i] == ',' || p[i] == ':')
				sep++;
		}
		end = i < len ? i + 1 : len;
		if (sep > max_sep) {
			h = realloc(h, (g->nhits + 1) * sizeof(*h));
			if (h == NULL)
				log_fatal("realloc");
			h[g->nhits].offset = off;
			h[g->nhits].name_len = name;
			h[g->nhits].separators = sep;
			h[g->nhits].bytes = end - off;
			g->nhits++;
		}
		/* folded lines were passed over: count them too */
		for (i = off; i < end; i++)
			if (p[i] == '\n' && i + 1 < end)
				g->lines++;
		off = end;
	}
	g->hits = h;
}

void
mime_guard_neutralize(char *buf, const struct mime_guard_hit *hits,
    size_t nhits)
{
	size_t	 i;

	for (i = 0; i < nhits; i++)
		buf[hits[i].offset] = 'X';
}
