/*
 * privdrop.c - drop root privileges in the OpenSMTPD order.
 *
 * setgroups() first (while still root), then setresgid(), then
 * setresuid(); each is checked, and afterwards we check that root cannot
 * be regained.  Any failure is fatal for the caller: running on as root
 * by accident is worse than not running.
 *
 * SECURITY: the user and group names come from the config file (trusted).
 */
#include <sys/stat.h>
#include <sys/types.h>

#include <errno.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "privdrop.h"

static int
lookup(const struct config *cf, uid_t *uid, gid_t *gid, char *err, size_t errlen)
{
	struct passwd *pw;
	struct group *gr;

	if ((pw = getpwnam(cf->daemon.user)) == NULL) {
		snprintf(err, errlen, "[daemon] user %s: no such user", cf->daemon.user);
		return -1;
	}
	*uid = pw->pw_uid;
	*gid = pw->pw_gid;
	if (cf->daemon.group != NULL) {
		if ((gr = getgrnam(cf->daemon.group)) == NULL) {
			snprintf(err, errlen, "[daemon] group %s: no such group",
			    cf->daemon.group);
			return -1;
		}
		*gid = gr->gr_gid;
	}
	return 0;
}

int
privdrop_prepare_dir(const struct config *cf, const char *dir, char *err,
    size_t errlen)
{
	char	 buf[PATH_MAX];
	char	*p;
	uid_t	 uid;
	gid_t	 gid;

	if (snprintf(buf, sizeof(buf), "%s", dir) >= (int)sizeof(buf)) {
		snprintf(err, errlen, "%s: path too long", dir);
		return -1;
	}
	for (p = buf + 1; ; p++) {
		if (*p != '/' && *p != '\0')
			continue;
		char c = *p;
		*p = '\0';
		/*
		 * Parents we make must stay traversable by the user we drop
		 * to (they are root's when we run as root); the state
		 * directory itself is the user's and private.
		 */
		if (mkdir(buf, c == '\0' ? 0750 : 0755) == -1 && errno != EEXIST) {
			snprintf(err, errlen, "mkdir %s: %s", buf, strerror(errno));
			return -1;
		}
		*p = c;
		if (c == '\0')
			break;
	}
	if (geteuid() == 0 && cf->daemon.user != NULL) {
		if (lookup(cf, &uid, &gid, err, errlen) == -1)
			return -1;
		if (chown(dir, uid, gid) == -1) {
			snprintf(err, errlen, "chown %s: %s", dir, strerror(errno));
			return -1;
		}
	}
	return 0;
}

int
privdrop(const struct config *cf, char *err, size_t errlen)
{
	uid_t	 uid, ruid, euid, suid;
	gid_t	 gid, rgid, egid, sgid;

	if (geteuid() != 0)
		return 0;
	if (cf->daemon.user == NULL) {
		if (cf->daemon.allow_root) {
			log_warnx("running as root (allow_root = yes%s)",
			    cf->path ? "" : " in the embedded default");
			return 0;
		}
		snprintf(err, errlen, "refusing to run as root: set [daemon] user "
		    "(and group), or allow_root = yes");
		return -1;
	}
	if (lookup(cf, &uid, &gid, err, errlen) == -1)
		return -1;
	if (uid == 0) {
		snprintf(err, errlen, "[daemon] user %s is root", cf->daemon.user);
		return -1;
	}
	if (initgroups(cf->daemon.user, gid) == -1 &&
	    setgroups(1, &gid) == -1) {
		snprintf(err, errlen, "setgroups: %s", strerror(errno));
		return -1;
	}
	if (setresgid(gid, gid, gid) == -1) {
		snprintf(err, errlen, "setresgid: %s", strerror(errno));
		return -1;
	}
	if (setresuid(uid, uid, uid) == -1) {
		snprintf(err, errlen, "setresuid: %s", strerror(errno));
		return -1;
	}
	if (getresuid(&ruid, &euid, &suid) == -1 || getresgid(&rgid, &egid, &sgid) == -1 ||
	    ruid != uid || euid != uid || suid != uid ||
	    rgid != gid || egid != gid || sgid != gid || setuid(0) != -1) {
		snprintf(err, errlen, "privilege drop did not stick");
		return -1;
	}
	log_notice("running as user %s (uid %u, gid %u)", cf->daemon.user,
	    (unsigned)uid, (unsigned)gid);
	return 0;
}
