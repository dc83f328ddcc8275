/*
 * config.h - vmingestd.conf (INI, parsed with inih).
 *
 *   config_load      parse a file; NULL path means the embedded default
 *   config_free      release (NULL is a no-op)
 *   config_queue     find a queue by name
 *   config_dump      write the effective configuration (every key) to a FILE
 *
 * Every key has a default, a type and bounds in the table in config.c;
 * config/vmingestd.conf documents each.  Unknown sections and keys are
 * errors.  On error config_load returns NULL and err holds
 * "FILE:LINE: [section] key: what is wrong".
 *
 * Paths in the file are used as written (relative ones are relative to the
 * daemon's working directory, as with the embedded default).
 */
#ifndef VMI_CONFIG_H
#define VMI_CONFIG_H

#include <stddef.h>
#include <stdio.h>

#include "limits.h"
#include "rules.h"

#define CONFIG_KEEP_NONE	0
#define CONFIG_KEEP_CUR		1
#define CONFIG_MAX_QUEUES	64
#define CONFIG_MAX_ENDPOINTS	8

struct queue_cfg {
	char	*name;
	char	*maildir;	/* the Maildir (holds tmp/ new/ cur/) */
	char	*topic;		/* default topic, or "auto" */
	char	*rules;		/* Sieve script path or NULL */
	int	 keep;		/* CONFIG_KEEP_* */
};

struct config {
	char	*path;		/* file read, or NULL for the embedded default */

	struct {
		char	*state_dir;
		char	*user;
		char	*group;
		int	 allow_root;
		unsigned workers;	/* 0 = one per CPU */
		char	*control_socket;
		unsigned watchdog_s;
	} daemon;

	struct {
		char	*path;
		size_t	 map_size;
		unsigned batch_max;
		unsigned batch_delay_ms;
		unsigned rescan_s;
		unsigned retain_days;
		size_t	 retain_bytes;
		unsigned retain_raw_days;
		unsigned min_free_pct;	/* readiness headroom for map and disk */
		unsigned inflight;	/* files read ahead of the commit */
	} store;

	struct limits limits;
	struct rules_limits rules;

	struct {
		char	*listen;	/* "host:port", "[v6]:port" or "off" */
		unsigned max_connections;
		unsigned per_ip;
		unsigned timeout_s;
		size_t	 request_bytes;
		unsigned stall_s;
	} http;

	struct {
		char	*endpoints[CONFIG_MAX_ENDPOINTS];
		size_t	 n_endpoints;
		char	*replay_endpoint;
		unsigned heartbeat_ms;
		unsigned sndhwm;
		unsigned replay_batch;
		unsigned replay_progress_ms;
		char	*curve_secret_key_file;
		char	*authorized_keys_dir;
		int	 allow_insecure;
	} publish;

	struct queue_cfg queues[CONFIG_MAX_QUEUES];
	size_t	 n_queues;
};

struct config *config_load(const char *path, char *err, size_t errlen);
void	config_free(struct config *);
const struct queue_cfg *config_queue(const struct config *, const char *name);
void	config_dump(const struct config *, FILE *);
/* Parse "123", "64K", "16M", "8G" into bytes; 0 ok, -1 bad. */
int	config_parse_size(const char *s, size_t *out);
/* 1 if s is a valid topic: dot-separated segments of [a-z0-9_-]. */
int	config_topic_ok(const char *s);

#endif
