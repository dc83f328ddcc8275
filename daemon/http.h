/*
 * http.h - the status endpoint (libmicrohttpd, its own polling thread).
 *
 *   http_start   listen on [http] listen ("off" disables: returns 0, *out NULL)
 *   http_stop    stop the server (NULL is a no-op)
 *
 * Handlers read g_stats (stats.h) under its lock and publisher_stats();
 * they never touch the store's write state or any ZeroMQ socket.
 */
#ifndef VMI_HTTP_H
#define VMI_HTTP_H

#include <stddef.h>

#include "config.h"
#include "publish.h"

struct http;

int	http_start(struct http **out, const struct config *, struct publisher *,
	    char *err, size_t errlen);
void	http_stop(struct http *);

#endif
