/*
 * test_client.c - libvmingest-client: the checkpoint file, and the
 * subscriber's algorithm against a scripted fake daemon (XPUB + ROUTER on
 * ipc:// in a temp dir): catch-up from the log, the seam, a topic_seq
 * jump, a heartbeat ahead, an epoch change.
 */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include <zmq.h>

#include "checkpoint.h"
#include "vmingest-client.h"

#define EPOCH	0x1234abcdULL

static char tmpdir[256];

static int
setup_dir(void **state)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/vmi-test-client.XXXXXX");
	assert_non_null(mkdtemp(tmpdir));
	return 0;
}

static int
teardown_dir(void **state)
{
	char	 cmd[512];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

/* ---- checkpoint ---- */

static void
test_checkpoint_round_trip(void **state)
{
	struct checkpoint ck = { 0 }, rd;
	struct checkpoint_topic t[2] = { { "rn.phd", 55 }, { "seismic.waveform", 7 } };
	char	 path[512], err[256], tmp[600];

	snprintf(path, sizeof(path), "%s/a.ckpt", tmpdir);
	assert_int_equal(checkpoint_read(path, &rd, err, sizeof(err)), 1);
	ck.epoch = 0xfedcba9876543210ULL;
	ck.seq = 1234;
	ck.topics = t;
	ck.n_topics = 2;
	assert_int_equal(checkpoint_write(path, &ck), 0);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	assert_int_not_equal(access(tmp, F_OK), 0);	/* renamed away */
	assert_int_equal(checkpoint_read(path, &rd, err, sizeof(err)), 0);
	assert_true(rd.epoch == ck.epoch);
	assert_int_equal(rd.seq, 1234);
	assert_int_equal(rd.n_topics, 2);
	assert_string_equal(rd.topics[0].topic, "rn.phd");
	assert_int_equal(rd.topics[0].ts, 55);
	assert_string_equal(rd.topics[1].topic, "seismic.waveform");
	assert_int_equal(rd.topics[1].ts, 7);
	checkpoint_free(&rd);
}

static void
write_file(const char *path, const char *text)
{
	FILE	*fp = fopen(path, "w");

	assert_non_null(fp);
	fputs(text, fp);
	fclose(fp);
}

static void
test_checkpoint_malformed(void **state)
{
	static const char *bad[] = {
		"",
		"something else\n",
		"vmingest-checkpoint 1\nseq 12\ntopic BAD/TOPIC 3\n",
		"vmingest-checkpoint 1\nseq 12\nwhat is this\n",
		"vmingest-checkpoint 1\nseq 12",		/* cut: no newline */
		"vmingest-checkpoint 1\n",			/* no position at all */
		"vmingest-checkpoint 1\nepoch 00000000000000ab\n",	/* no seq */
		"vmingest-checkpoint 1\nepoch ab\nseq -1\n",	/* not 2^64-1 */
		"vmingest-checkpoint 1\nepoch ab\nseq 3\ntopic a -2\n",
		"vmingest-checkpoint 1\nepoch ab\nseq 3x\n",
		"vmingest-checkpoint 1\nepoch ab\nseq 3\ntopic a 1 2\n",
	};
	struct checkpoint rd;
	char	 path[512], err[256];
	size_t	 i;

	snprintf(path, sizeof(path), "%s/bad.ckpt", tmpdir);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		write_file(path, bad[i]);
		err[0] = '\0';
		assert_int_equal(checkpoint_read(path, &rd, err, sizeof(err)), -1);
		assert_true(err[0] != '\0');
	}
}

/* A topic no daemon makes is never written: it could break the format. */
static void
test_checkpoint_refuses_bad_topic(void **state)
{
	struct checkpoint ck = { 0 }, rd;
	struct checkpoint_topic t[2] = { { "a", 1 }, { "b 1\nseq 999", 1 } };
	char	 path[512], err[256];

	snprintf(path, sizeof(path), "%s/badtopic.ckpt", tmpdir);
	ck.epoch = 1;
	ck.seq = 2;
	ck.topics = t;
	ck.n_topics = 2;
	assert_int_equal(checkpoint_write(path, &ck), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(checkpoint_read(path, &rd, err, sizeof(err)), 1);
	ck.n_topics = 1;
	assert_int_equal(checkpoint_write(path, &ck), 0);
	assert_int_equal(checkpoint_read(path, &rd, err, sizeof(err)), 0);
	assert_int_equal(rd.n_topics, 1);
	checkpoint_free(&rd);
}

/* ---- a scripted fake daemon ---- */

struct fake {
	void	*ctx, *pub, *router;
	char	 pub_ep[300], rep_ep[300];
	uint8_t	 id[256];
	size_t	 idlen;
};

static void
fake_open(struct fake *f)
{
	int	 zero = 0, one = 1;

	memset(f, 0, sizeof(*f));
	snprintf(f->pub_ep, sizeof(f->pub_ep), "ipc://%s/pub", tmpdir);
	snprintf(f->rep_ep, sizeof(f->rep_ep), "ipc://%s/rep", tmpdir);
	f->ctx = zmq_ctx_new();
	f->pub = zmq_socket(f->ctx, ZMQ_XPUB);
	f->router = zmq_socket(f->ctx, ZMQ_ROUTER);
	zmq_setsockopt(f->pub, ZMQ_LINGER, &zero, sizeof(zero));
	zmq_setsockopt(f->pub, ZMQ_XPUB_VERBOSE, &one, sizeof(one));
	zmq_setsockopt(f->router, ZMQ_LINGER, &zero, sizeof(zero));
	assert_int_equal(zmq_bind(f->pub, f->pub_ep), 0);
	assert_int_equal(zmq_bind(f->router, f->rep_ep), 0);
}

static void
fake_close(struct fake *f)
{
	zmq_close(f->pub);
	zmq_close(f->router);
	zmq_ctx_term(f->ctx);
}

/* Wait for the subscriber's subscription (XPUB gets "\x01prefix"). */
static void
fake_wait_subscribed(struct fake *f)
{
	char	 buf[300];
	zmq_pollitem_t it = { f->pub, 0, ZMQ_POLLIN, 0 };

	assert_int_equal(zmq_poll(&it, 1, 5000), 1);
	assert_true(zmq_recv(f->pub, buf, sizeof(buf), 0) >= 1);
	assert_int_equal(buf[0], 1);
}

static Vmingest__ReplayRequest *
fake_recv_request(struct fake *f)
{
	zmq_pollitem_t it = { f->router, 0, ZMQ_POLLIN, 0 };
	zmq_msg_t m;
	Vmingest__ReplayRequest *q;
	int	 n;

	assert_int_equal(zmq_poll(&it, 1, 5000), 1);
	n = zmq_recv(f->router, f->id, sizeof(f->id), 0);
	assert_true(n > 0);
	f->idlen = (size_t)n;
	zmq_msg_init(&m);
	assert_true(zmq_msg_recv(&m, f->router, 0) >= 0);
	q = vmingest__replay_request__unpack(NULL, zmq_msg_size(&m), zmq_msg_data(&m));
	assert_non_null(q);
	zmq_msg_close(&m);
	return q;
}

static void
send_env(void *sock, Vmingest__Envelope *env, int flags)
{
	uint8_t	 buf[1024];
	size_t	 n = vmingest__envelope__pack(env, buf);

	zmq_send(sock, buf, n, flags);
}

/* A record of topic `topic` with seq and topic_seq, on the feed or the replay. */
static void
fake_record_on(struct fake *f, const char *topic, int replay, uint64_t rid,
    uint64_t epoch, uint64_t seq, uint64_t ts)
{
	Vmingest__Envelope env = VMINGEST__ENVELOPE__INIT;
	Vmingest__Record rec = VMINGEST__RECORD__INIT;
	Vmingest__TopicSeq tsq = VMINGEST__TOPIC_SEQ__INIT, *tp = &tsq;
	uint8_t	 buf[1024];
	size_t	 n;
	void	*s = replay ? f->router : f->pub;

	tsq.topic = (char *)(uintptr_t)topic;
	tsq.topic_seq = ts;
	rec.seq = seq;
	rec.topic = (char *)(uintptr_t)topic;
	rec.topics = &tp;
	rec.n_topics = 1;
	rec.disposition = VMINGEST__DISPOSITION__PUBLISHED;
	n = vmingest__record__pack(&rec, buf);
	env.epoch = epoch;
	env.seq = seq;
	env.topic_seq = ts;
	env.kind = VMINGEST__ENVELOPE__KIND__RECORD;
	env.request_id = rid;
	if (replay)
		zmq_send(s, f->id, f->idlen, ZMQ_SNDMORE);
	zmq_send(s, topic, strlen(topic), ZMQ_SNDMORE);
	send_env(s, &env, ZMQ_SNDMORE);
	zmq_send(s, buf, n, 0);
}

static void
fake_record(struct fake *f, int replay, uint64_t rid, uint64_t epoch, uint64_t seq,
    uint64_t ts)
{
	fake_record_on(f, "t.a", replay, rid, epoch, seq, ts);
}

static void
fake_end(struct fake *f, uint64_t rid, uint64_t covered, uint64_t head_ts)
{
	Vmingest__Envelope env = VMINGEST__ENVELOPE__INIT;
	Vmingest__TopicHead h = VMINGEST__TOPIC_HEAD__INIT, *hp = &h;

	h.topic = (char *)"t.a";
	h.topic_seq = head_ts;
	env.epoch = EPOCH;
	env.kind = VMINGEST__ENVELOPE__KIND__REPLAY_END;
	env.seq = env.head_seq = covered;
	env.heads = &hp;
	env.n_heads = 1;
	env.request_id = rid;
	zmq_send(f->router, f->id, f->idlen, ZMQ_SNDMORE);
	zmq_send(f->router, "", 0, ZMQ_SNDMORE);
	send_env(f->router, &env, 0);
}

static void
fake_heartbeat(struct fake *f, uint64_t epoch, uint64_t head_ts)
{
	Vmingest__Envelope env = VMINGEST__ENVELOPE__INIT;
	Vmingest__TopicHead h = VMINGEST__TOPIC_HEAD__INIT, *hp = &h;

	h.topic = (char *)"t.a";
	h.topic_seq = head_ts;
	env.epoch = epoch;
	env.kind = VMINGEST__ENVELOPE__KIND__HEARTBEAT;
	env.head_seq = head_ts;
	env.heads = &hp;
	env.n_heads = 1;
	zmq_send(f->pub, VMI_HEARTBEAT_TOPIC, 3, ZMQ_SNDMORE);
	send_env(f->pub, &env, 0);
}

/* A heartbeat naming t.a and t.b. */
static void
fake_heartbeat2(struct fake *f, uint64_t head_seq, uint64_t a, uint64_t b)
{
	Vmingest__Envelope env = VMINGEST__ENVELOPE__INIT;
	Vmingest__TopicHead h[2] = { VMINGEST__TOPIC_HEAD__INIT,
	    VMINGEST__TOPIC_HEAD__INIT }, *hp[2] = { &h[0], &h[1] };

	h[0].topic = (char *)"t.a";
	h[0].topic_seq = a;
	h[1].topic = (char *)"t.b";
	h[1].topic_seq = b;
	env.epoch = EPOCH;
	env.kind = VMINGEST__ENVELOPE__KIND__HEARTBEAT;
	env.head_seq = head_seq;
	env.heads = hp;
	env.n_heads = 2;
	zmq_send(f->pub, VMI_HEARTBEAT_TOPIC, 3, ZMQ_SNDMORE);
	send_env(f->pub, &env, 0);
}

struct script {
	struct fake *f;
	int	 which;
	uint64_t from_seq[4];
	int	 n_req;
};

static void *
script_main(void *arg)
{
	struct script *sc = arg;
	struct fake *f = sc->f;
	Vmingest__ReplayRequest *q;

	fake_wait_subscribed(f);
	q = fake_recv_request(f);
	sc->from_seq[sc->n_req++] = q->from_seq;
	if (sc->which == 3) {
		fake_record_on(f, "t.a", 1, q->request_id, EPOCH, 1, 1);
		fake_record_on(f, "t.b", 1, q->request_id, EPOCH, 2, 1);
		fake_end(f, q->request_id, 2, 1);	/* heads: t.a 1 */
	} else {
		fake_record(f, 1, q->request_id, EPOCH, 1, 1);
		fake_record(f, 1, q->request_id, EPOCH, 2, 2);
		fake_end(f, q->request_id, 2, 2);
	}
	if (sc->which == 0) {
		/* live 2 (dup at the seam), 3, then 5: a jump in topic_seq */
		uint64_t rid = q->request_id;

		vmingest__replay_request__free_unpacked(q, NULL);
		fake_record(f, 0, 0, EPOCH, 2, 2);
		fake_record(f, 0, 0, EPOCH, 3, 3);
		fake_record(f, 0, 0, EPOCH, 5, 5);
		q = fake_recv_request(f);
		sc->from_seq[sc->n_req++] = q->from_seq;
		assert_true(q->request_id > rid);
		fake_record(f, 1, q->request_id, EPOCH, 3, 3);	/* had it */
		fake_record(f, 1, q->request_id, EPOCH, 4, 4);
		fake_record(f, 1, q->request_id, EPOCH, 5, 5);
		fake_end(f, q->request_id, 5, 5);
		fake_record(f, 0, 0, EPOCH, 5, 5);
		fake_record(f, 0, 0, EPOCH, 6, 6);
	} else if (sc->which == 1) {
		/* idle, but the heartbeat says topic t.a is at 3 */
		vmingest__replay_request__free_unpacked(q, NULL);
		fake_heartbeat(f, EPOCH, 3);
		q = fake_recv_request(f);
		sc->from_seq[sc->n_req++] = q->from_seq;
		fake_record(f, 1, q->request_id, EPOCH, 3, 3);
		fake_end(f, q->request_id, 3, 3);
	} else if (sc->which == 3) {
		/*
		 * Two topics.  Live: seq 3 (t.b #2) is lost, seq 4 (t.a #2)
		 * arrives and is delivered; only the heartbeat shows t.b is at
		 * 2.  The catch-up must start below seq 4.
		 */
		vmingest__replay_request__free_unpacked(q, NULL);
		fake_record_on(f, "t.a", 0, 0, EPOCH, 4, 2);
		fake_heartbeat2(f, 4, 2, 2);
		q = fake_recv_request(f);
		sc->from_seq[sc->n_req++] = q->from_seq;
		fake_record_on(f, "t.b", 1, q->request_id, EPOCH, 3, 2);
		fake_record_on(f, "t.a", 1, q->request_id, EPOCH, 4, 2);
		fake_end(f, q->request_id, 4, 2);
	} else {
		/* a heartbeat of another store */
		vmingest__replay_request__free_unpacked(q, NULL);
		q = NULL;
		fake_heartbeat(f, EPOCH + 1, 2);
	}
	if (q != NULL)
		vmingest__replay_request__free_unpacked(q, NULL);
	return NULL;
}

static struct vmi_sub *
open_sub(struct fake *f, int from)
{
	struct vmi_sub_opts o;
	struct vmi_sub *s = NULL;
	char	 err[256];

	memset(&o, 0, sizeof(o));
	o.endpoint = f->pub_ep;
	o.replay_endpoint = f->rep_ep;
	o.from = from;
	assert_int_equal(vmi_sub_open(&s, &o, err, sizeof(err)), VMI_OK);
	return s;
}

/* Collect up to n records (or until an error / 5 s). */
static int
collect(struct vmi_sub *s, uint64_t *seqs, int *replayed, int n, int *err)
{
	struct vmi_msg m;
	int	 got = 0, tries = 0, rc;

	*err = 0;
	while (got < n && tries < 50) {
		rc = vmi_sub_next(s, &m, 100);
		if (rc == VMI_E_TIMEOUT) {
			tries++;
			continue;
		}
		if (rc != VMI_OK) {
			*err = rc;
			break;
		}
		seqs[got] = m.seq;
		replayed[got] = m.replayed;
		got++;
		vmi_msg_clear(&m);
	}
	return got;
}

static void
test_sub_gap_recovered_from_log(void **state)
{
	struct fake f;
	struct script sc = { &f, 0, { 0 }, 0 };
	struct vmi_sub *s;
	struct vmi_sub_stats st;
	pthread_t thr;
	uint64_t seqs[8];
	int	 rep[8], err, n, i;

	fake_open(&f);
	pthread_create(&thr, NULL, script_main, &sc);
	s = open_sub(&f, VMI_FROM_START);
	n = collect(s, seqs, rep, 6, &err);
	pthread_join(thr, NULL);
	assert_int_equal(err, 0);
	assert_int_equal(n, 6);
	for (i = 0; i < 6; i++)
		assert_int_equal(seqs[i], (uint64_t)i + 1);
	assert_int_equal(rep[0], 1);
	assert_int_equal(rep[1], 1);
	assert_int_equal(rep[2], 0);	/* 3 live */
	assert_int_equal(rep[3], 1);	/* 4 and 5 from the log after the jump */
	assert_int_equal(rep[4], 1);
	assert_int_equal(rep[5], 0);
	assert_int_equal(sc.n_req, 2);
	assert_int_equal(sc.from_seq[0], 1);
	/* from the watermark (the last REPLAY_END), not from the last record */
	assert_int_equal(sc.from_seq[1], 3);
	vmi_sub_stats(s, &st);
	assert_int_equal(st.gaps, 1);
	assert_true(st.duplicates >= 3);	/* live 2, replayed 3, live 5 */
	vmi_sub_close(s);
	fake_close(&f);
}

static void
test_sub_heartbeat_ahead(void **state)
{
	struct fake f;
	struct script sc = { &f, 1, { 0 }, 0 };
	struct vmi_sub *s;
	pthread_t thr;
	uint64_t seqs[8];
	int	 rep[8], err, n;

	fake_open(&f);
	pthread_create(&thr, NULL, script_main, &sc);
	s = open_sub(&f, VMI_FROM_START);
	n = collect(s, seqs, rep, 3, &err);
	pthread_join(thr, NULL);
	assert_int_equal(n, 3);
	assert_int_equal(seqs[2], 3);
	assert_int_equal(rep[2], 1);
	assert_int_equal(sc.from_seq[1], 3);
	vmi_sub_close(s);
	fake_close(&f);
}

static void
test_sub_loss_on_other_topic_noticed_late(void **state)
{
	struct fake f;
	struct script sc = { &f, 3, { 0 }, 0 };
	struct vmi_sub *s;
	pthread_t thr;
	uint64_t seqs[8];
	int	 rep[8], err, n;

	fake_open(&f);
	pthread_create(&thr, NULL, script_main, &sc);
	s = open_sub(&f, VMI_FROM_START);
	n = collect(s, seqs, rep, 4, &err);
	pthread_join(thr, NULL);
	assert_int_equal(err, 0);
	assert_int_equal(n, 4);
	assert_int_equal(seqs[0], 1);
	assert_int_equal(seqs[1], 2);
	assert_int_equal(seqs[2], 4);	/* live */
	assert_int_equal(seqs[3], 3);	/* recovered from the log */
	assert_int_equal(rep[3], 1);
	assert_int_equal(sc.from_seq[1], 3);
	vmi_sub_close(s);
	fake_close(&f);
}

static void
test_sub_epoch_change_sticky(void **state)
{
	struct fake f;
	struct script sc = { &f, 2, { 0 }, 0 };
	struct vmi_sub *s;
	struct vmi_msg m;
	pthread_t thr;
	uint64_t seqs[8];
	int	 rep[8], err, n;

	fake_open(&f);
	pthread_create(&thr, NULL, script_main, &sc);
	s = open_sub(&f, VMI_FROM_START);
	n = collect(s, seqs, rep, 3, &err);
	pthread_join(thr, NULL);
	assert_int_equal(n, 2);
	assert_int_equal(err, VMI_E_EPOCH);
	assert_int_equal(vmi_sub_next(s, &m, 0), VMI_E_EPOCH);
	assert_non_null(strstr(vmi_sub_error(s), "epoch"));
	vmi_sub_close(s);
	fake_close(&f);
}

/* The topic_seq a checkpoint file keeps for `topic` (0: none). */
static uint64_t
ck_topic(const struct checkpoint *ck, const char *topic)
{
	size_t	 i;

	for (i = 0; i < ck->n_topics; i++)
		if (!strcmp(ck->topics[i].topic, topic))
			return ck->topics[i].ts;
	return 0;
}

/*
 * Script 3 delivers seq 1 (t.a #1), 2 (t.b #1), 4 (t.a #2), then 3
 * (t.b #2) last.  Closed normally, the checkpoint counts seq 3; closed
 * "unprocessed", it stops before it: t.b at 1, so a restart gets it.
 */
static void
run_two_topics_and_close(int unprocessed, struct checkpoint *ck)
{
	struct fake f;
	struct script sc = { &f, 3, { 0 }, 0 };
	struct vmi_sub_opts o;
	struct vmi_sub *s = NULL;
	pthread_t thr;
	uint64_t seqs[8];
	char	 path[512], err[256];
	int	 rep[8], e, n;

	snprintf(path, sizeof(path), "%s/unprocessed-%d.ckpt", tmpdir, unprocessed);
	unlink(path);
	fake_open(&f);
	pthread_create(&thr, NULL, script_main, &sc);
	memset(&o, 0, sizeof(o));
	o.endpoint = f.pub_ep;
	o.replay_endpoint = f.rep_ep;
	o.from = VMI_FROM_START;
	o.checkpoint = path;
	assert_int_equal(vmi_sub_open(&s, &o, err, sizeof(err)), VMI_OK);
	n = collect(s, seqs, rep, 4, &e);
	pthread_join(thr, NULL);
	assert_int_equal(n, 4);
	assert_int_equal(seqs[3], 3);
	if (unprocessed)
		vmi_sub_close_unprocessed(s);
	else
		vmi_sub_close(s);
	fake_close(&f);
	assert_int_equal(checkpoint_read(path, ck, err, sizeof(err)), 0);
}

static void
test_sub_close_unprocessed_leaves_last_record(void **state)
{
	struct checkpoint ck;

	run_two_topics_and_close(0, &ck);
	assert_int_equal(ck_topic(&ck, "t.a"), 2);
	assert_int_equal(ck_topic(&ck, "t.b"), 2);
	checkpoint_free(&ck);

	run_two_topics_and_close(1, &ck);
	assert_int_equal(ck_topic(&ck, "t.a"), 2);
	assert_int_equal(ck_topic(&ck, "t.b"), 1);
	assert_true(ck.seq < 3);		/* the watermark is below it too */
	checkpoint_free(&ck);
}

static void
test_sub_bad_options(void **state)
{
	struct vmi_sub_opts o;
	struct vmi_sub *s;
	char	 err[256];

	memset(&o, 0, sizeof(o));
	assert_int_equal(vmi_sub_open(&s, &o, err, sizeof(err)), VMI_E_INVAL);
	o.endpoint = "ipc:///nonexistent/x";
	o.replay_endpoint = "ipc:///nonexistent/y";
	o.server_key = "short";
	assert_int_equal(vmi_sub_open(&s, &o, err, sizeof(err)), VMI_E_INVAL);
	o.server_key = NULL;
	{
		/* the replay service would refuse them, for ever */
		const char *upper[] = { "rn.", "Mail." };
		const char *many[65];
		size_t	 i;

		o.prefixes = upper;
		o.n_prefixes = 2;
		assert_int_equal(vmi_sub_open(&s, &o, err, sizeof(err)), VMI_E_INVAL);
		assert_non_null(strstr(err, "Mail."));
		for (i = 0; i < 65; i++)
			many[i] = "rn.";
		o.prefixes = many;
		o.n_prefixes = 65;
		assert_int_equal(vmi_sub_open(&s, &o, err, sizeof(err)), VMI_E_INVAL);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_checkpoint_round_trip),
		cmocka_unit_test(test_checkpoint_malformed),
		cmocka_unit_test(test_checkpoint_refuses_bad_topic),
		cmocka_unit_test(test_sub_gap_recovered_from_log),
		cmocka_unit_test(test_sub_heartbeat_ahead),
		cmocka_unit_test(test_sub_loss_on_other_topic_noticed_late),
		cmocka_unit_test(test_sub_epoch_change_sticky),
		cmocka_unit_test(test_sub_close_unprocessed_leaves_last_record),
		cmocka_unit_test(test_sub_bad_options),
	};

	return cmocka_run_group_tests(tests, setup_dir, teardown_dir);
}
