/*
 * log.c - stderr logging with syslog priority prefixes.
 *
 * Every line is formatted into one buffer and written with a single
 * write(2), so lines from different threads never interleave.  Lines are
 * cut at LOG_LINE_MAX bytes (marked with "...").
 *
 * SECURITY: callers pass message-derived strings through log_escape().
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

#define LOG_LINE_MAX	2048

static const char	*log_prog = "vmingest";
static int		 log_verbose;
static int		 log_quiet;
static log_hook_fn	 log_hook;
static void		*log_hook_arg;

void
log_init(const char *progname, int verbose)
{
	if (progname != NULL)
		log_prog = progname;
	log_verbose = verbose;
}

void
log_set_hook(log_hook_fn fn, void *arg)
{
	log_hook = fn;
	log_hook_arg = arg;
}

void
log_set_quiet(int quiet)
{
	log_quiet = quiet;
}

static void
vlog(int prio, int with_errno, const char *fmt, va_list ap)
{
	char	 line[LOG_LINE_MAX];
	int	 saved = errno;
	int	 n, m;

	if (prio == LOG_P_DEBUG && !log_verbose)
		return;
	if (log_quiet && prio >= LOG_P_INFO)
		return;
	n = snprintf(line, sizeof(line), "<%d>%s: ", prio, log_prog);
	if (n < 0 || (size_t)n >= sizeof(line))
		n = 0;
	m = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
	if (m < 0)
		m = 0;
	n += m;
	if ((size_t)n >= sizeof(line) - 2) {
		n = sizeof(line) - 5;
		memcpy(line + n, "...", 3);
		n += 3;
	}
	if (with_errno) {
		m = snprintf(line + n, sizeof(line) - n, ": %s",
		    strerror(saved));
		if (m > 0 && (size_t)(n + m) < sizeof(line) - 1)
			n += m;
	}
	if (log_hook != NULL) {
		line[n] = '\0';
		log_hook(prio, line, log_hook_arg);
	}
	line[n++] = '\n';
	/* One write per line; a short write to stderr is not worth retrying. */
	if (write(STDERR_FILENO, line, n) < 0) {
		/* nowhere left to report it */
	}
	errno = saved;
}

#define LOGFN(name, prio, e)				\
void							\
name(const char *fmt, ...)				\
{							\
	va_list ap;					\
	va_start(ap, fmt);				\
	vlog(prio, e, fmt, ap);				\
	va_end(ap);					\
}

LOGFN(log_debug, LOG_P_DEBUG, 0)
LOGFN(log_info, LOG_P_INFO, 0)
LOGFN(log_notice, LOG_P_NOTICE, 0)
LOGFN(log_warn, LOG_P_WARNING, 1)
LOGFN(log_warnx, LOG_P_WARNING, 0)

void
log_fatal(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(LOG_P_ERR, 1, fmt, ap);
	va_end(ap);
	exit(1);
}

void
log_fatalx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(LOG_P_ERR, 0, fmt, ap);
	va_end(ap);
	exit(1);
}

void
log_panic(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(LOG_P_ERR, 0, fmt, ap);
	va_end(ap);
	abort();
}

char *
log_escape(char *buf, size_t bufsz, const char *s, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	size_t	 i, o = 0;

	if (bufsz == 0)
		return buf;
	for (i = 0; i < len && s[i] != '\0'; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c >= 0x20 && c < 0x7f && c != '\\') {
			if (o + 1 >= bufsz)
				break;
			buf[o++] = c;
		} else {
			if (o + 4 >= bufsz)
				break;
			buf[o++] = '\\';
			buf[o++] = 'x';
			buf[o++] = hex[c >> 4];
			buf[o++] = hex[c & 15];
		}
	}
	buf[o] = '\0';
	return buf;
}
