/* ims.c - placeholder until the IMS parser lands (issue 6). */
#include <stdio.h>
#include "ims.h"

void
ims_parse_part(const struct limits *l, Vmingest__Record *rec,
    const char *part_path, const char *text, size_t len)
{
}

void
ims_finish(const struct limits *l, Vmingest__Record *rec)
{
}

int
ims_topic(const Vmingest__Record *rec, char *buf, size_t bufsz)
{
	return snprintf(buf, bufsz, "mail.other") < (int)bufsz ? 0 : -1;
}
