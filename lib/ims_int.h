/*
 * ims_int.h - private to lib/ims*.c: the scanning context shared by the
 * scanner (ims.c), the body readers (ims_body.c) and ims_finish.c.
 *
 * Ownership as in record.h: every string put on the record is malloc'd
 * (ims_tok_dup, ims_upper_dup, rec_strdup).  ims_warn() adds a warning
 * to the message being read, bounded by limits->warnings.  Text quoted
 * in a warning goes through ims_quote() (escaped, at most QUOTE_MAX).
 */
#ifndef VMI_IMS_INT_H
#define VMI_IMS_INT_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include <glib.h>

#include "ims.h"

#define MAXTOK		32	/* tokens looked at per line */
#define ENV_MAX		64	/* environment keys in force per message */
#define QUOTE_MAX	40	/* bytes of hostile text quoted in a warning */

struct tok {
	const char	*p;
	size_t		 n;
};

enum phd_block { PHD_NONE, PHD_HEADER, PHD_COLLECTION, PHD_ACQUISITION };

struct ims_ctx {
	const struct limits *l;
	Vmingest__Record *rec;
	const char	*path;
	const char	*text;
	size_t		 len;
	size_t		 pos;		/* start of the next physical line */
	size_t		 phys_no;	/* physical lines read */

	char		*buf;		/* current logical line */
	size_t		 cap;		/* ims_line_bytes */
	size_t		 blen;
	size_t		 line_off;	/* offset of its first byte in text */
	size_t		 line_no;	/* 1-based physical line number */
	int		 line_over;	/* cut at cap */
	struct tok	 tk[MAXTOK];
	size_t		 ntk;
	char		 kw[40];	/* kwname() */

	/* the message being read (NULL outside BEGIN..STOP) */
	Vmingest__ImsMessage *m;
	int		 rank;		/* highest envelope line rank seen */
	int		 body;		/* a body line was seen */
	int		 reqlike;	/* REQUEST / SUBSCRIPTION body grammar */
	int		 sec_full;	/* ims_sections reached, warned */
	int		 req_full;	/* ims_requests reached, warned */
	char		*env[ENV_MAX];	/* "KEY value", in order of first use */
	size_t		 nenv;

	/* the section being read (NULL before the first DATA_TYPE) */
	Vmingest__ImsSection *sec;
	int		 in_section;	/* after DATA_TYPE, even when not kept */
	int		 log_section;	/* LOG / ERROR_LOG: may echo a message */
	size_t		 echo;		/* BEGIN..STOP depth echoed in it */
	int		 in_dat2;
	enum phd_block	 phd;
	int		 phd_line;
	GHashTable	*sta_seen;
	GHashTable	*chan_seen;
	int		 sta_full;
	int64_t		 transmit;	/* PHD #Header transmit time */
	double		 t0, t1;	/* section time range, t0 < 0: unset */
};

static inline int
tok_is(const struct tok *t, const char *kw)
{
	size_t	 n = strlen(kw);

	return t->n == n && strncasecmp(t->p, kw, n) == 0;
}

static inline int
blank_ok(char ch)
{
	return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\f' ||
	    ch == '\v';
}

#define QUOTE_BUF	(QUOTE_MAX * 4 + 1)

/* ims.c */
void	*ims_xmalloc(size_t);
char	*ims_tok_dup(const struct tok *);
char	*ims_upper_dup(const char *, size_t);
const char *ims_quote(char *, size_t, const char *, size_t);
void	 ims_set_str(char **, char *);
void	 ims_warn(struct ims_ctx *, const char *, ...)
	    __attribute__((format(printf, 2, 3)));
struct tok ims_rest_after(const struct ims_ctx *, size_t);
int	 ims_word_in(const struct tok *, const char *const *);
int	 ims_colon_pair(const struct tok *, struct tok *, struct tok *);

/* ims_body.c */
int	 ims_parse_uint(const char *, size_t, size_t, long *);
int	 ims_parse_datetime(const char *, size_t, const char *, size_t,
	    double *);
int	 ims_env_kind(const struct tok *);
void	 ims_env_clear(struct ims_ctx *);
void	 ims_sets_free(struct ims_ctx *);
void	 ims_end_section(struct ims_ctx *, size_t);
void	 ims_line_env(struct ims_ctx *, int);
void	 ims_line_request(struct ims_ctx *);
void	 ims_line_data_type(struct ims_ctx *);
void	 ims_line_data(struct ims_ctx *);

#endif
