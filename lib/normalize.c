/*
 * normalize.c - raw message bytes in, Vmingest__Record out (GMime 3).
 *
 *   normalize_init      g_mime_init() and mime_text_init(), once (pthread_once)
 *   normalize_message   parse one message into a record (see normalize.h)
 *
 * Steps: sha256 (OpenSSL) and size of the raw bytes; a cheap pre-scan of
 * the top header block (count, size, lines without a colon, 8-bit bytes)
 * that enforces header_count and header_bytes; mime_guard's one pass
 * over all lines (see GUARDS); GMime parses the (at most message_bytes)
 * bytes from memory without copying them; then the envelope fields,
 * every header with its raw value, and the MIME tree.
 *
 * PART PATHS follow IMAP (RFC 3501 section 6.4.5).  A message whose body
 * is not multipart has one entity, path "1".  When the body is
 * multipart, its children are "1", "2", ...; the multipart container
 * itself is recorded too, with path "" and depth 0.  A nested multipart
 * has a number like any part ("2", its children "2.1", "2.2").  A
 * message/rfc822 part "N" has the encapsulated message's body below it:
 * a non-multipart body is "N.1"; a multipart body is recorded with path
 * "N.TEXT" (IMAP's name for that body) and its children are "N.1",
 * "N.2", ...  depth counts entities from the top (0), so the body of a
 * message/rfc822 part at depth d has depth d + 1.  encoded_size,
 * decoded_size and sha256 are set for leaves only (and for a
 * message/rfc822 part sent base64 or QP, which is decoded).
 *
 * TEXT: each text/ANY leaf (a non-MIME body is one) is transfer-decoded
 * once, converted in full to UTF-8 (U+FFFD for bytes that do not
 * convert, with a warning), handed whole to ims_parse_part(), and kept
 * in Part.text up to limits->text_bytes (cut at a character boundary,
 * text_truncated set).  Attachments named *.msg, *.gse, *.txt, *.ims
 * that are not text/ANY go to ims_parse_part() too when they look like
 * text; their Part.text stays empty.  A multipart in which GMime found
 * no parts (missing or unmatched boundary) keeps its whole body as its
 * own text, which also goes to ims_parse_part().
 *
 * LIMITS: message_bytes (only that many bytes are parsed; sha256 and
 * raw_size cover all), header_bytes and header_count (headers past the
 * limit are not recorded), mime_depth (nothing below it is walked),
 * part_count (no more parts recorded), text_bytes (text cut).  Breaking
 * any but text_bytes quarantines the record with a reason naming the
 * limit; the first reason is kept and each further breach is a warning.
 *
 * GUARDS against GMime 3.2 on hostile input (each found by measuring,
 * each quarantines): address fields with more than 1000 ',' or ':' are
 * renamed before GMime sees them (its parser recurses per ':' and
 * overflowed the stack on a 100 KB To:); GMime sees only the bytes
 * before the line that makes more than 4 x part_count + 64 lines start
 * with "--" (it builds every part it finds); and after header_count +
 * 16 x part_count header fields in all entities its input is ended (it
 * keeps every field).  A message/rfc822 part sent base64 or QP (which
 * GMime leaves a leaf) is decoded and parsed as a message, within
 * mime_depth and a message_bytes budget for all such re-parses.
 *
 * Error policy: nothing in a message makes this fail; a deviation is a
 * warning on the record, a breach a quarantine.  Input without header
 * fields ("no header fields", "empty message") is quarantined and its
 * bytes recorded as one part "1" (text/plain when they look like text,
 * so that the IMS parser still sees a bare IMS file).  Allocation
 * failure is fatal (log_fatal).  So normalize_message() returns 0.
 *
 * THREADS: g_mime_init() runs once in normalize_init().  Each call makes
 * its own parser, parser options (holding its warning callback) and
 * objects, and shares none; GMime's charset and iconv caches are
 * thread-safe after init.  The default parser options are never touched.
 *
 * SECURITY: the input is hostile mail from anywhere.  It is never
 * written to; GMime reads it through a non-owning memory stream (or a
 * private copy when mime_guard renamed fields).  Every
 * loop is bounded by the input size or a struct limits value, recursion
 * by mime_depth, and warnings by limits->warnings (record_warn).  Bytes
 * from the message are only put into warnings escaped (log_escape).
 */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <glib.h>
#include <gmime/gmime.h>
#include <openssl/evp.h>

#include "ims.h"
#include "log.h"
#include "mime_guard.h"
#include "mime_text.h"
#include "normalize.h"
#include "normalize_int.h"
#include "record.h"

#define Q_DISP	VMINGEST__DISPOSITION__QUARANTINED

static pthread_once_t init_once = PTHREAD_ONCE_INIT;

static void sha_init(void);

static void
init_gmime(void)
{
	g_mime_init();
	mime_text_init();
	sha_init();
}

void
normalize_init(void)
{
	pthread_once(&init_once, init_gmime);
}

void *
norm_xmalloc(size_t n)
{
	void	*p = malloc(n ? n : 1);

	if (p == NULL)
		log_fatal("malloc %zu", n);
	return p;
}

char *
norm_strndup(const char *s, size_t len)
{
	char	*d;

	if (mime_ascii_prefix(s, len) != len)
		return rec_strndup(s, len);
	d = norm_xmalloc(len + 1);
	memcpy(d, s, len);
	d[len] = '\0';
	return d;
}

char *
norm_strdup(const char *s)
{
	return norm_strndup(s != NULL ? s : "", s != NULL ? strlen(s) : 0);
}

void
norm_warn(struct norm *n, const char *fmt, ...)
{
	char	 buf[400];
	va_list	 ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);	/* truncation is harmless */
	va_end(ap);
	record_warn(n->rec, n->l->warnings, "%s", buf);
}

/*
 * Quarantine with reason; a record already quarantined keeps its first
 * reason and gets this one as a warning.
 */
void
norm_quarantine(struct norm *n, const char *fmt, ...)
{
	char	 buf[400];
	va_list	 ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n->rec->disposition != Q_DISP) {
		n->rec->disposition = Q_DISP;
		if (n->rec->reason != NULL &&
		    n->rec->reason != protobuf_c_empty_string)
			free(n->rec->reason);
		n->rec->reason = norm_strdup(buf);
	}
	record_warn(n->rec, n->l->warnings, "%s", buf);
}

static const char *
gmime_warning_name(GMimeParserWarning w)
{
	switch (w) {
	case GMIME_WARN_DUPLICATED_HEADER: return "duplicated header";
	case GMIME_WARN_DUPLICATED_PARAMETER: return "duplicated parameter";
	case GMIME_WARN_UNENCODED_8BIT_HEADER: return "8-bit bytes in header";
	case GMIME_WARN_INVALID_CONTENT_TYPE: return "invalid content type";
	case GMIME_WARN_INVALID_RFC2047_HEADER_VALUE:
		return "invalid RFC 2047 header value";
	case GMIME_WARN_MALFORMED_MULTIPART: return "malformed multipart";
	case GMIME_WARN_TRUNCATED_MESSAGE: return "truncated message";
	case GMIME_WARN_MALFORMED_MESSAGE: return "malformed message";
	case GMIME_CRIT_INVALID_HEADER_NAME: return "invalid header name";
	case GMIME_CRIT_CONFLICTING_HEADER: return "conflicting header";
	case GMIME_CRIT_CONFLICTING_PARAMETER: return "conflicting parameter";
	case GMIME_CRIT_MULTIPART_WITHOUT_BOUNDARY:
		return "multipart without boundary";
	case GMIME_WARN_INVALID_PARAMETER: return "invalid parameter";
	case GMIME_WARN_INVALID_ADDRESS_LIST: return "invalid address list";
	case GMIME_CRIT_NESTING_OVERFLOW: return "MIME nesting overflow";
	case GMIME_WARN_PART_WITHOUT_CONTENT: return "part without content";
	case GMIME_CRIT_PART_WITHOUT_HEADERS_OR_CONTENT:
		return "part without headers or content";
	}
	return "unknown parser warning";
}

/*
 * GMime parser warning callback: the first warning of each kind becomes
 * a record warning (a hostile message can raise thousands).
 */
static void
on_gmime_warning(gint64 offset, GMimeParserWarning code, const gchar *item,
    gpointer arg)
{
	struct norm *n = arg;
	char	 esc[100];
	guint32	 bit = (unsigned)code < 32 ? 1u << (unsigned)code : 1u << 31;

	if (code == GMIME_CRIT_NESTING_OVERFLOW)
		norm_quarantine(n, "mime_depth limit exceeded "
		    "(GMime nesting overflow)");
	if (n->gmime_seen & bit)
		return;
	n->gmime_seen |= bit;
	if (item != NULL)
		log_escape(esc, sizeof(esc), item, strnlen(item, 64));
	if (offset >= 0)
		norm_warn(n, "%s at offset %lld%s%s", gmime_warning_name(code),
		    (long long)offset, item ? ": " : "", item ? esc : "");
	else
		norm_warn(n, "%s%s%s", gmime_warning_name(code),
		    item ? ": " : "", item ? esc : "");
}

/*
 * Run mime_guard over buf: rename the address fields GMime cannot parse
 * safely, in buf when it is writable, else in a malloc'd copy returned
 * in *copy; warn and quarantine.  g->hits stays for the caller to free.
 */
static void
guard_buffer(struct norm *n, const char *buf, char *writable, size_t len,
    size_t base, char **copy, struct mime_guard *g)
{
	char	*dst = writable;

	*copy = NULL;
	mime_guard_scan(buf, len, MIME_GUARD_ADDR_SEPARATORS,
	    4 * n->l->part_count + 64, g);
	if (g->nhits == 0)
		return;
	if (dst == NULL) {
		dst = *copy = norm_xmalloc(len);
		memcpy(dst, buf, len);
	}
	mime_guard_neutralize(dst, g->hits, g->nhits);
	norm_quarantine(n, "address field with %zu separators at offset %zu "
	    "(more than %d): not parsed as addresses", g->hits[0].separators,
	    g->hits[0].offset + base, MIME_GUARD_ADDR_SEPARATORS);
	if (g->nhits > 1)
		norm_warn(n, "%zu address fields not parsed as addresses",
		    g->nhits);
}

/*
 * GMime sees only the bytes before the line that made more than
 * 4 x part_count + 64 lines start with "--" (mime_guard.h).
 */
static size_t
guard_parts(struct norm *n, const struct mime_guard *g, size_t len,
    size_t base)
{
	if (g->dash_cut >= len)
		return len;
	norm_quarantine(n, "part_count limit %zu: more than %zu lines "
	    "start with \"--\", parsing stopped at offset %zu",
	    n->l->part_count, 4 * n->l->part_count + 64, g->dash_cut + base);
	return g->dash_cut;
}

/*
 * GMime header callback (regex "^": every field of every entity).
 * GMime keeps each field it parses (~650 bytes apiece), and a 50 MB
 * message of "a:b" lines after a boundary would cost it gigabytes, so
 * past a budget of header_count + 16 x part_count fields the parser's
 * input is ended where it stands: GMime finishes what it buffered and
 * the record is quarantined.
 */
static void
on_header(GMimeParser *ps, const char *name, const char *value,
    gint64 offset, gpointer arg)
{
	struct norm *n = arg;

	if (++n->hdr_total != n->hdr_budget || n->stream == NULL)
		return;
	norm_quarantine(n, "header_count limit: more than %zu header fields in "
	    "all entities (header_count + 16 x part_count), parsing stopped "
	    "at offset %lld", n->hdr_budget - 1, (long long)offset);
	g_mime_stream_set_bounds(n->stream, n->stream->bound_start,
	    n->stream->position);
}

/*
 * Copy text already known to be valid UTF-8 without NUL (mime_to_utf8
 * made it so; mime_utf8_cut keeps whole characters), skipping the
 * validating copy of rec_strndup: text is the bulk of a record.
 */
static char *
dup_utf8(const char *s, size_t len)
{
	char	*d = norm_xmalloc(len + 1);

	memcpy(d, s, len);
	d[len] = '\0';
	return d;
}

/* A field value from the message, escaped and cut for a warning. */
static const char *
esc_field(char *buf, size_t bufsz, const char *s)
{
	return log_escape(buf, bufsz, s, strnlen(s, 40));
}

static char *
lower_dup(const char *s)
{
	char	*d = norm_strdup(s), *p;

	for (p = d; *p; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	return d;
}

static int
ims_name_ok(const char *fn)
{
	static const char *ext[] = { ".msg", ".gse", ".txt", ".ims" };
	size_t	 len, i;

	if (fn == NULL)
		return 0;
	len = strlen(fn);
	for (i = 0; i < sizeof(ext) / sizeof(ext[0]); i++)
		if (len >= 4 && g_ascii_strcasecmp(fn + len - 4, ext[i]) == 0)
			return 1;
	return 0;
}

/*
 * SHA-256 with OpenSSL: GLib's GChecksum runs at ~290 MB/s here, OpenSSL
 * (SHA-NI/AVX2) at ~1.7 GB/s, and every message is hashed about twice
 * (raw bytes and decoded leaves).  The digest is fetched once and each
 * thread keeps one EVP_MD_CTX (freed at thread exit): EVP_Digest() pays
 * a fetch and a context allocation per call, ~1 us, on ~3 calls per
 * message.
 */
static EVP_MD *sha_md;
static pthread_key_t sha_key;

static void
sha_ctx_free(void *ctx)
{
	EVP_MD_CTX_free(ctx);
}

static void
sha_init(void)
{
	if ((sha_md = EVP_MD_fetch(NULL, "SHA2-256", NULL)) == NULL)
		log_fatalx("OpenSSL: no SHA2-256");
	if (pthread_key_create(&sha_key, sha_ctx_free) != 0)
		log_fatalx("pthread_key_create");
}

static void
set_sha256(ProtobufCBinaryData *b, const void *p, size_t len)
{
	EVP_MD_CTX *ctx = pthread_getspecific(sha_key);
	unsigned int n = 32;

	if (ctx == NULL) {
		if ((ctx = EVP_MD_CTX_new()) == NULL)
			log_fatalx("EVP_MD_CTX_new");
		if (pthread_setspecific(sha_key, ctx) != 0)
			log_fatalx("pthread_setspecific");
	}
	b->data = norm_xmalloc(EVP_MAX_MD_SIZE);
	if (EVP_DigestInit_ex(ctx, sha_md, NULL) != 1 ||
	    EVP_DigestUpdate(ctx, p, len) != 1 ||
	    EVP_DigestFinal_ex(ctx, b->data, &n) != 1 || n != 32)
		log_panic("sha256 failed");
	b->len = n;
}

static void walk(struct norm *, GMimeObject *, const char *path,
    const char *prefix, unsigned depth);

/*
 * The encapsulated message sub of the message/rfc822 part at path (depth
 * depth): its body is "path.1", or "path.TEXT" with children "path.N"
 * when multipart.
 */
static void
walk_message(struct norm *n, GMimeMessage *sub, const char *path,
    unsigned depth)
{
	GMimeObject *root;
	char	*tp;

	if (sub == NULL || (root = g_mime_message_get_mime_part(sub)) == NULL) {
		norm_warn(n, "part %s: message/rfc822 without a message", path);
		return;
	}
	if (depth + 1 > n->l->mime_depth) {
		if (!n->depth_limit_hit++)
			norm_quarantine(n, "mime_depth limit %zu exceeded",
			    n->l->mime_depth);
		return;
	}
	if (GMIME_IS_MULTIPART(root)) {
		tp = g_strdup_printf("%s.TEXT", path);
		walk(n, root, tp, path, depth + 1);
	} else {
		tp = g_strdup_printf("%s.1", path);
		walk(n, root, tp, tp, depth + 1);
	}
	g_free(tp);
}

/*
 * message/rfc822 sent with a base64 or quoted-printable encoding (which
 * RFC 2046 forbids, and GMime therefore leaves a leaf): parse the decoded
 * bytes as the encapsulated message, without copying them.  Bounded by
 * mime_depth (walk_message) and by a byte budget (below).
 */
static void
walk_encoded_message(struct norm *n, Vmingest__Part *p, char *data,
    size_t len, unsigned depth)
{
	struct mime_guard g;
	char	*copy, esc[176];
	GByteArray *arr;
	GMimeStream *st;
	GMimeParser *ps;
	GMimeMessage *sub;

	if (len == 0 || len > G_MAXUINT)
		return;
	p->is_message = 1;
	norm_warn(n, "part %s: message/rfc822 with transfer encoding %s",
	    p->path, esc_field(esc, sizeof(esc), p->transfer_encoding));
	/*
	 * Each level holds its decoded copy while the next is parsed, and
	 * quoted-printable nests without shrinking: all re-parsed levels
	 * together may not exceed message_bytes (memory and time stay
	 * within twice a maximal message).
	 */
	if (len > n->l->message_bytes - n->reparsed) {
		norm_warn(n, "part %s: encoded message not parsed (re-parse "
		    "budget of message_bytes %zu used up)", p->path,
		    n->l->message_bytes);
		return;
	}
	n->reparsed += len;
	guard_buffer(n, data, data, len, 0, &copy, &g);
	free(g.hits);
	len = guard_parts(n, &g, len, 0);
	arr = g_byte_array_new_take((guint8 *)data, len);
	st = g_mime_stream_mem_new_with_byte_array(arr);
	g_mime_stream_mem_set_owner(GMIME_STREAM_MEM(st), FALSE);
	ps = g_mime_parser_new_with_stream(st);
	g_mime_parser_set_format(ps, GMIME_FORMAT_MESSAGE);
	sub = g_mime_parser_construct_message(ps, n->opts);
	walk_message(n, sub, p->path, depth);
	if (sub != NULL)
		g_object_unref(sub);
	g_object_unref(ps);
	g_object_unref(st);
	g_byte_array_free(arr, FALSE);
}

/*
 * A leaf: decode once, hash, and for text convert to UTF-8 in full, pass
 * it to the IMS parser and keep a prefix of it.
 */
static void
walk_leaf(struct norm *n, GMimePart *gp, Vmingest__Part *p, int is_text,
    int is_message, unsigned depth)
{
	struct mime_buf dec;
	const char *cs, *te;
	const char *u;
	char	*conv, esc[176];
	size_t	 esz, ulen, keep;
	int	 dflags, cflags, want_ims;
	GMimeContentEncoding enc;

	/*
	 * GMime has parsed the encoding; the header itself is only needed
	 * to tell an unknown one (kept as sent) from none (RFC 2045: 7bit).
	 */
	if ((enc = g_mime_part_get_content_encoding(gp)) !=
	    GMIME_CONTENT_ENCODING_DEFAULT)
		p->transfer_encoding = norm_strdup(
		    g_mime_content_encoding_to_string(enc));
	else if ((te = g_mime_object_get_header(GMIME_OBJECT(gp),
	    "Content-Transfer-Encoding")) != NULL) {
		while (*te == ' ' || *te == '\t')
			te++;
		p->transfer_encoding = lower_dup(te);
		norm_warn(n, "part %s: unknown transfer encoding \"%s\"",
		    p->path, esc_field(esc, sizeof(esc), p->transfer_encoding));
	} else
		p->transfer_encoding = norm_strdup("7bit");

	if (mime_decode_part(gp, &dec, &esz, &dflags) < 0)
		norm_warn(n, "part %s: content could not be read", p->path);
	p->encoded_size = esz;
	p->decoded_size = dec.len;
	if (dflags & MIME_DEC_TRUNCATED)
		norm_warn(n, "part %s: truncated base64", p->path);
	if (dflags & MIME_DEC_NO_BEGIN)
		norm_warn(n, "part %s: x-uuencode without begin line", p->path);
	set_sha256(&p->sha256, dec.data, dec.len);
	if (is_message && dec.owned != NULL) {
		/* only an encoded message/rfc822 is a GMimePart */
		walk_encoded_message(n, p, dec.owned, dec.len, depth);
		free(dec.owned);
		return;
	}

	want_ims = !is_text && ims_name_ok(p->filename) &&
	    mime_text_ok(dec.data, dec.len);
	if (!is_text && !want_ims) {
		free(dec.owned);
		return;
	}
	cs = g_mime_object_get_content_type_parameter(GMIME_OBJECT(gp),
	    "charset");
	conv = mime_to_utf8(cs, dec.data, dec.len, &ulen, &cflags);
	u = conv != NULL ? conv : dec.data;
	if (cflags & MIME_CS_UNKNOWN)
		norm_warn(n, "part %s: unknown charset \"%s\", read as UTF-8",
		    p->path, esc_field(esc, sizeof(esc), p->charset));
	if (cflags & MIME_CS_REPLACED)
		norm_warn(n, "part %s: invalid %s replaced with U+FFFD",
		    p->path,
		    (cs == NULL || (cflags & MIME_CS_UNKNOWN)) ? "UTF-8" :
		    "bytes for charset");
	if (cflags & MIME_CS_NUL)
		norm_warn(n, "part %s: NUL bytes dropped from text", p->path);

	ims_parse_part(n->l, n->rec, p->path, u, ulen);
	if (is_text) {
		keep = mime_utf8_cut(u, ulen, n->l->text_bytes);
		if (keep < ulen) {
			p->text_truncated = 1;
			norm_warn(n, "part %s: text cut at text_bytes "
			    "limit %zu (%zu bytes)", p->path, n->l->text_bytes,
			    ulen);
		}
		p->text = dup_utf8(u, keep);
	}
	free(conv);
	free(dec.owned);
}

/*
 * A multipart in which GMime found no parts (boundary missing or never
 * seen) has all its body in the prologue: keep that as the container's
 * text and show it to the IMS parser rather than lose it.
 */
static void
multipart_prologue(struct norm *n, GMimeMultipart *mp, Vmingest__Part *p)
{
	const char *pro = g_mime_multipart_get_prologue(mp);
	char	*conv;
	const char *u;
	size_t	 len, ulen, keep;
	int	 cflags;

	if (pro == NULL || (len = strlen(pro)) == 0)
		return;
	conv = mime_to_utf8(NULL, pro, len, &ulen, &cflags);
	u = conv != NULL ? conv : pro;
	if (cflags & MIME_CS_REPLACED)
		norm_warn(n, "part %s: invalid UTF-8 replaced with U+FFFD",
		    p->path[0] ? p->path : "(top)");
	ims_parse_part(n->l, n->rec, p->path, u, ulen);
	keep = mime_utf8_cut(u, ulen, n->l->text_bytes);
	p->text_truncated = keep < ulen;
	p->text = dup_utf8(u, keep);
	free(conv);
}

static char *
child_path(const char *prefix, int i)
{
	if (prefix[0] == '\0')
		return g_strdup_printf("%d", i);
	return g_strdup_printf("%s.%d", prefix, i);
}

/*
 * Record object o as one part at path, then its children (named below
 * prefix).  Recursion depth is bounded by limits->mime_depth.
 */
static void
walk(struct norm *n, GMimeObject *o, const char *path, const char *prefix,
    unsigned depth)
{
	GMimeContentType *ct;
	GMimeContentDisposition *cd;
	GMimeMessage *sub;
	GMimeObject *child;
	Vmingest__Part *p;
	const char *v;
	char	*mt, *cp;
	int	 i, cnt;

	if (n->nparts >= n->l->part_count) {
		if (!n->part_limit_hit++)
			norm_quarantine(n, "part_count limit %zu exceeded",
			    n->l->part_count);
		return;
	}
	n->nparts++;
	p = norm_xmalloc(sizeof(*p));
	vmingest__part__init(p);
	rec_push(&n->rec->parts, &n->rec->n_parts, p);
	p->path = norm_strdup(path);
	p->depth = depth;
	ct = g_mime_object_get_content_type(o);
	if (ct != NULL &&
	    (mt = g_mime_content_type_get_mime_type(ct)) != NULL) {
		p->content_type = lower_dup(mt);
		g_free(mt);
	}
	if ((v = g_mime_object_get_content_type_parameter(o,
	    "charset")) != NULL)
		p->charset = lower_dup(v);
	if ((v = g_mime_object_get_content_type_parameter(o,
	    "protocol")) != NULL)
		p->protocol = norm_strdup(v);	/* as sent */
	cd = g_mime_object_get_content_disposition(o);
	if (cd != NULL &&
	    (v = g_mime_content_disposition_get_disposition(cd)) != NULL)
		p->disposition = lower_dup(v);

	if (GMIME_IS_MULTIPART(o)) {
		p->is_multipart = 1;
		if (g_mime_multipart_get_boundary(GMIME_MULTIPART(o)) == NULL)
			norm_warn(n, "part %s: multipart without boundary",
			    path[0] ? path : "(top)");
		cnt = g_mime_multipart_get_count(GMIME_MULTIPART(o));
		if (cnt == 0) {
			norm_warn(n, "part %s: multipart with no parts",
			    path[0] ? path : "(top)");
			multipart_prologue(n, GMIME_MULTIPART(o), p);
		}
		if (cnt > 0 && depth + 1 > n->l->mime_depth) {
			if (!n->depth_limit_hit++)
				norm_quarantine(n,
				    "mime_depth limit %zu exceeded",
				    n->l->mime_depth);
			return;
		}
		for (i = 0; i < cnt && n->nparts <= n->l->part_count; i++) {
			child = g_mime_multipart_get_part(GMIME_MULTIPART(o),
			    i);
			cp = child_path(prefix, i + 1);
			walk(n, child, cp, cp, depth + 1);
			g_free(cp);
		}
		return;
	}
	if (GMIME_IS_MESSAGE_PART(o)) {
		p->is_message = 1;
		sub = g_mime_message_part_get_message(GMIME_MESSAGE_PART(o));
		walk_message(n, sub, path, depth);
		return;
	}
	if (GMIME_IS_PART(o)) {
		if ((v = g_mime_part_get_filename(GMIME_PART(o))) != NULL)
			p->filename = mime_header_strdup(n, "filename", v);
		walk_leaf(n, GMIME_PART(o), p, ct != NULL &&
		    g_mime_content_type_is_type(ct, "text", "*"), ct != NULL &&
		    g_mime_content_type_is_type(ct, "message", "rfc822"),
		    depth);
	}
}

/*
 * No message structure to trust: record the bytes as one part "1", as
 * text (and for the IMS parser) when they look like text, else as
 * application/octet-stream.  Used for input without header fields.
 */
static void
raw_part(struct norm *n, const char *p, size_t len)
{
	Vmingest__Part *part;
	char	*conv;
	const char *u;
	size_t	 ulen, keep;
	int	 cflags;

	if (n->l->part_count == 0)
		return;
	n->nparts++;
	part = norm_xmalloc(sizeof(*part));
	vmingest__part__init(part);
	rec_push(&n->rec->parts, &n->rec->n_parts, part);
	part->path = norm_strdup("1");
	part->transfer_encoding = norm_strdup("7bit");
	part->encoded_size = part->decoded_size = len;
	set_sha256(&part->sha256, p, len);
	if (!mime_text_ok(p, len)) {
		part->content_type = norm_strdup("application/octet-stream");
		return;
	}
	part->content_type = norm_strdup("text/plain");
	conv = mime_to_utf8(NULL, p, len, &ulen, &cflags);
	u = conv != NULL ? conv : p;
	if (cflags & MIME_CS_REPLACED)
		norm_warn(n, "part 1: invalid UTF-8 replaced with U+FFFD");
	ims_parse_part(n->l, n->rec, "1", u, ulen);
	keep = mime_utf8_cut(u, ulen, n->l->text_bytes);
	part->text_truncated = keep < ulen;
	part->text = dup_utf8(u, keep);
	free(conv);
}

/* Skip an mbox "From " line if the data starts with one. */
static size_t
skip_mbox_from(struct norm *n, const char *p, size_t len)
{
	const char *nl;

	if (len < 5 || memcmp(p, "From ", 5) != 0)
		return 0;
	nl = memchr(p, '\n', len);
	norm_warn(n, "mbox From_ line skipped");
	return nl != NULL ? (size_t)(nl - p) + 1 : len;
}

int
normalize_message(const struct limits *l, const void *raw, size_t len,
    Vmingest__Record *rec)
{
	struct norm n;
	struct hscan hs;
	const char *p = raw;
	size_t	 plen = len, skip, ll, glen;
	struct mime_guard guard;
	char	*guarded = NULL;
	GByteArray *arr = NULL;
	GMimeStream *stream = NULL;
	GMimeParser *parser = NULL;
	GMimeMessage *msg = NULL;
	GMimeObject *root;
	char	 esc[64];
	int	 rc = 0;

	normalize_init();
	memset(&n, 0, sizeof(n));
	n.l = l;
	n.rec = rec;
	rec->raw_size = len;
	set_sha256(&rec->sha256, raw, len);

	if (len == 0) {
		norm_quarantine(&n, "empty message");
		goto out;
	}
	if (plen > l->message_bytes) {
		norm_quarantine(&n,
		    "message_bytes limit %zu exceeded (%zu bytes)",
		    l->message_bytes, len);
		plen = l->message_bytes;
	}
	if (plen > G_MAXUINT)	/* GByteArray length is a guint */
		plen = G_MAXUINT;
	if (memchr(p, '\0', plen) != NULL)
		norm_warn(&n, "NUL bytes in message");
	skip = skip_mbox_from(&n, p, plen);
	p += skip;
	plen -= skip;

	mime_header_scan(p, plen, &hs);
	if (hs.count == 0) {
		norm_quarantine(&n, "no header fields");
		raw_part(&n, p, plen);
		goto out;
	} else {
		if (hs.leading_ws)
			norm_warn(&n, "header block starts with a folded line");
		if (hs.nocolon > 0) {
			/* the input is not NUL-terminated: bounded scan */
			for (ll = 0; ll < 40 && hs.first_bad + ll < plen &&
			    p[hs.first_bad + ll] != '\r' &&
			    p[hs.first_bad + ll] != '\n'; ll++)
				;
			log_escape(esc, sizeof(esc), p + hs.first_bad, ll);
			norm_warn(&n, "%zu header line(s) without colon, "
			    "first at offset %zu: %s", hs.nocolon,
			    hs.first_bad + skip, esc);
		}
		if (hs.eightbit)
			norm_warn(&n, "8-bit bytes in headers");
		if (hs.count > l->header_count)
			norm_quarantine(&n, "header_count limit %zu exceeded "
			    "(%zu headers)", l->header_count, hs.count);
		if (hs.bytes > l->header_bytes)
			norm_quarantine(&n, "header_bytes limit %zu exceeded "
			    "(%zu bytes)", l->header_bytes, hs.bytes);
	}

	/*
	 * Parse from the caller's bytes without a copy: a GByteArray that
	 * borrows them, in a memory stream that does not own the array.
	 * GMime only reads from it.
	 */
	n.orig = p;
	guard_buffer(&n, p, NULL, plen, skip, &guarded, &guard);
	n.hits = guard.hits;
	n.nhits = guard.nhits;
	glen = guard_parts(&n, &guard, plen, skip);
	arr = g_byte_array_new_take(guarded != NULL ? (guint8 *)guarded :
	    (guint8 *)(uintptr_t)p, glen);
	stream = g_mime_stream_mem_new_with_byte_array(arr);
	g_mime_stream_mem_set_owner(GMIME_STREAM_MEM(stream), FALSE);
	parser = g_mime_parser_new_with_stream(stream);
	g_mime_parser_set_format(parser, GMIME_FORMAT_MESSAGE);
	n.stream = stream;
	n.hdr_budget = l->header_count + 16 * l->part_count + 1;
	/* the callback costs a g_regex_match per field: only when needed */
	if (guard.lines >= n.hdr_budget)
		g_mime_parser_set_header_regex(parser, "^", on_header, &n);
	n.opts = g_mime_parser_options_new();
	g_mime_parser_options_set_warning_callback(n.opts, on_gmime_warning,
	    &n);
	msg = g_mime_parser_construct_message(parser, n.opts);
	if (msg == NULL) {
		/* GMime found no header block it could use */
		norm_quarantine(&n, "unparseable message");
		raw_part(&n, p, plen);
		goto out;
	}
	mime_header_envelope(&n, msg);
	mime_header_list(&n, msg);
	root = g_mime_message_get_mime_part(msg);
	if (root != NULL) {
		if (GMIME_IS_MULTIPART(root))
			walk(&n, root, "", "", 0);
		else
			walk(&n, root, "1", "1", 0);
	} else
		norm_warn(&n, "message without a body entity");
out:
	ims_finish(l, rec);
	if (msg != NULL)
		g_object_unref(msg);
	if (parser != NULL)
		g_object_unref(parser);
	if (stream != NULL)
		g_object_unref(stream);
	if (arr != NULL)
		g_byte_array_free(arr, FALSE);	/* the bytes are the caller's */
	if (n.opts != NULL)
		g_mime_parser_options_free(n.opts);
	free(guarded);
	free(n.hits);
	return rc;
}
