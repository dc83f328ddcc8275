/*
 * control.c - the local control socket: `vmingest reprocess` and
 * `vmingest quarantine release` ask the running daemon to run normalize
 * and the queue's current rules again on stored raw bytes.
 *
 *   control_start  bind the socket, register it with the main loop
 *   control_free   close connections, unlink the socket
 *
 * The protocol is in control.h.  Reprocessing one seq: read its record and
 * raw bytes in a short read transaction (copied out), pipeline_run() with
 * the queue's rules and topic as the loop holds them now, set
 * reprocessed_from, and hand the new record to ingest_inject(); the loop
 * commits it in its next batch, calls us back with the new seq, then
 * publishes it.  The old record is never touched.  Work is chunked
 * (CONTROL_CHUNK messages or CONTROL_CHUNK_US per callback) and driven by
 * an eventfd we keep readable while work remains, so ingestion runs
 * between chunks; a client that reads slowly pauses its own job
 * (CONTROL_OUT_MAX) and a 50 ms timer flushes and resumes it.
 *
 * Error policy: a bad request is answered with an error line and the
 * connection stays usable; a seq that cannot be reprocessed (missing,
 * raw pruned, queue gone, not quarantined when that was asked) gets an
 * error line and the job goes on.  Socket errors close that connection
 * only.  Nothing here is fatal to the daemon.
 *
 * SECURITY: who may connect is decided by the socket's mode (0660, owner
 * and group of the daemon) and its directory; the peer's uid is logged.
 * Requests are untrusted bytes: bounded line (CONTROL_REQ_MAX), bounded
 * seq count (CONTROL_MAX_SEQS), parsed by jansson, every field type
 * checked.  The raw messages reprocessed are hostile mail and go through
 * the same pipeline and limits as at ingest.
 */
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "config.h"
#include "control.h"
#include "log.h"
#include "pipeline.h"
#include "record.h"
#include "store.h"
#include "util.h"

struct client;

/* One injected record waiting for its commit. */
struct pend {
	struct pend	*prev, *next;
	struct control	*ctl;
	struct client	*c;		/* NULL once the client is gone */
	uint64_t	 old_seq;
	int		 release;	/* a quarantine release (not to be repeated) */
	json_t		*line;		/* reply without new_seq yet */
};

struct client {
	struct control	*ctl;
	int		 fd;		/* -1 once closed */
	int		 dead;		/* to be closed at the next tick */
	int64_t		 last_us;	/* last request or reply (idle timeout) */
	char		*in;
	size_t		 inlen;
	int		 skipping;	/* dropping the rest of an over-long line */
	/* the running job */
	uint64_t	*seqs;
	size_t		 nseqs, next;
	int		 dry, qonly, release, force, active;
	size_t		 pending;	/* injected, not yet committed */
	size_t		 count, errors, changed;
	/* replies not yet sent */
	char		*out;
	size_t		 outlen, outoff, outcap;
};

struct control {
	struct ingest	*ing;
	int		 lfd, kfd, bound;
	char		*path;
	struct client	*clients[CONTROL_MAX_CLIENTS];
	struct pend	*pends;
};

static void
kick(struct control *ctl)
{
	uint64_t one = 1;

	if (write(ctl->kfd, &one, sizeof(one)) == -1 && errno != EAGAIN)
		log_warn("control: eventfd");
}

static void
client_flush(struct client *c)
{
	ssize_t	 k;

	while (c->fd != -1 && c->outoff < c->outlen) {
		k = send(c->fd, c->out + c->outoff, c->outlen - c->outoff,
		    MSG_NOSIGNAL | MSG_DONTWAIT);
		if (k == -1) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				c->outoff = c->outlen;	/* peer gone: drop */
			break;
		}
		c->outoff += (size_t)k;
	}
	if (c->outoff == c->outlen)
		c->outoff = c->outlen = 0;
}

/*
 * Stop serving c now: out of the loop, socket closed.  The struct stays
 * (callers up the stack still hold it, and so may pending commits) until
 * the next tick frees it.
 */
static void
client_kill(struct client *c)
{
	if (c->fd != -1) {
		ingest_del_fd(c->ctl->ing, c->fd);
		close(c->fd);
		c->fd = -1;
	}
	c->dead = 1;
}

/* Queue one reply line (consumes j). */
static void
client_send(struct client *c, json_t *j)
{
	char	*s = json_dumps(j, JSON_COMPACT);
	size_t	 n;

	json_decref(j);
	if (s == NULL || c->fd == -1) {
		free(s);
		return;
	}
	n = strlen(s);
	if (c->outlen - c->outoff + n + 1 > CONTROL_OUT_HARD) {
		/* it sends requests and reads no reply: close it (at the tick) */
		if (!c->dead)
			log_warnx("control: a client reads none of its %zu bytes of "
			    "replies; closing it", c->outlen - c->outoff);
		client_kill(c);
		free(s);
		return;
	}
	c->last_us = util_mono_us();
	if (c->outlen + n + 1 > c->outcap) {
		size_t cap = c->outcap ? c->outcap : 4096;

		while (cap < c->outlen + n + 1)
			cap *= 2;
		if ((c->out = realloc(c->out, cap)) == NULL)
			log_fatal("realloc");
		c->outcap = cap;
	}
	memcpy(c->out + c->outlen, s, n);
	c->out[c->outlen + n] = '\n';
	c->outlen += n + 1;
	free(s);
	client_flush(c);
}

static void
job_clear(struct client *c)
{
	free(c->seqs);
	c->seqs = NULL;
	c->nseqs = c->next = 0;
	c->active = 0;
	c->pending = c->count = c->errors = c->changed = 0;
}

/* The job is finished when every seq was taken and every inject committed. */
static void
job_maybe_done(struct client *c)
{
	if (!c->active || c->next < c->nseqs || c->pending > 0)
		return;
	client_send(c, json_pack("{s:b,s:I,s:I,s:I}", "done", 1,
	    "count", (json_int_t)c->count, "errors", (json_int_t)c->errors,
	    "changed", (json_int_t)c->changed));
	log_info("control: reprocess done count=%zu errors=%zu changed=%zu "
	    "dry_run=%d", c->count, c->errors, c->changed, c->dry);
	job_clear(c);
}

static void
client_free(struct client *c)
{
	struct control *ctl = c->ctl;
	struct pend *p;
	size_t	 i;

	for (p = ctl->pends; p != NULL; p = p->next)
		if (p->c == c)
			p->c = NULL;
	for (i = 0; i < CONTROL_MAX_CLIENTS; i++)
		if (ctl->clients[i] == c)
			ctl->clients[i] = NULL;
	if (c->fd != -1) {
		ingest_del_fd(ctl->ing, c->fd);
		close(c->fd);
	}
	free(c->in);
	free(c->out);
	free(c->seqs);
	free(c);
}

static json_t *
summary(const Vmingest__Record *r)
{
	json_t	*t = json_array();
	size_t	 i;

	for (i = 0; i < r->n_topics; i++)
		json_array_append_new(t, json_string(r->topics[i]->topic ?
		    r->topics[i]->topic : ""));
	return json_pack("{s:s,s:o,s:s}", "disposition",
	    disposition_name(r->disposition), "topics", t, "reason",
	    r->reason && utf8_valid_ok(r->reason, strlen(r->reason)) ?
	    r->reason : "");
}

static int
same_outcome(const Vmingest__Record *a, const Vmingest__Record *b)
{
	size_t	 i;

	if (a->disposition != b->disposition || a->n_topics != b->n_topics)
		return 0;
	for (i = 0; i < a->n_topics; i++)
		if (strcmp(a->topics[i]->topic ? a->topics[i]->topic : "",
		    b->topics[i]->topic ? b->topics[i]->topic : ""))
			return 0;
	return 1;
}

static void
seq_error(struct client *c, uint64_t seq, const char *why)
{
	c->errors++;
	client_send(c, json_pack("{s:I,s:s}", "seq", (json_int_t)seq, "error", why));
	log_info("control: reprocess seq=%llu error=\"%s\"",
	    (unsigned long long)seq, why);
}

static void
on_committed(void *arg, uint64_t seq)
{
	struct pend *p = arg;
	struct control *ctl = p->ctl;
	struct client *c = p->c;

	if (p->prev != NULL)
		p->prev->next = p->next;
	else
		ctl->pends = p->next;
	if (p->next != NULL)
		p->next->prev = p->prev;
	log_info("control: seq=%llu reprocessed_from=%llu",
	    (unsigned long long)seq, (unsigned long long)p->old_seq);
	if (c != NULL) {
		json_object_set_new(p->line, "new_seq", json_integer((json_int_t)seq));
		client_send(c, p->line);
		p->line = NULL;
		c->pending--;
		job_maybe_done(c);
	}
	json_decref(p->line);
	free(p);
}

/*
 * Whether seq was released already: a record re-ran it (the store's
 * index), or a release of it is on its way to the store.
 */
static int
released(struct control *ctl, uint64_t seq, char *why, size_t whylen)
{
	struct store_rtxn *r;
	struct pend *p;
	uint64_t as;
	int	 found = 0;

	for (p = ctl->pends; p != NULL; p = p->next)
		if (p->old_seq == seq && p->release) {
			snprintf(why, whylen, "being released already");
			return 1;
		}
	if (store_rbegin(ingest_store(ctl->ing), &r) == 0) {
		if (store_find_reprocessed(r, seq, &as) == 0) {
			snprintf(why, whylen, "released already as %llu (force to do "
			    "it again)", (unsigned long long)as);
			found = 1;
		}
		store_rend(r);
	}
	return found;
}

/* Reprocess one seq of client c's job. */
static void
do_one(struct client *c, uint64_t seq)
{
	struct control *ctl = c->ctl;
	struct ingest *ing = ctl->ing;
	const struct config *cf = ingest_config(ing);
	const struct queue_cfg *qc;
	const struct rules *rules;
	struct store_rtxn *r = NULL;
	Vmingest__Record *old = NULL, *rec;
	struct pipeline_in in;
	const void *rp;
	const char *topic = NULL;
	uint8_t	*raw = NULL;
	size_t	 len = 0;
	json_t	*line;
	struct pend *p;
	char	 why[128];
	int	 rc, changed;

	c->count++;
	if ((rc = store_rbegin(ingest_store(ing), &r)) != 0) {
		seq_error(c, seq, store_strerror(rc));
		return;
	}
	rc = store_get_record(r, seq, &old);
	if (rc == 0) {
		rc = store_get_raw(r, seq, &rp, &len);
		if (rc == 0) {
			if ((raw = malloc(len ? len : 1)) == NULL)
				log_fatal("malloc");
			memcpy(raw, rp, len);
		}
	}
	store_rend(r);
	if (old == NULL) {
		seq_error(c, seq, rc == STORE_E_NOTFOUND ? "no such record" :
		    store_strerror(rc));
		return;
	}
	if (raw == NULL) {
		seq_error(c, seq, rc == STORE_E_NOTFOUND ? "raw bytes pruned by "
		    "retention" : store_strerror(rc));
		goto out;
	}
	if (c->qonly && old->disposition != VMINGEST__DISPOSITION__QUARANTINED) {
		seq_error(c, seq, "not quarantined");
		goto out;
	}
	if (c->release && !c->force && released(ctl, seq, why, sizeof(why))) {
		/* twice at once, or again: it would be published twice */
		seq_error(c, seq, why);
		goto out;
	}
	if (old->queue == NULL || (qc = config_queue(cf, old->queue)) == NULL) {
		seq_error(c, seq, "its queue is no longer configured");
		goto out;
	}
	rules = ingest_queue_rules(ing, old->queue, &topic);
	memset(&in, 0, sizeof(in));
	in.queue = old->queue;
	in.topic = topic ? topic : qc->topic;
	in.rules = rules;
	in.rules_path = qc->rules;
	in.maildir_name = old->maildir_name;
	/* received now: the time index stays in seq order (see replay) */
	in.received_at_us = util_now_us();
	in.ctime_us = old->ctime_us;
	rec = pipeline_run(&cf->limits, &in, raw, len);
	rec->reprocessed_from = seq;
	if (old->disposition == VMINGEST__DISPOSITION__DUPLICATE) {
		/* the same bytes as an earlier record, whatever the rules say now */
		rec->disposition = VMINGEST__DISPOSITION__DUPLICATE;
		rec->duplicate_of = old->duplicate_of;
		rec_set_str(&rec->reason, old->reason);
		while (rec->n_topics > 0)
			vmingest__topic_seq__free_unpacked(
			    rec->topics[--rec->n_topics], NULL);
	}
	changed = !same_outcome(old, rec);
	if (changed)
		c->changed++;
	line = json_pack("{s:I,s:b,s:o,s:o}", "seq", (json_int_t)seq,
	    "changed", changed, "old", summary(old), "new", summary(rec));
	if (c->dry) {
		client_send(c, line);
		record_free(rec);
		goto out;
	}
	if ((p = calloc(1, sizeof(*p))) == NULL)
		log_fatal("calloc");
	p->ctl = ctl;
	p->c = c;
	p->old_seq = seq;
	p->release = c->release;
	p->line = line;
	p->next = ctl->pends;
	if (ctl->pends != NULL)
		ctl->pends->prev = p;
	ctl->pends = p;
	/* -1 only means the loop's wakeup failed: the job is queued anyway
	 * and committed at the next tick, so the callback still comes */
	c->pending++;
	if (ingest_inject(ing, old->queue, rec, raw, len, on_committed, p) != 0)
		log_warn("control: inject seq=%llu: wakeup", (unsigned long long)seq);
	raw = NULL;
out:
	free(raw);
	record_free(old);
}

static int
runnable(const struct client *c)
{
	return c->active && !c->dead && c->next < c->nseqs && c->fd != -1 &&
	    c->outlen - c->outoff < CONTROL_OUT_MAX;
}

/* The eventfd is readable: run one bounded chunk over the clients' jobs. */
static void
on_kick(int fd, void *arg)
{
	struct control *ctl = arg;
	uint64_t v;
	int64_t	 t0 = util_mono_us();
	unsigned done = 0;
	size_t	 i;
	int	 more = 0;

	if (read(fd, &v, sizeof(v)) == -1 && errno != EAGAIN)
		log_warn("control: eventfd read");
	for (i = 0; i < CONTROL_MAX_CLIENTS; i++) {
		struct client *c = ctl->clients[i];

		while (c != NULL && runnable(c) && done < CONTROL_CHUNK &&
		    util_mono_us() - t0 < CONTROL_CHUNK_US) {
			do_one(c, c->seqs[c->next++]);
			done++;
		}
		if (c != NULL) {
			job_maybe_done(c);
			if (runnable(c))
				more = 1;
		}
	}
	if (more)
		kick(ctl);
}

/* Every 50 ms: flush slow readers, resume paused jobs. */
static void
on_timer(void *arg)
{
	struct control *ctl = arg;
	size_t	 i;
	int	 more = 0;

	for (i = 0; i < CONTROL_MAX_CLIENTS; i++) {
		struct client *c = ctl->clients[i];

		if (c == NULL)
			continue;
		if (!c->dead && !c->active && c->outoff == c->outlen &&
		    util_mono_us() - c->last_us > CONTROL_IDLE_US) {
			/* three idle connections would keep everyone else out */
			log_info("control: connection idle for %d s; closed",
			    CONTROL_IDLE_US / 1000000);
			client_kill(c);
		}
		if (c->dead) {
			if (c->active && c->next < c->nseqs)
				log_info("control: client closed; %zu seq(s) not "
				    "reprocessed", c->nseqs - c->next);
			client_free(c);
			continue;
		}
		client_flush(c);
		if (runnable(c))
			more = 1;
	}
	if (more)
		kick(ctl);
}

static void
bad_request(struct client *c, const char *why)
{
	client_send(c, json_pack("{s:b,s:s}", "done", 1, "error", why));
	log_info("control: bad request: %s", why);
}

static void
handle_request(struct client *c, const char *line, size_t len)
{
	json_t	*req, *seqs, *v;
	json_error_t jerr;
	const char *op;
	size_t	 i, n;

	if ((req = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr)) == NULL ||
	    !json_is_object(req)) {
		bad_request(c, "request is not a JSON object");
		json_decref(req);
		return;
	}
	op = json_string_value(json_object_get(req, "op"));
	if (op != NULL && !strcmp(op, "ping")) {
		client_send(c, json_pack("{s:b,s:b}", "done", 1, "ok", 1));
		goto out;
	}
	if (op == NULL || strcmp(op, "reprocess") != 0) {
		bad_request(c, "unknown op (ping, reprocess)");
		goto out;
	}
	if (c->active) {
		bad_request(c, "a request is still running on this connection");
		goto out;
	}
	seqs = json_object_get(req, "seqs");
	if (!json_is_array(seqs) || json_array_size(seqs) > CONTROL_MAX_SEQS) {
		bad_request(c, "seqs must be an array of at most 65536 seqs");
		goto out;
	}
	if ((v = json_object_get(req, "dry_run")) != NULL && !json_is_boolean(v)) {
		bad_request(c, "dry_run must be true or false");
		goto out;
	}
	c->dry = json_is_true(v);
	if ((v = json_object_get(req, "quarantined_only")) != NULL &&
	    !json_is_boolean(v)) {
		bad_request(c, "quarantined_only must be true or false");
		goto out;
	}
	c->qonly = json_is_true(v);
	if ((v = json_object_get(req, "release")) != NULL && !json_is_boolean(v)) {
		bad_request(c, "release must be true or false");
		goto out;
	}
	c->release = json_is_true(v);
	if ((v = json_object_get(req, "force")) != NULL && !json_is_boolean(v)) {
		bad_request(c, "force must be true or false");
		goto out;
	}
	c->force = json_is_true(v);
	if ((v = json_object_get(req, "epoch")) != NULL) {
		char	 mine[17];

		snprintf(mine, sizeof(mine), "%016llx", (unsigned long long)
		    store_epoch(ingest_store(c->ctl->ing)));
		if (!json_is_string(v) || strcmp(json_string_value(v), mine) != 0) {
			/* seqs chosen in another store name other records here */
			bad_request(c, "the seqs come from another store (its epoch "
			    "is not this daemon's)");
			goto out;
		}
	}
	c->nseqs = json_array_size(seqs);
	if ((c->seqs = calloc(c->nseqs ? c->nseqs : 1, sizeof(uint64_t))) == NULL)
		log_fatal("calloc");
	json_array_foreach(seqs, i, v) {
		if (!json_is_integer(v) || json_integer_value(v) <= 0) {
			job_clear(c);
			bad_request(c, "every seq must be a positive integer");
			goto out;
		}
		c->seqs[i] = (uint64_t)json_integer_value(v);
	}
	/* each seq once: "release 7 7" must not make two records */
	qsort(c->seqs, c->nseqs, sizeof(uint64_t), util_cmp_u64);
	for (i = 0, n = 0; i < c->nseqs; i++)
		if (n == 0 || c->seqs[i] != c->seqs[n - 1])
			c->seqs[n++] = c->seqs[i];
	c->nseqs = n;
	c->next = 0;
	c->active = 1;
	log_info("control: reprocess n=%zu dry_run=%d quarantined_only=%d "
	    "release=%d force=%d", c->nseqs, c->dry, c->qonly, c->release,
	    c->force);
	job_maybe_done(c);	/* an empty list is done at once */
	if (c->active)
		kick(c->ctl);
out:
	json_decref(req);
}

static void
on_client(int fd, void *arg)
{
	struct client *c = arg;
	char	 buf[65536], *nl, *p;
	ssize_t	 k;
	size_t	 n, seg;
	int	 reads;

	/* a few reads a wake-up: one client cannot hold the main loop */
	for (reads = 0; reads < CONTROL_READS && !c->dead; reads++) {
		k = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (k == -1 && errno == EINTR)
			continue;
		if (k == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (k <= 0) {
			/* hung up: cancel what was not handed to the loop yet */
			if (c->active && c->next < c->nseqs)
				log_info("control: client left; %zu seq(s) not "
				    "reprocessed", c->nseqs - c->next);
			client_free(c);
			return;
		}
		c->last_us = util_mono_us();
		/* split into lines; every complete line is one request */
		for (p = buf, n = (size_t)k; n > 0 && !c->dead; ) {
			nl = memchr(p, '\n', n);
			seg = nl != NULL ? (size_t)(nl - p) : n;
			if (c->skipping) {
				/* the rest of an over-long line: drop it */
				if (nl != NULL)
					c->skipping = 0;
			} else if (c->inlen + seg > CONTROL_REQ_MAX) {
				bad_request(c, "request line too long");
				c->inlen = 0;
				c->skipping = nl == NULL;
			} else {
				if ((c->in = realloc(c->in, c->inlen + seg + 1)) == NULL)
					log_fatal("realloc");
				memcpy(c->in + c->inlen, p, seg);
				c->inlen += seg;
				if (nl != NULL) {
					handle_request(c, c->in, c->inlen);
					c->inlen = 0;
				}
			}
			if (nl == NULL)
				break;
			p = nl + 1;
			n -= seg + 1;
		}
	}
}

static void
on_accept(int lfd, void *arg)
{
	struct control *ctl = arg;
	struct client *c;
	struct ucred cr;
	socklen_t crl = sizeof(cr);
	size_t	 i;
	int	 fd;

	while ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) != -1) {
		for (i = 0; i < CONTROL_MAX_CLIENTS; i++)
			if (ctl->clients[i] == NULL)
				break;
		if (i == CONTROL_MAX_CLIENTS) {
			static const char busy[] =
			    "{\"done\":true,\"error\":\"too many control connections\"}\n";
			(void)!send(fd, busy, sizeof(busy) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
			close(fd);
			continue;
		}
		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &crl) == 0)
			log_info("control: connection uid=%ld pid=%ld",
			    (long)cr.uid, (long)cr.pid);
		if ((c = calloc(1, sizeof(*c))) == NULL)
			log_fatal("calloc");
		c->ctl = ctl;
		c->fd = fd;
		c->last_us = util_mono_us();
		if (ingest_add_fd(ctl->ing, fd, on_client, c) == -1) {
			log_warnx("control: no room in the loop for a connection");
			close(fd);
			free(c);
			continue;
		}
		ctl->clients[i] = c;
	}
	if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
		log_warn("control: accept");
}

struct control *
control_start(struct ingest *ing, char *err, size_t errlen)
{
	const struct config *cf = ingest_config(ing);
	struct control *ctl;
	struct sockaddr_un sun;
	struct stat sb;
	mode_t	 old;
	const char *path = cf->daemon.control_socket;

	if (path == NULL || path[0] == '\0' || !strcmp(path, "off")) {
		snprintf(err, errlen, "control: no [daemon] control_socket");
		return NULL;
	}
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path) >=
	    (int)sizeof(sun.sun_path)) {
		snprintf(err, errlen, "control: socket path too long (max %zu): %s",
		    sizeof(sun.sun_path) - 1, path);
		return NULL;
	}
	if ((ctl = calloc(1, sizeof(*ctl))) == NULL)
		log_fatal("calloc");
	ctl->ing = ing;
	ctl->lfd = ctl->kfd = -1;
	if ((ctl->path = strdup(path)) == NULL)
		log_fatal("strdup");
	/* a socket left by a daemon that died; the store lock already makes
	 * sure no other daemon runs on this state */
	if (lstat(path, &sb) == 0 && S_ISSOCK(sb.st_mode))
		unlink(path);
	if ((ctl->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0)) == -1)
		goto syserr;
	old = umask(0117);	/* the socket is made 0660 */
	if (bind(ctl->lfd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		umask(old);
		goto syserr;
	}
	umask(old);
	ctl->bound = 1;
	if (chmod(path, 0660) == -1 || listen(ctl->lfd, 8) == -1)
		goto syserr;
	if ((ctl->kfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) == -1)
		goto syserr;
	if (ingest_add_fd(ing, ctl->lfd, on_accept, ctl) == -1 ||
	    ingest_add_fd(ing, ctl->kfd, on_kick, ctl) == -1 ||
	    ingest_add_timer(ing, 50, on_timer, ctl) == -1) {
		snprintf(err, errlen, "control: no room in the main loop");
		control_free(ctl);
		return NULL;
	}
	log_info("control: listening on %s", path);
	return ctl;
syserr:
	snprintf(err, errlen, "control: %s: %s", path, strerror(errno));
	control_free(ctl);
	return NULL;
}

void
control_free(struct control *ctl)
{
	struct pend *p, *n;
	size_t	 i;

	if (ctl == NULL)
		return;
	for (i = 0; i < CONTROL_MAX_CLIENTS; i++)
		if (ctl->clients[i] != NULL)
			client_free(ctl->clients[i]);
	/* injects the loop never committed (stopped first): their callbacks
	 * will not come */
	for (p = ctl->pends; p != NULL; p = n) {
		n = p->next;
		json_decref(p->line);
		free(p);
	}
	if (ctl->lfd != -1) {
		ingest_del_fd(ctl->ing, ctl->lfd);
		close(ctl->lfd);
	}
	if (ctl->bound)
		unlink(ctl->path);
	if (ctl->kfd != -1) {
		ingest_del_fd(ctl->ing, ctl->kfd);
		close(ctl->kfd);
	}
	free(ctl->path);
	free(ctl);
}
