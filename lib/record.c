/*
 * record.c - helpers that build, pack and print records.
 *
 * Records are built field by field by normalize, ims and rules; this file
 * keeps the ownership rule in one place (see record.h) and gives every
 * consumer the same JSON rendering, derived from the protobuf-c
 * descriptors so that JSON field names are the .proto names by
 * construction.
 *
 * Error policy: allocation failure is fatal (xmalloc style); everything
 * else returns a status.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "record.h"
#include "util.h"

Vmingest__Record *
record_new(void)
{
	Vmingest__Record *r = xrealloc(NULL, sizeof(*r));

	vmingest__record__init(r);
	return r;
}

void
record_free(Vmingest__Record *r)
{
	if (r != NULL)
		vmingest__record__free_unpacked(r, NULL);
}

char *
rec_strndup(const char *s, size_t len)
{
	return rec_utf8ndup(s, len, NULL);
}

char *
rec_strdup(const char *s)
{
	if (s == NULL)
		s = "";
	return rec_utf8ndup(s, strlen(s), NULL);
}

/* Length of the valid UTF-8 sequence at p (max n bytes), 0 if invalid. */
static size_t
utf8_seq(const unsigned char *p, size_t n)
{
	unsigned c = p[0];
	size_t	 len, i;
	unsigned cp;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf) {
		len = 2;
		cp = c & 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		len = 3;
		cp = c & 0x0f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4;
		cp = c & 0x07;
	} else
		return 0;
	if (n < len)
		return 0;
	for (i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (p[i] & 0x3f);
	}
	if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
	    (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
		return 0;
	return len;
}

int
utf8_valid_ok(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t	 i = 0, k;

	while (i < len) {
		if (p[i] == 0 || (k = utf8_seq(p + i, len - i)) == 0)
			return 0;
		i += k;
	}
	return 1;
}

char *
rec_utf8ndup(const char *s, size_t len, int *replaced)
{
	const unsigned char *p = (const unsigned char *)s;
	char	*out, *o;
	size_t	 i = 0, k;

	if (replaced != NULL)
		*replaced = 0;
	/* worst case every byte becomes U+FFFD (3 bytes) */
	out = o = xrealloc(NULL, len * 3 + 1);
	while (i < len) {
		if (p[i] != 0 && (k = utf8_seq(p + i, len - i)) != 0) {
			memcpy(o, p + i, k);
			o += k;
			i += k;
			continue;
		}
		if (p[i] == 0) {
			/* NUL cannot live in a C string; drop it */
			i++;
		} else {
			memcpy(o, "\xef\xbf\xbd", 3);
			o += 3;
			i++;
		}
		if (replaced != NULL)
			*replaced = 1;
	}
	*o = '\0';
	return xrealloc(out, (size_t)(o - out) + 1);
}

void
rec_set_str(char **field, const char *v)
{
	if (*field != NULL && *field != protobuf_c_empty_string)
		free(*field);
	*field = rec_strdup(v);
}

void
rec_push(void *arrp, size_t *n, void *item)
{
	void ***arr = arrp;

	*arr = xrealloc(*arr, (*n + 1) * sizeof(void *));
	(*arr)[(*n)++] = item;
}

void
record_warn(Vmingest__Record *r, size_t max, const char *fmt, ...)
{
	char	 buf[512];
	va_list	 ap;

	if (r->n_warnings >= max)
		return;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (r->n_warnings + 1 == max)
		snprintf(buf, sizeof(buf), "too many warnings (limit %zu)", max);
	rec_push(&r->warnings, &r->n_warnings, rec_strdup(buf));
}

int
record_pack(const Vmingest__Record *r, uint8_t **buf, size_t *len)
{
	size_t	 n = vmingest__record__get_packed_size(r);

	*buf = xrealloc(NULL, n);
	*len = vmingest__record__pack(r, *buf);
	return *len == n ? 0 : -1;
}

Vmingest__Record *
record_unpack(const void *buf, size_t len)
{
	return vmingest__record__unpack(NULL, len, buf);
}

char *
hex_encode(char *buf, const uint8_t *p, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	size_t	 i;

	for (i = 0; i < len; i++) {
		buf[2 * i] = hex[p[i] >> 4];
		buf[2 * i + 1] = hex[p[i] & 15];
	}
	buf[2 * len] = '\0';
	return buf;
}

const char *
disposition_name(int d)
{
	const ProtobufCEnumValue *v;

	v = protobuf_c_enum_descriptor_get_value(&vmingest__disposition__descriptor, d);
	return v != NULL ? v->name : "UNKNOWN";
}

static json_t *
scalar_to_json(const ProtobufCFieldDescriptor *f, const void *p)
{
	const ProtobufCEnumValue *ev;
	const ProtobufCBinaryData *b;
	char	*s, *hex;
	json_t	*j;

	switch (f->type) {
	case PROTOBUF_C_TYPE_INT32:
	case PROTOBUF_C_TYPE_SINT32:
	case PROTOBUF_C_TYPE_SFIXED32:
		return json_integer(*(const int32_t *)p);
	case PROTOBUF_C_TYPE_UINT32:
	case PROTOBUF_C_TYPE_FIXED32:
		return json_integer(*(const uint32_t *)p);
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64:
		return json_integer(*(const int64_t *)p);
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64: {
		uint64_t v = *(const uint64_t *)p;
		char	 num[24];

		if (v <= (uint64_t)INT64_MAX)
			return json_integer((json_int_t)v);
		snprintf(num, sizeof(num), "%llu", (unsigned long long)v);
		return json_string(num);
	}
	case PROTOBUF_C_TYPE_FLOAT:
		return json_real(*(const float *)p);
	case PROTOBUF_C_TYPE_DOUBLE:
		return json_real(*(const double *)p);
	case PROTOBUF_C_TYPE_BOOL:
		return json_boolean(*(const protobuf_c_boolean *)p);
	case PROTOBUF_C_TYPE_ENUM:
		ev = protobuf_c_enum_descriptor_get_value(f->descriptor,
		    *(const int *)p);
		if (ev != NULL)
			return json_string(ev->name);
		return json_integer(*(const int *)p);
	case PROTOBUF_C_TYPE_STRING:
		s = *(char * const *)p;
		if (s == NULL)
			return json_string("");
		if (utf8_valid_ok(s, strlen(s)))
			return json_string(s);
		s = rec_utf8ndup(s, strlen(s), NULL);
		j = json_string(s);
		free(s);
		return j;
	case PROTOBUF_C_TYPE_BYTES:
		b = p;
		if (strcmp(f->name, "sha256") == 0) {
			hex = xrealloc(NULL, b->len * 2 + 1);
			hex_encode(hex, b->data, b->len);
			j = json_string(hex);
			free(hex);
			return j;
		}
		s = rec_utf8ndup((const char *)b->data, b->len, NULL);
		j = json_string(s);
		free(s);
		return j;
	case PROTOBUF_C_TYPE_MESSAGE:
		if (*(ProtobufCMessage * const *)p == NULL)
			return json_null();
		return pb_to_json(*(ProtobufCMessage * const *)p, 0);
	}
	return json_null();
}

static size_t
type_size(const ProtobufCFieldDescriptor *f)
{
	switch (f->type) {
	case PROTOBUF_C_TYPE_INT32: case PROTOBUF_C_TYPE_SINT32:
	case PROTOBUF_C_TYPE_SFIXED32: case PROTOBUF_C_TYPE_UINT32:
	case PROTOBUF_C_TYPE_FIXED32: case PROTOBUF_C_TYPE_FLOAT:
	case PROTOBUF_C_TYPE_ENUM:
		return 4;
	case PROTOBUF_C_TYPE_INT64: case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64: case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64: case PROTOBUF_C_TYPE_DOUBLE:
		return 8;
	case PROTOBUF_C_TYPE_BOOL:
		return sizeof(protobuf_c_boolean);
	case PROTOBUF_C_TYPE_STRING: case PROTOBUF_C_TYPE_MESSAGE:
		return sizeof(void *);
	case PROTOBUF_C_TYPE_BYTES:
		return sizeof(ProtobufCBinaryData);
	}
	return 0;
}

json_t *
pb_to_json(const ProtobufCMessage *m, int flags)
{
	const ProtobufCMessageDescriptor *d = m->descriptor;
	const char *base = (const char *)m;
	json_t	*obj = json_object();
	unsigned i;

	for (i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];
		const void *p = base + f->offset;

		if ((flags & RJ_NO_TEXT) && d == &vmingest__part__descriptor &&
		    strcmp(f->name, "text") == 0)
			continue;
		if ((flags & RJ_NO_HEADERS) && d == &vmingest__record__descriptor &&
		    strcmp(f->name, "headers") == 0)
			continue;
		if (f->label == PROTOBUF_C_LABEL_REPEATED) {
			size_t	 n = *(const size_t *)(base + f->quantifier_offset);
			const char *arr = *(char * const *)p;
			json_t	*ja = json_array();
			size_t	 k, sz = type_size(f);

			for (k = 0; k < n; k++) {
				if (f->type == PROTOBUF_C_TYPE_MESSAGE) {
					const ProtobufCMessage *sub =
					    ((ProtobufCMessage * const *)arr)[k];
					json_array_append_new(ja,
					    pb_to_json(sub, flags));
				} else
					json_array_append_new(ja,
					    scalar_to_json(f, arr + k * sz));
			}
			json_object_set_new(obj, f->name, ja);
		} else if (f->type == PROTOBUF_C_TYPE_MESSAGE) {
			const ProtobufCMessage *sub =
			    *(ProtobufCMessage * const *)p;
			json_object_set_new(obj, f->name,
			    sub ? pb_to_json(sub, flags) : json_null());
		} else
			json_object_set_new(obj, f->name, scalar_to_json(f, p));
	}
	return obj;
}

json_t *
record_to_json(const Vmingest__Record *r, int flags)
{
	return pb_to_json(&r->base, flags);
}

/* protobuf-c string fields are char *; a message only packed reads them */
char *
pb_str(const char *s)
{
	union { const char *c; char *m; } u;

	u.c = s;
	return u.m;
}
