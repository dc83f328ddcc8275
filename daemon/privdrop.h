/*
 * privdrop.h - leave root before touching mail.
 *
 *   privdrop   if running as root: switch to [daemon] user/group
 *              (setgroups, setresgid, setresuid; verified), or refuse to
 *              go on as root unless [daemon] allow_root = yes.
 *              Not root: nothing to do.
 * Returns 0, or -1 with err set (the caller exits).
 */
#ifndef VMI_PRIVDROP_H
#define VMI_PRIVDROP_H

#include <stddef.h>

#include "config.h"

int	privdrop(const struct config *, char *err, size_t errlen);
/* Create dir (and parents) owned by the [daemon] user when root. */
int	privdrop_prepare_dir(const struct config *, const char *dir, char *err,
	    size_t errlen);

#endif
