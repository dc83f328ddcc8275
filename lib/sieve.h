/*
 * sieve.h - internal types of the Sieve engine behind rules.h.
 *
 * Not a public header: only lib/rules.c and lib/sieve_*.c include it.
 *
 *   sieve_lex.c    script bytes -> tokens (line:column kept on each)
 *   sieve_parse.c  tokens -> checked tree (struct sv_block); every
 *                  compile error is "name:line:column: text"
 *   sieve_msg.c    the raw message seen by tests: header index built once
 *                  per eval, values unfolded and RFC 2047 decoded lazily,
 *                  address lists, body (raw, or MIME text via GMime)
 *   sieve_match.c  comparators, match types (:is :contains :matches
 *                  :regex :value :count) and match variables
 *   sieve_eval.c   the tests, run on one message (struct sv_ctx)
 *   rules.c        the public API, the commands and the RuleResult
 *
 * OWNERSHIP: everything hung on a struct rules is owned by it and freed
 * by rules_free(); everything hung on a struct sv_ctx lives for one eval.
 * SECURITY: the script comes from the operator (trusted but possibly
 * wrong); the message is hostile.  Limits come from struct rules_limits.
 */
#ifndef VMI_SIEVE_H
#define VMI_SIEVE_H

#include <regex.h>
#include <stddef.h>
#include <stdint.h>

#include "rules.h"

/* ---- lexer ---- */

enum sv_tok_type {
	TK_EOF, TK_ID, TK_TAG, TK_NUM, TK_STR, TK_LBRACKET, TK_RBRACKET,
	TK_LPAREN, TK_RPAREN, TK_COMMA, TK_SEMI, TK_LBRACE, TK_RBRACE
};

struct sv_tok {
	int	 type;
	unsigned line, col;
	char	*s;		/* TK_ID, TK_TAG (without ':'), TK_STR; malloc'd */
	size_t	 len;
	uint64_t num;
};

struct sv_toks {
	struct sv_tok *t;
	size_t	 n, cap;
};

/* Returns 0, or -1 with "name:line:col: text" in err. */
int	sieve_lex(const char *name, const char *src, size_t len,
	    const struct rules_limits *, struct sv_toks *out, char *err,
	    size_t errlen);
void	sieve_toks_free(struct sv_toks *);

/* ---- compiled form ---- */

/* A string with variable references cut into segments at compile time. */
#define SEG_LIT		0
#define SEG_VAR		1	/* index into the variable table */
#define SEG_MATCH	2	/* ${0}..${9} */
struct sv_seg {
	int	 kind;
	size_t	 off, len;	/* SEG_LIT: bytes of s */
	size_t	 idx;
};

struct sv_str {
	char	*s;		/* NUL-terminated literal text */
	size_t	 len;
	struct sv_seg *segs;	/* NULL: no variables, use s as is */
	size_t	 nsegs;
	regex_t	*re;		/* :regex key compiled at compile time */
	uint32_t hash;		/* header name hash (lower case), if used so */
};

struct sv_strlist {
	struct sv_str *v;
	size_t	 n;
};

enum sv_cmp { CMP_CASEMAP, CMP_OCTET, CMP_NUMERIC };
enum sv_mtype { MT_IS, MT_CONTAINS, MT_MATCHES, MT_REGEX, MT_VALUE, MT_COUNT };
enum sv_rel { REL_GT, REL_GE, REL_LT, REL_LE, REL_EQ, REL_NE };
enum sv_apart { AP_ALL, AP_LOCAL, AP_DOMAIN };
enum sv_bodyxf { BX_TEXT, BX_RAW, BX_CONTENT };

enum sv_test_kind {
	T_ADDRESS, T_ENVELOPE, T_HEADER, T_EXISTS, T_SIZE, T_ALLOF, T_ANYOF,
	T_NOT, T_TRUE, T_FALSE, T_BODY, T_STRING, T_IMS
};

/* IMS fields of the vnd.vmingest `ims` test. */
enum sv_ims_field {
	IF_VERSION, IF_MSG_TYPE, IF_MSG_ID, IF_SOURCE, IF_REF_ID, IF_REF_SOURCE,
	IF_PROD_ID, IF_DELIVERY, IF_RETURN_ADDRESS, IF_RETURN_KIND,
	IF_DATA_TYPE, IF_SUBTYPE, IF_FORMAT, IF_SUB_FORMAT, IF_REQUEST,
	IF_STATION, IF_CHANNEL, IF_HELP, IF_BOUNCE, IF_SMIME, IF_COMPLETE,
	IF_COUNT, IF_NFIELDS
};

struct sv_match {
	int	 cmp;		/* enum sv_cmp */
	int	 mtype;		/* enum sv_mtype */
	int	 rel;		/* enum sv_rel, for MT_VALUE/MT_COUNT */
	int	 regex_cflags;
};

struct sv_test {
	int	 kind;
	unsigned line, col;
	struct sv_match m;
	int	 apart;		/* address, envelope */
	int	 bodyxf;	/* body */
	struct sv_strlist names;	/* headers, envelope parts, ims fields, string sources */
	struct sv_strlist keys;
	struct sv_strlist ctypes;	/* body :content */
	int	*fields;	/* ims: enum sv_ims_field per name (-1: runtime) */
	uint64_t size;
	int	 over;
	struct sv_test **kids;
	size_t	 nkids;
};

enum sv_cmd_kind {
	C_IF, C_STOP, C_KEEP, C_DISCARD, C_FILEINTO, C_SET, C_QUARANTINE,
	C_LABEL
};

struct sv_cmd;
struct sv_block {
	struct sv_cmd **c;
	size_t	 n;
};

/* set modifiers */
#define SM_LOWER	0x01
#define SM_UPPER	0x02
#define SM_LOWERFIRST	0x04
#define SM_UPPERFIRST	0x08
#define SM_QUOTEWILD	0x10
#define SM_LENGTH	0x20

struct sv_branch {
	struct sv_test *test;	/* NULL: else */
	struct sv_block blk;
};

struct sv_cmd {
	int	 kind;
	unsigned line, col;
	struct sv_branch *br;	/* C_IF: if, elsif..., else */
	size_t	 nbr;
	struct sv_str arg;	/* fileinto folder, set value, label, reason */
	size_t	 var;		/* C_SET: variable index */
	int	 copy;		/* fileinto :copy */
	int	 mods;		/* C_SET: SM_* */
};

#define CAP_FILEINTO	0x001
#define CAP_COPY	0x002
#define CAP_REGEX	0x004
#define CAP_VARIABLES	0x008
#define CAP_BODY	0x010
#define CAP_RELATIONAL	0x020
#define CAP_ENVELOPE	0x040
#define CAP_NUMERIC	0x080
#define CAP_VMINGEST	0x100

struct rules {
	char	*name;
	struct rules_limits lim;
	unsigned caps;
	struct sv_block top;
	char	**vars;		/* variable names (lower case) */
	size_t	 nvars;
	int	 uses_body;	/* any body :text/:content test */
};

int	sieve_parse(struct rules *, const struct sv_toks *, char *err,
	    size_t errlen);
void	sieve_block_free(struct sv_block *);
void	sieve_str_free(struct sv_str *);
uint32_t sieve_hash_lower(const char *s, size_t len);
int	sieve_topic_ok(const char *s, size_t len);

/* ---- the message ---- */

struct sv_hdr {
	const char *name;	/* into raw */
	size_t	 nlen;
	const char *val;	/* raw value after the colon, folded */
	size_t	 vlen;
	uint32_t hash;		/* sieve_hash_lower(name) */
	const char *dec;	/* unfolded, trimmed, decoded; NULL until asked */
	size_t	 declen;
	char	*decbuf;	/* malloc'd when dec is not a slice of raw */
	int	 have_dec;
	int	 next;	/* next header in the same hash bucket, -1 at the end */
	int	 have_addrs;	/* address list parsed (cache) */
	struct sv_val *addrs;	/* slices of addrbuf */
	size_t	 naddrs;
	char	*addrbuf;
};

struct sv_val {
	const char *p;
	size_t	 len;
};

#define SV_HDR_INLINE	64
#define SV_HBUCKETS	128	/* power of two */

struct sv_msg {
	const char *raw;
	size_t	 len;
	size_t	 body_off;
	struct sv_hdr inl[SV_HDR_INLINE];
	struct sv_hdr *h;
	int	 bucket[SV_HBUCKETS];	/* first header of each hash bucket, -1 */
	size_t	 nh, cap;
	/* body parts for :text / :content, built on first use */
	int	 have_parts;
	struct sv_part {
		char	*type;	/* "text/plain", lower case */
		char	*text;	/* decoded (UTF-8 for text types) */
		size_t	 len;
	} *parts;
	size_t	 nparts;
};

void	sieve_msg_init(struct sv_msg *, const void *raw, size_t len);
void	sieve_msg_free(struct sv_msg *);
/* The first header whose lower-cased name hashes to hash, or -1; go on
 * with m->h[i].next.  Headers come in message order. */
static inline int
sieve_msg_first(const struct sv_msg *m, uint32_t hash)
{
	return m->bucket[hash & (SV_HBUCKETS - 1)];
}
/* The decoded value of header i (cached). */
void	sieve_msg_value(struct sv_msg *, size_t i, const char **p, size_t *len);
/* The addr-specs of header i (cached); 0, or -1 out of memory. */
int	sieve_msg_addrs(struct sv_msg *, size_t i, const struct sv_val **a,
	    size_t *n);
/* Append to *out (malloc'd array) the addr-specs found in an address
 * header value; at most max entries.  Slices point into buf, a malloc'd
 * copy the caller frees. */
int	sieve_addr_parse(const char *v, size_t vlen, struct sv_val **out,
	    size_t *n, size_t max, char **buf);
void	sieve_addr_part(const char *a, size_t alen, int apart,
	    const char **p, size_t *len);
int	sieve_msg_parts(struct sv_msg *, size_t maxbytes);

/* ---- matching ---- */

#define SV_NMATCH	10

struct sv_caps {
	struct sv_val v[SV_NMATCH];
	size_t	 n;
};

/* Match value against key by m; 1 match, 0 no, -1 error (regex failed).
 * caps, when not NULL, receives the match variables on a match. */
int	sieve_match_one(const struct sv_match *, const char *val, size_t vlen,
	    const char *key, size_t klen, const regex_t *re,
	    struct sv_caps *caps);
/* Relational compare for :value/:count: 1 if (val REL key). */
int	sieve_rel_ok(int cmp, int rel, const char *val, size_t vlen,
	    const char *key, size_t klen);
/* Compile a :regex key (REG_EXTENDED; REG_ICASE for casemap). Returns 0
 * or -1 with a reason in err. Rejects back-references and big bounds. */
int	sieve_regex_compile(regex_t *, const char *pat, size_t len,
	    int cmp, size_t maxbytes, char *err, size_t errlen);

/* ---- evaluation (rules.c, sieve_eval.c) ---- */

#define RULES_REGEX_SUBJECT_DEFAULT	(8u << 10)

struct arena_blk {
	struct arena_blk *next;
	size_t	 used, cap;
	char	 data[];
};

struct sv_var {
	char	*s;
	size_t	 len;
};

struct sv_ctx {
	const struct rules *r;
	const Vmingest__Record *rec;
	struct sv_msg msg;
	Vmingest__RuleResult *out;
	struct sv_var *vars;
	struct sv_var mv[SV_NMATCH];
	size_t	 nmv;
	struct arena_blk *arena;
	size_t	 nactions;
	int	 implicit_keep, explicit_keep, discarded;
	int	 error;
	char	 errbuf[512];
	rules_trace_fn trace;
	void	*targ;
};

#define EV_OK	0
#define EV_STOP	1
#define EV_ERR	(-1)

void	sieve_rt_error(struct sv_ctx *, unsigned line, unsigned col,
	    const char *fmt, ...) __attribute__((format(printf, 4, 5)));
void	*sieve_arena_alloc(struct sv_ctx *, size_t);
int	sieve_expand(struct sv_ctx *, const struct sv_str *, unsigned line,
	    unsigned col, const char **p, size_t *len);
int	sieve_setvar(struct sv_var *, const char *s, size_t len);
int	sieve_eval_test(struct sv_ctx *, const struct sv_test *);
int	sieve_ims_field(const char *s, size_t len);	/* sieve_parse.c */

#endif
