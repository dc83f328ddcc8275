/*
 * log.h - the logging ladder (Postfix msg.c, spelled the OpenBSD way).
 *
 * Lines go to stderr with a syslog priority prefix ("<6>") so journald
 * keeps the level.  log_info: one line per decision, key=value first.
 * log_warn appends strerror(errno); log_warnx does not.  log_fatal(x)
 * exits 1 (startup and lost essential resources only); log_panic aborts
 * (broken invariant).  Thread-safe: each line is one write(2).
 *
 * A test installs a capture hook with log_set_hook() to expect a line.
 * log_escape() makes untrusted bytes safe to log.
 */
#ifndef VMI_LOG_H
#define VMI_LOG_H

#include <stdarg.h>
#include <stddef.h>

#define LOG_P_ERR	3
#define LOG_P_WARNING	4
#define LOG_P_NOTICE	5
#define LOG_P_INFO	6
#define LOG_P_DEBUG	7

typedef void (*log_hook_fn)(int prio, const char *line, void *arg);

void	log_init(const char *progname, int verbose);
void	log_set_hook(log_hook_fn fn, void *arg);
void	log_set_quiet(int quiet);	/* drop info/debug (CLI) */
void	log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void	log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void	log_notice(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void	log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void	log_warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void	log_fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
void	log_fatalx(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
void	log_panic(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/* Copy at most len bytes of s into buf (size bufsz) with every byte that is
 * not printable ASCII written as \xHH; always NUL-terminates; returns buf. */
char	*log_escape(char *buf, size_t bufsz, const char *s, size_t len);

#endif
