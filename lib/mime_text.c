/*
 * mime_text.c - transfer decoding and charset conversion for normalize.
 *
 *   mime_text_init    pin the gconv modules of common charsets
 *   mime_decode_part  undo Content-Transfer-Encoding, once per part
 *   mime_to_utf8      declared charset -> UTF-8, bad bytes -> U+FFFD
 *   mime_text_ok      does an attachment look like text
 *   mime_utf8_cut     cut UTF-8 text at a character boundary
 *   mime_ascii_prefix how many leading bytes are ASCII without NUL
 *
 * The content is read once from GMime's substream of the source and
 * decoded with GMime's incremental decoders (GMimeEncoding), so that the
 * decoder state at the end tells us whether base64 was cut short, which
 * g_mime_data_wrapper_write_to_stream() would hide.
 *
 * Error policy: nothing here fails on bad input; deviations are reported
 * as flag bits for the caller to turn into record warnings.  Allocation
 * failure is fatal (log_fatal), as everywhere in lib/.
 *
 * SECURITY: the content is hostile mail.  Sizes come from the content
 * stream, which is bounded by limits->message_bytes (normalize parses no
 * more than that); every loop advances through its input.
 */
#include <errno.h>
#include <iconv.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "mime_text.h"
#include "record.h"

#define READ_CHUNK	65536

static void *
xrealloc(void *p, size_t n)
{
	void	*q = realloc(p, n ? n : 1);

	if (q == NULL)
		log_fatal("realloc %zu", n);
	return q;
}

/*
 * Charsets seen in real mail (and in IMS traffic from stations world
 * wide); the descriptors are held, never used, so that their modules
 * stay loaded.  A name iconv does not know is skipped.
 */
static const char *const pinned_names[] = {
	"ISO-8859-1", "ISO-8859-2", "ISO-8859-5", "ISO-8859-7", "ISO-8859-9",
	"ISO-8859-15", "WINDOWS-1250", "WINDOWS-1251", "WINDOWS-1252",
	"WINDOWS-1256", "KOI8-R", "KOI8-U", "ISO-2022-JP", "SHIFT_JIS",
	"EUC-JP", "EUC-KR", "GB2312", "GBK", "GB18030", "BIG5", "UTF-7",
	"UTF-16", "CP866", "TIS-620",
};
static iconv_t pinned[sizeof(pinned_names) / sizeof(pinned_names[0])];

void
mime_text_init(void)
{
	size_t	 i;

	for (i = 0; i < sizeof(pinned_names) / sizeof(pinned_names[0]); i++)
		pinned[i] = iconv_open("UTF-8", pinned_names[i]);
}

/*
 * The bytes of content stream s.  GMime's parser, reading a memory
 * stream, hands each part a memory substream sharing the message's
 * buffer, so the bytes are borrowed where they lie (*owned = NULL);
 * any other stream is read into a malloc buffer (*owned).
 */
static int
stream_bytes(GMimeStream *s, const char **data, size_t *len, char **owned)
{
	GByteArray *ba;
	gint64	 start, end;
	size_t	 cap, got = 0;
	ssize_t	 n;
	char	*b;

	*owned = NULL;
	if (GMIME_IS_STREAM_MEM(s) &&
	    (ba = g_mime_stream_mem_get_byte_array(
	    GMIME_STREAM_MEM(s))) != NULL) {
		start = s->bound_start;
		end = s->bound_end;
		if (end < 0 || end > (gint64)ba->len)
			end = (gint64)ba->len;
		if (start >= 0 && start <= end) {
			*data = (const char *)ba->data + start;
			*len = (size_t)(end - start);
			return 0;
		}
	}
	g_mime_stream_reset(s);
	cap = READ_CHUNK;
	b = xrealloc(NULL, cap);
	for (;;) {
		if (got == cap) {
			cap *= 2;
			b = xrealloc(b, cap);
		}
		n = g_mime_stream_read(s, b + got, cap - got);
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	*data = *owned = b;
	*len = got;
	return n < 0 ? -1 : 0;
}

/* Offset just past the "begin MODE NAME" line of uuencoded data, or -1. */
static long
uu_begin(const char *p, size_t len)
{
	size_t	 i = 0;
	const char *nl;

	while (i < len) {
		if (len - i >= 6 && memcmp(p + i, "begin ", 6) == 0) {
			nl = memchr(p + i, '\n', len - i);
			return nl ? (long)(nl - p) + 1 : (long)len;
		}
		nl = memchr(p + i, '\n', len - i);
		if (nl == NULL)
			break;
		i = (size_t)(nl - p) + 1;
	}
	return -1;
}

/* 1 if the last non-blank character of base64 text p is '='. */
static int
b64_padded(const char *p, size_t len)
{
	while (len > 0 && (p[len - 1] == '\n' || p[len - 1] == '\r' ||
	    p[len - 1] == ' ' || p[len - 1] == '\t'))
		len--;
	return len > 0 && p[len - 1] == '=';
}

int
mime_decode_part(GMimePart *part, struct mime_buf *out, size_t *encoded_size,
    int *flags)
{
	GMimeDataWrapper *w;
	GMimeStream *s;
	GMimeContentEncoding enc;
	GMimeEncoding st;
	const char *raw;
	char	*raw_owned;
	size_t	 off = 0, n, rlen;
	long	 b;
	int	 rc;

	*flags = 0;
	*encoded_size = 0;
	out->data = "";
	out->len = 0;
	out->owned = NULL;
	w = g_mime_part_get_content(part);
	if (w == NULL || (s = g_mime_data_wrapper_get_stream(w)) == NULL) {
		*flags |= MIME_DEC_NO_CONTENT;
		return 0;
	}
	rc = stream_bytes(s, &raw, &rlen, &raw_owned);
	*encoded_size = rlen;
	enc = g_mime_data_wrapper_get_encoding(w);
	switch (enc) {
	case GMIME_CONTENT_ENCODING_BASE64:
	case GMIME_CONTENT_ENCODING_QUOTEDPRINTABLE:
	case GMIME_CONTENT_ENCODING_UUENCODE:
		break;
	default:
		/* identity encodings: the bytes are the content */
		out->data = raw;
		out->len = rlen;
		out->owned = raw_owned;
		return rc;
	}
	g_mime_encoding_init_decode(&st, enc);
	if (enc == GMIME_CONTENT_ENCODING_UUENCODE) {
		if ((b = uu_begin(raw, rlen)) < 0) {
			*flags |= MIME_DEC_NO_BEGIN;
			off = rlen;
		} else {
			off = (size_t)b;
			st.state |= GMIME_UUDECODE_STATE_BEGIN;
		}
	}
	n = g_mime_encoding_outlen(&st, rlen - off);
	out->owned = xrealloc(NULL, n + 1);
	out->len = g_mime_encoding_flush(&st, raw + off, rlen - off,
	    out->owned);
	if (out->len > n)
		log_panic("mime_decode_part: decoder overran %zu > %zu",
		    out->len, n);
	out->data = out->owned;
	/*
	 * GMime's decoder leaves the count of undecoded base64 characters
	 * in the low byte of state; '=' padding is not counted.  One left
	 * over is never valid; two or three are valid only when padded.
	 */
	if (enc == GMIME_CONTENT_ENCODING_BASE64 && (st.state & 0xff) != 0 &&
	    ((st.state & 0xff) == 1 || !b64_padded(raw, rlen)))
		*flags |= MIME_DEC_TRUNCATED;
	free(raw_owned);
	return rc;
}

/*
 * Length of the prefix of p that is ASCII without NUL, 8 bytes at a time
 * (record.c's utf8_valid_ok goes byte by byte, and IMS text is ASCII:
 * it was 37% of normalize on a 600 KB waveform message).
 */
size_t
mime_ascii_prefix(const char *p, size_t len)
{
	const uint64_t hi = 0x8080808080808080ull, lo = 0x0101010101010101ull;
	uint64_t w;
	size_t	 i = 0;

	for (; i + 8 <= len; i += 8) {
		memcpy(&w, p + i, 8);
		/* a byte >= 0x80, or a zero byte */
		if ((w & hi) != 0 || ((w - lo) & ~w & hi) != 0)
			break;
	}
	while (i < len && (unsigned char)p[i] < 0x80 && p[i] != '\0')
		i++;
	return i;
}

/* utf8_valid_ok() with an ASCII fast path. */
static int
utf8_ok(const char *p, size_t len)
{
	size_t	 a = mime_ascii_prefix(p, len);

	return a == len || utf8_valid_ok(p + a, len - a);
}

static int
is_utf8_name(const char *cs)
{
	return cs == NULL || *cs == '\0' ||
	    g_ascii_strcasecmp(cs, "utf-8") == 0 ||
	    g_ascii_strcasecmp(cs, "utf8") == 0 ||
	    g_ascii_strcasecmp(cs, "us-ascii") == 0 ||
	    g_ascii_strcasecmp(cs, "ascii") == 0;
}

/* Repair s into valid UTF-8 (U+FFFD for bad bytes, NUL dropped). */
static char *
repair_utf8(const char *s, size_t len, size_t *outlen, int *flags)
{
	const char *z;
	size_t	 i, k;
	char	*r;

	if (memchr(s, '\0', len) != NULL)
		*flags |= MIME_CS_NUL;
	/* a dropped NUL is not a replacement: check between the NULs */
	for (i = 0; i < len; i = k + 1) {
		z = memchr(s + i, '\0', len - i);
		k = z != NULL ? (size_t)(z - s) : len;
		if (!utf8_valid_ok(s + i, k - i)) {
			*flags |= MIME_CS_REPLACED;
			break;
		}
	}
	r = rec_utf8ndup(s, len, NULL);
	*outlen = strlen(r);
	return r;
}

char *
mime_to_utf8(const char *charset, const char *in, size_t len, size_t *outlen,
    int *flags)
{
	iconv_t	 cd;
	char	*out, *ip, *op, *fixed;
	size_t	 cap, il, ol, used;
	int	 err;

	*flags = 0;
	*outlen = len;
	if (is_utf8_name(charset)) {
		if (utf8_ok(in, len))
			return NULL;
		return repair_utf8(in, len, outlen, flags);
	}
	cd = g_mime_iconv_open("UTF-8", charset);
	if (cd == (iconv_t)-1) {
		*flags |= MIME_CS_UNKNOWN;
		if (utf8_ok(in, len))
			return NULL;
		return repair_utf8(in, len, outlen, flags);
	}
	cap = len * 2 + 16;
	out = xrealloc(NULL, cap);
	ip = (char *)(uintptr_t)in;	/* iconv(3) does not write the input */
	il = len;
	op = out;
	ol = cap - 1;
	while (il > 0) {
		if (iconv(cd, &ip, &il, &op, &ol) != (size_t)-1)
			break;
		err = errno;
		if (err == E2BIG) {
			used = (size_t)(op - out);
			cap = cap * 2;
			out = xrealloc(out, cap);
			op = out + used;
			ol = cap - used - 1;
			continue;
		}
		/* EILSEQ (bad byte) or EINVAL (cut sequence at the end) */
		if (ol < 4) {
			used = (size_t)(op - out);
			cap = cap * 2;
			out = xrealloc(out, cap);
			op = out + used;
			ol = cap - used - 1;
		}
		memcpy(op, "\xef\xbf\xbd", 3);
		op += 3;
		ol -= 3;
		ip++;
		il--;
		*flags |= MIME_CS_REPLACED;
		if (err != EILSEQ && err != EINVAL)
			break;
	}
	/* flush any shift state (stateful encodings such as ISO-2022-JP) */
	if (ol < 16) {
		used = (size_t)(op - out);
		cap += 16;
		out = xrealloc(out, cap);
		op = out + used;
		ol = cap - used - 1;
	}
	iconv(cd, NULL, NULL, &op, &ol);
	g_mime_iconv_close(cd);
	*op = '\0';
	*outlen = (size_t)(op - out);
	if (!utf8_ok(out, *outlen)) {
		/* NUL bytes came through, or a broken converter */
		int	 f2 = 0;

		fixed = repair_utf8(out, *outlen, outlen, &f2);
		*flags |= f2;
		free(out);
		return fixed;
	}
	return out;
}

int
mime_text_ok(const char *p, size_t len)
{
	const unsigned char *u = (const unsigned char *)p;
	size_t	 i, n = len < 8192 ? len : 8192, bad = 0;

	if (n == 0)
		return 0;
	for (i = 0; i < n; i++) {
		if (u[i] == 0)
			return 0;
		if (u[i] < 0x20 && u[i] != '\t' && u[i] != '\n' &&
		    u[i] != '\r' && u[i] != '\f')
			bad++;
	}
	if (bad * 20 > n)
		return 0;
	/* 8-bit bytes are fine if they are UTF-8 or a few latin1 letters */
	return 1;
}

size_t
mime_utf8_cut(const char *s, size_t len, size_t max)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t	 i;

	if (len <= max)
		return len;
	i = max;
	/* back up over continuation bytes to the start of a character */
	while (i > 0 && (u[i] & 0xc0) == 0x80)
		i--;
	return i;
}
