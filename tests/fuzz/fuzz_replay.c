/*
 * fuzz_replay.c - libFuzzer harness: arbitrary requests to the real
 * replay service (daemon/replay.c) over a real ROUTER socket.
 *
 * Once: a store of 40 records (three topics, some quarantined) in a
 * temporary directory, replay_start() on an ipc:// endpoint, a DEALER.
 * Per input: byte 0 picks the framing (one frame; empty delimiter + frame;
 * the request split in two frames; five frames), the rest is sent as the
 * request.  Then a well-formed head_only request with SYNC_ID follows on
 * the same connection, and its REPLAY_END must arrive within 5 s: the
 * service answered or refused the input, and is still serving.  Every
 * reply must be a frame sequence whose Envelope unpacks.
 *
 * Seeds: tests/fuzz/seeds/replay (valid requests of each kind, bad
 * prefixes, huge credits, more/cancel without a stream, garbage).
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <zmq.h>

#include "config.h"
#include "log.h"
#include "pipeline.h"
#include "record.h"
#include "replay.h"
#include "store.h"
#include "util.h"

#define SYNC_ID		0x5eedf00dULL
#define NRECORDS	40

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static void	*ctx, *dealer;
static struct replay *rp;
static struct store *st;
static struct config cf;
static char	 dir[64];

static void
cleanup(void)
{
	char	 cmd[128];

	if (dealer != NULL)
		zmq_close(dealer);
	replay_stop(rp);
	if (ctx != NULL)
		zmq_ctx_term(ctx);
	store_close(st);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "fuzz_replay: could not remove %s\n", dir);
}

static void
setup(void)
{
	static const char *topics[] = { "rn.phd.sample", "seismic.waveform", "rn.phd.qc" };
	static char endpoint[128];
	struct store_txn *t;
	char	 err[256], name[32], raw[64];
	int	 i, linger = 0;

	log_init("fuzz_replay", 0);
	log_set_quiet(1);	/* one info line per request otherwise */
	snprintf(dir, sizeof(dir), "/tmp/vmi-fuzz-replay-XXXXXX");
	if (mkdtemp(dir) == NULL || store_open(&st, dir, 64 << 20, STORE_EXCL) != 0 ||
	    store_wbegin(st, &t) != 0) {
		perror("fuzz_replay: store");
		abort();
	}
	for (i = 0; i < NRECORDS; i++) {
		Vmingest__Record *r = record_new();

		snprintf(name, sizeof(name), "f%d", i);
		snprintf(raw, sizeof(raw), "Subject: %d\n\nbody %d\n", i, i);
		r->queue = rec_strdup("default");
		r->maildir_name = rec_strdup(name);
		r->received_at_us = 1000000 + i;
		if (i % 7 == 3) {
			r->disposition = VMINGEST__DISPOSITION__QUARANTINED;
			r->topic = rec_strdup("mail.other");
			r->reason = rec_strdup("fuzz");
		} else {
			r->disposition = VMINGEST__DISPOSITION__PUBLISHED;
			r->topic = rec_strdup(topics[i % 3]);
			pipeline_add_topic(r, topics[i % 3]);
			if (i % 5 == 0)
				pipeline_add_topic(r, topics[(i + 1) % 3]);
		}
		if (store_add(t, r, raw, strlen(raw), 0) != 0)
			abort();
		record_free(r);
	}
	if (store_wcommit(t) != 0)
		abort();

	snprintf(endpoint, sizeof(endpoint), "ipc://%s/replay.sock", dir);
	cf.publish.replay_endpoint = endpoint;
	cf.publish.replay_batch = 8;
	ctx = zmq_ctx_new();
	if (replay_start(&rp, ctx, &cf, st, NULL, err, sizeof(err)) != 0) {
		fprintf(stderr, "fuzz_replay: %s\n", err);
		abort();
	}
	dealer = zmq_socket(ctx, ZMQ_DEALER);
	zmq_setsockopt(dealer, ZMQ_LINGER, &linger, sizeof(linger));
	if (zmq_connect(dealer, endpoint) != 0)
		abort();
	atexit(cleanup);
}

/*
 * libFuzzer's -timeout runs on SIGALRM: every blocking ZeroMQ call here
 * is retried on EINTR (a half-sent request would swallow the next one).
 */
static void
xsend(const void *data, size_t len, int flags)
{
	while (zmq_send(dealer, data, len, flags) == -1)
		if (errno != EINTR)
			abort();
}

/* Read one reply message; 1 with the sync END seen, 0 other, -1 timeout. */
static int
read_reply(long timeout_ms)
{
	zmq_pollitem_t it = { dealer, 0, ZMQ_POLLIN, 0 };
	zmq_msg_t m;
	Vmingest__Envelope *env;
	int64_t	 deadline = util_mono_us() + (int64_t)timeout_ms * 1000;
	int	 more = 1, nf = 0, sync = 0, envs = 0, rc;

	while ((rc = zmq_poll(&it, 1, (long)((deadline - util_mono_us()) / 1000))) <= 0)
		if ((rc == -1 && errno != EINTR) || util_mono_us() >= deadline)
			return -1;
	while (more) {
		zmq_msg_init(&m);
		while (zmq_msg_recv(&m, dealer, 0) == -1)
			if (errno != EINTR)
				abort();
		more = zmq_msg_more(&m);
		nf++;
		/* frames: [""]? [topic] [Envelope] ([Record] [raw]) */
		if (nf <= 3 && zmq_msg_size(&m) > 0 &&
		    (env = vmingest__envelope__unpack(NULL, zmq_msg_size(&m),
		    zmq_msg_data(&m))) != NULL) {
			if (env->request_id == SYNC_ID &&
			    env->kind == VMINGEST__ENVELOPE__KIND__REPLAY_END)
				sync = 1;
			if (env->request_id == SYNC_ID &&
			    env->kind == VMINGEST__ENVELOPE__KIND__ERROR) {
				fprintf(stderr, "fuzz_replay: the sync request was "
				    "refused: %s\n", env->error);
				abort();
			}
			if (env->kind != VMINGEST__ENVELOPE__KIND__KIND_UNSET)
				envs++;
			vmingest__envelope__free_unpacked(env, NULL);
		}
		zmq_msg_close(&m);
	}
	if (nf < 2 || nf > 5 || envs == 0) {
		fprintf(stderr, "fuzz_replay: a reply of %d frames without an "
		    "Envelope\n", nf);
		abort();
	}
	return sync;
}

static void
send_parts(const uint8_t *data, size_t len, unsigned mode)
{
	size_t	 cut;

	switch (mode) {
	case 1:
		xsend("", 0, ZMQ_SNDMORE);
		xsend(data, len, 0);
		break;
	case 2:
		cut = len / 2;
		xsend(data, cut, ZMQ_SNDMORE);
		xsend(data + cut, len - cut, 0);
		break;
	case 3:
		for (cut = 0; cut < 4; cut++)
			xsend(data, len < 8 ? len : 8, ZMQ_SNDMORE);
		xsend(data, len, 0);
		break;
	default:
		xsend(data, len, 0);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	Vmingest__ReplayRequest q = VMINGEST__REPLAY_REQUEST__INIT;
	uint8_t	 sync[64];
	size_t	 slen;
	int	 rc, n = 0;

	if (rp == NULL)
		setup();
	if (len == 0)
		return 0;
	send_parts(data + 1, len - 1, data[0] & 3);
	q.request_id = SYNC_ID;
	q.head_only = 1;
	slen = vmingest__replay_request__pack(&q, sync);
	send_parts(sync, slen, 0);
	while ((rc = read_reply(5000)) == 0)
		if (++n > 100000)
			abort();	/* 40 records cannot make this many replies */
	if (rc < 0) {
		struct replay_counts c;

		replay_counts(rp, &c);
		fprintf(stderr, "fuzz_replay: no answer to the sync request "
		    "(requests %llu, records %llu, errors %llu)\n",
		    (unsigned long long)c.requests, (unsigned long long)c.records,
		    (unsigned long long)c.errors);
		while ((rc = read_reply(30000)) == 0)
			;
		fprintf(stderr, "fuzz_replay: %s\n", rc > 0 ? "it came late" : "none in 30 s more");
		abort();
	}
	return 0;
}
