"""The subscriber library's promises at their edges (issue 3).

Two kinds of tests.  A scripted daemon in Python (an XPUB and a ROUTER
speaking docs/PROTOCOL.md, frames built from proto/ by protoc) drives the
real libvmingest-client through `vmingest sub`, to produce exactly the
losses and replies a real daemon produces only by chance: a lost
heartbeat part, a hostile topic, a replay that scans for long, an ERROR
reply.  And the real daemon, for what it does itself: records removed by
retention before a consumer got them, REPLAY_END with thousands of
topics, PROGRESS during a long scan, a checkpoint that cannot be written.
"""
import json
import os
import shutil
import subprocess
import threading
import time

import pytest

from conftest import BUILD, REPO, VMINGEST, free_port, message, protoc_pb2, wait_for
from test_publish import Sub, deliver, _reap_subs  # noqa: F401 (autouse)

zmq = pytest.importorskip("zmq")

EPOCH = 0x5eed
DAY_US = 86400 * 1000000
# Envelope.Kind
RECORD, HEARTBEAT, REPLAY_END, ERROR, BATCH_END, PROGRESS = 1, 2, 3, 4, 5, 6


@pytest.fixture(scope="module")
def pb(tmp_path_factory):
    return protoc_pb2(str(tmp_path_factory.mktemp("pb")))


class FakeDaemon:
    """XPUB + ROUTER on loopback.  `store` maps seq -> [(topic, topic_seq)];
    replay requests are answered from it by `answer(request, ident)`, which
    a test may replace.  Every request is kept in `requests`."""

    def __init__(self, pb):
        self.pb = pb
        self.ctx = zmq.Context()
        self.pub = self.ctx.socket(zmq.XPUB)
        self.pub.setsockopt(zmq.XPUB_VERBOSE, 1)
        self.pub.setsockopt(zmq.SNDHWM, 0)
        self.router = self.ctx.socket(zmq.ROUTER)
        self.pub_endpoint = "tcp://127.0.0.1:%d" % free_port()
        self.replay_endpoint = "tcp://127.0.0.1:%d" % free_port()
        self.pub.bind(self.pub_endpoint)
        self.router.bind(self.replay_endpoint)
        self.store = {}
        self.requests = []
        self.lock = threading.Lock()
        self.stop = False
        self.answer = self.replay_all
        self.t = threading.Thread(target=self._serve, daemon=True)
        self.t.start()

    # -- the log --
    def add(self, topics):
        with self.lock:
            seq = max(self.store, default=0) + 1
            self.store[seq] = topics
            return seq

    def heads(self):
        h = {}
        for topics in self.store.values():
            for t, ts in topics:
                h[t] = max(h.get(t, 0), ts)
        return h

    def record(self, seq):
        topics = self.store[seq]
        r = self.pb.Record(seq=seq, topic=topics[0][0], disposition=self.pb.PUBLISHED)
        for t, ts in topics:
            r.topics.add(topic=t, topic_seq=ts)
        return r.SerializeToString()

    def envelope(self, **kw):
        return self.pb.Envelope(epoch=EPOCH, sent_at_us=int(time.time() * 1e6),
                                **kw).SerializeToString()

    # -- live feed --
    def wait_subscribed(self, timeout=10):
        """The first subscription from the subscriber's SUB socket."""
        assert self.pub.poll(timeout * 1000), "no subscription arrived"
        while self.pub.poll(100):
            self.pub.recv()

    def publish(self, seq):
        for t, ts in self.store[seq]:
            self.pub.send_multipart([t.encode(), self.envelope(
                kind=RECORD, seq=seq, topic_seq=ts, topic=t, head_seq=seq),
                self.record(seq)])

    def heartbeat_parts(self, per_part=512):
        h = self.heads()
        names = sorted(h)
        chunks = [names[i:i + per_part] for i in range(0, len(names), per_part)] or [[]]
        parts = []
        for k, chunk in enumerate(chunks, 1):
            env = self.pb.Envelope(epoch=EPOCH, kind=HEARTBEAT, topic="!hb",
                                   head_seq=max(self.store, default=0),
                                   part=k, parts=len(chunks))
            for n in chunk:
                env.heads.add(topic=n, topic_seq=h[n])
            parts.append([b"!hb", env.SerializeToString()])
        return parts

    # -- replay --
    def reply(self, ident, topic, env, *more):
        self.router.send_multipart([ident, topic, env] + list(more))

    def replay_all(self, q, ident):
        """As the daemon: every stored record from from_seq, then REPLAY_END."""
        if q.more or q.cancel:
            return
        with self.lock:
            head = max(self.store, default=0)
            for seq in range(max(q.from_seq, 1), head + 1):
                t, ts = self.store[seq][0]
                self.reply(ident, t.encode(), self.envelope(
                    kind=RECORD, seq=seq, topic_seq=ts, topic=t,
                    request_id=q.request_id), self.record(seq))
            end = self.pb.Envelope(epoch=EPOCH, kind=REPLAY_END, seq=head,
                                   head_seq=head, request_id=q.request_id)
            for n, ts in sorted(self.heads().items()):
                end.heads.add(topic=n, topic_seq=ts)
            self.reply(ident, b"", end.SerializeToString())

    def _serve(self):
        while not self.stop:
            if not self.router.poll(50):
                continue
            f = self.router.recv_multipart()
            q = self.pb.ReplayRequest.FromString(f[-1])
            self.requests.append(q)
            self.answer(q, f[0])

    def close(self):
        self.stop = True
        self.t.join(5)
        self.pub.close(0)
        self.router.close(0)
        self.ctx.term()


@pytest.fixture
def fake(pb):
    f = FakeDaemon(pb)
    yield f
    f.close()


def read_checkpoint(path):
    out = {"topics": {}}
    with open(path) as f:
        assert f.readline() == "vmingest-checkpoint 1\n"
        for line in f:
            k, rest = line.rstrip("\n").split(" ", 1)
            if k == "topic":
                name, ts = rest.split(" ")
                out["topics"][name] = int(ts)
            else:
                out[k] = rest
    return out


# ---- against the scripted daemon ----

def test_lost_heartbeat_part_does_not_skip_a_record(fake):
    # 600 topics: heartbeats come in two parts.  Record 601 (t000 #2) is
    # lost on the feed, and so is the part naming t000; the part that
    # arrives names only topics we are level with.  It must not move the
    # watermark past 601, or the catch-up that 602 triggers starts after it.
    for i in range(600):
        fake.add([("t%03d" % i, 1)])
    sub = Sub(fake, "--from-start")
    fake.wait_subscribed()
    sub.wait_count(600)
    for part in fake.heartbeat_parts():      # a whole heartbeat: 600 is safe
        fake.pub.send_multipart(part)
    s601 = fake.add([("t000", 2)])            # not published: lost
    parts = fake.heartbeat_parts()
    assert len(parts) == 2
    fake.pub.send_multipart(parts[1])         # part 2 of 2 only
    s602 = fake.add([("t000", 3)])
    fake.publish(s602)                        # t000 #3 after #1: a gap
    sub.wait_seq(s602)
    rc, st = sub.stop()
    assert sub.seqs() == list(range(1, 603)), sub.seqs()[-5:]
    assert st["gaps"] >= 1
    assert fake.requests[-1].from_seq <= s601


def test_hostile_topic_never_reaches_the_checkpoint(fake, tmp_path):
    fake.add([("a", 1)])
    fake.add([("b 1\nseq 999999999", 1)])     # no daemon makes such a topic
    fake.add([("a", 2)])
    ck = str(tmp_path / "ck")
    sub = Sub(fake, "--from-start", "--checkpoint", ck, "--count", "2")
    rc, st = sub.finish()
    assert rc == 0 and sub.seqs() == [1, 3]
    assert st["malformed"] >= 1
    c = read_checkpoint(ck)
    assert c["topics"] == {"a": 2}
    # and the consumer starts again from it
    fake.add([("a", 3)])
    sub = Sub(fake, "--checkpoint", ck, "--count", "1")
    rc, _ = sub.finish()
    assert rc == 0 and sub.seqs() == [4], sub.err


def test_progress_keeps_a_long_scan_alive(fake, pb):
    # the service scans for 4 s before it finds anything: more than the
    # client's 3 s silence limit, but PROGRESS comes every half second
    fake.add([("rare.y", 1)])

    def slow(q, ident):
        if q.more or q.cancel:
            return
        if len(fake.requests) == 1:
            for i in range(8):
                time.sleep(0.5)
                fake.reply(ident, b"", fake.envelope(kind=PROGRESS, seq=i * 1000,
                                                     request_id=q.request_id))
        fake.replay_all(q, ident)
    fake.answer = slow
    sub = Sub(fake, "--from-start", "--topic", "rare.", "--count", "1")
    rc, _ = sub.finish(60)
    assert rc == 0 and sub.seqs() == [1]
    assert len(fake.requests) == 1, [q.from_seq for q in fake.requests]


def test_error_reply_is_said_and_retried(fake):
    fake.add([("a", 1)])

    def refuse_once(q, ident):
        if len(fake.requests) == 1:
            fake.reply(ident, b"", fake.envelope(kind=ERROR, error="too many streams",
                                                 request_id=q.request_id))
            return
        fake.replay_all(q, ident)
    fake.answer = refuse_once
    sub = Sub(fake, "--from-start", "--count", "1")
    rc, _ = sub.finish(60)
    assert rc == 0 and sub.seqs() == [1]
    assert b"replay service: too many streams" in sub.err
    assert len(fake.requests) == 2


# ---- against the real daemon ----

def mkstore(store, n, *args):
    subprocess.run([os.path.join(REPO, "bench", "build-tools.sh"), BUILD], check=True)
    os.makedirs(os.path.dirname(store), exist_ok=True)
    r = subprocess.run([os.path.join(BUILD, "bench", "mkstore"), store, str(n)]
                       + [str(a) for a in args], check=True, capture_output=True,
                       text=True)
    return [int(x) for x in r.stdout.split()]


def test_records_removed_by_retention_are_reported(make_daemon, tmp_path):
    d = make_daemon(queues={"default": {"topic": "bench.data"}})
    now = int(time.time() * 1e6)
    assert mkstore(d.store, 100, "--start-us", now - 3 * DAY_US,
                   "--step-us", 1000000, "--size", 500) == [1, 100]
    d.start()
    ck = str(tmp_path / "ck")
    sub = Sub(d, "--from-start", "--checkpoint", ck, "--count", "10")
    rc, _ = sub.finish()
    assert rc == 0 and read_checkpoint(ck)["topics"] == {"bench.data": 10}
    # while the consumer is away, retention removes all 100
    d.stop()
    d.extra = {"store": {"retain_days": "1"}}
    d.write_config()
    d.start()
    wait_for(lambda: d.stats()["records"] == 0, timeout=60, what="pruned")
    shutil.copy(ck, ck + ".b")

    # nothing newer yet: the topic's head (100) is past what it had (10)
    r = subprocess.run([VMINGEST, "sub", "--endpoint", d.pub_endpoint,
                        "--replay-endpoint", d.replay_endpoint, "--checkpoint",
                        ck + ".b", "--timeout", "2", "--summary"],
                       capture_output=True, text=True, timeout=60)
    assert "records lost" in r.stderr and "90 record(s)" in r.stderr, r.stderr
    assert "topic_seq 11-100" in r.stderr, r.stderr
    assert json.loads(r.stdout)["lost"] == 90

    # newer records: the jump from 10 to 101 is said before 101
    deliver(d, 3)
    d.wait_records(103)
    sub = Sub(d, "--checkpoint", ck, "--count", "3")
    rc, st = sub.finish()
    assert rc == 3, sub.err
    assert sub.seqs() == [101, 102, 103]
    assert [r["topic_seq"] for r in sub.recs] == [101, 102, 103]
    assert st["lost"] == 90
    err = sub.err.decode()
    assert err.count("records lost") == 1 and "topic_seq 11-100" in err, err
    d.stop()


MANY_TOPICS = ('require ["fileinto", "variables"];\n'
               'if header :matches "Subject" "topic *" { fileinto "many.t${1}"; }\n')


def test_thousands_of_topics_no_catch_up_loop(make_daemon, tmp_path):
    # REPLAY_END must carry every matching head: one left out looks like a
    # loss at every heartbeat (it used to stop at 4096)
    rules = tmp_path / "many.sieve"
    rules.write_text(MANY_TOPICS)
    d = make_daemon(queues={"default": {"topic": "other", "rules": str(rules)}},
                    extra={"publish": {"heartbeat_ms": "100"}}).start()
    n = 4200
    md = d.maildir()
    for i in range(n):
        md.deliver(message(i, subject="topic %04d" % i))
    d.wait_records(n, timeout=300)
    r = subprocess.run([VMINGEST, "sub", "--endpoint", d.pub_endpoint,
                        "--replay-endpoint", d.replay_endpoint, "--topic", "many.",
                        "--from-now", "--timeout", "3", "--summary"],
                       capture_output=True, text=True, timeout=60)
    s = json.loads(r.stdout)
    assert s["heartbeats"] >= 10, s             # it listened for 3 s
    assert s["gaps"] == 0 and s["resyncs"] == 0, s
    d.stop()


def test_long_scan_sends_progress(make_daemon, pb):
    d = make_daemon(extra={"publish": {"replay_progress_ms": "1"}})
    mkstore(d.store, 100000, "--size", 200, "--batch", 20000)
    d.start()
    ctx = zmq.Context()
    s = ctx.socket(zmq.DEALER)
    s.connect(d.replay_endpoint)
    s.send(pb.ReplayRequest(prefixes=["rare."], request_id=7).SerializeToString())
    kinds = []
    while True:
        assert s.poll(30000), "no reply: %r" % kinds
        f = s.recv_multipart()
        env = pb.Envelope.FromString(f[1])
        assert env.request_id == 7
        kinds.append(env.kind)
        if env.kind == REPLAY_END:
            break
        assert env.kind == PROGRESS, kinds
    s.close(0)
    ctx.term()
    assert kinds.count(PROGRESS) >= 1 and env.seq == 100000
    d.stop()


def test_checkpoint_that_cannot_be_written_is_said(make_daemon, tmp_path):
    d = make_daemon().start()
    deliver(d, 5)
    d.wait_records(5)
    ckdir = tmp_path / "ck"
    ckdir.mkdir()
    ck = str(ckdir / "pos")
    sub = Sub(d, "--from-start", "--checkpoint", ck)
    sub.wait_count(5)
    wait_for(lambda: os.path.exists(ck), what="first checkpoint")
    shutil.rmtree(str(ckdir))                 # every write fails from now on
    deliver(d, 5, start=5)
    rc, _ = sub.finish(30)                    # it stops by itself
    assert rc == 2
    assert b"checkpoint" in sub.err, sub.err
