/* http.c - placeholder until the status endpoint lands (issue 4). */
#include <stdlib.h>

#include "http.h"

int
http_start(struct http **out, const struct config *cf, struct publisher *pub,
    char *err, size_t errlen)
{
	*out = NULL;
	return 0;
}

void
http_stop(struct http *h)
{
}
