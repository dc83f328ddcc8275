/*
 * maildir.c - Maildir name rules (see maildir.h).
 *
 * SECURITY: names come from whoever can write into new/; nothing here
 * trusts their length or content.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "maildir.h"

int
maildir_name_ok(const char *name)
{
	size_t	 n = strlen(name);

	return n > 0 && n <= 255 && name[0] != '.' && strchr(name, '/') == NULL;
}

int
maildir_cur_name(const char *name, char *buf, size_t bufsz)
{
	int	 n;

	if (strstr(name, ":2,") != NULL)
		n = snprintf(buf, bufsz, "%s", name);
	else
		n = snprintf(buf, bufsz, "%s:2,S", name);
	return n >= 0 && (size_t)n < bufsz ? 0 : -1;
}

long
maildir_name_time(const char *name)
{
	char	*end;
	long	 sec;

	if (name[0] < '0' || name[0] > '9')
		return 0;
	sec = strtol(name, &end, 10);
	if (*end != '.' || sec <= 0)
		return 0;
	return sec;
}
