"""Publishing over ZeroMQ: subscribers never miss a record (issue 3).

Real vmingestd, real sockets on loopback.  A Python subscriber decodes the
frames the way docs/PROTOCOL.md says (classes generated from proto/ by
protoc during the test); the library is exercised through `vmingest sub`
(JSON lines on stdout, counters on stderr with --stats).
"""
import json
import os
import signal
import subprocess
import threading
import time

import pytest

from conftest import VMINGEST, message, protoc_pb2, wait_for

zmq = pytest.importorskip("zmq")

HB_TOPIC = b"!hb"


@pytest.fixture(scope="module")
def pb(tmp_path_factory):
    """vmingest_pb2 generated from proto/ into a temp dir."""
    return protoc_pb2(str(tmp_path_factory.mktemp("pb")))


_SUBS = []


@pytest.fixture(autouse=True)
def _reap_subs():
    """A test that fails midway must not leave `vmingest sub` running."""
    yield
    while _SUBS:
        p = _SUBS.pop().proc
        if p.poll() is None:
            p.kill()
            p.wait()


class Sub:
    """A `vmingest sub` process; a thread collects its JSON lines."""

    def __init__(self, d, *args):
        self.args = [VMINGEST, "sub", "--endpoint", d.pub_endpoint,
                     "--replay-endpoint", d.replay_endpoint, "--json",
                     "--stats"] + list(args)
        self.proc = subprocess.Popen(self.args, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)
        _SUBS.append(self)
        self.recs = []
        self.err = b""
        self.t = threading.Thread(target=self._read, daemon=True)
        self.t.start()
        self.te = threading.Thread(target=self._read_err, daemon=True)
        self.te.start()

    def _read(self):
        for line in self.proc.stdout:
            self.recs.append(json.loads(line))

    def _read_err(self):
        self.err = self.proc.stderr.read()

    def seqs(self):
        return [r["seq"] for r in list(self.recs)]

    def wait_count(self, n, timeout=90):
        wait_for(lambda: len(self.recs) >= n, timeout, interval=0.05,
                 what="%d records at the subscriber (have %d)" % (n, len(self.recs)))

    def wait_seq(self, seq, timeout=90):
        wait_for(lambda: self.recs and self.recs[-1]["seq"] >= seq, timeout,
                 interval=0.05, what="seq %d at the subscriber" % seq)

    def finish(self, timeout=60):
        """Wait for exit (after --count) and return the --stats counters."""
        rc = self.proc.wait(timeout)
        self.t.join(10)
        self.te.join(10)
        return rc, self.stats()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.finish()

    def kill9(self):
        self.proc.kill()
        self.proc.wait()
        self.t.join(10)

    def stats(self):
        for line in self.err.decode(errors="replace").splitlines():
            if line.startswith("{"):
                return json.loads(line)
        return {}


def deliver(d, n, start=0, queue="default", body=None):
    md = d.maildir(queue)
    for i in range(start, start + n):
        md.deliver(message(i, body=body))


def python_sub(d, prefixes=(b"",), curve=None):
    ctx = zmq.Context.instance()
    s = ctx.socket(zmq.SUB)
    s.setsockopt(zmq.LINGER, 0)
    s.setsockopt(zmq.RCVHWM, 0)
    if curve:
        s.curve_serverkey, s.curve_publickey, s.curve_secretkey = curve
    for p in prefixes:
        s.setsockopt(zmq.SUBSCRIBE, p)
    if b"" not in prefixes:
        s.setsockopt(zmq.SUBSCRIBE, HB_TOPIC)
    s.connect(d.pub_endpoint)
    return s


def wait_heartbeat(s, pb, timeout=10):
    """The subscription is live once a heartbeat arrives (slow joiner)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if s.poll(100):
            f = s.recv_multipart()
            env = pb.Envelope.FromString(f[1])
            if env.kind == pb.Envelope.HEARTBEAT:
                return env
    raise AssertionError("no heartbeat within %ss" % timeout)


def test_python_subscriber_10000_live(make_daemon, pb):
    d = make_daemon(extra={"publish": {"heartbeat_ms": "100"}}).start()
    s = python_sub(d)
    hb = wait_heartbeat(s, pb)
    assert f"{hb.epoch:016x}" == d.stats()["epoch"]
    n = 10000
    t = threading.Thread(target=deliver, args=(d, n))
    t.start()
    got = []
    last_ts = 0
    deadline = time.monotonic() + 180
    while len(got) < n and time.monotonic() < deadline:
        if not s.poll(200):
            continue
        f = s.recv_multipart()
        env = pb.Envelope.FromString(f[1])
        assert env.epoch == hb.epoch
        if env.kind == pb.Envelope.HEARTBEAT:
            assert f[0] == HB_TOPIC and len(f) == 2
            continue
        assert env.kind == pb.Envelope.RECORD and len(f) == 3
        rec = pb.Record.FromString(f[2])
        assert f[0] == b"mail.other" == rec.topic.encode()
        assert env.topic_seq == last_ts + 1, "gap in topic_seq"
        assert env.seq == rec.seq
        assert [(x.topic, x.topic_seq) for x in rec.topics] == [("mail.other", env.topic_seq)]
        last_ts = env.topic_seq
        got.append(env.seq)
    t.join()
    s.close()
    assert len(got) == n
    assert got == sorted(got) and len(set(got)) == n
    assert got == list(range(1, n + 1))
    assert d.stop() == 0


def test_heartbeat_carries_heads(make_daemon, pb):
    d = make_daemon(queues={"a": {"topic": "rn.phd"}, "b": {"topic": "seismic.waveform"}},
                    extra={"publish": {"heartbeat_ms": "50"}}).start()
    deliver(d, 3, queue="a")
    deliver(d, 2, start=3, queue="b")
    d.wait_records(5)
    s = python_sub(d, prefixes=(b"rn.",))

    def heads():
        env = wait_heartbeat(s, pb)
        h = {x.topic: x.topic_seq for x in env.heads}
        return h if h.get("rn.phd") == 3 and h.get("seismic.waveform") == 2 and \
            env.head_seq == 5 else None
    wait_for(heads, 20, what="heartbeat with heads rn.phd=3 seismic.waveform=2")
    s.close()


def test_slow_subscriber_loses_live_but_library_recovers(make_daemon):
    """Stop the subscriber (SIGSTOP) until the HWMs overflow; it must still
    deliver every record exactly once, in order."""
    d = make_daemon(extra={"publish": {"sndhwm": "5", "heartbeat_ms": "100"}}).start()
    body = ("0123456789abcdef" * 256 + "\n") * 2       # ~8 KiB records
    n = 3000
    sub = Sub(d, "--from-start", "--count", str(n), "--hwm", "5")
    deliver(d, 20, body=body)
    sub.wait_count(20)
    os.kill(sub.proc.pid, signal.SIGSTOP)
    try:
        deliver(d, n - 20, start=20, body=body)
        d.wait_records(n, timeout=180)
    finally:
        os.kill(sub.proc.pid, signal.SIGCONT)
    rc, st = sub.finish(180)
    assert rc == 0, sub.err
    assert sub.seqs() == list(range(1, n + 1))
    # the stall really lost live messages, and the log gave them back
    assert st["gaps"] > 0 and st["replayed"] > 20, st


def test_late_joiner_gets_everything_no_duplicate_at_seam(make_daemon):
    d = make_daemon().start()
    deliver(d, 5000)
    d.wait_records(5000, timeout=180)
    sub = Sub(d, "--from-start", "--count", "6000")
    sub.wait_count(100)
    deliver(d, 1000, start=5000)
    rc, st = sub.finish(180)
    assert rc == 0, sub.err
    assert sub.seqs() == list(range(1, 6001))
    assert st["replayed"] >= 5000 and st["records"] == 6000, st


def test_from_now_and_from_seq(make_daemon):
    d = make_daemon().start()
    deliver(d, 10)
    d.wait_records(10)
    now = Sub(d, "--from-now", "--count", "3")
    frm = Sub(d, "--from", "8", "--count", "6")
    frm.wait_count(3)
    # from-now is subscribed once its head query is answered: poll by delivering
    # one message at a time until it sees one
    i = 10
    while len(now.recs) == 0 and i < 40:
        deliver(d, 1, start=i)
        i += 1
        d.wait_records(i)
        time.sleep(0.05)        # pacing of deliveries only, not a readiness check
    deliver(d, 3, start=i)
    rc1, _ = now.finish(60)
    rc2, _ = frm.finish(60)
    assert rc1 == 0 and rc2 == 0
    s = now.seqs()
    assert s == list(range(s[0], s[0] + 3)) and s[0] > 10
    assert frm.seqs() == list(range(8, 14))


def test_consumer_kill9_resumes_from_checkpoint(make_daemon, tmp_path):
    d = make_daemon().start()
    ck = str(tmp_path / "sub.ckpt")
    n = 3000
    t = threading.Thread(target=deliver, args=(d, n))
    t.start()
    a = Sub(d, "--from-start", "--checkpoint", ck)
    a.wait_count(800)
    a.kill9()
    first = a.seqs()
    assert os.path.exists(ck)
    t.join()
    d.wait_records(n, timeout=180)
    b = Sub(d, "--from-start", "--checkpoint", ck)
    b.wait_seq(n)
    b.stop()
    second = b.seqs()
    assert second, "restarted consumer printed nothing"
    # at-least-once: it resumes at or before the record after the last printed
    assert second[0] <= first[-1] + 1
    assert second == list(range(second[0], n + 1))
    assert set(first) | set(second) == set(range(1, n + 1))
    # the checkpoint is exact after a clean stop: nothing more to deliver
    c = Sub(d, "--checkpoint", ck, "--timeout", "2")
    rc, _ = c.finish(30)
    assert rc == 1 and c.seqs() == []


def test_daemon_kill9_subscribers_reconnect(make_daemon):
    d = make_daemon(extra={"publish": {"heartbeat_ms": "100"}}).start()
    n1, n2 = 1500, 1000
    subs = [Sub(d, "--from-start", "--count", str(n1 + n2)) for _ in range(3)]
    t = threading.Thread(target=deliver, args=(d, n1))
    t.start()
    wait_for(lambda: d.stats()["last_seq"] >= 500, 60, what="500 records")
    d.kill9()
    t.join()
    d.start()
    deliver(d, n2, start=n1)
    for s in subs:
        rc, st = s.finish(180)
        assert rc == 0, s.err
        assert s.seqs() == list(range(1, n1 + n2 + 1)), st


def test_topic_filter_and_gap_recovery(make_daemon):
    d = make_daemon(queues={"rms": {"topic": "rn.phd"},
                            "sei": {"topic": "seismic.waveform"}},
                    extra={"publish": {"sndhwm": "5", "heartbeat_ms": "100"}}).start()
    body = ("0123456789abcdef" * 256 + "\n") * 2
    sub = Sub(d, "--topic", "rn.", "--from-start", "--count", "1500", "--hwm", "5")
    deliver(d, 10, queue="rms", body=body)
    sub.wait_count(10)
    os.kill(sub.proc.pid, signal.SIGSTOP)
    try:
        for i in range(1490):
            d.maildir("sei").deliver(message(100000 + i, body=body))
            d.maildir("rms").deliver(message(10 + i, body=body))
        d.wait_records(10 + 2 * 1490, timeout=180)
    finally:
        os.kill(sub.proc.pid, signal.SIGCONT)
    rc, st = sub.finish(180)
    assert rc == 0, sub.err
    recs = list(sub.recs)
    assert all(r["topic"] == "rn.phd" for r in recs)
    assert [r["topic_seq"] for r in recs] == list(range(1, 1501))
    seqs = [r["seq"] for r in recs]
    assert seqs == sorted(seqs) and len(set(seqs)) == 1500
    assert st["gaps"] > 0, st


def test_bad_replay_requests_get_errors(daemon, pb):
    ctx = zmq.Context.instance()
    s = ctx.socket(zmq.DEALER)
    s.setsockopt(zmq.LINGER, 0)
    s.connect(daemon.replay_endpoint)
    cases = [
        [b"\xff\xff\xff garbage"],
        [pb.ReplayRequest(request_id=7, prefixes=["BAD PREFIX"]).SerializeToString()],
        [pb.ReplayRequest(request_id=8, from_seq=10, to_seq=2).SerializeToString()],
        [pb.ReplayRequest(request_id=9, more=True).SerializeToString()],
        [b"a", b"b", b"c"],
    ]
    for frames in cases:
        s.send_multipart(frames)
        assert s.poll(5000), "no reply to %r" % frames
        f = s.recv_multipart()
        env = pb.Envelope.FromString(f[-1])
        assert env.kind == pb.Envelope.ERROR and env.error, frames
    # a client that vanishes mid-stream costs nothing: ask for a lot, go away
    deliver(daemon, 50)
    daemon.wait_records(50)
    s.send_multipart([pb.ReplayRequest(request_id=1, credit=10).SerializeToString()])
    assert s.poll(5000)
    s.close()
    # and the service still answers the next client, records then REPLAY_END
    s2 = ctx.socket(zmq.DEALER)
    s2.setsockopt(zmq.LINGER, 0)
    s2.connect(daemon.replay_endpoint)
    s2.send_multipart([b"", pb.ReplayRequest(request_id=2, from_seq=41, credit=100).SerializeToString()])
    seqs = []
    while True:
        assert s2.poll(5000)
        f = s2.recv_multipart()
        assert f[0] == b""            # we sent a delimiter: replies carry one
        env = pb.Envelope.FromString(f[2])
        assert env.request_id == 2
        if env.kind == pb.Envelope.RECORD:
            seqs.append(env.seq)
            assert pb.Record.FromString(f[3]).seq == env.seq
        else:
            assert env.kind == pb.Envelope.REPLAY_END
            assert env.seq == env.head_seq == 50
            break
    assert seqs == list(range(41, 51))
    s2.close()
    assert daemon.alive()


def test_replay_credit_batches_and_raw(daemon, pb):
    deliver(daemon, 30)
    daemon.wait_records(30)
    ctx = zmq.Context.instance()
    s = ctx.socket(zmq.DEALER)
    s.setsockopt(zmq.LINGER, 0)
    s.connect(daemon.replay_endpoint)
    s.send(pb.ReplayRequest(request_id=5, credit=7, with_raw=True, to_seq=20).SerializeToString())
    seqs, batches = [], 0
    while True:
        assert s.poll(5000)
        f = s.recv_multipart()
        env = pb.Envelope.FromString(f[1])
        if env.kind == pb.Envelope.RECORD:
            assert len(f) == 4 and f[3] == daemon.raw(env.seq)
            seqs.append(env.seq)
        elif env.kind == pb.Envelope.BATCH_END:
            batches += 1
            assert len(seqs) == 7 * batches
            s.send(pb.ReplayRequest(request_id=5, more=True).SerializeToString())
        else:
            assert env.kind == pb.Envelope.REPLAY_END and env.seq == 20
            break
    assert seqs == list(range(1, 21)) and batches == 2
    s.close()


def replay_until_control(s, pb, timeout=10000):
    """Records received on DEALER s up to the first control reply."""
    recs = []
    while True:
        assert s.poll(timeout), "no reply"
        f = s.recv_multipart()
        env = pb.Envelope.FromString(f[1])
        if env.kind != pb.Envelope.RECORD:
            return recs, env
        recs.append((env.seq, f))


def deliver_mib_mails(d, n):
    """n mails of ~1 MiB (their records keep 64K of text); the body."""
    body = ("m" * 1023 + "\n") * 1024
    for i in range(n):
        d.maildir().deliver(message(i, body=body))
    d.wait_records(n, timeout=120)
    return body


def test_replay_batch_counts_raw_bytes(make_daemon, pb):
    # a batch stops at 8 MiB queued, raw messages included, however many
    # 5 ms slices it takes: credit alone would let it queue 40 MiB here
    d = make_daemon().start()
    body = deliver_mib_mails(d, 40)
    ctx = zmq.Context.instance()
    s = ctx.socket(zmq.DEALER)
    s.setsockopt(zmq.LINGER, 0)
    s.connect(d.replay_endpoint)
    s.send(pb.ReplayRequest(request_id=1, credit=1000, with_raw=True).SerializeToString())
    recs, env = replay_until_control(s, pb)
    queued = sum(len(f[2]) + len(f[3]) for _, f in recs)
    assert env.kind == pb.Envelope.BATCH_END, env
    assert 8 << 20 <= queued < (8 << 20) + 2 * len(body) + (256 << 10), queued
    assert [q for q, _ in recs] == list(range(1, len(recs) + 1))
    # the next batch goes on where it stopped
    s.send(pb.ReplayRequest(request_id=1, more=True).SerializeToString())
    more, env = replay_until_control(s, pb)
    assert more[0][0] == len(recs) + 1
    s.close()


def vm_rss_mib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) // 1024


def test_replay_client_that_reads_nothing_costs_bounded_memory(make_daemon, pb):
    d = make_daemon().start()
    deliver_mib_mails(d, 100)
    ctx = zmq.Context.instance()
    probe = ctx.socket(zmq.DEALER)
    probe.setsockopt(zmq.LINGER, 0)
    probe.connect(d.replay_endpoint)
    base = vm_rss_mib(d.proc.pid)
    s = ctx.socket(zmq.DEALER)
    s.setsockopt(zmq.LINGER, 0)
    s.setsockopt(zmq.RCVHWM, 1)
    s.setsockopt(zmq.RCVBUF, 4096)
    s.connect(d.replay_endpoint)
    # the same request again and again: each replaces the stream
    for k in range(1, 8):
        s.send(pb.ReplayRequest(request_id=k, with_raw=True).SerializeToString())
        # a head_only request of another client is answered meanwhile
        probe.send(pb.ReplayRequest(request_id=100 + k, head_only=True).SerializeToString())
        assert probe.poll(10000), "replay service stuck"
        probe.recv_multipart()
    # the replay thread queues in the background: wait until it stops
    last = [-1]

    def settled():
        now = vm_rss_mib(d.proc.pid)
        same, last[0] = now == last[0], now
        return same
    wait_for(settled, timeout=30, interval=0.5, what="memory settled")
    grown = last[0] - base
    s.close()
    probe.close()
    # one batch is at most 8 MiB + a record; before, each request queued
    # all 100 MiB (about 700 MiB here)
    assert grown < 160, "%d MiB queued for a client that reads nothing" % grown


TWO_TOPICS = ('require ["fileinto"];\n'
              'if header :contains "Subject" "bee" { fileinto "rn.b"; stop; }\n')


def test_replay_from_topic_sends_what_end_covers(make_daemon, tmp_path, pb):
    # REPLAY_END says every matching record up to its seq was sent: with
    # from_topic for rn.b only, rn.a (also under "rn.") starts at from_seq
    rules = tmp_path / "r.sieve"
    rules.write_text(TWO_TOPICS)
    d = make_daemon(queues={"default": {"topic": "rn.a", "rules": str(rules)}}).start()
    for i in range(5):
        d.maildir().deliver(message(i, subject="aye %d" % i))
    d.wait_records(5)
    for i in range(5, 10):
        d.maildir().deliver(message(i, subject="bee %d" % i))
    d.wait_records(10)
    ctx = zmq.Context.instance()
    s = ctx.socket(zmq.DEALER)
    s.setsockopt(zmq.LINGER, 0)
    s.connect(d.replay_endpoint)
    q = pb.ReplayRequest(request_id=3, prefixes=["rn."], credit=100)
    q.from_topic.add(topic="rn.b", topic_seq=3)
    s.send(q.SerializeToString())
    recs, env = replay_until_control(s, pb)
    got = [(q_, f[0].decode(), pb.Envelope.FromString(f[1]).topic_seq) for q_, f in recs]
    assert env.kind == pb.Envelope.REPLAY_END and env.seq == 10
    assert got == [(1, "rn.a", 1), (2, "rn.a", 2), (3, "rn.a", 3), (4, "rn.a", 4),
                   (5, "rn.a", 5), (8, "rn.b", 3), (9, "rn.b", 4), (10, "rn.b", 5)]
    # from_seq set: rn.a from seq 4 on, rn.b still from topic_seq 3
    q.from_seq = 4
    q.request_id = 4
    s.send(q.SerializeToString())
    recs, env = replay_until_control(s, pb)
    assert [q_ for q_, _ in recs] == [4, 5, 8, 9, 10]
    s.close()


def keygen(tmp_path, name):
    base = str(tmp_path / name)
    subprocess.run([VMINGEST, "keygen", base], check=True, capture_output=True)
    assert oct(os.stat(base + ".key").st_mode & 0o777) == "0o600"
    return base


def z85(path):
    with open(path) as f:
        return f.read().strip()


def test_curve_only_listed_keys(make_daemon, tmp_path, pb):
    server = keygen(tmp_path, "server")
    good = keygen(tmp_path, "good")
    bad = keygen(tmp_path, "bad")
    keys = tmp_path / "clients"
    keys.mkdir()
    (keys / "good.pub").write_text(open(good + ".pub").read())
    d = make_daemon(extra={"publish": {"curve_secret_key_file": server + ".key",
                                       "authorized_keys_dir": str(keys),
                                       "heartbeat_ms": "100"}}).start()
    deliver(d, 20)
    d.wait_records(20)
    ok = Sub(d, "--from-start", "--count", "25", "--server-key", server + ".pub",
             "--key", good + ".key")
    denied = Sub(d, "--from-start", "--timeout", "3", "--server-key", server + ".pub",
                 "--key", bad + ".key")
    # a NULL-mechanism client, live and replay
    plain = python_sub(d)
    dealer = zmq.Context.instance().socket(zmq.DEALER)
    dealer.setsockopt(zmq.LINGER, 0)
    dealer.connect(d.replay_endpoint)
    dealer.send(pb.ReplayRequest(request_id=1).SerializeToString())
    ok.wait_count(20)
    deliver(d, 5, start=20)
    rc, _ = ok.finish(60)
    assert rc == 0 and ok.seqs() == list(range(1, 26))
    rc, _ = denied.finish(60)
    assert rc == 1 and denied.seqs() == []
    assert not plain.poll(1000) and not dealer.poll(100)
    plain.close()
    dealer.close()
    log = d.log()
    assert "rejected handshake" in log
    assert "zap: rejected mechanism=CURVE key=%s" % z85(bad + ".pub") in log


def curve_replay_ok(d, server, client, pb):
    """Whether the replay service answers a CURVE client with these keys."""
    s = zmq.Context.instance().socket(zmq.DEALER)
    s.setsockopt(zmq.LINGER, 0)
    s.curve_serverkey = z85(server + ".pub").encode()
    s.curve_publickey = z85(client + ".pub").encode()
    s.curve_secretkey = z85(client + ".key").encode()
    s.connect(d.replay_endpoint)
    s.send(pb.ReplayRequest(request_id=1, head_only=True).SerializeToString())
    ok = bool(s.poll(2000))
    s.close()
    return ok


def test_curve_key_changes_take_effect_at_once(make_daemon, tmp_path, pb):
    server = keygen(tmp_path, "server")
    old, new = keygen(tmp_path, "alice_old"), keygen(tmp_path, "alice_new")
    keys = tmp_path / "clients"
    keys.mkdir()
    kf = keys / "alice.pub"
    kf.write_text(open(old + ".pub").read())
    d = make_daemon(extra={"publish": {"curve_secret_key_file": server + ".key",
                                       "authorized_keys_dir": str(keys)}}).start()
    assert curve_replay_ok(d, server, old, pb)
    assert not curve_replay_ok(d, server, new, pb)
    # rotate the key by rewriting the file in place: the directory's mtime
    # does not change, the file's does
    m0 = os.stat(keys).st_mtime_ns
    with open(kf, "w") as f:
        f.write(open(new + ".pub").read())
    assert os.stat(keys).st_mtime_ns == m0
    assert curve_replay_ok(d, server, new, pb)
    assert not curve_replay_ok(d, server, old, pb)
    # revoke everyone by removing the directory: nobody is admitted
    kf.unlink()
    keys.rmdir()
    assert not curve_replay_ok(d, server, new, pb)
    assert "admitting no key" in d.log()


def test_insecure_bind_refused(make_daemon):
    d = make_daemon()
    d.pub_endpoint = "tcp://0.0.0.0:%d" % d.pub_port
    d.write_config()
    d.start(wait=False)
    assert d.proc.wait(30) == 1
    assert "refusing to bind tcp://0.0.0.0" in d.log()


def test_keygen_refuses_overwrite(tmp_path):
    base = keygen(tmp_path, "k")
    r = subprocess.run([VMINGEST, "keygen", base], capture_output=True)
    assert r.returncode == 1
    pub = z85(base + ".pub")
    assert len(pub) == 40
    r = subprocess.run([VMINGEST, "keygen", "--force", base], capture_output=True)
    assert r.returncode == 0 and z85(base + ".pub") != pub


def test_epoch_change_is_reported_never_mixed(make_daemon, tmp_path):
    import shutil
    d = make_daemon(extra={"publish": {"heartbeat_ms": "100"}}).start()
    deliver(d, 5)
    d.wait_records(5)
    ck = str(tmp_path / "e.ckpt")
    sub = Sub(d, "--from-start", "--checkpoint", ck)
    sub.wait_count(5)
    assert d.stop() == 0
    shutil.rmtree(d.store)          # the store is recreated: a new epoch
    d.start()
    deliver(d, 3, start=100)
    rc, _ = sub.finish(60)
    assert rc == 1 and b"epoch" in sub.err
    assert sub.seqs() == [1, 2, 3, 4, 5]   # nothing of the new stream
    # a checkpoint of the old epoch is refused too
    again = Sub(d, "--checkpoint", ck, "--timeout", "10")
    rc, _ = again.finish(60)
    assert rc == 1 and b"epoch" in again.err and again.seqs() == []


def test_sub_raw_dir_writes_exact_bytes(daemon, tmp_path):
    deliver(daemon, 3)
    daemon.wait_records(3)
    out = tmp_path / "raw"
    out.mkdir()
    sub = Sub(daemon, "--from-start", "--count", "3", "--raw-dir", str(out))
    rc, _ = sub.finish(60)
    assert rc == 0, sub.err
    for seq in (1, 2, 3):
        assert (out / ("%d.eml" % seq)).read_bytes() == daemon.raw(seq)


def test_sub_output_failure_keeps_the_record_for_the_restart(daemon, tmp_path):
    # a record `sub` could not write out must not be counted as processed:
    # the checkpoint stays before it and the restarted consumer gets it
    deliver(daemon, 5)
    daemon.wait_records(5)
    out = tmp_path / "raw"
    out.mkdir()
    (out / "3.eml").mkdir()             # writing seq 3's file fails
    ck = str(tmp_path / "sub.ckpt")
    a = Sub(daemon, "--from-start", "--checkpoint", ck, "--raw-dir", str(out))
    rc, _ = a.finish(60)
    assert rc == 2, a.err
    assert b"3.eml" in a.err, a.err
    assert sorted(os.listdir(out)) == ["1.eml", "2.eml", "3.eml"]
    assert os.path.exists(ck)
    (out / "3.eml").rmdir()
    b = Sub(daemon, "--checkpoint", ck, "--raw-dir", str(out), "--count", "3")
    rc, _ = b.finish(60)
    assert rc == 0, b.err
    assert b.seqs() == [3, 4, 5]
    for seq in range(1, 6):
        assert (out / ("%d.eml" % seq)).read_bytes() == daemon.raw(seq)
    assert not [f for f in os.listdir(out) if f.endswith(".tmp")]


def test_quarantined_not_published_but_replayable(make_daemon, pb):
    """A quarantined record is stored, never published (no topic_seq is used
    up, so no subscriber sees a gap), and quarantined_only replays it."""
    d = make_daemon(extra={"limits": {"message_bytes": "64K"}}).start()
    md = d.maildir()
    md.deliver(message(1))
    md.deliver(message(2, body="z" * (100 * 1024) + "\n"))    # too big
    md.deliver(message(3))
    d.wait_records(3)
    quar = [r["seq"] for r in d.records() if r["disposition"] == "QUARANTINED"]
    good = [r["seq"] for r in d.records() if r["disposition"] == "PUBLISHED"]
    assert len(quar) == 1 and len(good) == 2
    sub = Sub(d, "--from-start", "--count", "2")
    rc, st = sub.finish(60)
    assert rc == 0
    assert [(r["seq"], r["topic_seq"]) for r in sub.recs] == [(good[0], 1), (good[1], 2)]
    s = zmq.Context.instance().socket(zmq.DEALER)
    s.setsockopt(zmq.LINGER, 0)
    s.connect(d.replay_endpoint)
    s.send(pb.ReplayRequest(request_id=3, quarantined_only=True).SerializeToString())
    got = []
    while True:
        assert s.poll(5000)
        f = s.recv_multipart()
        env = pb.Envelope.FromString(f[1])
        if env.kind != pb.Envelope.RECORD:
            assert env.kind == pb.Envelope.REPLAY_END
            break
        rec = pb.Record.FromString(f[2])
        assert rec.disposition == pb.QUARANTINED and env.topic_seq == 0
        got.append(env.seq)
    s.close()
    assert got == quar


MULTI_RULES = """require ["fileinto", "copy"];
if header :contains "subject" "odd" {
    fileinto :copy "rn.copy";
}
"""


def test_record_on_two_topics_sent_per_topic_delivered_once(make_daemon, tmp_path, pb):
    rules = tmp_path / "multi.sieve"
    rules.write_text(MULTI_RULES)
    d = make_daemon(queues={"default": {"topic": "rn.main", "rules": str(rules)}},
                    extra={"publish": {"heartbeat_ms": "100"}}).start()
    raw = python_sub(d, prefixes=(b"rn.",))
    wait_heartbeat(raw, pb)
    lib = Sub(d, "--topic", "rn.", "--from-start", "--count", "10")
    for i in range(10):
        d.maildir().deliver(message(i, subject="%s %d" % ("odd" if i % 2 else "even", i)))
    d.wait_records(10)
    rc, st = lib.finish(60)
    assert rc == 0, lib.err
    assert lib.seqs() == list(range(1, 11))       # once each
    frames = []
    deadline = time.monotonic() + 30
    while len(frames) < 15 and time.monotonic() < deadline:
        if raw.poll(200):
            f = raw.recv_multipart()
            env = pb.Envelope.FromString(f[1])
            if env.kind == pb.Envelope.RECORD:
                frames.append((env.seq, f[0].decode(), env.topic_seq))
    raw.close()
    # the 5 odd records went out twice, once per topic, each with its topic_seq
    assert len(frames) == 15
    assert [ts for s, t, ts in frames if t == "rn.main"] == list(range(1, 11))
    assert [ts for s, t, ts in frames if t == "rn.copy"] == list(range(1, 6))
    odd = sorted(r["seq"] for r in d.records() if r["subject"].startswith("odd"))
    assert sorted({s for s, t, ts in frames if t == "rn.copy"}) == odd
    for r in d.records():
        assert [x["topic"] for x in r["topics"]] == (
            ["rn.copy", "rn.main"] if r["seq"] in odd else ["rn.main"])


def test_two_topics_stalled_subscriber_loses_nothing(make_daemon):
    """Losses interleaved across two topics: a loss on one topic may only
    show after newer records of the other were delivered; every record
    still arrives once, each topic in topic_seq order."""
    d = make_daemon(queues={"rms": {"topic": "rn.phd"},
                            "sei": {"topic": "seismic.waveform"}},
                    extra={"publish": {"sndhwm": "3", "heartbeat_ms": "50"}}).start()
    body = ("0123456789abcdef" * 256 + "\n") * 2
    n = 1200
    sub = Sub(d, "--from-start", "--count", str(2 * n), "--hwm", "3")
    deliver(d, 5, queue="rms", body=body)
    sub.wait_count(5)
    for rnd in range(3):              # stall, deliver, resume - three times
        os.kill(sub.proc.pid, signal.SIGSTOP)
        try:
            lo, hi = 5 + rnd * (n - 5) // 3, 5 + (rnd + 1) * (n - 5) // 3
            for i in range(lo, hi):
                d.maildir("sei").deliver(message(100000 + i, body=body))
                d.maildir("rms").deliver(message(i, body=body))
            d.wait_records(2 * hi - 5, timeout=180)
        finally:
            os.kill(sub.proc.pid, signal.SIGCONT)
    deliver(d, 5, start=300000, queue="sei", body=body)     # rn: n, seismic: n
    rc, st = sub.finish(180)
    assert rc == 0, sub.err
    recs = list(sub.recs)
    total = d.stats()["last_seq"]
    assert total == 2 * n
    assert sorted(r["seq"] for r in recs) == list(range(1, total + 1))
    for topic in ("rn.phd", "seismic.waveform"):
        ts = [r["topic_seq"] for r in recs if r["topic"] == topic]
        assert ts == list(range(1, len(ts) + 1)), topic
    assert st["gaps"] > 0, st


MANY_TOPICS_RULES = """require ["fileinto", "variables"];
if header :matches "Subject" "topic *" { fileinto "many.t${1}"; }
"""


def test_heartbeat_split_over_many_topics(make_daemon, tmp_path, pb):
    """600 topics: each heartbeat comes as parts of at most 512 heads with
    the same head_seq, together naming every topic; the library takes the
    parts without seeing a gap that is not there."""
    rules = tmp_path / "many.sieve"
    rules.write_text(MANY_TOPICS_RULES)
    d = make_daemon(queues={"default": {"topic": "mail.other", "rules": str(rules)}},
                    extra={"publish": {"heartbeat_ms": "100"}}).start()
    n = 600
    md = d.maildir("default")
    for i in range(n):
        md.deliver(message(i, subject="topic %03d" % i))
    d.wait_records(n, timeout=120)
    sub = Sub(d, "--topic", "many.", "--from-start", "--count", str(n + 1))
    sub.wait_count(n)

    # the heartbeats, decoded from the frames; parts of one heartbeat
    # share head_seq and come one after another
    s = python_sub(d, prefixes=(HB_TOPIC,))
    parts, rounds = [], []
    deadline = time.monotonic() + 30
    while len(rounds) < 3 and time.monotonic() < deadline:
        if not s.poll(200):
            continue
        f = s.recv_multipart()
        env = pb.Envelope.FromString(f[1])
        assert f[0] == HB_TOPIC and env.kind == pb.Envelope.HEARTBEAT
        assert env.head_seq == n
        assert len(env.heads) <= 512
        parts.append({h.topic: h.topic_seq for h in env.heads})
        if len(env.heads) < 512:	# the last part of this heartbeat
            rounds.append(parts)
            parts = []
    s.close()
    assert len(rounds) >= 3, "fewer than 3 whole heartbeats in 30 s"
    for r in rounds[1:]:		# the first may have been joined midway
        assert [len(p) for p in r] == [512, n - 512], [len(p) for p in r]
        heads = {}
        for p in r:
            assert not set(p) & set(heads), "a topic in two parts"
            heads.update(p)
        assert heads == {"many.t%03d" % i: 1 for i in range(n)}

    # the subscriber sat through those heartbeats: no gap, no catch-up
    md.deliver(message(n, subject="topic 000"))
    rc, st = sub.finish(60)
    assert rc == 0, sub.err
    recs = list(sub.recs)
    assert [r["seq"] for r in recs] == list(range(1, n + 2))
    assert recs[-1]["topic"] == "many.t000" and recs[-1]["topic_seq"] == 2
    assert st["gaps"] == 0, st
    assert st["duplicates"] == 0, st
