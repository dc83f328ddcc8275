/*
 * sieve_msg.c - the message as Sieve tests see it.
 *
 *   sieve_msg_init    index the header block of the raw bytes (one pass)
 *   sieve_msg_value   a header's value: unfolded, trimmed, RFC 2047
 *                     decoded (GMime), computed on first use and cached
 *   sieve_addr_parse  addr-specs of an address-list header value
 *   sieve_addr_part   :all / :localpart / :domain of one address
 *   sieve_msg_parts   decoded MIME leaves for body :text / :content
 *                     (GMime parser, built on first use)
 *   sieve_msg_free    release what the caches allocated
 *
 * The index lives in the struct (SV_HDR_INLINE entries) and only grows
 * onto the heap for messages with many headers, so a header-only rule
 * set costs no allocation for typical mail.  A value that needs no
 * unfolding or decoding is a slice of the raw bytes.
 *
 * SECURITY: the bytes are hostile.  At most LIMIT_HEADER_COUNT headers
 * in the first LIMIT_HEADER_BYTES bytes are indexed; every loop is
 * linear in the input; the MIME text handed to body tests is capped at
 * the caller's match_bytes.
 */
#include <gmime/gmime.h>
#include <stdlib.h>
#include <string.h>

#include "limits.h"
#include "sieve.h"

static int
add_hdr(struct sv_msg *m, const char *name, size_t nlen, const char *val,
    size_t vlen)
{
	struct sv_hdr *h;

	if (m->nh == m->cap) {
		size_t	 ncap = m->cap * 2;

		if (m->h == m->inl) {
			if ((h = malloc(ncap * sizeof(*h))) == NULL)
				return -1;
			memcpy(h, m->inl, m->nh * sizeof(*h));
		} else if ((h = realloc(m->h, ncap * sizeof(*h))) == NULL)
			return -1;
		m->h = h;
		m->cap = ncap;
	}
	h = &m->h[m->nh++];
	h->name = name;
	h->nlen = nlen;
	h->val = val;
	h->vlen = vlen;
	h->hash = sieve_hash_lower(name, nlen);
	h->dec = NULL;
	h->declen = 0;
	h->decbuf = NULL;
	h->have_dec = 0;
	return 0;
}

void
sieve_msg_init(struct sv_msg *m, const void *raw, size_t len)
{
	const char *p = raw, *end = p + len, *hend;
	const char *name = NULL, *val = NULL;
	size_t	 nlen = 0;

	m->raw = raw;
	m->len = len;
	m->h = m->inl;
	m->nh = 0;
	m->cap = SV_HDR_INLINE;
	m->have_parts = 0;
	m->parts = NULL;
	m->nparts = 0;
	m->body_off = len;
	hend = len > LIMIT_HEADER_BYTES ? p + LIMIT_HEADER_BYTES : end;
	/* an mbox "From " line is not a header */
	if (len > 5 && memcmp(p, "From ", 5) == 0) {
		const char *nl = memchr(p, '\n', len);

		p = nl ? nl + 1 : end;
	}
	while (p < end) {
		const char *nl = memchr(p, '\n', end - p);
		const char *le = nl ? nl : end;
		const char *next = nl ? nl + 1 : end;
		const char *c;

		if (le == p || (le == p + 1 && *p == '\r')) {
			if (name != NULL && m->nh < LIMIT_HEADER_COUNT)
				add_hdr(m, name, nlen, val, p - val);
			name = NULL;
			m->body_off = next - (const char *)raw;
			break;
		}
		if (*p == ' ' || *p == '\t') {
			p = next;	/* continuation of the current header */
			continue;
		}
		if (name != NULL && m->nh < LIMIT_HEADER_COUNT &&
		    add_hdr(m, name, nlen, val, p - val) == -1)
			break;
		name = NULL;
		if (p >= hend)
			break;
		c = memchr(p, ':', le - p);
		if (c != NULL && c > p) {
			name = p;
			nlen = c - p;
			while (nlen > 0 && (name[nlen - 1] == ' ' ||
			    name[nlen - 1] == '\t'))
				nlen--;
			val = c + 1;
		}
		p = next;
	}
	if (name != NULL && m->nh < LIMIT_HEADER_COUNT)
		add_hdr(m, name, nlen, val, end - val);
}

void
sieve_msg_free(struct sv_msg *m)
{
	size_t	 i;

	for (i = 0; i < m->nh; i++)
		free(m->h[i].decbuf);
	if (m->h != m->inl)
		free(m->h);
	for (i = 0; i < m->nparts; i++) {
		free(m->parts[i].type);
		free(m->parts[i].text);
	}
	free(m->parts);
	m->h = m->inl;
	m->nh = 0;
	m->parts = NULL;
	m->nparts = 0;
}

static inline int
wsp(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

void
sieve_msg_value(struct sv_msg *m, size_t i, const char **pp, size_t *lenp)
{
	struct sv_hdr *h = &m->h[i];
	const char *v = h->val, *e = h->val + h->vlen;
	size_t	 j, k;
	int	 folded = 0;
	char	*b;

	if (h->have_dec) {
		*pp = h->dec;
		*lenp = h->declen;
		return;
	}
	h->have_dec = 1;
	while (v < e && wsp(*v))
		v++;
	while (e > v && wsp(e[-1]))
		e--;
	if (memchr(v, '\n', e - v) != NULL || memchr(v, '\r', e - v) != NULL)
		folded = 1;
	if (!folded && memmem(v, e - v, "=?", 2) == NULL) {
		h->dec = v;
		h->declen = e - v;
		goto out;
	}
	if ((b = malloc(e - v + 1)) == NULL) {
		h->dec = v;
		h->declen = e - v;
		goto out;
	}
	for (j = 0, k = 0; j < (size_t)(e - v); j++)
		if (v[j] != '\r' && v[j] != '\n')
			b[k++] = v[j];
	b[k] = '\0';
	if (memmem(b, k, "=?", 2) != NULL) {
		char	*d = g_mime_utils_header_decode_text(NULL, b);

		if (d != NULL) {
			size_t	 dl = strlen(d);
			char	*nb = malloc(dl + 1);

			if (nb != NULL) {
				memcpy(nb, d, dl + 1);
				free(b);
				b = nb;
				k = dl;
			}
			g_free(d);
		}
	}
	h->decbuf = b;
	h->dec = b;
	h->declen = k;
out:
	*pp = h->dec;
	*lenp = h->declen;
}

/* ---- addresses ---- */

static int
push_addr(struct sv_val **out, size_t *n, size_t max, const char *p, size_t len)
{
	struct sv_val *nv;

	while (len > 0 && wsp(*p))
		p++, len--;
	while (len > 0 && wsp(p[len - 1]))
		len--;
	if (len == 0)
		return 0;
	if (*n >= max)
		return -1;
	if ((nv = realloc(*out, (*n + 1) * sizeof(*nv))) == NULL)
		return -1;
	*out = nv;
	nv[*n].p = p;
	nv[*n].len = len;
	(*n)++;
	return 0;
}

/*
 * RFC 5322 address-list, leniently: display names, comments and group
 * labels are dropped; an angle-addr wins over the surrounding text; a
 * source route ("@a,@b:") inside the angle brackets is dropped.
 */
int
sieve_addr_parse(const char *v, size_t vlen, struct sv_val **out, size_t *n,
    size_t max, char **bufp)
{
	char	*buf;
	size_t	 i, blen = 0, mstart = 0, astart = 0, alen = 0;
	int	 quote = 0, depth = 0, angle = 0, have_angle = 0;

	if ((buf = malloc(vlen + 1)) == NULL)
		return -1;
	*bufp = buf;
	for (i = 0; i <= vlen; i++) {
		char	 c = i < vlen ? v[i] : ',';

		if (i < vlen && (c == '\r' || c == '\n'))
			continue;
		if (quote) {
			if (c == '\\' && i + 1 < vlen) {
				buf[blen++] = v[++i];
				continue;
			}
			if (c == '"')
				quote = 0;
			buf[blen++] = c;
			continue;
		}
		if (depth > 0) {
			if (c == '\\' && i + 1 < vlen)
				i++;
			else if (c == '(')
				depth++;
			else if (c == ')')
				depth--;
			if (i == vlen)
				depth = 0;	/* unclosed comment at the end */
			else
				continue;
		}
		if (c == '(') {
			depth = 1;
			continue;
		}
		if (c == '"') {
			quote = 1;
			buf[blen++] = c;
			continue;
		}
		if (angle) {
			if (c == '>') {
				angle = 0;
				alen = blen - astart;
				have_angle = 1;
			} else if (i == vlen) {
				angle = 0;
				alen = blen - astart;
				have_angle = 1;
			} else {
				buf[blen++] = c;
				continue;
			}
			if (i < vlen)
				continue;
		}
		if (c == '<') {
			angle = 1;
			astart = blen;
			continue;
		}
		if (c == ':' && !have_angle) {
			blen = mstart;	/* group label */
			continue;
		}
		if (c == ',' || c == ';') {
			const char *a;
			size_t	 l;
			int	 rc;

			if (have_angle) {
				a = buf + astart;
				l = alen;
				/* source route */
				if (l > 0 && *a == '@') {
					const char *col = memchr(a, ':', l);

					if (col != NULL) {
						l -= col + 1 - a;
						a = col + 1;
					}
				}
			} else {
				a = buf + mstart;
				l = blen - mstart;
			}
			rc = push_addr(out, n, max, a, l);
			mstart = blen;
			have_angle = 0;
			if (rc == -1)
				return -1;
			continue;
		}
		if (!have_angle)
			buf[blen++] = c;
	}
	return 0;
}

void
sieve_addr_part(const char *a, size_t alen, int apart, const char **p,
    size_t *len)
{
	const char *at = NULL;
	size_t	 i;

	for (i = alen; i > 0; i--)
		if (a[i - 1] == '@') {
			at = a + i - 1;
			break;
		}
	switch (apart) {
	case AP_LOCAL:
		*p = a;
		*len = at ? (size_t)(at - a) : alen;
		break;
	case AP_DOMAIN:
		*p = at ? at + 1 : NULL;
		*len = at ? alen - (at + 1 - a) : 0;
		break;
	default:
		*p = a;
		*len = alen;
	}
}

/* ---- MIME leaves for body :text and :content ---- */

struct parts_walk {
	struct sv_msg *m;
	size_t	 left;
	int	 failed;
};

static void
add_part(struct parts_walk *w, GMimeObject *obj)
{
	GMimeContentType *ct = g_mime_object_get_content_type(obj);
	const char *t = ct ? g_mime_content_type_get_media_type(ct) : NULL;
	const char *st = ct ? g_mime_content_type_get_media_subtype(ct) : NULL;
	GMimeDataWrapper *dw;
	GMimeStream *mem, *f;
	GByteArray *ba;
	struct sv_part *np;
	char	*type, *text;
	size_t	 n, i;

	if (w->failed || !GMIME_IS_PART(obj))
		return;
	if (t == NULL)
		t = "text";
	if (st == NULL)
		st = "plain";
	n = strlen(t) + 1 + strlen(st);
	if ((type = malloc(n + 1)) == NULL) {
		w->failed = 1;
		return;
	}
	snprintf(type, n + 1, "%s/%s", t, st);
	for (i = 0; i < n; i++)
		type[i] = g_ascii_tolower(type[i]);
	mem = g_mime_stream_mem_new();
	dw = g_mime_part_get_content(GMIME_PART(obj));
	if (dw != NULL) {
		f = g_mime_stream_filter_new(mem);
		if (g_ascii_strcasecmp(t, "text") == 0) {
			const char *cs = g_mime_object_get_content_type_parameter(obj,
			    "charset");
			GMimeFilter *cf = g_mime_filter_charset_new(cs ? cs :
			    "us-ascii", "utf-8");

			if (cf != NULL) {
				g_mime_stream_filter_add(GMIME_STREAM_FILTER(f), cf);
				g_object_unref(cf);
			}
		}
		g_mime_data_wrapper_write_to_stream(dw, f);
		g_mime_stream_flush(f);
		g_object_unref(f);
	}
	ba = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(mem));
	n = ba ? ba->len : 0;
	if (n > w->left)
		n = w->left;
	w->left -= n;
	if ((text = malloc(n + 1)) == NULL ||
	    (np = realloc(w->m->parts, (w->m->nparts + 1) * sizeof(*np))) == NULL) {
		free(text);
		free(type);
		g_object_unref(mem);
		w->failed = 1;
		return;
	}
	if (n > 0)
		memcpy(text, ba->data, n);
	text[n] = '\0';
	g_object_unref(mem);
	w->m->parts = np;
	np[w->m->nparts].type = type;
	np[w->m->nparts].text = text;
	np[w->m->nparts].len = n;
	w->m->nparts++;
}

static void
walk_cb(GMimeObject *parent, GMimeObject *part, gpointer arg)
{
	struct parts_walk *w = arg;

	if (w->m->nparts >= LIMIT_PART_COUNT)
		return;
	if (GMIME_IS_MESSAGE_PART(part)) {
		GMimeMessage *sub = g_mime_message_part_get_message(
		    GMIME_MESSAGE_PART(part));

		/* g_mime_message_foreach does not descend into message/rfc822 */
		if (sub != NULL && sub->mime_part != NULL) {
			if (GMIME_IS_MULTIPART(sub->mime_part))
				g_mime_multipart_foreach(
				    GMIME_MULTIPART(sub->mime_part), walk_cb, w);
			else
				add_part(w, sub->mime_part);
		}
		return;
	}
	add_part(w, part);
}

int
sieve_msg_parts(struct sv_msg *m, size_t maxbytes)
{
	struct parts_walk w = { m, maxbytes, 0 };
	GMimeStream *s;
	GMimeParser *p;
	GMimeMessage *msg;

	if (m->have_parts)
		return 0;
	m->have_parts = 1;
	s = g_mime_stream_mem_new_with_buffer(m->raw, m->len);
	p = g_mime_parser_new_with_stream(s);
	g_object_unref(s);
	msg = g_mime_parser_construct_message(p, NULL);
	g_object_unref(p);
	if (msg == NULL)
		return 0;
	if (msg->mime_part != NULL) {
		if (GMIME_IS_MULTIPART(msg->mime_part))
			g_mime_multipart_foreach(GMIME_MULTIPART(msg->mime_part),
			    walk_cb, &w);
		else
			walk_cb(NULL, msg->mime_part, &w);
	}
	g_object_unref(msg);
	return w.failed ? -1 : 0;
}
