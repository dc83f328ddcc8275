/*
 * mime_header.c - the header side of normalize: envelope fields and the
 * header list of a GMime message, and the pre-scan of the raw header
 * block.
 *
 *   mime_header_scan      count fields and bytes of the top header block,
 *                         find lines without a colon and 8-bit bytes
 *   mime_header_envelope  Message-ID, Date, From/Sender/Reply-To/To/Cc
 *                         (groups flattened), Subject, In-Reply-To,
 *                         References, Return-Path, Delivered-To
 *   mime_header_list      every top-level header, in order, raw value
 *                         unfolded, within header_count and header_bytes
 *   mime_header_strdup    record copy of a decoded string (UTF-8 repair
 *                         is a warning)
 *
 * Error policy: deviations are warnings on the record (norm_warn);
 * nothing fails.  Allocation failure is fatal.
 *
 * SECURITY: header values are hostile.  Address lists and References
 * are capped at header_count entries; the pre-scan is linear and bounded
 * by the buffer length (which is not NUL-terminated).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <glib.h>
#include <gmime/gmime.h>

#include "mime_text.h"
#include "normalize_int.h"
#include "record.h"

/*
 * Pre-scan the header block at p: count fields and bytes and find the
 * lines GMime would misread.  Stops at the blank line, at the first
 * line that is not a header field before any field was seen, or at the
 * end.  Linear in the header block.
 */
void
mime_header_scan(const char *p, size_t len, struct hscan *h)
{
	size_t	 off = 0, eol, llen, i;
	const char *nl;

	memset(h, 0, sizeof(*h));
	while (off < len) {
		nl = memchr(p + off, '\n', len - off);
		eol = nl != NULL ? (size_t)(nl - p) : len;
		llen = eol - off;
		if (llen > 0 && p[eol - 1] == '\r')
			llen--;
		if (llen == 0) {
			h->bytes = (nl != NULL ? eol + 1 : eol);
			return;
		}
		for (i = 0; i < llen; i++)
			if ((unsigned char)p[off + i] >= 0x80) {
				h->eightbit = 1;
				break;
			}
		if (p[off] == ' ' || p[off] == '\t') {
			if (h->count == 0)
				h->leading_ws = 1;
		} else {
			for (i = 0; i < llen; i++) {
				unsigned char c = (unsigned char)p[off + i];

				if (c == ':' || c < 33 || c > 126)
					break;
			}
			/* obsolete syntax allows blanks before the colon */
			while (i < llen && i > 0 &&
			    (p[off + i] == ' ' || p[off + i] == '\t'))
				i++;
			if (i > 0 && i < llen && p[off + i] == ':')
				h->count++;
			else {
				if (h->nocolon++ == 0)
					h->first_bad = off;
				if (h->count == 0) {
					/* no header block at all */
					h->bytes = 0;
					return;
				}
			}
		}
		off = nl != NULL ? eol + 1 : len;
	}
	h->bytes = off;
}

/* Copy a header value: drop leading blanks and line breaks (unfold). */
static void
unfold_value(const char *v, ProtobufCBinaryData *out)
{
	size_t	 len, i, o = 0;
	char	*d;

	while (*v == ' ' || *v == '\t')
		v++;
	len = strlen(v);
	d = norm_xmalloc(len + 1);
	for (i = 0; i < len; i++)
		if (v[i] != '\n' && !(v[i] == '\r' && v[i + 1] == '\n'))
			d[o++] = v[i];
	while (o > 0 && (d[o - 1] == ' ' || d[o - 1] == '\t'))
		o--;
	if (o == 0) {
		free(d);
		out->data = NULL;
		out->len = 0;
		return;
	}
	out->data = (uint8_t *)d;
	out->len = o;
}

/* Strip blanks and one pair of angle brackets, return a record string. */
static char *
strip_angle(const char *s)
{
	size_t	 len;

	if (s == NULL)
		return norm_strdup("");
	while (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n')
		s++;
	len = strlen(s);
	while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t' ||
	    s[len - 1] == '\r' || s[len - 1] == '\n'))
		len--;
	if (len >= 2 && s[0] == '<' && s[len - 1] == '>') {
		s++;
		len -= 2;
	}
	return norm_strndup(s, len);
}

/* rec_strdup for a decoded header string, with a warning on repair. */
char *
mime_header_strdup(struct norm *n, const char *what, const char *s)
{
	int	 replaced;
	size_t	 len;
	char	*d;

	if (s == NULL)
		s = "";
	len = strlen(s);
	if (mime_ascii_prefix(s, len) == len)
		return norm_strndup(s, len);
	d = rec_utf8ndup(s, len, &replaced);
	if (replaced)
		norm_warn(n, "%s: invalid UTF-8 replaced with U+FFFD", what);
	return d;
}

/*
 * Append the mailboxes of list (groups flattened) to arr.  At most
 * header_count addresses per field: a 100 KB To: holds thousands.
 */
static void
add_addresses(struct norm *n, const char *what, InternetAddressList *list,
    Vmingest__Address ***arr, size_t *narr, int depth)
{
	InternetAddress *ia;
	Vmingest__Address *a;
	int	 i, cnt;

	if (list == NULL || depth > 2)
		return;
	cnt = internet_address_list_length(list);
	for (i = 0; i < cnt; i++) {
		if (*narr >= n->l->header_count) {
			norm_warn(n, "%s: more than %zu addresses, rest not "
			    "recorded",
			    what, n->l->header_count);
			return;
		}
		ia = internet_address_list_get_address(list, i);
		if (INTERNET_ADDRESS_IS_GROUP(ia)) {
			add_addresses(n, what,
			    internet_address_group_get_members(
			    INTERNET_ADDRESS_GROUP(ia)), arr, narr, depth + 1);
			continue;
		}
		if (!INTERNET_ADDRESS_IS_MAILBOX(ia))
			continue;
		a = norm_xmalloc(sizeof(*a));
		vmingest__address__init(a);
		a->name = mime_header_strdup(n, what,
		    internet_address_get_name(ia));
		a->address = norm_strdup(internet_address_mailbox_get_addr(
		    INTERNET_ADDRESS_MAILBOX(ia)));
		rec_push(arr, narr, a);
	}
}

static const char *
first_header(GMimeObject *o, const char *a, const char *b)
{
	const char *v = g_mime_object_get_header(o, a);

	if (v == NULL && b != NULL)
		v = g_mime_object_get_header(o, b);
	return v;
}

void
mime_header_envelope(struct norm *n, GMimeMessage *m)
{
	Vmingest__Record *r = n->rec;
	GMimeObject *o = GMIME_OBJECT(m);
	GMimeReferences *refs;
	GDateTime *dt;
	const char *v;
	int	 i, cnt;

	if ((v = g_mime_message_get_message_id(m)) != NULL)
		r->message_id = norm_strdup(v);
	else
		norm_warn(n, "no Message-ID header");
	if ((v = g_mime_object_get_header(o, "Date")) != NULL) {
		while (*v == ' ' || *v == '\t')
			v++;
		r->date_raw = norm_strdup(v);
		if ((dt = g_mime_message_get_date(m)) != NULL)
			r->date_unix = g_date_time_to_unix(dt);
		else
			norm_warn(n, "bad Date header");
	} else
		norm_warn(n, "no Date header");
	if ((v = g_mime_message_get_subject(m)) != NULL)
		r->subject = mime_header_strdup(n, "Subject", v);
	add_addresses(n, "From", g_mime_message_get_from(m), &r->from,
	    &r->n_from, 0);
	add_addresses(n, "Sender", g_mime_message_get_sender(m), &r->sender,
	    &r->n_sender, 0);
	add_addresses(n, "Reply-To", g_mime_message_get_reply_to(m),
	    &r->reply_to, &r->n_reply_to, 0);
	add_addresses(n, "To", g_mime_message_get_to(m), &r->to, &r->n_to, 0);
	add_addresses(n, "Cc", g_mime_message_get_cc(m), &r->cc, &r->n_cc, 0);
	if (g_mime_object_get_header(o, "From") == NULL)
		norm_warn(n, "no From header");
	if ((v = g_mime_object_get_header(o, "In-Reply-To")) != NULL) {
		refs = g_mime_references_parse(n->opts, v);
		if (refs != NULL && g_mime_references_length(refs) > 0)
			r->in_reply_to = norm_strdup(
			    g_mime_references_get_message_id(refs, 0));
		else
			r->in_reply_to = strip_angle(v);
		if (refs != NULL)
			g_mime_references_free(refs);
	}
	if ((v = g_mime_object_get_header(o, "References")) != NULL &&
	    (refs = g_mime_references_parse(n->opts, v)) != NULL) {
		cnt = g_mime_references_length(refs);
		if (cnt > 0 && (size_t)cnt > n->l->header_count) {
			norm_warn(n, "References: more than %zu ids, rest not "
			    "recorded", n->l->header_count);
			cnt = (int)n->l->header_count;
		}
		for (i = 0; i < cnt; i++)
			rec_push(&r->references, &r->n_references, norm_strdup(
			    g_mime_references_get_message_id(refs, i)));
		g_mime_references_free(refs);
	}
	if ((v = g_mime_object_get_header(o, "Return-Path")) != NULL)
		r->return_path = strip_angle(v);
	if ((v = first_header(o, "Delivered-To", "X-Original-To")) != NULL)
		r->delivered_to = strip_angle(v);
}

/* The real name of a field mime_guard renamed at offset off, or NULL. */
static char *
guarded_name(struct norm *n, gint64 off)
{
	size_t	 i;

	for (i = 0; i < n->nhits && off >= 0; i++)
		if (n->hits[i].offset == (size_t)off)
			return norm_strndup(n->orig + off, n->hits[i].name_len);
	return NULL;
}

struct hdr_ref {
	GMimeHeader *h;
	gint64	 off;
	int	 idx;
};

static int
hdr_cmp(const void *a, const void *b)
{
	const struct hdr_ref *x = a, *y = b;

	if (x->off != y->off)
		return x->off < y->off ? -1 : 1;
	return x->idx - y->idx;
}

/*
 * Record every top-level header in order, within the header limits.
 * GMime keeps the Content-* fields of the top-level block on the body
 * entity and the rest on the message, so the two lists are merged back
 * into stream order by header offset.
 */
void
mime_header_list(struct norm *n, GMimeMessage *m)
{
	GMimeHeaderList *hl[2];
	GMimeObject *root;
	GMimeHeader *h;
	Vmingest__Header *rh;
	struct hdr_ref *refs;
	const char *raw;
	size_t	 bytes = 0, total = 0, k = 0, i;
	int	 j, cnt[2];

	hl[0] = g_mime_object_get_header_list(GMIME_OBJECT(m));
	root = g_mime_message_get_mime_part(m);
	hl[1] = root != NULL ? g_mime_object_get_header_list(root) : NULL;
	for (j = 0; j < 2; j++) {
		cnt[j] = hl[j] != NULL ?
		    g_mime_header_list_get_count(hl[j]) : 0;
		if (cnt[j] < 0)
			cnt[j] = 0;
		total += (size_t)cnt[j];
	}
	refs = norm_xmalloc(total * sizeof(*refs));
	for (j = 0; j < 2; j++) {
		int	 x;

		for (x = 0; x < cnt[j]; x++) {
			refs[k].h = g_mime_header_list_get_header_at(hl[j], x);
			refs[k].off = g_mime_header_get_offset(refs[k].h);
			refs[k].idx = (int)k;
			k++;
		}
	}
	qsort(refs, total, sizeof(*refs), hdr_cmp);
	for (i = 0; i < total && i < n->l->header_count; i++) {
		h = refs[i].h;
		raw = g_mime_header_get_raw_value(h);
		if (raw == NULL)
			raw = "";
		bytes += strlen(g_mime_header_get_name(h)) + 1 + strlen(raw);
		if (bytes > n->l->header_bytes)
			break;
		rh = norm_xmalloc(sizeof(*rh));
		vmingest__header__init(rh);
		rh->name = guarded_name(n, refs[i].off);
		if (rh->name == NULL)
			rh->name = norm_strdup(g_mime_header_get_name(h));
		unfold_value(raw, &rh->value);
		rec_push(&n->rec->headers, &n->rec->n_headers, rh);
	}
	free(refs);
}
