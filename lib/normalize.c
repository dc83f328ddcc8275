/* normalize.c - placeholder: sha256 and size only, until GMime normalize lands. */
#include <glib.h>
#include <stdlib.h>
#include <string.h>
#include "normalize.h"
#include "record.h"

void
normalize_init(void)
{
}

int
normalize_message(const struct limits *l, const void *raw, size_t len,
    Vmingest__Record *rec)
{
	GChecksum *c = g_checksum_new(G_CHECKSUM_SHA256);
	gsize	 n = 32;

	g_checksum_update(c, raw, len);
	rec->sha256.data = malloc(32);
	g_checksum_get_digest(c, rec->sha256.data, &n);
	rec->sha256.len = n;
	g_checksum_free(c);
	rec->raw_size = len;
	return 0;
}
