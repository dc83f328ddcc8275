/*
 * record.h - building, packing and printing Vmingest__Record.
 *
 * OWNERSHIP: every string, byte buffer, sub-message and array hung on a
 * record built here is malloc(3)ed, or is protobuf_c_empty_string / NULL,
 * so that record_free() (protobuf_c_message_free_unpacked with the default
 * allocator) releases a hand-built record and an unpacked one alike.
 * Never hang a string literal on a record: use rec_strdup().
 *
 *   record_new          allocate and initialise an empty record
 *   record_free         free a record and all it holds (NULL is a no-op)
 *   rec_strdup/ndup     malloc copy, replacing invalid UTF-8 with U+FFFD
 *   rec_set_str         replace a string field (frees the old unless it is
 *                       protobuf_c_empty_string)
 *   rec_push            append to a repeated field (T ***arr, size_t *n)
 *   record_warn         append a printf-style warning (bounded count)
 *   record_pack         serialise to a malloc buffer
 *   record_unpack       parse bytes (returns NULL on garbage)
 *   record_to_json      one JSON object (jansson), field names as in .proto
 *   pb_to_json          the same for any protobuf-c message
 *   utf8_valid_ok       1 if the bytes are valid UTF-8
 *   hex_encode          lower-case hex of bytes into buf (2*len+1)
 *   pb_str              a const string for a protobuf-c string field that is
 *                       only read (packing); never freed through it
 */
#ifndef VMI_RECORD_H
#define VMI_RECORD_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "vmingest.pb-c.h"

Vmingest__Record *record_new(void);
void	 record_free(Vmingest__Record *);

char	*rec_strdup(const char *s);
char	*rec_strndup(const char *s, size_t len);
/* Like rec_strndup; *replaced is set to 1 when invalid bytes were replaced. */
char	*rec_utf8ndup(const char *s, size_t len, int *replaced);
void	 rec_set_str(char **field, const char *v);
void	 rec_push(void *arrp, size_t *n, void *item);
void	 record_warn(Vmingest__Record *, size_t max, const char *fmt, ...)
	    __attribute__((format(printf, 3, 4)));
int	 record_pack(const Vmingest__Record *, uint8_t **buf, size_t *len);
Vmingest__Record *record_unpack(const void *buf, size_t len);

/* flags for pb_to_json / record_to_json */
#define RJ_NO_TEXT	0x01	/* leave out Part.text (list output) */
#define RJ_NO_HEADERS	0x02	/* leave out Record.headers */
json_t	*pb_to_json(const ProtobufCMessage *, int flags);
json_t	*record_to_json(const Vmingest__Record *, int flags);
const char *disposition_name(int d);

int	 utf8_valid_ok(const char *s, size_t len);
char	*hex_encode(char *buf, const uint8_t *p, size_t len);
char	*pb_str(const char *s);

#endif
