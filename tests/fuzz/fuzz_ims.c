/*
 * fuzz_ims.c - libFuzzer harness for lib/ims.c.
 *
 * The input is one decoded text part.  The first byte, when there is
 * one, picks tight limits (1-8 messages, sections, requests, stations,
 * 16-1039 byte lines, 2-9 warnings) so the limit paths are reached too;
 * the rest is parsed twice as two parts of one mail (the second under a
 * multipart/signed, to reach the S/MIME and repeated-MSG_ID checks),
 * then finished, given a topic, packed and printed as JSON: all of it
 * must run clean under ASan+UBSan with no leak.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ims.h"
#include "record.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static Vmingest__Part *
part(const char *path, const char *ct, uint32_t depth)
{
	Vmingest__Part *p = malloc(sizeof(*p));

	if (p == NULL)
		abort();
	vmingest__part__init(p);
	p->path = rec_strdup(path);
	p->content_type = rec_strdup(ct);
	p->protocol = rec_strdup("application/pkcs7-signature");
	p->depth = depth;
	return p;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct limits l;
	Vmingest__Record *r;
	char	 topic[256];
	uint8_t	*pb;
	size_t	 pblen;
	json_t	*j;
	char	*s;

	limits_default(&l);
	if (size > 0 && (data[0] & 0x80)) {
		l.ims_messages = 1 + (data[0] & 7);
		l.ims_sections = 1 + ((data[0] >> 3) & 7);
		l.ims_requests = l.ims_sections;
		l.ims_stations = l.ims_messages;
		l.ims_line_bytes = 16 + (size_t)(data[0] & 0x3f) * 16;
		l.warnings = 2 + (data[0] & 7);
	}
	r = record_new();
	rec_push(&r->parts, &r->n_parts, part("", "multipart/mixed", 0));
	rec_push(&r->parts, &r->n_parts, part("1", "text/plain", 1));
	rec_push(&r->parts, &r->n_parts, part("2", "multipart/signed", 1));
	rec_push(&r->parts, &r->n_parts, part("2.1", "text/plain", 2));
	rec_push(&r->parts, &r->n_parts, part("2.2",
	    "application/pkcs7-signature", 2));
	r->subject = rec_strdup("help");
	ims_parse_part(&l, r, "1", (const char *)data, size);
	ims_parse_part(&l, r, "2.1", (const char *)data, size);
	ims_finish(&l, r);
	if (ims_topic(r, topic, sizeof(topic)) == 0 &&
	    strspn(topic, "abcdefghijklmnopqrstuvwxyz0123456789_-.") !=
	    strlen(topic))
		abort();		/* topic alphabet is a contract */
	if (record_pack(r, &pb, &pblen) == 0)
		free(pb);
	j = record_to_json(r, 0);
	s = json_dumps(j, 0);
	free(s);
	json_decref(j);
	record_free(r);
	return 0;
}
