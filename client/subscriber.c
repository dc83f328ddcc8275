/*
 * subscriber.c - libvmingest-client's subscriber (vmingest-client.h).
 *
 * States:
 *   NEED_SYNC  a catch-up from the log is due: send a ReplayRequest for
 *              everything after safe_seq (or, starting "from now", only
 *              the heads), go to SYNC
 *   SYNC       read replay replies and deliver their records; buffer the
 *              live feed (bounded); REPLAY_END sets the position and the
 *              topic heads from the log's snapshot, then LIVE
 *   LIVE       deliver the buffered, then the live messages; drop what
 *              was delivered already; a topic_seq jump or a heartbeat
 *              head ahead of us, or silence, goes back to NEED_SYNC
 *
 * Position: per subscribed topic, the last topic_seq delivered (known),
 * and safe_seq, a watermark: every matching record with seq <= safe_seq
 * has been delivered.  A record is new if one of its matching topics has
 * a topic_seq above known; "topic_seq > known + 1" on the live feed is a
 * loss.  safe_seq moves at a REPLAY_END (to the covered seq) and at a
 * heartbeat that shows no loss (to its head_seq) - not at each live
 * record, because a live record of topic A says nothing about a lost
 * record of topic B sent before it.  Every catch-up starts at
 * safe_seq + 1 and drops what was delivered already, so a loss noticed
 * late (on another topic, or only at the next heartbeat) is still
 * recovered.  Hence the order: increasing topic_seq within each topic,
 * increasing seq across topics except where a loss was recovered.
 *
 * Error policy: socket and protocol trouble is retried (the request is
 * sent again after replay_timeout_ms); an epoch change is sticky and
 * returned to the caller; malformed frames are counted and dropped.
 *
 * SECURITY: frames come from the network (the daemon, or whoever can
 * reach the endpoint without CURVE): every frame count and size is
 * checked, protobufs are unpacked with protobuf-c and freed with it, the
 * number of topics tracked is bounded.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <glib.h>
#include <zmq.h>

#include "checkpoint.h"
#include "vmingest-client.h"
#include "util.h"

#define ST_NEED_SYNC	0
#define ST_SYNC		1
#define ST_LIVE		2

#define SUB_BUFFER_MAX	200000	/* live messages held during a catch-up */
#define SUB_BUFFER_BYTES (256u << 20)	/* and their bytes */
#define SUB_CKPT_MIN_MS	100	/* least interval of checkpoints while idle */
#define SUB_CKPT_RETRY_MS 1000	/* after a failed checkpoint write */
#define SUB_MAX_PREFIXES 64	/* what the replay service accepts */
#define SUB_MAX_TOPICS	100000
#define SUB_FRAME_MAX	(256u << 20)

struct live_msg {
	zmq_msg_t f[3];
	int	 n;
};

struct vmi_sub {
	char	*endpoint, *replay_endpoint, *checkpoint;
	char	**prefixes;
	size_t	 n_prefixes;
	char	*server_key, *public_key, *secret_key;
	unsigned checkpoint_every, replay_timeout_ms, silence_ms, credit;

	void	*ctx, *sub, *dealer;
	int	 state;
	int	 head_only;	/* the next catch-up only fetches heads (from now) */
	uint64_t epoch;
	int	 have_epoch;
	uint64_t safe_seq;	/* every matching record <= this was delivered */
	uint64_t last_seq;	/* highest seq delivered */
	int	 dirty;		/* position changed since the last checkpoint */
	GHashTable *known;	/* topic -> uint64_t* last topic_seq */
	uint64_t req_id;
	int64_t	 req_ms;	/* last request sent or reply received */
	int64_t	 live_ms;	/* last message on the SUB socket */
	GQueue	*buffer;	/* struct live_msg* held during SYNC */
	size_t	 buffer_bytes;
	int64_t	 ck_ms;		/* last checkpoint written */

	unsigned since_ck;
	int	 ck_failed;	/* the last checkpoint write failed (said once) */

	/* heartbeat parts of one head_seq seen in a row, none showing a loss */
	uint64_t hb_head;
	uint32_t hb_next;	/* the part expected next, 0: none under way */

	/* a record held back while VMI_E_LOST is returned before it */
	struct vmi_msg held;
	int	 have_held;

	/*
	 * The position before the record last returned, for
	 * vmi_sub_close_unprocessed: each of its topics and the topic_seq
	 * known before it (0: none).  Valid until vmi_sub_next is called
	 * again (the record then counts as processed).
	 */
	struct undo {
		char	*topic;
		uint64_t prev;
	}	*undo;
	size_t	 n_undo, cap_undo;

	int	 failed;
	char	 error[512];
	struct vmi_sub_stats st;
};

const char *
vmi_strerror(int e)
{
	switch (e) {
	case VMI_OK: return "ok";
	case VMI_E_TIMEOUT: return "timeout";
	case VMI_E_EPOCH: return "the store's epoch changed (a different stream)";
	case VMI_E_ZMQ: return "ZeroMQ error";
	case VMI_E_CHECKPOINT: return "checkpoint error";
	case VMI_E_INVAL: return "invalid argument";
	case VMI_E_SERVER: return "replay service error";
	case VMI_E_LOST: return "records lost: no longer in the log";
	default: return "unknown error";
	}
}

static char *
dupn(const char *s)
{
	char	*d;

	if (s == NULL)
		return NULL;
	if ((d = strdup(s)) == NULL)
		abort();
	return d;
}

static int
prefix_match(const struct vmi_sub *s, const char *topic)
{
	return topic_prefix_match(topic, s->prefixes, s->n_prefixes);
}

static uint64_t
known_get(const struct vmi_sub *s, const char *topic)
{
	const uint64_t *v = g_hash_table_lookup(s->known, topic);

	return v ? *v : 0;
}

static void
known_set(struct vmi_sub *s, const char *topic, uint64_t ts)
{
	uint64_t *v = g_hash_table_lookup(s->known, topic);

	if (v == NULL) {
		if (g_hash_table_size(s->known) >= SUB_MAX_TOPICS)
			return;
		v = g_new0(uint64_t, 1);
		g_hash_table_insert(s->known, g_strdup(topic), v);
	}
	if (ts > *v)
		*v = ts;
}

static void
undo_clear(struct vmi_sub *s)
{
	while (s->n_undo > 0)
		free(s->undo[--s->n_undo].topic);
}

/* Remember what `topic` was known as before the record being delivered. */
static void
undo_add(struct vmi_sub *s, const char *topic)
{
	if (s->n_undo == s->cap_undo) {
		size_t	 cap = s->cap_undo ? s->cap_undo * 2 : 4;
		struct undo *u = realloc(s->undo, cap * sizeof(*u));

		if (u == NULL)
			abort();
		s->undo = u;
		s->cap_undo = cap;
	}
	s->undo[s->n_undo].topic = dupn(topic);
	s->undo[s->n_undo].prev = known_get(s, topic);
	s->n_undo++;
}

static size_t
live_size(const struct live_msg *m)
{
	size_t	 n = sizeof(*m);
	int	 i;

	for (i = 0; i < m->n; i++)
		n += zmq_msg_size((zmq_msg_t *)(uintptr_t)&m->f[i]);
	return n;
}

static void
live_free(gpointer p)
{
	struct live_msg *m = p;
	int	 i;

	for (i = 0; i < m->n; i++)
		zmq_msg_close(&m->f[i]);
	free(m);
}

static struct live_msg *
buffer_pop(struct vmi_sub *s)
{
	struct live_msg *m = g_queue_pop_head(s->buffer);

	if (m != NULL)
		s->buffer_bytes -= live_size(m);
	return m;
}

static void
buffer_clear(struct vmi_sub *s)
{
	struct live_msg *m;

	while ((m = buffer_pop(s)) != NULL)
		live_free(m);
	s->buffer_bytes = 0;
}

static int
set_curve(struct vmi_sub *s, void *sock)
{
	if (s->server_key == NULL)
		return 0;
	if (zmq_setsockopt(sock, ZMQ_CURVE_SERVERKEY, s->server_key, 40) != 0 ||
	    zmq_setsockopt(sock, ZMQ_CURVE_PUBLICKEY, s->public_key, 40) != 0 ||
	    zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, s->secret_key, 40) != 0)
		return -1;
	return 0;
}

int
vmi_sub_open(struct vmi_sub **out, const struct vmi_sub_opts *o, char *err,
    size_t errlen)
{
	struct vmi_sub *s;
	struct checkpoint ck;
	size_t	 i;
	int	 zero = 0, rc, hwm;
	int64_t	 maxmsg = SUB_FRAME_MAX;

	*out = NULL;
	if (o->endpoint == NULL || o->replay_endpoint == NULL) {
		snprintf(err, errlen, "endpoint and replay_endpoint are required");
		return VMI_E_INVAL;
	}
	if (o->server_key != NULL && (o->public_key == NULL || o->secret_key == NULL ||
	    strlen(o->server_key) != 40 || strlen(o->public_key) != 40 ||
	    strlen(o->secret_key) != 40)) {
		snprintf(err, errlen, "CURVE needs server, public and secret keys "
		    "(40 Z85 characters each)");
		return VMI_E_INVAL;
	}
	if (o->n_prefixes > SUB_MAX_PREFIXES) {
		snprintf(err, errlen, "at most %d topic prefixes", SUB_MAX_PREFIXES);
		return VMI_E_INVAL;
	}
	for (i = 0; i < o->n_prefixes; i++)
		if (o->prefixes[i] == NULL || !topic_chars_ok(o->prefixes[i], 1)) {
			snprintf(err, errlen, "bad topic prefix (a-z 0-9 _ - . and "
			    "under 256 bytes): %.64s", o->prefixes[i] ?
			    o->prefixes[i] : "(null)");
			return VMI_E_INVAL;
		}
	if ((s = calloc(1, sizeof(*s))) == NULL)
		abort();
	s->endpoint = dupn(o->endpoint);
	s->replay_endpoint = dupn(o->replay_endpoint);
	s->checkpoint = dupn(o->checkpoint);
	s->server_key = dupn(o->server_key);
	s->public_key = dupn(o->public_key);
	s->secret_key = dupn(o->secret_key);
	s->checkpoint_every = o->checkpoint_every ? o->checkpoint_every : 1000;
	s->replay_timeout_ms = o->replay_timeout_ms ? o->replay_timeout_ms : 3000;
	s->silence_ms = o->silence_ms ? o->silence_ms : 5000;
	s->credit = o->credit ? o->credit : 1000;
	s->known = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
	s->buffer = g_queue_new();
	if (o->n_prefixes > 0)
		s->prefixes = calloc(o->n_prefixes, sizeof(char *));
	for (i = 0; i < o->n_prefixes; i++)
		s->prefixes[s->n_prefixes++] = dupn(o->prefixes[i]);

	switch (o->from) {
	case VMI_FROM_START: s->safe_seq = 0; break;
	case VMI_FROM_SEQ: s->safe_seq = o->from_seq ? o->from_seq - 1 : 0; break;
	default: s->head_only = 1; break;
	}
	if (s->checkpoint != NULL) {
		rc = checkpoint_read(s->checkpoint, &ck, err, errlen);
		if (rc < 0) {
			vmi_sub_close(s);
			return VMI_E_CHECKPOINT;
		}
		if (rc == 0) {
			s->epoch = ck.epoch;
			s->have_epoch = 1;
			s->safe_seq = s->last_seq = ck.seq;
			s->head_only = 0;
			for (i = 0; i < ck.n_topics; i++)
				known_set(s, ck.topics[i].topic, ck.topics[i].ts);
			checkpoint_free(&ck);
		}
	}

	s->ctx = zmq_ctx_new();
	s->sub = zmq_socket(s->ctx, ZMQ_SUB);
	s->dealer = zmq_socket(s->ctx, ZMQ_DEALER);
	if (s->sub == NULL || s->dealer == NULL)
		goto zerr;
	zmq_setsockopt(s->sub, ZMQ_LINGER, &zero, sizeof(zero));
	zmq_setsockopt(s->dealer, ZMQ_LINGER, &zero, sizeof(zero));
	/* libzmq refuses a bigger frame before allocating it */
	zmq_setsockopt(s->sub, ZMQ_MAXMSGSIZE, &maxmsg, sizeof(maxmsg));
	zmq_setsockopt(s->dealer, ZMQ_MAXMSGSIZE, &maxmsg, sizeof(maxmsg));
	if (o->rcvhwm > 0) {
		hwm = o->rcvhwm;
		zmq_setsockopt(s->sub, ZMQ_RCVHWM, &hwm, sizeof(hwm));
	}
	if (set_curve(s, s->sub) != 0 || set_curve(s, s->dealer) != 0)
		goto zerr;
	/* subscribe before asking the log: the Clone pattern's first step */
	if (s->n_prefixes == 0) {
		if (zmq_setsockopt(s->sub, ZMQ_SUBSCRIBE, "", 0) != 0)
			goto zerr;
	} else {
		for (i = 0; i < s->n_prefixes; i++)
			if (zmq_setsockopt(s->sub, ZMQ_SUBSCRIBE, s->prefixes[i],
			    strlen(s->prefixes[i])) != 0)
				goto zerr;
		if (zmq_setsockopt(s->sub, ZMQ_SUBSCRIBE, VMI_HEARTBEAT_TOPIC,
		    strlen(VMI_HEARTBEAT_TOPIC)) != 0)
			goto zerr;
	}
	if (zmq_connect(s->sub, s->endpoint) != 0 ||
	    zmq_connect(s->dealer, s->replay_endpoint) != 0)
		goto zerr;
	s->state = ST_NEED_SYNC;
	s->live_ms = (util_mono_us() / 1000);
	*out = s;
	return VMI_OK;
zerr:
	snprintf(err, errlen, "zmq: %s", zmq_strerror(errno));
	vmi_sub_close(s);
	return VMI_E_ZMQ;
}

static int
send_request(struct vmi_sub *s)
{
	Vmingest__ReplayRequest q = VMINGEST__REPLAY_REQUEST__INIT;
	uint8_t	*buf;
	size_t	 n;
	int	 rc;

	q.prefixes = s->prefixes;
	q.n_prefixes = s->n_prefixes;
	q.from_seq = s->safe_seq + 1;
	q.credit = s->credit;
	q.request_id = ++s->req_id;
	q.head_only = s->head_only;
	n = vmingest__replay_request__get_packed_size(&q);
	if ((buf = malloc(n ? n : 1)) == NULL)
		abort();
	vmingest__replay_request__pack(&q, buf);
	rc = zmq_send(s->dealer, buf, n, ZMQ_DONTWAIT);
	free(buf);
	s->req_ms = (util_mono_us() / 1000);
	s->state = ST_SYNC;
	return rc == -1 ? -1 : 0;
}

static void
send_more(struct vmi_sub *s)
{
	Vmingest__ReplayRequest q = VMINGEST__REPLAY_REQUEST__INIT;
	uint8_t	 buf[64];
	size_t	 n;

	q.request_id = s->req_id;
	q.more = 1;
	q.credit = s->credit;
	n = vmingest__replay_request__pack(&q, buf);
	zmq_send(s->dealer, buf, n, ZMQ_DONTWAIT);
}

/* Go back to the log for what we may have missed. */
static void
resync(struct vmi_sub *s)
{
	s->st.resyncs++;
	s->state = ST_NEED_SYNC;
}

static int
check_epoch(struct vmi_sub *s, uint64_t epoch)
{
	if (!s->have_epoch) {
		s->epoch = epoch;
		s->have_epoch = 1;
		return 0;
	}
	if (epoch != s->epoch) {
		snprintf(s->error, sizeof(s->error), "epoch changed from %016llx "
		    "to %016llx (the store was recreated)",
		    (unsigned long long)s->epoch, (unsigned long long)epoch);
		s->failed = VMI_E_EPOCH;
		return VMI_E_EPOCH;
	}
	return 0;
}

/*
 * Hand a record over: it becomes known on each of its subscribed topics
 * (remembering the previous values for vmi_sub_close_unprocessed).
 */
static void
deliver(struct vmi_sub *s, struct vmi_msg *msg)
{
	Vmingest__Record *rec = msg->rec;
	size_t	 i;

	undo_clear(s);
	for (i = 0; i < rec->n_topics; i++)
		if (prefix_match(s, rec->topics[i]->topic)) {
			undo_add(s, rec->topics[i]->topic);
			known_set(s, rec->topics[i]->topic, rec->topics[i]->topic_seq);
		}
	if (msg->seq > s->last_seq)
		s->last_seq = msg->seq;
	s->dirty = 1;
	s->st.delivered++;
	if (msg->replayed)
		s->st.replayed++;
	else
		s->st.live++;
	s->since_ck++;
}

/* Records found missing from the log: the first range is named. */
struct loss {
	const char *topic;
	uint64_t from, to, total;
};

static void
loss_add(struct loss *l, const char *topic, uint64_t from, uint64_t to)
{
	if (l->topic == NULL) {
		l->topic = topic;
		l->from = from;
		l->to = to;
	}
	l->total += to - from + 1;
}

/* Say what was lost, count it; VMI_E_LOST, or VMI_OK if nothing was. */
static int
note_lost(struct vmi_sub *s, const struct loss *l, const char *how)
{
	if (l->total == 0)
		return VMI_OK;
	s->st.lost += l->total;
	snprintf(s->error, sizeof(s->error), "%llu record(s) no longer in the "
	    "log (removed by retention before they were delivered), first "
	    "topic %s topic_seq %llu-%llu%s", (unsigned long long)l->total,
	    l->topic, (unsigned long long)l->from, (unsigned long long)l->to, how);
	return VMI_E_LOST;
}

/*
 * A record (live or replayed).  1 delivered into *msg, 0 dropped (dup,
 * malformed), 2 a gap was found (resync scheduled, nothing delivered),
 * 3 records before it are lost: it is held, VMI_E_LOST comes first.
 */
static int
take_record(struct vmi_sub *s, const Vmingest__Envelope *env, const char *ftopic,
    zmq_msg_t *body, int replayed, struct vmi_msg *msg)
{
	Vmingest__Record *rec;
	struct loss l = { NULL, 0, 0, 0 };
	size_t	 i;
	int	 any = 0, fresh = 0, gap = 0;

	if (env->seq <= s->safe_seq) {		/* below the watermark: seen */
		s->st.duplicates++;
		return 0;
	}
	if ((rec = vmingest__record__unpack(NULL, zmq_msg_size(body),
	    zmq_msg_data(body))) == NULL || !topic_chars_ok(ftopic, 0)) {
		s->st.malformed++;
		if (rec != NULL)
			vmingest__record__free_unpacked(rec, NULL);
		return 0;
	}
	for (i = 0; i < rec->n_topics; i++) {
		const Vmingest__TopicSeq *t = rec->topics[i];
		uint64_t k;

		/* no daemon makes such a topic; it could break the checkpoint */
		if (!topic_chars_ok(t->topic, 0)) {
			s->st.malformed++;
			vmingest__record__free_unpacked(rec, NULL);
			return 0;
		}
		if (!prefix_match(s, t->topic))
			continue;
		any = 1;
		k = known_get(s, t->topic);
		if (t->topic_seq > k)
			fresh = 1;
		if (t->topic_seq > k + 1) {
			if (!replayed)
				gap = 1;
			else if (k > 0)	/* the log itself jumps: retention */
				loss_add(&l, t->topic, k + 1, t->topic_seq - 1);
		}
	}
	if (gap) {
		/* lost something on this topic: fetch it from the log */
		s->st.gaps++;
		vmingest__record__free_unpacked(rec, NULL);
		resync(s);
		return 2;
	}
	if (!any || !fresh) {
		if (any)
			s->st.duplicates++;
		vmingest__record__free_unpacked(rec, NULL);
		return 0;
	}
	memset(msg, 0, sizeof(*msg));
	msg->rec = rec;
	snprintf(msg->topic, sizeof(msg->topic), "%s", ftopic);
	msg->epoch = env->epoch;
	msg->seq = env->seq;
	msg->topic_seq = env->topic_seq;
	msg->replayed = replayed;
	msg->sent_at_us = env->sent_at_us;
	if (note_lost(s, &l, "") != VMI_OK) {
		s->held = *msg;
		s->have_held = 1;
		memset(msg, 0, sizeof(*msg));
		return 3;
	}
	deliver(s, msg);
	return 1;
}

/*
 * A heartbeat (or one part of it).  The watermark moves to its head_seq
 * only when every part was seen, in a row, and none named a head we have
 * not reached: then every record sent before it has been delivered.
 */
static void
take_heartbeat(struct vmi_sub *s, const Vmingest__Envelope *env)
{
	size_t	 i;
	int	 whole;

	s->st.heartbeats++;
	s->st.head_seq = env->head_seq;
	for (i = 0; i < env->n_heads; i++) {
		const Vmingest__TopicHead *h = env->heads[i];

		if (!topic_chars_ok(h->topic, 0)) {
			s->st.malformed++;
			continue;
		}
		if (prefix_match(s, h->topic) &&
		    h->topic_seq > known_get(s, h->topic)) {
			s->st.gaps++;
			s->hb_next = 0;
			resync(s);
			return;
		}
	}
	if (env->parts == 0) {
		/* a daemon without part numbers: a full part may not be the last */
		whole = env->n_heads < VMI_HEARTBEAT_MAX_HEADS;
	} else if (env->part == 1 || env->parts == 1) {
		s->hb_head = env->head_seq;
		s->hb_next = 2;
		whole = env->parts == 1;
	} else if (env->part == s->hb_next && env->head_seq == s->hb_head) {
		s->hb_next++;
		whole = env->part == env->parts;
	} else {
		s->hb_next = 0;		/* a part is missing: wait for the next one */
		whole = 0;
	}
	if (whole) {
		s->hb_next = 0;
		if (s->state == ST_LIVE && env->head_seq > s->safe_seq) {
			s->safe_seq = env->head_seq;
			s->dirty = 1;
		}
	}
}

/* A live message [topic][Envelope]([Record]).  1 delivered, 0 not, <0 error. */
static int
handle_live(struct vmi_sub *s, struct live_msg *m, struct vmi_msg *msg)
{
	Vmingest__Envelope *env;
	char	 topic[256];
	size_t	 tl;
	int	 rc = 0;

	if (m->n < 2 || (tl = zmq_msg_size(&m->f[0])) >= sizeof(topic))
		return 0;
	memcpy(topic, zmq_msg_data(&m->f[0]), tl);
	topic[tl] = '\0';
	if ((env = vmingest__envelope__unpack(NULL, zmq_msg_size(&m->f[1]),
	    zmq_msg_data(&m->f[1]))) == NULL) {
		s->st.malformed++;
		return 0;
	}
	if ((rc = check_epoch(s, env->epoch)) != 0)
		goto out;
	if (env->kind == VMINGEST__ENVELOPE__KIND__HEARTBEAT)
		take_heartbeat(s, env);
	else if (env->kind == VMINGEST__ENVELOPE__KIND__RECORD && m->n == 3)
		rc = take_record(s, env, topic, &m->f[2], 0, msg) == 1 ? 1 : 0;
out:
	vmingest__envelope__free_unpacked(env, NULL);
	return rc;
}

/* A replay reply.  1 delivered, 0 not, <0 error. */
static int
handle_replay(struct vmi_sub *s, zmq_msg_t *f, int n, struct vmi_msg *msg)
{
	Vmingest__Envelope *env;
	struct loss l = { NULL, 0, 0, 0 };
	uint64_t k;
	char	 topic[256];
	size_t	 i, tl;
	int	 rc = 0;

	if (n < 2 || (tl = zmq_msg_size(&f[0])) >= sizeof(topic))
		return 0;
	memcpy(topic, zmq_msg_data(&f[0]), tl);
	topic[tl] = '\0';
	if ((env = vmingest__envelope__unpack(NULL, zmq_msg_size(&f[1]),
	    zmq_msg_data(&f[1]))) == NULL) {
		s->st.malformed++;
		return 0;
	}
	if (env->request_id != s->req_id) {	/* a stale stream */
		vmingest__envelope__free_unpacked(env, NULL);
		return 0;
	}
	/* any reply of ours, PROGRESS included, shows the service is there */
	s->req_ms = (util_mono_us() / 1000);
	if ((rc = check_epoch(s, env->epoch)) != 0)
		goto out;
	switch (env->kind) {
	case VMINGEST__ENVELOPE__KIND__RECORD:
		if (n >= 3)
			switch (take_record(s, env, topic, &f[2], 1, msg)) {
			case 1: rc = 1; break;
			case 3: rc = VMI_E_LOST; break;
			default: rc = 0; break;
			}
		break;
	case VMINGEST__ENVELOPE__KIND__BATCH_END:
		send_more(s);
		break;
	case VMINGEST__ENVELOPE__KIND__REPLAY_END:
		/*
		 * Everything up to env->seq has been delivered.  A topic whose
		 * head is past what we got had records in that range that
		 * the log no longer has (a catch-up "from now" fetches none).
		 */
		for (i = 0; i < env->n_heads && !s->head_only; i++) {
			const Vmingest__TopicHead *h = env->heads[i];

			if (!topic_chars_ok(h->topic, 0) || !prefix_match(s, h->topic))
				continue;
			if ((k = known_get(s, h->topic)) > 0 && h->topic_seq > k)
				loss_add(&l, h->topic, k + 1, h->topic_seq);
		}
		rc = note_lost(s, &l, " (the newest of their topics)");
		if (env->seq > s->safe_seq)
			s->safe_seq = env->seq;
		if (env->seq > s->last_seq)
			s->last_seq = env->seq;
		s->dirty = 1;
		for (i = 0; i < env->n_heads; i++)
			if (topic_chars_ok(env->heads[i]->topic, 0) &&
			    prefix_match(s, env->heads[i]->topic))
				known_set(s, env->heads[i]->topic,
				    env->heads[i]->topic_seq);
		s->head_only = 0;
		s->state = ST_LIVE;
		s->live_ms = (util_mono_us() / 1000);
		break;
	case VMINGEST__ENVELOPE__KIND__ERROR:
		snprintf(s->error, sizeof(s->error), "replay service: %s",
		    env->error ? env->error : "?");
		/* said to the caller; retried after replay_timeout_ms */
		rc = VMI_E_SERVER;
		break;
	default:
		break;		/* PROGRESS, or a kind newer than us */
	}
out:
	vmingest__envelope__free_unpacked(env, NULL);
	return rc;
}

/* Receive one multipart message (up to nmax frames kept); 0 none, else frames. */
static int
recv_multi(void *sock, zmq_msg_t *f, int nmax, int flags)
{
	int	 n = 0, more = 1;

	while (more) {
		zmq_msg_t x, *m = n < nmax ? &f[n] : &x;

		zmq_msg_init(m);
		if (zmq_msg_recv(m, sock, n == 0 ? flags : 0) == -1) {
			zmq_msg_close(m);
			break;
		}
		more = zmq_msg_more(m);
		if (m == &x || zmq_msg_size(m) > SUB_FRAME_MAX)
			zmq_msg_close(m);
		else
			n++;
		if (m == &x)
			continue;
	}
	return n;
}

static void
close_frames(zmq_msg_t *f, int n)
{
	int	 i;

	for (i = 0; i < n; i++)
		zmq_msg_close(&f[i]);
}

/* Least ms between two checkpoint writes from here on. */
static int64_t
ck_interval(const struct vmi_sub *s)
{
	return s->ck_failed ? SUB_CKPT_RETRY_MS : SUB_CKPT_MIN_MS;
}

/*
 * Write the checkpoint if it is due (force: whenever the position moved).
 * A failed write is returned once (VMI_E_CHECKPOINT), then retried every
 * SUB_CKPT_RETRY_MS; records go on being delivered meanwhile (a crash
 * then only re-delivers more: at-least-once holds).
 */
static int
maybe_checkpoint(struct vmi_sub *s, int force)
{
	int64_t	 now;

	if (s->checkpoint == NULL || !s->have_epoch || !s->dirty)
		return VMI_OK;
	if (!force && s->since_ck < s->checkpoint_every)
		return VMI_OK;
	now = util_mono_us() / 1000;
	if (s->ck_failed && now - s->ck_ms < ck_interval(s))
		return VMI_OK;
	if (vmi_sub_checkpoint(s) == VMI_OK)
		return VMI_OK;
	s->ck_ms = now;
	if (s->ck_failed)
		return VMI_OK;		/* said already */
	s->ck_failed = 1;
	return VMI_E_CHECKPOINT;
}

int
vmi_sub_checkpoint(struct vmi_sub *s)
{
	struct checkpoint ck;
	GHashTableIter it;
	gpointer k, v;
	size_t	 i = 0;
	int	 rc;

	undo_clear(s);	/* the last record counts as processed now */
	if (s->checkpoint == NULL || !s->have_epoch)
		return VMI_OK;
	memset(&ck, 0, sizeof(ck));
	ck.epoch = s->epoch;
	ck.seq = s->safe_seq;
	ck.n_topics = g_hash_table_size(s->known);
	if (ck.n_topics > 0 && (ck.topics = calloc(ck.n_topics,
	    sizeof(*ck.topics))) == NULL)
		abort();
	g_hash_table_iter_init(&it, s->known);
	while (g_hash_table_iter_next(&it, &k, &v) && i < ck.n_topics) {
		ck.topics[i].topic = k;
		ck.topics[i].ts = *(uint64_t *)v;
		i++;
	}
	rc = checkpoint_write(s->checkpoint, &ck);
	free(ck.topics);
	if (rc != 0) {
		snprintf(s->error, sizeof(s->error), "checkpoint %s: %s",
		    s->checkpoint, strerror(errno));
		return VMI_E_CHECKPOINT;
	}
	s->dirty = 0;
	s->ck_ms = (util_mono_us() / 1000);
	s->since_ck = 0;
	s->ck_failed = 0;
	s->st.checkpoints++;
	return VMI_OK;
}

int
vmi_sub_next(struct vmi_sub *s, struct vmi_msg *msg, int timeout_ms)
{
	int64_t	 deadline = timeout_ms < 0 ? INT64_MAX : (util_mono_us() / 1000) + timeout_ms;
	int64_t	 now, wait;
	zmq_msg_t f[4];
	int	 n, rc;

	memset(msg, 0, sizeof(*msg));
	if (s->failed)
		return s->failed;
	/* the previous record has been processed: maybe checkpoint it */
	undo_clear(s);
	if ((rc = maybe_checkpoint(s, 0)) != VMI_OK)
		return rc;
	if (s->have_held) {
		/* the record that revealed the loss VMI_E_LOST reported */
		*msg = s->held;
		memset(&s->held, 0, sizeof(s->held));
		s->have_held = 0;
		deliver(s, msg);
		return VMI_OK;
	}
	for (;;) {
		if (s->state == ST_NEED_SYNC) {
			if (send_request(s) != 0) {
				/* not connected yet: retry after the timeout */
				s->state = ST_SYNC;
			}
		}
		if (s->state == ST_LIVE && !g_queue_is_empty(s->buffer)) {
			struct live_msg *m = buffer_pop(s);

			rc = handle_live(s, m, msg);
			live_free(m);
			if (rc != 0)
				return rc > 0 ? VMI_OK : rc;
			if (s->state != ST_LIVE)
				buffer_clear(s);	/* the catch-up covers these */
			continue;
		}
		/* replay replies first, without waiting */
		if (s->state == ST_SYNC &&
		    (n = recv_multi(s->dealer, f, 4, ZMQ_DONTWAIT)) > 0) {
			rc = handle_replay(s, f, n, msg);
			close_frames(f, n);
			if (rc != 0)
				return rc > 0 ? VMI_OK : rc;
			continue;
		}
		/* the live feed: buffered during a catch-up, handled when live */
		if ((n = recv_multi(s->sub, f, 3, ZMQ_DONTWAIT)) > 0) {
			struct live_msg *m;

			s->live_ms = (util_mono_us() / 1000);
			if ((m = calloc(1, sizeof(*m))) == NULL)
				abort();
			memcpy(m->f, f, sizeof(zmq_msg_t) * (size_t)(n > 3 ? 3 : n));
			m->n = n > 3 ? 3 : n;
			if (s->state != ST_LIVE) {
				if (g_queue_get_length(s->buffer) < SUB_BUFFER_MAX &&
				    s->buffer_bytes < SUB_BUFFER_BYTES) {
					s->buffer_bytes += live_size(m);
					g_queue_push_tail(s->buffer, m);
				} else {
					s->st.buffered_dropped++;
					live_free(m);
				}
				continue;
			}
			rc = handle_live(s, m, msg);
			live_free(m);
			if (rc != 0)
				return rc > 0 ? VMI_OK : rc;
			continue;
		}

		/* nothing ready: timers, then wait */
		now = (util_mono_us() / 1000);
		if (s->state == ST_SYNC && now - s->req_ms >= s->replay_timeout_ms) {
			s->state = ST_NEED_SYNC;	/* resend from our position */
			continue;
		}
		if (s->state == ST_LIVE && now - s->live_ms >= s->silence_ms) {
			s->live_ms = now;
			resync(s);
			continue;
		}
		/*
		 * About to block: a good moment for the checkpoint, at most
		 * every SUB_CKPT_MIN_MS (a record at a time would mean an
		 * fsync per record); come back when the interval is over.
		 */
		if (s->checkpoint != NULL && s->have_epoch && s->dirty &&
		    now - s->ck_ms >= ck_interval(s) &&
		    (rc = maybe_checkpoint(s, 1)) != VMI_OK)
			return rc;
		if (now >= deadline)
			return VMI_E_TIMEOUT;
		wait = deadline - now;
		if (s->checkpoint != NULL && s->have_epoch && s->dirty &&
		    wait > ck_interval(s) - (now - s->ck_ms))
			wait = ck_interval(s) - (now - s->ck_ms);
		if (s->state == ST_SYNC && wait > s->replay_timeout_ms - (now - s->req_ms))
			wait = s->replay_timeout_ms - (now - s->req_ms);
		if (s->state == ST_LIVE && wait > s->silence_ms - (now - s->live_ms))
			wait = s->silence_ms - (now - s->live_ms);
		if (wait < 0)
			wait = 0;
		{
			zmq_pollitem_t it[2] = {
				{ s->sub, 0, ZMQ_POLLIN, 0 },
				{ s->dealer, 0, ZMQ_POLLIN, 0 },
			};

			if (zmq_poll(it, s->state == ST_SYNC ? 2 : 1, (long)wait) == -1 &&
			    errno != EINTR) {
				snprintf(s->error, sizeof(s->error), "zmq_poll: %s",
				    zmq_strerror(errno));
				return VMI_E_ZMQ;
			}
		}
	}
}

void
vmi_sub_stats(const struct vmi_sub *s, struct vmi_sub_stats *st)
{
	*st = s->st;
}

const char *
vmi_sub_error(const struct vmi_sub *s)
{
	return s->error;
}

void
vmi_msg_clear(struct vmi_msg *m)
{
	if (m->rec != NULL)
		vmingest__record__free_unpacked(m->rec, NULL);
	m->rec = NULL;
}

void
vmi_sub_close_unprocessed(struct vmi_sub *s)
{
	size_t	 i;

	if (s == NULL)
		return;
	/* back to the position before the last record (safe_seq is below it) */
	for (i = 0; i < s->n_undo; i++) {
		if (s->undo[i].prev == 0)
			g_hash_table_remove(s->known, s->undo[i].topic);
		else {
			uint64_t *v = g_hash_table_lookup(s->known, s->undo[i].topic);

			if (v != NULL)
				*v = s->undo[i].prev;
		}
		s->dirty = 1;
	}
	undo_clear(s);
	vmi_sub_close(s);
}

void
vmi_sub_close(struct vmi_sub *s)
{
	size_t	 i;

	if (s == NULL)
		return;
	/* a last write even while failed writes are being backed off */
	if (!s->failed && s->checkpoint != NULL && s->have_epoch && s->dirty)
		vmi_sub_checkpoint(s);
	if (s->have_held)
		vmi_msg_clear(&s->held);
	if (s->buffer != NULL) {
		buffer_clear(s);
		g_queue_free(s->buffer);
	}
	if (s->sub != NULL)
		zmq_close(s->sub);
	if (s->dealer != NULL)
		zmq_close(s->dealer);
	if (s->ctx != NULL)
		zmq_ctx_term(s->ctx);
	if (s->known != NULL)
		g_hash_table_destroy(s->known);
	undo_clear(s);
	free(s->undo);
	for (i = 0; i < s->n_prefixes; i++)
		free(s->prefixes[i]);
	free(s->prefixes);
	free(s->endpoint);
	free(s->replay_endpoint);
	free(s->checkpoint);
	free(s->server_key);
	free(s->public_key);
	if (s->secret_key != NULL)
		explicit_bzero(s->secret_key, strlen(s->secret_key));
	free(s->secret_key);
	free(s);
}
