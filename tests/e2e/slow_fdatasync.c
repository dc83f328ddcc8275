/*
 * slow_fdatasync.c - an LD_PRELOAD shim for tests: while the file named
 * by $SLOWSYNC_FLAG exists, fdatasync() first creates $SLOWSYNC_MARK,
 * then sleeps $SLOWSYNC_MS (default 1500) before syncing.  It holds the
 * daemon's commit open long enough to change new/ underneath it.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

int	fdatasync(int);

int
fdatasync(int fd)
{
	static int (*real)(int);
	const char *flag = getenv("SLOWSYNC_FLAG"), *mark = getenv("SLOWSYNC_MARK");
	struct timespec ts;
	long	 ms;

	if (real == NULL)
		real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
	if (flag != NULL && access(flag, F_OK) == 0) {
		if (mark != NULL)
			close(open(mark, O_CREAT | O_WRONLY | O_CLOEXEC, 0600));
		ms = getenv("SLOWSYNC_MS") ? atol(getenv("SLOWSYNC_MS")) : 1500;
		ts.tv_sec = ms / 1000;
		ts.tv_nsec = (ms % 1000) * 1000000L;
		nanosleep(&ts, NULL);
	}
	return real(fd);
}
