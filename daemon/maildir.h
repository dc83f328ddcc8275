/*
 * maildir.h - pure helpers for Maildir names (no I/O).
 *
 *   maildir_name_ok    1 if a name in new/ is one to ingest: not empty,
 *                      not a dot file, at most 255 bytes, no '/'
 *   maildir_cur_name   the name in cur/ for keep = cur: NAME:2,S (an
 *                      existing ":2," info part is kept as it is)
 *   maildir_name_time  the delivery time (seconds) a Maildir name starts
 *                      with ("1733318400.M1P2.host"), or 0 if it does not
 */
#ifndef VMI_MAILDIR_H
#define VMI_MAILDIR_H

#include <stddef.h>

int	maildir_name_ok(const char *name);
int	maildir_cur_name(const char *name, char *buf, size_t bufsz);
long	maildir_name_time(const char *name);

#endif
