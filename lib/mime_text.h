/*
 * mime_text.h - transfer decoding and charset conversion for normalize.
 *
 *   mime_text_init    once per process, after g_mime_init()
 *   mime_decode_part  read a GMimePart's content once and undo its
 *                     Content-Transfer-Encoding into a malloc buffer
 *   mime_to_utf8      convert bytes in a declared charset to UTF-8,
 *                     replacing what cannot be converted with U+FFFD
 *   mime_text_ok      1 if bytes look like text (for .msg/.gse attachments)
 *
 * OWNERSHIP: buffers handed out are malloc(3)ed and freed by the caller
 * with free(3); struct mime_buf may instead borrow the message's bytes
 * (see there), so that 7bit/8bit content is never copied.
 * mime_to_utf8 returns NULL (and allocates nothing) when the input is
 * already valid UTF-8 without NUL: the caller then uses the input as it
 * is, which saves a copy in the common case.
 *
 * THREADS: no global state; GMime's iconv cache (g_mime_iconv_open) is
 * thread-safe once g_mime_init() has run.
 *
 * SECURITY: input is hostile; all work is linear in its size and every
 * allocation is bounded by a small multiple of it (at most 3x for
 * U+FFFD replacement, 4x+16 for charset conversion).
 */
#ifndef VMI_MIME_TEXT_H
#define VMI_MIME_TEXT_H

#include <stddef.h>

#include <gmime/gmime.h>

#define MIME_DEC_TRUNCATED	0x01	/* base64 ended inside a 4-char group */
#define MIME_DEC_NO_BEGIN	0x02	/* x-uuencode without a "begin" line */
#define MIME_DEC_NO_CONTENT	0x04	/* the part has no content at all */

#define MIME_CS_REPLACED	0x01	/* bytes were replaced with U+FFFD */
#define MIME_CS_UNKNOWN		0x02	/* charset unknown to iconv: UTF-8 */
#define MIME_CS_NUL		0x04	/* NUL bytes were dropped */

/*
 * Decoded content.  data/len are the bytes; when the content needed no
 * decoding they point into the message GMime parsed (valid until the
 * message is unreffed) and owned is NULL, otherwise owned == data is a
 * malloc'd buffer for the caller to free.  Not NUL-terminated.
 */
struct mime_buf {
	const char *data;
	size_t	 len;
	char	*owned;
};

/*
 * Keep the iconv (gconv) modules of common mail charsets loaded for the
 * life of the process.  glibc unloads a gconv module when its last
 * descriptor closes, so without this every message in, say, ISO-8859-1
 * pays a dlopen/dlclose in iconv_open (measured: ~10% of normalize).
 * Not thread-safe: call once before the workers start.
 */
void	 mime_text_init(void);

/*
 * Decode the content of part into out (free(out->owned) when done).
 * *encoded_size is the size of the body as transmitted; *flags gets
 * MIME_DEC_* bits.  Returns 0, or -1 when the content stream could not
 * be read (out is then empty but valid).
 */
int	 mime_decode_part(GMimePart *part, struct mime_buf *out,
	    size_t *encoded_size, int *flags);

/*
 * Convert len bytes of in, declared in charset (NULL or "" = none), to
 * UTF-8.  Returns NULL when in is valid UTF-8 already and may be used as
 * is; otherwise a malloc'd NUL-terminated buffer with its length in
 * *outlen.  *flags gets MIME_CS_* bits.
 */
char	*mime_to_utf8(const char *charset, const char *in, size_t len,
	    size_t *outlen, int *flags);

/* 1 if the first 8 KiB of p look like text (no NUL, >= 95% printable). */
int	 mime_text_ok(const char *p, size_t len);

/* Length of the prefix of p that is ASCII without NUL (8 bytes a step). */
size_t	 mime_ascii_prefix(const char *p, size_t len);

/* Length of the longest prefix of the UTF-8 text s not longer than max
 * that does not cut a multibyte character. */
size_t	 mime_utf8_cut(const char *s, size_t len, size_t max);

#endif
