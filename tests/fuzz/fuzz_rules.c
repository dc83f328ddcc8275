/*
 * fuzz_rules.c - libFuzzer harness for the Sieve compiler and evaluator.
 *
 * Input: a script, optionally followed by a NUL byte and a message.  The
 * script is compiled; when it compiles it is evaluated against the message
 * (or a fixed one) and a fixed record with two IMS messages, so the
 * evaluator, the header index, the address parser, the RFC 2047 decoder
 * and the MIME walk all see hostile bytes.  Crashes, leaks and UB only.
 *
 * SECURITY: this is the test that hostile scripts and mail cannot break
 * the engine; limits are set small so the limit paths run too.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "record.h"
#include "rules.h"

static const char fixed_msg[] =
    "Return-Path: <s@idc.example>\r\n"
    "From: =?utf-8?q?A=C3=A9?= <a@b.example>, c@d\r\n"
    "To: undisclosed-recipients:;\r\n"
    "Subject: =?UTF-8?B?UmU6IHBoZA==?= x\r\n"
    "Content-Type: multipart/mixed; boundary=b\r\n"
    "\r\n"
    "--b\r\nContent-Type: text/plain\r\n\r\nBEGIN IMS2.0\r\n--b--\r\n";

static Vmingest__Record *
fixed_record(void)
{
	Vmingest__Record *rec = record_new();
	int	 i;

	for (i = 0; i < 2; i++) {
		Vmingest__ImsMessage *m = calloc(1, sizeof(*m));
		Vmingest__ImsSection *s = calloc(1, sizeof(*s));

		vmingest__ims_message__init(m);
		vmingest__ims_section__init(s);
		m->msg_type = rec_strdup(i ? "REQUEST" : "DATA");
		m->msg_id = rec_strdup("ID");
		s->data_type = rec_strdup("WAVEFORM");
		rec_push(&s->stations, &s->n_stations, rec_strdup("ARCES"));
		rec_push(&m->sections, &m->n_sections, s);
		rec_push(&rec->ims, &rec->n_ims, m);
	}
	return rec;
}

int	LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static Vmingest__Record *rec;
	struct rules_limits lim;
	struct rules *r;
	const uint8_t *nul = memchr(data, '\0', size);
	const void *msg = fixed_msg;
	size_t	 slen = size, mlen = sizeof(fixed_msg) - 1;
	char	 err[512];

	if (rec == NULL)
		rec = fixed_record();
	if (nul != NULL) {
		slen = nul - data;
		msg = nul + 1;
		mlen = size - slen - 1;
	}
	rules_limits_default(&lim);
	lim.script_bytes = 64 << 10;
	lim.nesting = 16;
	lim.actions = 16;
	lim.string_bytes = 4096;
	lim.regex_bytes = 256;
	lim.match_bytes = 64 << 10;
	if ((r = rules_compile_buf("fuzz", (const char *)data, slen, &lim, err,
	    sizeof(err))) == NULL)
		return 0;
	{
		Vmingest__RuleResult *out = malloc(sizeof(*out));

		vmingest__rule_result__init(out);
		rules_eval(r, rec, msg, mlen, out);
		vmingest__rule_result__free_unpacked(out, NULL);
	}
	rules_free(r);
	return 0;
}
