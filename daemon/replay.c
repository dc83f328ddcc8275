/*
 * replay.c - the replay service (replay.h, docs/PROTOCOL.md "Replay").
 *
 * A client (DEALER) sends a ReplayRequest; the ROUTER thread keeps one
 * stream per peer identity (a new request replaces the peer's previous
 * stream) and serves the active streams round-robin.  Each batch is one
 * short read transaction: renew the snapshot, walk the records from the
 * stream's position, send up to `credit` matching records (or
 * REPLAY_BATCH_BYTES, or a 5 ms / scan budget, whichever comes first),
 * reset the snapshot.  When the credit is used the stream sends BATCH_END
 * and waits for a `more` request; at the end (head, to_seq or
 * max_records) it sends REPLAY_END with the covered seq, the store head
 * and the topic heads matching the request (all of them), from the same
 * snapshot.  A stream that has sent nothing for [publish]
 * replay_progress_ms while it scans records that do not match sends
 * PROGRESS, so that the client does not take the silence for a dead
 * daemon and start again.
 *
 * A record is sent once, on the first of its topics that matches the
 * request, as [topic][Envelope][Record] (+ [raw] with with_raw).  Only
 * records that were published (have topics) are replayed, or with
 * quarantined_only only QUARANTINED ones (topic frame = Record.topic,
 * topic_seq 0).
 *
 * Error policy: a bad request gets an ERROR reply; a store error ends the
 * stream with ERROR; a vanished peer (EHOSTUNREACH) ends it silently.
 *
 * SECURITY: requests are untrusted: size-limited before unpacking,
 * prefixes and topics checked for the topic alphabet and length, credit
 * and stream count bounded, idle streams dropped after REPLAY_IDLE_MS.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <zmq.h>

#include "log.h"
#include "record.h"
#include "replay.h"
#include "util.h"

#define REPLAY_MAX_PREFIXES	64
#define REPLAY_MAX_FROM		1024
#define REPLAY_BUDGET_MS	5
#define REPLAY_SNDHWM		1000	/* messages queued to one peer, at most */
#define REPLAY_STALL_MS		10	/* retry a peer with a full queue after */
#define REPLAY_ID_MAX		256

/* why a stream ended */
#define END_HEAD	1	/* reached the store head */
#define END_TO		2	/* passed to_seq */
#define END_MAX		3	/* sent max_records */

struct from_ts {
	char	*topic;
	uint64_t ts;
};

struct stream {
	int	 used;
	uint8_t	 id[REPLAY_ID_MAX];
	size_t	 idlen;
	int	 delim;		/* the client sent an empty delimiter frame */
	uint64_t request_id;
	char	**prefixes;
	size_t	 n_prefixes;
	struct from_ts *from;
	size_t	 n_from;
	uint64_t next_seq;	/* next seq to look at */
	uint64_t to_seq;	/* 0 = head */
	uint64_t remaining;	/* records still wanted (UINT64_MAX = all) */
	uint32_t credit;	/* per batch */
	uint32_t left;		/* left in this batch */
	int	 quarantined_only;
	int	 with_raw;
	int	 waiting;	/* BATCH_END sent, waiting for `more` */
	size_t	 batch_bytes;	/* record and raw bytes sent in this batch */
	uint64_t from_seq;	/* unlisted topics (from_topic) start here */
	int64_t	 stall_ms;	/* the peer's queue was full (0: not stalled) */
	int64_t	 last_ms;
	int64_t	 told_ms;	/* last reply of any kind sent to the client */
	uint64_t last_sent;	/* seq of the last record sent */
};

struct replay {
	const struct config *cf;
	struct store *st;
	void	*ctx;
	void	*router;
	void	*mon;
	uint64_t epoch;
	pthread_t thr;
	int	 started;
	volatile int stop;
	struct store_rtxn *r;
	struct stream streams[REPLAY_MAX_STREAMS];
	size_t	 rr;		/* round-robin position */
	struct scan *scan;	/* scratch of serve_batch */

	pthread_mutex_t mu;
	struct replay_counts c;
	struct zap_counters mc;
};

static void
count(struct replay *rp, uint64_t req, uint64_t recs, uint64_t errs)
{
	pthread_mutex_lock(&rp->mu);
	rp->c.requests += req;
	rp->c.records += recs;
	rp->c.errors += errs;
	pthread_mutex_unlock(&rp->mu);
}

static void
stream_clear(struct stream *s)
{
	size_t	 i;

	for (i = 0; i < s->n_prefixes; i++)
		free(s->prefixes[i]);
	free(s->prefixes);
	for (i = 0; i < s->n_from; i++)
		free(s->from[i].topic);
	free(s->from);
	memset(s, 0, sizeof(*s));
}

static int
prefix_match(const struct stream *s, const char *topic)
{
	return topic_prefix_match(topic, s->prefixes, s->n_prefixes);
}

/* Reply frames start with the identity (and the delimiter if the client used one). */
static int
send_head(struct replay *rp, const uint8_t *id, size_t idlen, int delim, int dontwait)
{
	if (zmq_send(rp->router, id, idlen, ZMQ_SNDMORE |
	    (dontwait ? ZMQ_DONTWAIT : 0)) == -1)
		return -1;
	if (delim && zmq_send(rp->router, "", 0, ZMQ_SNDMORE) == -1)
		return -1;
	return 0;
}

static int
send_env(void *sock, const Vmingest__Envelope *env, int flags)
{
	size_t	 n = vmingest__envelope__get_packed_size(env);
	uint8_t	*buf;
	int	 rc;

	if ((buf = malloc(n ? n : 1)) == NULL)
		log_fatal("malloc");
	vmingest__envelope__pack(env, buf);
	rc = zmq_send(sock, buf, n, flags) == -1 ? -1 : 0;
	free(buf);
	return rc;
}

/* A control reply: [id][""][Envelope] (ERROR, BATCH_END, REPLAY_END). */
static void
send_control(struct replay *rp, const uint8_t *id, size_t idlen, int delim,
    Vmingest__Envelope *env)
{
	env->epoch = rp->epoch;
	env->sent_at_us = util_now_us();
	if (send_head(rp, id, idlen, delim, 1) != 0)
		return;
	zmq_send(rp->router, "", 0, ZMQ_SNDMORE);
	send_env(rp->router, env, 0);
}

static void
send_error(struct replay *rp, const uint8_t *id, size_t idlen, int delim,
    uint64_t request_id, const char *why)
{
	Vmingest__Envelope env = VMINGEST__ENVELOPE__INIT;
	char	 esc[300];

	env.kind = VMINGEST__ENVELOPE__KIND__ERROR;
	env.error = pb_str(why);
	env.request_id = request_id;
	send_control(rp, id, idlen, delim, &env);
	log_escape(esc, sizeof(esc), why, strlen(why));
	log_info("replay: request=%llu action=error reason=\"%s\"",
	    (unsigned long long)request_id, esc);
	count(rp, 0, 0, 1);
}

/* The topic heads a REPLAY_END carries: every topic the request matches. */
struct heads_arg {
	const struct stream *s;
	Vmingest__TopicHead *th;
	size_t	 n, cap;
};

static int
heads_cb(const char *topic, uint64_t head, void *arg)
{
	struct heads_arg *a = arg;

	if (!prefix_match(a->s, topic))
		return 0;
	if (a->n == a->cap) {
		a->cap = a->cap ? a->cap * 2 : 64;
		if ((a->th = reallocarray(a->th, a->cap, sizeof(*a->th))) == NULL)
			log_fatal("reallocarray");
	}
	vmingest__topic_head__init(&a->th[a->n]);
	if ((a->th[a->n].topic = strdup(topic)) == NULL)
		log_fatal("strdup");
	a->th[a->n].topic_seq = head;
	a->n++;
	return 0;
}

/*
 * REPLAY_END from the current snapshot: covered seq, head, topic heads.
 * Every matching topic is listed (the client adopts them as known: one
 * left out would look like a loss at the next heartbeat).
 */
static void
send_end(struct replay *rp, const struct stream *s, uint64_t covered)
{
	Vmingest__Envelope env = VMINGEST__ENVELOPE__INIT;
	Vmingest__TopicHead **thp = NULL;
	struct heads_arg a;
	size_t	 i;

	memset(&a, 0, sizeof(a));
	a.s = s;
	env.kind = VMINGEST__ENVELOPE__KIND__REPLAY_END;
	env.head_seq = store_head(rp->r);
	env.seq = covered;
	env.request_id = s->request_id;
	if (!s->quarantined_only)
		store_topics(rp->r, heads_cb, &a);
	if (a.n > 0 && (thp = calloc(a.n, sizeof(*thp))) == NULL)
		log_fatal("calloc");
	for (i = 0; i < a.n; i++)
		thp[i] = &a.th[i];
	env.heads = thp;
	env.n_heads = a.n;
	send_control(rp, s->id, s->idlen, s->delim, &env);
	for (i = 0; i < a.n; i++)
		free(a.th[i].topic);
	free(a.th);
	free(thp);
}

/*
 * What the scan needs of a stored record: its disposition, primary topic
 * and topics with their topic_seq.  Read straight off the protobuf wire
 * format (scan_record) instead of unpacking the whole record, which would
 * allocate every header and part; a record the scanner cannot read is
 * unpacked with protobuf-c.  One scratch struct scan per replay thread.
 */
#define SCAN_TOPICS	10240	/* > [rules] actions at its maximum, + keep */

struct scan {
	int	 disposition;
	char	 topic[256];
	size_t	 n;
	struct {
		char	 topic[256];
		uint64_t ts;
	} t[SCAN_TOPICS];
};

static int
get_varint(const uint8_t **pp, const uint8_t *end, uint64_t *v)
{
	const uint8_t *p = *pp;
	unsigned shift = 0;

	*v = 0;
	while (p < end && shift < 64) {
		*v |= (uint64_t)(*p & 0x7f) << shift;
		if (!(*p++ & 0x80)) {
			*pp = p;
			return 0;
		}
		shift += 7;
	}
	return -1;
}

/* A length-delimited field: *data, *n; -1 if it does not fit. */
static int
get_bytes(const uint8_t **pp, const uint8_t *end, const uint8_t **data, size_t *n)
{
	uint64_t len;

	if (get_varint(pp, end, &len) != 0 || len > (uint64_t)(end - *pp))
		return -1;
	*data = *pp;
	*n = (size_t)len;
	*pp += len;
	return 0;
}

static int
skip_field(const uint8_t **pp, const uint8_t *end, unsigned wt)
{
	const uint8_t *d;
	uint64_t v;
	size_t	 n;

	switch (wt) {
	case 0: return get_varint(pp, end, &v);
	case 1: if (end - *pp < 8) return -1; *pp += 8; return 0;
	case 2: return get_bytes(pp, end, &d, &n);
	case 5: if (end - *pp < 4) return -1; *pp += 4; return 0;
	default: return -1;
	}
}

static int
copy_str(char *dst, size_t cap, const uint8_t *p, size_t n)
{
	if (n >= cap)
		return -1;
	memcpy(dst, p, n);
	dst[n] = '\0';
	return memchr(dst, '\0', n) == NULL ? 0 : -1;
}

static int
scan_record(const void *data, size_t len, struct scan *sc)
{
	const uint8_t *p = data, *end = p + len, *d, *q, *qend;
	uint64_t tag, v, ts;
	size_t	 n, tn;
	char	 name[256];
	int	 have;

	sc->disposition = 0;
	sc->topic[0] = '\0';
	sc->n = 0;
	while (p < end) {
		if (get_varint(&p, end, &tag) != 0)
			return -1;
		if (tag == ((3 << 3) | 2)) {		/* topic */
			if (get_bytes(&p, end, &d, &n) != 0 ||
			    copy_str(sc->topic, sizeof(sc->topic), d, n) != 0)
				return -1;
		} else if (tag == ((23 << 3) | 0)) {	/* disposition */
			if (get_varint(&p, end, &v) != 0)
				return -1;
			sc->disposition = (int)v;
		} else if (tag == ((27 << 3) | 2)) {	/* topics: TopicSeq */
			if (get_bytes(&p, end, &q, &tn) != 0 || sc->n >= SCAN_TOPICS)
				return -1;
			qend = q + tn;
			name[0] = '\0';
			ts = 0;
			have = 0;
			while (q < qend) {
				if (get_varint(&q, qend, &tag) != 0)
					return -1;
				if (tag == ((1 << 3) | 2)) {
					if (get_bytes(&q, qend, &d, &n) != 0 ||
					    copy_str(name, sizeof(name), d, n) != 0)
						return -1;
					have = 1;
				} else if (tag == ((2 << 3) | 0)) {
					if (get_varint(&q, qend, &ts) != 0)
						return -1;
				} else if (skip_field(&q, qend, (unsigned)(tag & 7)) != 0)
					return -1;
			}
			if (!have)
				return -1;
			memcpy(sc->t[sc->n].topic, name, strlen(name) + 1);
			sc->t[sc->n++].ts = ts;
		} else if (skip_field(&p, end, (unsigned)(tag & 7)) != 0)
			return -1;
	}
	return 0;
}

/* The fallback: the same from an unpacked record. */
static int
scan_unpacked(const void *data, size_t len, struct scan *sc)
{
	Vmingest__Record *rec;
	size_t	 i;
	int	 rc = 0;

	if ((rec = record_unpack(data, len)) == NULL)
		return -1;
	sc->disposition = rec->disposition;
	snprintf(sc->topic, sizeof(sc->topic), "%s", rec->topic);
	sc->n = 0;
	for (i = 0; i < rec->n_topics && rc == 0; i++) {
		if (sc->n >= SCAN_TOPICS ||
		    strlen(rec->topics[i]->topic) >= sizeof(sc->t[0].topic)) {
			rc = -1;	/* cannot happen: rules cap the topics lower */
			break;
		}
		snprintf(sc->t[sc->n].topic, sizeof(sc->t[0].topic), "%s",
		    rec->topics[i]->topic);
		sc->t[sc->n++].ts = rec->topics[i]->topic_seq;
	}
	record_free(rec);
	return rc;
}

/* Which topic (and topic_seq) a record goes out on, or NULL if it does not match. */
static const char *
record_match(const struct stream *s, const struct scan *sc, uint64_t seq,
    uint64_t *ts)
{
	size_t	 i, j;

	if (s->quarantined_only) {
		if (sc->disposition != VMINGEST__DISPOSITION__QUARANTINED ||
		    !prefix_match(s, sc->topic))
			return NULL;
		*ts = 0;
		return sc->topic;
	}
	for (i = 0; i < sc->n; i++) {
		if (!prefix_match(s, sc->t[i].topic))
			continue;
		for (j = 0; j < s->n_from; j++)
			if (!strcmp(s->from[j].topic, sc->t[i].topic))
				break;
		if (j < s->n_from && sc->t[i].ts < s->from[j].ts)
			continue;
		/* a topic not listed in from_topic starts at from_seq */
		if (j == s->n_from && seq < s->from_seq)
			continue;
		*ts = sc->t[i].ts;
		return sc->t[i].topic;
	}
	return NULL;
}

/*
 * Send one record; 0 sent, 1 try later (HWM), -1 peer gone.
 */
/*
 * Send one record (0), or 1 if the peer's queue is full (try again later),
 * -1 if the peer is gone.  *sent gets the bytes queued, raw included.
 */
static int
send_record(struct replay *rp, struct stream *s, uint64_t seq, const char *topic,
    uint64_t ts, const void *data, size_t len, size_t *sent)
{
	Vmingest__Envelope env = VMINGEST__ENVELOPE__INIT;
	const void *raw = NULL;
	size_t	 rawlen = 0;

	if (send_head(rp, s->id, s->idlen, s->delim, 1) != 0)
		return errno == EAGAIN ? 1 : -1;
	env.epoch = rp->epoch;
	env.seq = seq;
	env.topic_seq = ts;
	env.kind = VMINGEST__ENVELOPE__KIND__RECORD;
	env.request_id = s->request_id;
	env.topic = pb_str(topic);
	env.sent_at_us = util_now_us();
	if (s->with_raw && store_get_raw(rp->r, seq, &raw, &rawlen) != 0) {
		raw = "";
		rawlen = 0;
	}
	zmq_send(rp->router, topic, strlen(topic), ZMQ_SNDMORE);
	send_env(rp->router, &env, ZMQ_SNDMORE);
	zmq_send(rp->router, data, len, s->with_raw ? ZMQ_SNDMORE : 0);
	if (s->with_raw)
		zmq_send(rp->router, raw, rawlen, 0);
	*sent = len + rawlen;
	return 0;
}

/* One batch of one stream in one short read transaction. */
static void
serve_batch(struct replay *rp, struct stream *s)
{
	Vmingest__Envelope env = VMINGEST__ENVELOPE__INIT;
	struct store_cursor *c = NULL;
	struct scan *sc = rp->scan;
	const void *data;
	const char *topic;
	size_t	 len, scanned = 0, scan_max;
	uint64_t seq, ts, head, sent = 0;
	int64_t	 t0 = (util_mono_us() / 1000);
	int	 rc, end = 0, gone = 0, cerr = 0;

	if ((rc = store_rrenew(rp->r)) != 0) {
		send_error(rp, s->id, s->idlen, s->delim, s->request_id,
		    store_strerror(rc));
		stream_clear(s);
		return;
	}
	head = store_head(rp->r);
	scan_max = (size_t)s->left * 8 + 4096;
	if (s->remaining == 0)
		end = END_MAX;
	else if (s->to_seq && s->next_seq > s->to_seq)
		end = END_TO;
	else if (s->next_seq > head)
		end = END_HEAD;
	else if ((rc = store_cursor_open(rp->r, s->next_seq, &c)) != 0)
		cerr = rc;
	while (!end && !cerr && s->left > 0 &&
	    s->batch_bytes < REPLAY_BATCH_BYTES && scanned < scan_max) {
		if ((scanned & 63) == 63 && (util_mono_us() / 1000) - t0 >= REPLAY_BUDGET_MS)
			break;
		if ((rc = store_cursor_next(c, &seq, &data, &len)) != 0) {
			if (rc == STORE_E_NOTFOUND)
				end = END_HEAD;
			else
				cerr = rc;
			break;
		}
		if (s->to_seq && seq > s->to_seq) {
			end = END_TO;
			break;
		}
		scanned++;
		if (scan_record(data, len, sc) != 0 &&
		    scan_unpacked(data, len, sc) != 0) {
			log_warnx("replay: seq=%llu: stored record does not unpack, "
			    "skipped", (unsigned long long)seq);
			s->next_seq = seq + 1;
			continue;
		}
		if ((topic = record_match(s, sc, seq, &ts)) != NULL) {
			size_t	 n = 0;

			rc = send_record(rp, s, seq, topic, ts, data, len, &n);
			if (rc != 0) {
				gone = rc < 0;
				if (rc > 0 && s->stall_ms == 0)	/* full: later */
					s->stall_ms = (util_mono_us() / 1000);
				break;
			}
			s->stall_ms = 0;
			s->left--;
			s->last_sent = seq;
			s->batch_bytes += n;
			sent++;
			if (s->remaining != UINT64_MAX && --s->remaining == 0)
				end = END_MAX;
			/* a big raw message takes long to copy: look at the clock */
			if ((util_mono_us() / 1000) - t0 >= REPLAY_BUDGET_MS) {
				s->next_seq = seq + 1;
				break;
			}
		}
		s->next_seq = seq + 1;
	}
	store_cursor_close(c);
	if (cerr != 0 || gone) {
		if (cerr != 0)	/* a read error is not the end of the log */
			send_error(rp, s->id, s->idlen, s->delim, s->request_id,
			    store_strerror(cerr));
		else
			log_info("replay: request=%llu action=drop "
			    "reason=peer-gone", (unsigned long long)s->request_id);
		store_rreset(rp->r);
		count(rp, 0, sent, 0);
		stream_clear(s);
		return;
	}
	s->last_ms = (util_mono_us() / 1000);
	if (end) {
		/* covered: everything up to here that matched has been sent */
		uint64_t covered;

		if (end == END_MAX)
			covered = s->last_sent;
		else if (end == END_TO)
			covered = s->to_seq;
		else
			covered = s->to_seq && s->to_seq < head ? s->to_seq : head;
		send_end(rp, s, covered);
		store_rreset(rp->r);
		log_info("replay: request=%llu action=end covered=%llu",
		    (unsigned long long)s->request_id, (unsigned long long)covered);
		count(rp, 0, sent, 0);
		stream_clear(s);
		return;
	}
	store_rreset(rp->r);
	count(rp, 0, sent, 0);
	if (sent > 0)
		s->told_ms = s->last_ms;
	if (s->left == 0 || s->batch_bytes >= REPLAY_BATCH_BYTES) {
		env.kind = VMINGEST__ENVELOPE__KIND__BATCH_END;
		env.seq = s->next_seq - 1;
		env.request_id = s->request_id;
		env.head_seq = head;
		send_control(rp, s->id, s->idlen, s->delim, &env);
		s->waiting = 1;
		s->told_ms = s->last_ms;
	} else if (s->last_ms - s->told_ms >=
	    (int64_t)rp->cf->publish.replay_progress_ms) {
		/* a long scan past records that do not match: still here */
		env.kind = VMINGEST__ENVELOPE__KIND__PROGRESS;
		env.seq = s->next_seq - 1;
		env.request_id = s->request_id;
		env.head_seq = head;
		send_control(rp, s->id, s->idlen, s->delim, &env);
		s->told_ms = s->last_ms;
	}
}

static struct stream *
stream_find(struct replay *rp, const uint8_t *id, size_t idlen)
{
	size_t	 i;

	for (i = 0; i < REPLAY_MAX_STREAMS; i++)
		if (rp->streams[i].used && rp->streams[i].idlen == idlen &&
		    !memcmp(rp->streams[i].id, id, idlen))
			return &rp->streams[i];
	return NULL;
}

static struct stream *
stream_alloc(struct replay *rp)
{
	size_t	 i, oldest = 0;

	for (i = 0; i < REPLAY_MAX_STREAMS; i++)
		if (!rp->streams[i].used)
			return &rp->streams[i];
	/*
	 * All taken: the longest idle one waiting for credit, or whose peer
	 * reads nothing, makes room (a stream being served does not).
	 */
	oldest = REPLAY_MAX_STREAMS;
	for (i = 0; i < REPLAY_MAX_STREAMS; i++) {
		const struct stream *s = &rp->streams[i];

		if (!s->waiting && s->stall_ms == 0)
			continue;
		if (oldest == REPLAY_MAX_STREAMS ||
		    s->last_ms < rp->streams[oldest].last_ms)
			oldest = i;
	}
	if (oldest == REPLAY_MAX_STREAMS)
		return NULL;
	stream_clear(&rp->streams[oldest]);
	return &rp->streams[oldest];
}

/* Start position of a new stream (first seq to look at). */
static int
stream_begin(struct replay *rp, struct stream *s, const Vmingest__ReplayRequest *q)
{
	uint64_t start = q->from_seq ? q->from_seq : 1, seq, best = UINT64_MAX;
	size_t	 i;
	int	 rc;

	s->from_seq = start;
	if (q->n_from_topic == 0) {
		s->next_seq = start;
		return 0;
	}
	if ((rc = store_rrenew(rp->r)) != 0)
		return rc;
	for (i = 0; i < q->n_from_topic; i++) {
		if (store_topic_find(rp->r, q->from_topic[i]->topic,
		    q->from_topic[i]->topic_seq, &seq, NULL) == 0 && seq < best)
			best = seq;
	}
	if (best == UINT64_MAX)
		best = store_head(rp->r) + 1;
	store_rreset(rp->r);
	/*
	 * Listed topics start at their topic_seq, the others at from_seq
	 * (0: 1): the scan starts at the earlier, or REPLAY_END would claim
	 * records of unlisted topics it never sent (record_match skips what
	 * is below either start).
	 */
	s->next_seq = start < best ? start : best;
	return 0;
}

static void
handle_request(struct replay *rp, const uint8_t *id, size_t idlen, int delim,
    const void *data, size_t len)
{
	Vmingest__ReplayRequest *q;
	struct stream *s;
	size_t	 i;
	const char *bad = NULL;
	uint32_t credit;

	count(rp, 1, 0, 0);
	if (len > REPLAY_REQUEST_BYTES) {
		send_error(rp, id, idlen, delim, 0, "request too large");
		return;
	}
	if ((q = vmingest__replay_request__unpack(NULL, len, data)) == NULL) {
		send_error(rp, id, idlen, delim, 0, "request is not a ReplayRequest");
		return;
	}
	s = stream_find(rp, id, idlen);
	if (q->cancel) {
		if (s != NULL)
			stream_clear(s);
		goto out;
	}
	credit = q->credit ? q->credit : rp->cf->publish.replay_batch;
	if (credit > REPLAY_MAX_CREDIT)
		credit = REPLAY_MAX_CREDIT;
	if (q->more) {
		if (s == NULL || s->request_id != q->request_id || !s->waiting) {
			send_error(rp, id, idlen, delim, q->request_id,
			    "no such stream (more without a request)");
			goto out;
		}
		s->waiting = 0;
		s->left = q->credit ? credit : s->credit;
		s->batch_bytes = 0;
		s->last_ms = s->told_ms = (util_mono_us() / 1000);
		goto out;
	}
	if (q->n_prefixes > REPLAY_MAX_PREFIXES)
		bad = "too many prefixes";
	for (i = 0; bad == NULL && i < q->n_prefixes; i++)
		if (!topic_chars_ok(q->prefixes[i], 1))
			bad = "bad topic prefix";
	if (bad == NULL && q->n_from_topic > REPLAY_MAX_FROM)
		bad = "too many from_topic entries";
	for (i = 0; bad == NULL && i < q->n_from_topic; i++)
		if (!config_topic_ok(q->from_topic[i]->topic))
			bad = "bad topic in from_topic";
	if (bad == NULL && q->to_seq && q->from_seq > q->to_seq)
		bad = "from_seq after to_seq";
	if (bad != NULL) {
		send_error(rp, id, idlen, delim, q->request_id, bad);
		goto out;
	}
	if (s != NULL)
		stream_clear(s);	/* a new request replaces the old stream */
	else if ((s = stream_alloc(rp)) == NULL) {
		send_error(rp, id, idlen, delim, q->request_id,
		    "too many concurrent replays, retry later");
		goto out;
	}
	s->used = 1;
	memcpy(s->id, id, idlen);
	s->idlen = idlen;
	s->delim = delim;
	s->request_id = q->request_id;
	if (q->n_prefixes > 0 &&
	    (s->prefixes = calloc(q->n_prefixes, sizeof(char *))) == NULL)
		log_fatal("calloc");
	for (i = 0; i < q->n_prefixes; i++)
		if ((s->prefixes[s->n_prefixes++] = strdup(q->prefixes[i])) == NULL)
			log_fatal("strdup");
	if (q->n_from_topic > 0 &&
	    (s->from = calloc(q->n_from_topic, sizeof(*s->from))) == NULL)
		log_fatal("calloc");
	for (i = 0; i < q->n_from_topic; i++) {
		if ((s->from[i].topic = strdup(q->from_topic[i]->topic)) == NULL)
			log_fatal("strdup");
		s->from[i].ts = q->from_topic[i]->topic_seq;
		s->n_from++;
	}
	s->to_seq = q->to_seq;
	s->remaining = q->max_records ? q->max_records : UINT64_MAX;
	s->credit = s->left = credit;
	s->quarantined_only = q->quarantined_only;
	s->with_raw = q->with_raw;
	s->last_ms = s->told_ms = (util_mono_us() / 1000);
	if (stream_begin(rp, s, q) != 0) {
		send_error(rp, id, idlen, delim, q->request_id, "store read failed");
		stream_clear(s);
		goto out;
	}
	log_info("replay: request=%llu from=%llu to=%llu max=%llu prefixes=%zu "
	    "credit=%u%s%s%s", (unsigned long long)q->request_id,
	    (unsigned long long)s->next_seq, (unsigned long long)s->to_seq,
	    (unsigned long long)q->max_records, s->n_prefixes, credit,
	    s->quarantined_only ? " quarantined_only" : "",
	    s->with_raw ? " with_raw" : "", q->head_only ? " head_only" : "");
	if (q->head_only) {
		if (store_rrenew(rp->r) == 0) {
			send_end(rp, s, store_head(rp->r));
			store_rreset(rp->r);
		}
		stream_clear(s);
	}
out:
	vmingest__replay_request__free_unpacked(q, NULL);
}

/* Read one request message off the ROUTER: [id]([""])[request]. */
static void
read_request(struct replay *rp)
{
	zmq_msg_t f[4];
	int	 n = 0, more = 1, i;

	while (more) {
		zmq_msg_t *m = n < 4 ? &f[n] : NULL, x;

		if (m == NULL)
			m = &x;
		zmq_msg_init(m);
		if (zmq_msg_recv(m, rp->router, ZMQ_DONTWAIT) == -1) {
			zmq_msg_close(m);
			break;
		}
		more = zmq_msg_more(m);
		if (m == &x)
			zmq_msg_close(&x);
		else
			n++;
		if (n == 4 && more) {	/* too many frames: drain, then refuse */
			n = 5;
			zmq_msg_close(&f[3]);
			zmq_msg_init(&f[3]);
		}
	}
	if (n >= 1 && zmq_msg_size(&f[0]) <= REPLAY_ID_MAX) {
		if (n == 2)
			handle_request(rp, zmq_msg_data(&f[0]), zmq_msg_size(&f[0]), 0,
			    zmq_msg_data(&f[1]), zmq_msg_size(&f[1]));
		else if (n == 3 && zmq_msg_size(&f[1]) == 0)
			handle_request(rp, zmq_msg_data(&f[0]), zmq_msg_size(&f[0]), 1,
			    zmq_msg_data(&f[2]), zmq_msg_size(&f[2]));
		else
			send_error(rp, zmq_msg_data(&f[0]), zmq_msg_size(&f[0]),
			    n >= 2 && zmq_msg_size(&f[1]) == 0, 0,
			    "expected one frame: a ReplayRequest");
	}
	for (i = 0; i < n && i < 4; i++)
		zmq_msg_close(&f[i]);
}

static void *
replay_main(void *arg)
{
	struct replay *rp = arg;
	zmq_pollitem_t it[2];
	size_t	 i, k;
	int	 nit, busy = 0, stalled = 0, loops;
	int64_t	 now;

	while (!rp->stop) {
		memset(it, 0, sizeof(it));
		it[0].socket = rp->router;
		it[0].events = ZMQ_POLLIN;
		nit = 1;
		if (rp->mon != NULL) {
			it[1].socket = rp->mon;
			it[1].events = ZMQ_POLLIN;
			nit = 2;
		}
		if (zmq_poll(it, nit, busy ? 0 : stalled ? REPLAY_STALL_MS : 100) == -1) {
			if (errno == ETERM)
				break;
			continue;
		}
		for (loops = 0; loops < 64 && (it[0].revents & ZMQ_POLLIN); loops++) {
			int	 ev = 0;
			size_t	 evlen = sizeof(ev);

			read_request(rp);
			if (zmq_getsockopt(rp->router, ZMQ_EVENTS, &ev, &evlen) != 0 ||
			    !(ev & ZMQ_POLLIN))
				break;
		}
		if (nit == 2 && (it[1].revents & ZMQ_POLLIN)) {
			pthread_mutex_lock(&rp->mu);
			zap_monitor_drain(rp->mon, "replay", &rp->mc);
			pthread_mutex_unlock(&rp->mu);
		}
		/* one batch per active stream, round-robin */
		busy = 0;
		stalled = 0;
		now = (util_mono_us() / 1000);
		for (k = 0; k < REPLAY_MAX_STREAMS; k++) {
			struct stream *s;

			i = (rp->rr + k) % REPLAY_MAX_STREAMS;
			s = &rp->streams[i];
			if (!s->used)
				continue;
			if (s->waiting) {
				if (now - s->last_ms > REPLAY_IDLE_MS) {
					log_info("replay: request=%llu action=drop "
					    "reason=idle", (unsigned long long)s->request_id);
					stream_clear(s);
				}
				continue;
			}
			if (s->stall_ms != 0) {
				/* its peer reads nothing: drop it as an idle one */
				if (now - s->stall_ms > REPLAY_IDLE_MS) {
					log_info("replay: request=%llu action=drop "
					    "reason=peer-not-reading",
					    (unsigned long long)s->request_id);
					stream_clear(s);
					continue;
				}
				if (now - s->last_ms < REPLAY_STALL_MS) {
					stalled = 1;
					continue;
				}
			}
			serve_batch(rp, s);
			if (s->used && !s->waiting && s->stall_ms == 0)
				busy = 1;
			else if (s->used && s->stall_ms != 0)
				stalled = 1;
		}
		rp->rr = (rp->rr + 1) % REPLAY_MAX_STREAMS;
	}
	return NULL;
}

int
replay_start(struct replay **out, void *ctx, const struct config *cf,
    struct store *st, struct zap *zap, char *err, size_t errlen)
{
	struct replay *rp;
	int	 one = 1, linger = 0, hwm, rc;

	*out = NULL;
	if ((rp = calloc(1, sizeof(*rp))) == NULL ||
	    (rp->scan = calloc(1, sizeof(*rp->scan))) == NULL)
		log_fatal("calloc");
	rp->cf = cf;
	rp->st = st;
	rp->ctx = ctx;
	rp->epoch = store_epoch(st);
	pthread_mutex_init(&rp->mu, NULL);
	if ((rc = store_rbegin(st, &rp->r)) != 0) {
		snprintf(err, errlen, "replay: %s", store_strerror(rc));
		goto fail;
	}
	store_rreset(rp->r);
	if ((rp->router = zmq_socket(ctx, ZMQ_ROUTER)) == NULL) {
		snprintf(err, errlen, "replay: zmq_socket: %s", zmq_strerror(errno));
		goto fail;
	}
	zmq_setsockopt(rp->router, ZMQ_ROUTER_MANDATORY, &one, sizeof(one));
	/*
	 * Credit and REPLAY_BATCH_BYTES bound a batch; the HWM bounds what a
	 * peer that does not read piles up over several requests.  With
	 * ROUTER_MANDATORY a full queue is EAGAIN, never a drop: the stream
	 * waits (stall_ms) and sends the same record later.
	 */
	hwm = REPLAY_SNDHWM;
	zmq_setsockopt(rp->router, ZMQ_SNDHWM, &hwm, sizeof(hwm));
	zmq_setsockopt(rp->router, ZMQ_LINGER, &linger, sizeof(linger));
	if (zap_secure_socket(zap, rp->router, err, errlen) != 0)
		goto fail;
	rp->mon = zap_monitor_open(ctx, rp->router, "replay");
	if (zmq_bind(rp->router, cf->publish.replay_endpoint) != 0) {
		snprintf(err, errlen, "bind %s: %s", cf->publish.replay_endpoint,
		    zmq_strerror(errno));
		goto fail;
	}
	log_notice("replay: ROUTER bound to %s%s", cf->publish.replay_endpoint,
	    zap ? " (CURVE)" : "");
	if (pthread_create(&rp->thr, NULL, replay_main, rp) != 0)
		log_fatalx("replay: pthread_create");
	pthread_setname_np(rp->thr, "vmi-replay");
	rp->started = 1;
	*out = rp;
	return 0;
fail:
	replay_stop(rp);
	return -1;
}

void
replay_stop(struct replay *rp)
{
	size_t	 i;

	if (rp == NULL)
		return;
	rp->stop = 1;
	if (rp->started)
		pthread_join(rp->thr, NULL);
	for (i = 0; i < REPLAY_MAX_STREAMS; i++)
		if (rp->streams[i].used)
			stream_clear(&rp->streams[i]);
	if (rp->mon != NULL)
		zmq_close(rp->mon);
	if (rp->router != NULL) {
		zmq_socket_monitor(rp->router, NULL, 0);
		zmq_close(rp->router);
	}
	store_rend(rp->r);
	pthread_mutex_destroy(&rp->mu);
	free(rp->scan);
	free(rp);
}

void
replay_counts(struct replay *rp, struct replay_counts *c)
{
	memset(c, 0, sizeof(*c));
	if (rp == NULL)
		return;
	pthread_mutex_lock(&rp->mu);
	*c = rp->c;
	c->auth_failures = rp->mc.auth_failures;
	c->connected = rp->mc.connected;
	pthread_mutex_unlock(&rp->mu);
}
