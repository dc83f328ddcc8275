/*
 * util.h - the few helpers every module needs once.
 *
 *   util_now_us    wall clock (CLOCK_REALTIME), microseconds since the epoch
 *   util_mono_us   monotonic clock, microseconds (for intervals and deadlines)
 *   xmalloc, xcalloc, xrealloc, xstrdup
 *                  allocate or die (log_fatal): out of memory is fatal,
 *                  limits keep every allocation bounded (STYLE.md 6)
 *   util_read_upto read at most n bytes of an fd into a malloc'd buffer with
 *                  a NUL after them; NULL with errno on failure
 *   topic_prefix_match
 *                  1 if topic starts with one of the n prefixes, or n is 0
 *                  (subscriptions and replay requests filter this way)
 *   topic_chars_ok 1 if t has only the topic alphabet [a-z0-9_.-] and is
 *                  under 256 bytes (empty only with empty_ok: a prefix)
 *   util_cmp_u64   qsort comparison of uint64_t
 */
#ifndef VMI_UTIL_H
#define VMI_UTIL_H

#include <stddef.h>
#include <stdint.h>

int64_t	 util_now_us(void);
int64_t	 util_mono_us(void);
void	*xmalloc(size_t);
void	*xcalloc(size_t, size_t);
void	*xrealloc(void *, size_t);
char	*xstrdup(const char *);
char	*util_read_upto(int fd, size_t n, size_t *len);
int	 topic_prefix_match(const char *topic, char *const *prefixes, size_t n);
int	 topic_chars_ok(const char *t, int empty_ok);
int	 util_cmp_u64(const void *, const void *);

#endif
