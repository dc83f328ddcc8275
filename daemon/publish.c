/*
 * publish.c - the live feed: after each durable commit the main loop
 * hands every PUBLISHED record to publisher_submit(); the PUB thread
 * sends it once per topic as [topic][Envelope][Record] and sends a
 * heartbeat every [publish] heartbeat_ms on topic PUBLISH_HB_TOPIC
 * (docs/PROTOCOL.md).  publisher_start also starts the ZAP handler
 * (zap.c) and the replay service (replay.c), all on one zmq context.
 *
 *   publisher_start   check endpoints, start ZAP, bind PUB, start threads
 *   publisher_submit  enqueue a committed record (main thread; never blocks)
 *   publisher_flush   wake the PUB thread for what was enqueued
 *   publisher_stop    send what is queued, stop the threads, close
 *   publisher_stats   counters and topic heads (any thread)
 *
 * Hand-over: a bounded ring (PUBLISH_QUEUE records) under a mutex, with
 * an eventfd that wakes the PUB thread's zmq_poll once per committed
 * batch (and every PUBLISH_FLUSH_EVERY records within a large one).  Each record comes with the bytes the store wrote, so it is
 * packed once.  When the ring is full
 * the record is dropped and counted: it is in the store already, and the
 * next heartbeat (whose heads are then re-read from the store) makes
 * every subscriber of that topic fetch it from the replay service.
 *
 * Heads: the PUB thread keeps the head topic_seq of every topic it has
 * sent, seeded from the store at start, so a heartbeat never announces a
 * record that has not been sent before it on the same socket (subscribers
 * see a heartbeat ahead of them only when they really lost something).
 *
 * Error policy: a bind failure or an insecure bind is a start-up error;
 * a failed send is counted and the record is left to the log.
 *
 * SECURITY: binding a non-loopback tcp:// endpoint without CURVE is
 * refused unless [publish] allow_insecure = yes.  With CURVE, only keys
 * in authorized_keys_dir are admitted (zap.c); every rejected handshake
 * is logged and counted from a socket monitor.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <glib.h>
#include <zmq.h>

#include "log.h"
#include "publish.h"
#include "record.h"
#include "replay.h"
#include "zap.h"
#include "util.h"

#define PUBLISH_QUEUE		16384
#define PUBLISH_FLUSH_EVERY	256	/* submits without waking the PUB thread, at most */
#define PUBLISH_HB_HEADS	512	/* heads per heartbeat message */

struct head {
	uint64_t ts;
	uint64_t published;
};

/* A committed record and the bytes the store wrote for it. */
struct pub_item {
	Vmingest__Record *rec;
	uint8_t	*packed;	/* may be NULL: packed by the PUB thread */
	size_t	 plen;
};

struct publisher {
	const struct config *cf;
	struct store *st;
	void	*ctx;
	void	*pub;
	void	*mon;
	struct zap *zap;
	struct replay *replay;
	uint64_t epoch;
	pthread_t thr;
	int	 started;

	/* hand-over ring; mu */
	pthread_mutex_t mu;
	struct pub_item *ring;
	size_t	 head, len;
	int	 efd;
	unsigned unflushed;	/* submitted since the last wake-up (main thread) */
	int	 stopping;

	/* stats; smu (the PUB thread writes, anyone reads) */
	pthread_mutex_t smu;
	GHashTable *heads;	/* topic -> struct head */
	uint64_t head_seq;
	uint64_t published;
	uint64_t dropped;
	uint64_t send_errors;
	struct zap_counters mc;
	uint64_t dropped_seen;	/* PUB thread: dropped at the last heads refresh */
};

/* Called with smu held. */
static void
head_set(struct publisher *p, const char *topic, uint64_t ts, int sent)
{
	struct head *h = g_hash_table_lookup(p->heads, topic);

	if (h == NULL) {
		if ((h = calloc(1, sizeof(*h))) == NULL)
			log_fatal("calloc");
		g_hash_table_insert(p->heads, g_strdup(topic), h);
	}
	if (ts > h->ts)
		h->ts = ts;
	if (sent)
		h->published++;
}

static int
seed_head(const char *topic, uint64_t head, void *arg)
{
	head_set(arg, topic, head, 0);
	return 0;
}

/* Re-read topic heads and head seq from the store (start, after drops). */
static void
heads_from_store(struct publisher *p)
{
	struct store_rtxn *r;
	uint64_t hs;

	if (store_rbegin(p->st, &r) != 0) {
		log_warnx("publish: cannot read topic heads from the store");
		return;
	}
	pthread_mutex_lock(&p->smu);
	store_topics(r, seed_head, p);
	hs = store_head(r);
	if (hs > p->head_seq)
		p->head_seq = hs;
	pthread_mutex_unlock(&p->smu);
	store_rend(r);
}

static void
free_buf(void *data, void *hint)
{
	free(data);
}

static int
send_frame(void *sock, const void *p, size_t n, int flags)
{
	return zmq_send(sock, p, n, flags) == -1 ? -1 : 0;
}

static int
send_envelope(void *sock, const Vmingest__Envelope *env, int flags)
{
	uint8_t	 small[512], *buf = small;
	size_t	 n = vmingest__envelope__get_packed_size(env);
	int	 rc;

	if (n > sizeof(small) && (buf = malloc(n)) == NULL)
		log_fatal("malloc");
	vmingest__envelope__pack(env, buf);
	rc = send_frame(sock, buf, n, flags);
	if (buf != small)
		free(buf);
	return rc;
}

static void
send_record(struct publisher *p, struct pub_item *it)
{
	Vmingest__Envelope env = VMINGEST__ENVELOPE__INIT;
	Vmingest__Record *rec = it->rec;
	zmq_msg_t body, copy;
	uint8_t	*buf = it->packed;
	size_t	 len = it->plen, i;
	int	 failed = 0;

	it->packed = NULL;	/* the zmq message owns it now */
	if (buf == NULL && record_pack(rec, &buf, &len) != 0) {
		free(buf);
		log_warnx("publish: seq=%llu: cannot pack", (unsigned long long)rec->seq);
		return;
	}
	/* one body, shared by the per-topic sends (zmq_msg_copy is refcounted) */
	if (zmq_msg_init_data(&body, buf, len, free_buf, NULL) != 0)
		log_fatal("zmq_msg_init_data");
	env.epoch = p->epoch;
	env.seq = rec->seq;
	env.kind = VMINGEST__ENVELOPE__KIND__RECORD;
	env.head_seq = rec->seq;
	env.sent_at_us = util_now_us();
	for (i = 0; i < rec->n_topics; i++) {
		const char *t = rec->topics[i]->topic;

		env.topic_seq = rec->topics[i]->topic_seq;
		env.topic = pb_str(t);
		zmq_msg_init(&copy);
		zmq_msg_copy(&copy, &body);
		if (send_frame(p->pub, t, strlen(t), ZMQ_SNDMORE) != 0 ||
		    send_envelope(p->pub, &env, ZMQ_SNDMORE) != 0 ||
		    zmq_msg_send(&copy, p->pub, 0) == -1) {
			zmq_msg_close(&copy);
			failed++;
		}
	}
	zmq_msg_close(&body);

	pthread_mutex_lock(&p->smu);
	for (i = 0; i < rec->n_topics; i++)
		head_set(p, rec->topics[i]->topic, rec->topics[i]->topic_seq, 1);
	if (rec->seq > p->head_seq)
		p->head_seq = rec->seq;
	p->published++;
	p->send_errors += (uint64_t)failed;
	pthread_mutex_unlock(&p->smu);
	if (failed)
		log_warnx("publish: seq=%llu: %d send(s) failed: %s",
		    (unsigned long long)rec->seq, failed, zmq_strerror(errno));
}

static gint
cmp_str(gconstpointer a, gconstpointer b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/*
 * Heartbeat: epoch, head seq, the head topic_seq of every topic (several
 * messages of PUBLISH_HB_HEADS heads when there are many topics).
 */
static void
send_heartbeat(struct publisher *p)
{
	Vmingest__Envelope env = VMINGEST__ENVELOPE__INIT;
	Vmingest__TopicHead *th = NULL, **thp = NULL;
	GPtrArray *names;
	GHashTableIter it;
	gpointer k, v;
	size_t	 i, n, off = 0;
	uint64_t dropped;

	pthread_mutex_lock(&p->smu);
	dropped = p->dropped;
	pthread_mutex_unlock(&p->smu);
	if (dropped != p->dropped_seen) {
		/* records were dropped at hand-over: announce the store's heads */
		heads_from_store(p);
		p->dropped_seen = dropped;
	}

	pthread_mutex_lock(&p->smu);
	n = g_hash_table_size(p->heads);
	names = g_ptr_array_sized_new((guint)n);
	g_hash_table_iter_init(&it, p->heads);
	while (g_hash_table_iter_next(&it, &k, &v))
		g_ptr_array_add(names, k);
	g_ptr_array_sort(names, cmp_str);
	if (n > 0) {
		th = calloc(n, sizeof(*th));
		thp = calloc(n, sizeof(*thp));
		if (th == NULL || thp == NULL)
			log_fatal("calloc");
	}
	for (i = 0; i < n; i++) {
		struct head *h = g_hash_table_lookup(p->heads, names->pdata[i]);

		vmingest__topic_head__init(&th[i]);
		th[i].topic = names->pdata[i];
		th[i].topic_seq = h->ts;
		thp[i] = &th[i];
	}
	env.epoch = p->epoch;
	env.kind = VMINGEST__ENVELOPE__KIND__HEARTBEAT;
	env.head_seq = p->head_seq;
	env.sent_at_us = util_now_us();
	env.topic = pb_str(PUBLISH_HB_TOPIC);
	/* parts numbered, so a subscriber can tell it saw the whole heartbeat */
	env.parts = n > 0 ? (uint32_t)((n + PUBLISH_HB_HEADS - 1) / PUBLISH_HB_HEADS) : 1;
	env.part = 0;
	do {
		env.part++;
		env.heads = thp ? thp + off : NULL;
		env.n_heads = n - off > PUBLISH_HB_HEADS ? PUBLISH_HB_HEADS : n - off;
		if (send_frame(p->pub, PUBLISH_HB_TOPIC, strlen(PUBLISH_HB_TOPIC),
		    ZMQ_SNDMORE) != 0 || send_envelope(p->pub, &env, 0) != 0)
			p->send_errors++;
		off += env.n_heads;
	} while (off < n);
	pthread_mutex_unlock(&p->smu);
	g_ptr_array_free(names, TRUE);
	free(th);
	free(thp);
}

/* Take up to max records off the ring. */
static size_t
ring_take(struct publisher *p, struct pub_item *out, size_t max, int *stopping)
{
	size_t	 n = 0;

	pthread_mutex_lock(&p->mu);
	while (p->len > 0 && n < max) {
		out[n++] = p->ring[p->head];
		p->head = (p->head + 1) % PUBLISH_QUEUE;
		p->len--;
	}
	*stopping = p->stopping;
	pthread_mutex_unlock(&p->mu);
	return n;
}

static void *
pub_main(void *arg)
{
	struct publisher *p = arg;
	struct pub_item batch[256];
	zmq_pollitem_t it[2];
	int64_t	 next_hb = (util_mono_us() / 1000), now;
	uint64_t x;
	size_t	 n, i, total;
	int	 stopping = 0, nit;

	for (;;) {
		now = (util_mono_us() / 1000);
		if (now >= next_hb) {
			send_heartbeat(p);
			next_hb = now + p->cf->publish.heartbeat_ms;
		}
		memset(it, 0, sizeof(it));
		it[0].fd = p->efd;
		it[0].events = ZMQ_POLLIN;
		nit = 1;
		if (p->mon != NULL) {
			it[1].socket = p->mon;
			it[1].events = ZMQ_POLLIN;
			nit = 2;
		}
		if (zmq_poll(it, nit, (long)(next_hb - now)) == -1 && errno != EINTR)
			break;
		if (it[0].revents & ZMQ_POLLIN) {
			if (read(p->efd, &x, sizeof(x)) == -1 && errno != EAGAIN)
				log_warn("publish: eventfd");
		}
		/* at most 4096 records before looking at the clock again */
		for (total = 0; (total < 4096 || stopping) &&
		    (n = ring_take(p, batch, 256, &stopping)) > 0; total += n) {
			for (i = 0; i < n; i++) {
				send_record(p, &batch[i]);
				record_free(batch[i].rec);
			}
		}
		if (total >= 4096 && !stopping) {
			x = 1;	/* more may be waiting: poll again at once */
			if (write(p->efd, &x, sizeof(x)) == -1 && errno != EAGAIN)
				log_warn("publish: eventfd write");
		}
		if (nit == 2 && (it[1].revents & ZMQ_POLLIN)) {
			struct zap_counters c;

			pthread_mutex_lock(&p->smu);
			c = p->mc;
			pthread_mutex_unlock(&p->smu);
			zap_monitor_drain(p->mon, "publish", &c);
			pthread_mutex_lock(&p->smu);
			p->mc = c;
			pthread_mutex_unlock(&p->smu);
		}
		if (stopping)
			break;
	}
	return NULL;
}

static void
free_head(gpointer h)
{
	free(h);
}

static int
check_endpoint(const struct config *cf, const char *ep, char *err, size_t errlen)
{
	if (cf->publish.curve_secret_key_file == NULL && !zap_endpoint_local_ok(ep) &&
	    !cf->publish.allow_insecure) {
		snprintf(err, errlen, "refusing to bind %s without CURVE "
		    "([publish] curve_secret_key_file); set allow_insecure = yes "
		    "to publish in clear text beyond loopback", ep);
		return -1;
	}
	return 0;
}

int
publisher_start(struct publisher **out, const struct config *cf, struct store *st,
    char *err, size_t errlen)
{
	struct publisher *p;
	int	 hwm, linger = 1000, rc = -1;
	size_t	 i;

	*out = NULL;
	for (i = 0; i < cf->publish.n_endpoints; i++)
		if (check_endpoint(cf, cf->publish.endpoints[i], err, errlen) != 0)
			return -1;
	if (cf->publish.replay_endpoint != NULL &&
	    check_endpoint(cf, cf->publish.replay_endpoint, err, errlen) != 0)
		return -1;

	if ((p = calloc(1, sizeof(*p))) == NULL)
		log_fatal("calloc");
	p->cf = cf;
	p->st = st;
	p->epoch = store_epoch(st);
	pthread_mutex_init(&p->mu, NULL);
	pthread_mutex_init(&p->smu, NULL);
	p->heads = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, free_head);
	if ((p->ring = calloc(PUBLISH_QUEUE, sizeof(*p->ring))) == NULL)
		log_fatal("calloc");
	if ((p->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) == -1)
		log_fatal("eventfd");
	if ((p->ctx = zmq_ctx_new()) == NULL)
		log_fatal("zmq_ctx_new");

	/* the ZAP handler is bound before any socket that uses CURVE */
	if (zap_start(&p->zap, p->ctx, cf, err, errlen) != 0)
		goto out;
	if ((p->pub = zmq_socket(p->ctx, ZMQ_PUB)) == NULL) {
		snprintf(err, errlen, "zmq_socket: %s", zmq_strerror(errno));
		goto out;
	}
	hwm = (int)cf->publish.sndhwm;
	zmq_setsockopt(p->pub, ZMQ_SNDHWM, &hwm, sizeof(hwm));
	zmq_setsockopt(p->pub, ZMQ_LINGER, &linger, sizeof(linger));
	if (zap_secure_socket(p->zap, p->pub, err, errlen) != 0)
		goto out;
	p->mon = zap_monitor_open(p->ctx, p->pub, "pub");
	for (i = 0; i < cf->publish.n_endpoints; i++) {
		if (zmq_bind(p->pub, cf->publish.endpoints[i]) != 0) {
			snprintf(err, errlen, "bind %s: %s", cf->publish.endpoints[i],
			    zmq_strerror(errno));
			goto out;
		}
		log_notice("publish: PUB bound to %s%s", cf->publish.endpoints[i],
		    p->zap ? " (CURVE)" : "");
	}
	if (cf->publish.replay_endpoint != NULL &&
	    replay_start(&p->replay, p->ctx, cf, st, p->zap, err, errlen) != 0)
		goto out;

	heads_from_store(p);
	if (pthread_create(&p->thr, NULL, pub_main, p) != 0)
		log_fatalx("publish: pthread_create");
	pthread_setname_np(p->thr, "vmi-publish");
	p->started = 1;
	*out = p;
	rc = 0;
out:
	if (rc != 0)
		publisher_stop(p);
	return rc;
}

void
publisher_submit(struct publisher *p, Vmingest__Record *rec, uint8_t *packed,
    size_t plen)
{
	struct pub_item *it;
	int	 full;

	pthread_mutex_lock(&p->mu);
	full = p->len >= PUBLISH_QUEUE;
	if (!full) {
		it = &p->ring[(p->head + p->len) % PUBLISH_QUEUE];
		it->rec = rec;
		it->packed = packed;
		it->plen = plen;
		p->len++;
	}
	pthread_mutex_unlock(&p->mu);
	if (full) {
		pthread_mutex_lock(&p->smu);
		p->dropped++;
		pthread_mutex_unlock(&p->smu);
		log_warnx("publish: seq=%llu action=drop reason=queue-full "
		    "(subscribers recover it from the log)",
		    (unsigned long long)rec->seq);
		record_free(rec);
		free(packed);
		return;
	}
	/* a batch can be larger than the ring: wake the thread as it fills */
	if (++p->unflushed >= PUBLISH_FLUSH_EVERY)
		publisher_flush(p);
}

void
publisher_flush(struct publisher *p)
{
	uint64_t one = 1;

	if (!p->unflushed)
		return;
	p->unflushed = 0;
	if (write(p->efd, &one, sizeof(one)) == -1 && errno != EAGAIN)
		log_warn("publish: eventfd write");
}

void
publisher_stop(struct publisher *p)
{
	uint64_t one = 1;

	if (p == NULL)
		return;
	if (p->started) {
		pthread_mutex_lock(&p->mu);
		p->stopping = 1;
		pthread_mutex_unlock(&p->mu);
		if (write(p->efd, &one, sizeof(one)) == -1)
			log_warn("publish: eventfd write");
		pthread_join(p->thr, NULL);
	}
	replay_stop(p->replay);
	while (p->len > 0) {
		record_free(p->ring[p->head].rec);
		free(p->ring[p->head].packed);
		p->head = (p->head + 1) % PUBLISH_QUEUE;
		p->len--;
	}
	if (p->mon != NULL)
		zmq_close(p->mon);
	if (p->pub != NULL) {
		zmq_socket_monitor(p->pub, NULL, 0);
		zmq_close(p->pub);
	}
	zap_stop(p->zap);
	if (p->ctx != NULL)
		zmq_ctx_term(p->ctx);
	close(p->efd);
	free(p->ring);
	g_hash_table_destroy(p->heads);
	pthread_mutex_destroy(&p->mu);
	pthread_mutex_destroy(&p->smu);
	free(p);
}

void
publisher_stats(struct publisher *p, struct publisher_stats *s)
{
	struct replay_counts rc = { 0 };
	GHashTableIter it;
	gpointer k, v;
	size_t	 i = 0;

	memset(s, 0, sizeof(*s));
	if (p == NULL)
		return;
	replay_counts(p->replay, &rc);
	pthread_mutex_lock(&p->smu);
	s->bound = 1;
	s->published_total = p->published;
	s->subscribers = p->mc.connected;
	s->auth_failures = p->mc.auth_failures + rc.auth_failures;
	s->replay_requests = rc.requests;
	s->replayed_records = rc.records;
	s->dropped = p->dropped;
	s->n_topics = g_hash_table_size(p->heads);
	if (s->n_topics > 0 &&
	    (s->topics = calloc(s->n_topics, sizeof(*s->topics))) == NULL)
		log_fatal("calloc");
	g_hash_table_iter_init(&it, p->heads);
	while (g_hash_table_iter_next(&it, &k, &v) && i < s->n_topics) {
		const struct head *h = v;

		snprintf(s->topics[i].topic, sizeof(s->topics[i].topic), "%s",
		    (const char *)k);
		s->topics[i].head_topic_seq = h->ts;
		s->topics[i].published = h->published;
		i++;
	}
	pthread_mutex_unlock(&p->smu);
}
