/*
 * fuzz_normalize.c - libFuzzer harness for normalize_message().
 *
 * Each input is one message.  Limits are the defaults with mime_depth,
 * part_count, header_count and text_bytes made small so that the fuzzer
 * reaches the limit paths with small inputs.  The record is also packed,
 * unpacked and rendered to JSON, which is what the daemon does with it.
 * Crashes, hangs, sanitizer reports and leaks are the findings; the
 * harness asserts only that a record always round-trips.
 *
 * Seeds: tests/fuzz/seeds/normalize/ (small messages and fragments).
 * SECURITY: the input is arbitrary bytes by construction.
 */
#include <stdint.h>
#include <stdlib.h>

#include <gmime/gmime.h>

#include "normalize.h"
#include "record.h"

int	LLVMFuzzerInitialize(int *, char ***);
int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static struct limits lim;

static void
shutdown_gmime(void)
{
	g_mime_shutdown();
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	limits_default(&lim);
	lim.mime_depth = 12;
	lim.part_count = 64;
	lim.header_count = 128;
	lim.text_bytes = 512;
	normalize_init();
	/* runs before LSan's own exit check: GMime's caches are not leaks */
	atexit(shutdown_gmime);
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	Vmingest__Record *r = record_new(), *u;
	uint8_t	*buf;
	size_t	 len;
	json_t	*j;

	normalize_message(&lim, data, size, r);
	if (record_pack(r, &buf, &len) != 0 ||
	    (u = record_unpack(buf, len)) == NULL)
		abort();
	j = record_to_json(u, 0);
	json_decref(j);
	record_free(u);
	free(buf);
	record_free(r);
	return 0;
}
