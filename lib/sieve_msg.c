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
#include <ctype.h>
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
	h->next = -1;
	h->dec = NULL;
	h->declen = 0;
	h->decbuf = NULL;
	h->have_dec = 0;
	h->have_addrs = 0;
	h->addrs = NULL;
	h->naddrs = 0;
	h->addrbuf = NULL;
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
	memset(m->bucket, 0xff, sizeof(m->bucket));
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
			if (p >= hend)
				break;	/* the header block is over its limit */
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
		add_hdr(m, name, nlen, val, (p < end ? p : end) - val);
	/* hash chains, built backwards so that each keeps message order */
	{
		size_t	 i;

		for (i = m->nh; i-- > 0;) {
			int	*b = &m->bucket[m->h[i].hash & (SV_HBUCKETS - 1)];

			m->h[i].next = *b;
			*b = (int)i;
		}
	}
}

void
sieve_msg_free(struct sv_msg *m)
{
	size_t	 i;

	for (i = 0; i < m->nh; i++) {
		free(m->h[i].decbuf);
		free(m->h[i].addrs);
		free(m->h[i].addrbuf);
	}
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

/* ---- RFC 2047 ---- */

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = (char)(c | 0x20);
	return (c >= 'a' && c <= 'f') ? c - 'a' + 10 : -1;
}

static int
b64val(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	return c == '+' ? 62 : c == '/' ? 63 : -1;
}

/* Decode the payload of one encoded word into out (room for len bytes). */
static size_t
word_decode(int enc, const char *t, size_t len, char *out)
{
	size_t	 i, o = 0;
	unsigned acc = 0;
	int	 bits = 0;

	for (i = 0; i < len; i++) {
		if (enc == 'Q') {
			if (t[i] == '_')
				out[o++] = ' ';
			else if (t[i] == '=' && i + 2 < len && hexval(t[i + 1]) >= 0 &&
			    hexval(t[i + 2]) >= 0) {
				out[o++] = (char)(hexval(t[i + 1]) * 16 + hexval(t[i + 2]));
				i += 2;
			} else
				out[o++] = t[i];
		} else {
			int	 v = b64val(t[i]);

			if (v < 0)
				continue;	/* padding and junk */
			acc = (acc << 6) | (unsigned)v;
			bits += 6;
			if (bits >= 8) {
				bits -= 8;
				out[o++] = (char)((acc >> bits) & 0xff);
			}
		}
	}
	return o;
}

/*
 * Decode RFC 2047 encoded words to UTF-8.  Each word is decoded on its
 * own (GMime 3.2 joins adjacent base64 words before decoding, which loses
 * text after a padded word); white space between two encoded words goes.
 * Unknown charsets keep the decoded bytes.  Returns a malloc'd string.
 */
static char *
decode_2047(const char *in, size_t len, size_t *outlen)
{
	char	*out, *tmp;
	size_t	 i = 0, o = 0, after_word = (size_t)-1;

	/* decoded text is never longer than its encoding, UTF-8 at most 3x */
	if ((out = malloc(3 * len + 1)) == NULL)
		return NULL;
	if ((tmp = malloc(len + 1)) == NULL) {
		free(out);
		return NULL;
	}
	while (i < len) {
		if (in[i] == '=' && i + 1 < len && in[i + 1] == '?') {
			const char *cs = in + i + 2, *q1, *q2, *end;
			size_t	 rest = len - (i + 2), cslen, n;
			int	 enc;

			q1 = memchr(cs, '?', rest);
			if (q1 == NULL || q1 + 2 >= in + len || q1[2] != '?')
				goto literal;
			enc = toupper((unsigned char)q1[1]);
			if (enc != 'B' && enc != 'Q')
				goto literal;
			q2 = q1 + 3;
			end = memmem(q2, in + len - q2, "?=", 2);
			if (end == NULL || memchr(q2, ' ', end - q2) != NULL)
				goto literal;
			cslen = q1 - cs;
			if (memchr(cs, '*', cslen) != NULL)	/* RFC 2231 language */
				cslen = (const char *)memchr(cs, '*', cslen) - cs;
			n = word_decode(enc, q2, end - q2, tmp);
			if (after_word != (size_t)-1)
				o = after_word;	/* drop blanks between words */
			{
				char	 csbuf[64];
				gchar	*u = NULL;
				gsize	 ulen = 0;

				if (cslen > 0 && cslen < sizeof(csbuf)) {
					memcpy(csbuf, cs, cslen);
					csbuf[cslen] = '\0';
					u = g_convert(tmp, n, "UTF-8", csbuf, NULL, &ulen,
					    NULL);
				}
				if (u != NULL && ulen <= 3 * (size_t)(end + 2 - (in + i))) {
					memcpy(out + o, u, ulen);
					o += ulen;
				} else {
					memcpy(out + o, tmp, n);
					o += n;
				}
				g_free(u);
			}
			i = end + 2 - in;
			after_word = o;
			continue;
		}
literal:
		if (in[i] != ' ' && in[i] != '\t')
			after_word = (size_t)-1;
		out[o++] = in[i++];
	}
	out[o] = '\0';
	free(tmp);
	*outlen = o;
	return out;
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
	/* Like Dovecot: blanks after the colon go, but when the first line is
	 * empty the continuation keeps its leading white space. */
	while (v < e && (*v == ' ' || *v == '\t'))
		v++;
	while (e > v && wsp(e[-1]))
		e--;
	if (v < e && (memchr(v, '\n', e - v) != NULL ||
	    memchr(v, '\r', e - v) != NULL))
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
		char	*d = decode_2047(b, k, &k);

		if (d != NULL) {
			free(b);
			b = d;
		} else
			k = strlen(b);
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

static int
atext_ok(unsigned char c)
{
	return isalnum(c) || c >= 0x80 || strchr("!#$%&'*+-/=?^_`{|}~.", c) != NULL;
}

/* An RFC 5322 addr-spec: local@domain, local a dot-atom or quoted string. */
static int
addr_ok(const char *a, size_t len)
{
	size_t	 i, at = len;
	int	 quote = 0;

	for (i = 0; i < len; i++) {
		if (quote) {
			if (a[i] == '\\' && i + 1 < len)
				i++;
			else if (a[i] == '"')
				quote = 0;
			continue;
		}
		if (a[i] == '"' && i == 0)
			quote = 1;
		else if (a[i] == '@')
			at = i;
		else if (at == len && !atext_ok((unsigned char)a[i]))
			return 0;
	}
	if (quote || at == 0 || at >= len - 1)
		return 0;
	if (a[at + 1] == '[')
		return a[len - 1] == ']';
	for (i = at + 1; i < len; i++)
		if (!(isalnum((unsigned char)a[i]) || a[i] == '.' || a[i] == '-' ||
		    a[i] == '_' || (unsigned char)a[i] >= 0x80))
			return 0;
	return 1;
}

/*
 * RFC 5322 address-list: display names, comments and group labels are
 * dropped; an angle-addr wins over the surrounding text; a source route
 * ("@a,@b:") inside the angle brackets is dropped.  Like Pigeonhole, the
 * list ends at the first mailbox that is not a valid addr-spec (a bare
 * "addr junk" still yields addr); *n == 0 then means the value is no
 * address list, and the caller matches the whole value for :all only.
 */
int
sieve_addr_parse(const char *v, size_t vlen, struct sv_val **out, size_t *n,
    size_t max, char **bufp)
{
	char	*buf;
	size_t	 i, blen = 0, mstart = 0, astart = 0, alen = 0;
	int	 quote = 0, depth = 0, angle = 0, have_angle = 0, closed = 0;

	if ((buf = malloc(vlen + 1)) == NULL)
		return -1;
	*bufp = buf;
	for (i = 0; i <= vlen; i++) {
		char	 c = i < vlen ? v[i] : ',';

		if (i < vlen && (c == '\r' || c == '\n'))
			continue;
		if (quote && i < vlen) {
			buf[blen++] = c;
			if (c == '\\' && i + 1 < vlen)
				buf[blen++] = v[++i];
			else if (c == '"')
				quote = 0;
			continue;
		}
		if (depth > 0 && i < vlen) {
			if (c == '\\' && i + 1 < vlen)
				i++;
			else if (c == '(')
				depth++;
			else if (c == ')')
				depth--;
			continue;
		}
		if (c == '(' ) {
			depth = 1;
			buf[blen++] = ' ';
			continue;
		}
		if (c == '"') {
			quote = 1;
			buf[blen++] = c;
			continue;
		}
		if (angle) {
			if (c == '>' || i == vlen) {
				angle = 0;
				alen = blen - astart;
				have_angle = 1;
				closed = (c == '>');
			} else {
				buf[blen++] = c;
				continue;
			}
			if (i < vlen)
				continue;
		}
		if (c == '<' && !have_angle) {
			/* the display name is a phrase: no specials outside quotes */
			size_t	 k;
			int	 q = 0;

			for (k = mstart; k < blen; k++) {
				if (q && buf[k] == '\\')
					k++;
				else if (buf[k] == '"')
					q = !q;
				else if (!q && strchr("@,;:<>[]\\", buf[k]) != NULL)
					return 0;
			}
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
			size_t	 l, k;

			if (have_angle) {
				a = buf + astart;
				l = alen;
				if (l > 0 && *a == '@') {	/* source route */
					const char *col = memchr(a, ':', l);

					if (col != NULL) {
						l -= col + 1 - a;
						a = col + 1;
					}
				}
				while (l > 0 && wsp(*a))
					a++, l--;
				while (l > 0 && wsp(a[l - 1]))
					l--;
				if (!closed || !addr_ok(a, l))
					return 0;
			} else {
				a = buf + mstart;
				l = blen - mstart;
				while (l > 0 && wsp(*a))
					a++, l--;
				while (l > 0 && wsp(a[l - 1]))
					l--;
				if (l == 0) {		/* empty list element */
					mstart = blen;
					continue;
				}
				for (k = 0; k < l && !wsp(a[k]); k++)
					if (a[k] == '"')
						break;
				if (k < l && a[k] != '"') {
					/* "addr junk": addr, then the list ends */
					if (addr_ok(a, k))
						push_addr(out, n, max, a, k);
					return 0;
				}
				if (!addr_ok(a, l))
					return 0;
			}
			if (push_addr(out, n, max, a, l) == -1)
				return -1;
			mstart = blen;
			have_angle = 0;
			continue;
		}
		if (!have_angle)
			buf[blen++] = c;
		else if (!wsp(c))
			return 0;	/* text after the angle-addr */
	}
	return 0;
}

int
sieve_msg_addrs(struct sv_msg *m, size_t i, const struct sv_val **a, size_t *n)
{
	struct sv_hdr *h = &m->h[i];

	if (!h->have_addrs) {
		h->have_addrs = 1;
		if (sieve_addr_parse(h->val, h->vlen, &h->addrs, &h->naddrs, 1000,
		    &h->addrbuf) == -1 && h->naddrs == 0)
			return -1;
	}
	*a = h->addrs;
	*n = h->naddrs;
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
		if (*len >= 2 && a[0] == '"' && a[*len - 1] == '"') {
			(*p)++;
			*len -= 2;
		}
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

/* The RFC 2045 encodings (GMime also accepts variants such as "7-bit"). */
static int
cte_known(const char *v)
{
	static const char *known[] = { "7bit", "8bit", "binary",
	    "quoted-printable", "base64" };
	size_t	 i, n;

	while (*v == ' ' || *v == '\t')
		v++;
	n = strcspn(v, " \t;(");
	for (i = 0; i < sizeof(known) / sizeof(known[0]); i++)
		if (strlen(known[i]) == n && g_ascii_strncasecmp(v, known[i], n) == 0)
			return 1;
	return 0;
}

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
	/* RFC 2045 6.4: an unknown transfer encoding makes it opaque data */
	{
		const char *cte = g_mime_object_get_header(obj,
		    "Content-Transfer-Encoding");

		if (cte != NULL && !cte_known(cte)) {
			t = "application";
			st = "octet-stream";
		}
	}
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

/* Pre-order over the MIME tree, into message/rfc822 parts too. */
static void
walk_obj(struct parts_walk *w, GMimeObject *obj, size_t depth)
{
	if (obj == NULL || depth > LIMIT_MIME_DEPTH ||
	    w->m->nparts >= LIMIT_PART_COUNT)
		return;
	if (GMIME_IS_MULTIPART(obj)) {
		int	 i, n = g_mime_multipart_get_count(GMIME_MULTIPART(obj));

		for (i = 0; i < n; i++)
			walk_obj(w, g_mime_multipart_get_part(GMIME_MULTIPART(obj),
			    i), depth + 1);
	} else if (GMIME_IS_MESSAGE_PART(obj)) {
		GMimeMessage *sub = g_mime_message_part_get_message(
		    GMIME_MESSAGE_PART(obj));

		if (sub != NULL)
			walk_obj(w, sub->mime_part, depth + 1);
	} else
		add_part(w, obj);
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
	walk_obj(&w, msg->mime_part, 0);
	g_object_unref(msg);
	return w.failed ? -1 : 0;
}
