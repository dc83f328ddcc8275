"""vmingest reprocess / quarantine: the current rules run again on stored bytes.

Mail is quarantined by a rule; the rule is fixed (SIGHUP); the quarantined
records are reprocessed: a subscriber receives the new records (new seqs,
reprocessed_from = the old seq), the old records are still listed, and a
second run does not publish them again.
"""
import json
import os
import time

import pytest

from conftest import message, protoc_pb2, wait_for

BAD_RULES = ('require ["fileinto", "vnd.vmingest"];\n'
             'if header :contains "subject" "spectrum" { quarantine "no spectra yet"; stop; }\n'
             'fileinto "rn.other";\n')
FIXED_RULES = ('require ["fileinto", "vnd.vmingest"];\n'
               'if header :contains "subject" "spectrum" { fileinto "rn.spectra"; stop; }\n'
               'fileinto "rn.other";\n')


def jl(text):
    return [json.loads(l) for l in text.split("\n") if l.strip()]


def records(d):
    return jl(d.cli("list", "--store", d.store, "--json").stdout)


@pytest.fixture
def quarantining(make_daemon, tmp_path):
    rules = tmp_path / "rules.sieve"
    rules.write_text(BAD_RULES)
    d = make_daemon(queues={"default": {"rules": str(rules)}},
                    extra={"publish": {"heartbeat_ms": "100"}}).start()
    for i in range(10):
        d.maildir().deliver(message(i, subject=("spectrum %d" % i) if i % 2 else None))
    d.wait_records(10)
    return d, rules


def fix_rules(d, rules):
    rules.write_text(FIXED_RULES)
    d.hup()
    wait_for(lambda: "reloaded" in d.log_since_start(), what="SIGHUP reload")


def test_reprocess_quarantined_publishes_new_records(quarantining, tmp_path):
    import zmq
    d, rules = quarantining
    pb = protoc_pb2(str(tmp_path))
    recs = records(d)
    quar = sorted(r["seq"] for r in recs if r["disposition"] == "QUARANTINED")
    assert len(quar) == 5
    listed = d.cli("quarantine", "list", "--store", d.store, "--json").stdout
    assert sorted(j["seq"] for j in jl(listed)) == quar

    ctx = zmq.Context()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.SUBSCRIBE, b"rn.spectra")
    sub.setsockopt(zmq.SUBSCRIBE, b"!hb")
    sub.connect(d.pub_endpoint)
    # connected once a heartbeat arrives
    assert sub.poll(10000), "no heartbeat from the daemon"
    while sub.poll(0):
        sub.recv_multipart()

    fix_rules(d, rules)
    # dry run: says what would change, writes nothing
    r = d.cli("reprocess", "-c", d.config, "--quarantined", "--dry-run", "--json")
    lines = jl(r.stdout)
    per_seq = [l for l in lines if "seq" in l]
    assert sorted(l["seq"] for l in per_seq) == quar
    assert all(l["changed"] and l["new"]["disposition"] == "PUBLISHED"
               and l["new"]["topics"] == ["rn.spectra"] and "new_seq" not in l
               for l in per_seq)
    assert d.stats()["last_seq"] == 10

    r = d.cli("reprocess", "-c", d.config, "--quarantined", "--json")
    done = [l for l in jl(r.stdout) if "seq" in l]
    new_of = {l["seq"]: l["new_seq"] for l in done}
    assert sorted(new_of) == quar
    assert sorted(new_of.values()) == list(range(11, 16))

    got = {}
    deadline = time.monotonic() + 30
    while len(got) < 5 and time.monotonic() < deadline:
        if not sub.poll(1000):
            continue
        frames = sub.recv_multipart()
        if frames[0] != b"rn.spectra":
            continue
        rec = pb.Record()
        rec.ParseFromString(frames[2])
        got[rec.seq] = rec
    sub.close(0)
    ctx.term()
    assert sorted(got) == sorted(new_of.values())
    for old, new in new_of.items():
        assert got[new].reprocessed_from == old
        assert got[new].disposition == pb.PUBLISHED
        assert got[new].raw_size == [r for r in recs if r["seq"] == old][0]["raw_size"]

    # the old records are still there, unchanged; the new ones point back
    after = {r["seq"]: r for r in records(d)}
    for s in quar:
        assert after[s]["disposition"] == "QUARANTINED"
        assert after[s]["reason"] == "no spectra yet"
    for old, new in new_of.items():
        assert after[new]["reprocessed_from"] == old
        assert d.raw(new) == d.raw(old)
    # nothing left to release; a second run publishes nothing again
    assert jl(d.cli("quarantine", "list", "--store", d.store, "--json").stdout) == []
    r = d.cli("reprocess", "-c", d.config, "--quarantined")
    assert "nothing selected" in r.stderr
    assert d.stats()["last_seq"] == 15


def test_quarantine_release_and_errors(quarantining):
    d, rules = quarantining
    recs = records(d)
    quar = sorted(r["seq"] for r in recs if r["disposition"] == "QUARANTINED")
    good = sorted(r["seq"] for r in recs if r["disposition"] == "PUBLISHED")
    fix_rules(d, rules)
    r = d.cli("quarantine", "release", "-c", d.config, str(quar[0]), "--json")
    rel = [l for l in jl(r.stdout) if "seq" in l]
    assert len(rel) == 1 and rel[0]["seq"] == quar[0] and rel[0]["new_seq"] == 11
    # already released: skipped; not quarantined: refused by the daemon (exit 1)
    r = d.cli("quarantine", "release", "-c", d.config, str(quar[0]), str(good[0]),
              "--json", check=False)
    assert r.returncode == 1
    lines = [l for l in jl(r.stdout) if "seq" in l]
    assert lines == [{"seq": good[0], "error": "not quarantined"}]
    assert "released already" in r.stderr
    # a seq that does not exist
    r = d.cli("reprocess", "-c", d.config, "999", check=False)
    assert r.returncode == 1 and "no such record" in r.stdout
    # a range with a topic filter: only rn.other records, re-run with the same outcome
    r = d.cli("reprocess", "-c", d.config, "--from", "1", "--to", "10", "--topic", "rn.other",
              "--json")
    lines = [l for l in jl(r.stdout) if "seq" in l]
    assert sorted(l["seq"] for l in lines) == good
    assert all(not l["changed"] for l in lines)
    listed = jl(d.cli("quarantine", "list", "--store", d.store, "--all", "--json").stdout)
    assert {j["seq"]: j["released_as"] for j in listed}[quar[0]] == 11
    assert d.stats()["last_seq"] == 11 + len(good)


def test_no_daemon_and_usage(make_daemon):
    d = make_daemon()
    d.start()
    d.maildir().deliver(message(1))
    d.wait_records(1)
    d.stop()
    r = d.cli("reprocess", "-c", d.config, "1", check=False)
    assert r.returncode == 2 and "control socket" in r.stderr
    for args in ([], ["--from", "1"], ["--quarantined", "3"], ["x"]):
        assert d.cli("reprocess", "-c", d.config, *args, check=False).returncode == 2
    assert d.cli("quarantine", "bogus", check=False).returncode == 2
    assert "Exit status" in d.cli("reprocess", "--help").stdout


def test_large_reprocess_interleaves_with_ingest(make_daemon):
    """A reprocess of many records runs in chunks on the main loop while new
    mail keeps being committed: every old record gets exactly one new one and
    every newly delivered message is stored."""
    import threading
    d = make_daemon().start()
    for i in range(300):
        d.maildir().deliver(message(i))
    d.wait_records(300)
    names = []

    def feed():
        for i in range(100):
            names.append(d.maildir().deliver(message(1000 + i)))
    t = threading.Thread(target=feed)
    t.start()
    r = d.cli("reprocess", "-c", d.config, "--from", "1", "--to", "300", "--json")
    t.join()
    lines = [l for l in jl(r.stdout) if "seq" in l]
    assert sorted(l["seq"] for l in lines) == list(range(1, 301))
    d.wait_records(700)
    recs = records(d)
    assert [x["seq"] for x in recs] == list(range(1, 701))
    back = sorted(x["reprocessed_from"] for x in recs if x["reprocessed_from"])
    assert back == list(range(1, 301))
    stored = {x["maildir_name"] for x in recs if not x["reprocessed_from"]}
    assert set(names) <= stored
    assert d.maildir().new_files() == []


def test_control_socket_protocol(daemon):
    """Bad requests get an error line and the connection stays usable; the
    socket is 0660."""
    import socket
    import stat
    path = os.path.join(daemon.state, "control.sock")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o660
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(path)
    f = s.makefile("rb")

    def ask(line):
        s.sendall(line + b"\n")
        return json.loads(f.readline())
    assert ask(b"not json")["error"] == "request is not a JSON object"
    assert "unknown op" in ask(b'{"op":"rm -rf"}')["error"]
    assert "seqs" in ask(b'{"op":"reprocess","seqs":"1"}')["error"]
    assert "positive" in ask(b'{"op":"reprocess","seqs":[0]}')["error"]
    assert "dry_run" in ask(b'{"op":"reprocess","seqs":[1],"dry_run":1}')["error"]
    big = json.dumps({"op": "reprocess", "seqs": list(range(1, 70000))}).encode()
    assert "at most" in ask(big)["error"]
    assert ask(b'{"op":"ping"}') == {"done": True, "ok": True}
    r = ask(b'{"op":"reprocess","seqs":[]}')
    assert r == {"done": True, "count": 0, "errors": 0, "changed": 0}
    # a line over the limit: one error line, the rest of it is dropped,
    # the next line is served
    s.sendall(b"x" * (1 << 20) + b"y" * 70000)
    assert "too long" in json.loads(f.readline())["error"]
    assert ask(b'yyy\n{"op":"ping"}') == {"done": True, "ok": True}
    s.close()
    assert daemon.alive()


def test_reprocessed_record_too_big_keeps_its_link(make_daemon):
    # a record re-run under a smaller [limits] record_bytes is stored
    # shrunk (QUARANTINED, raw kept); it must still say which record it
    # re-ran, or `vmingest reprocess` and consumers lose the chain
    d = make_daemon().start()
    parts = "".join("--b\nContent-Type: text/plain\n\n%s\n" % (c * 40000)
                    for c in "xyz")
    big = ("From: a@b\nSubject: three parts\nMessage-ID: <big3r@t>\n"
           "MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=b\n\n"
           "%s--b--\n" % parts).encode()
    d.maildir().deliver(big)
    d.wait_records(1)
    assert records(d)[0]["disposition"] == "PUBLISHED"
    d.extra.setdefault("limits", {})["record_bytes"] = "64K"
    d.write_config()
    d.hup()
    wait_for(lambda: "reloaded" in d.log_since_start(), what="SIGHUP reload")
    out = jl(d.cli("reprocess", "-c", d.config, "1", "--json").stdout)
    assert [l["new_seq"] for l in out if "seq" in l] == [2]
    r = records(d)[1]
    assert r["seq"] == 2 and r["reprocessed_from"] == 1, r
    assert r["disposition"] == "QUARANTINED" and "record_bytes" in r["reason"], r
    assert r["message_id"] == "big3r@t"
    assert d.raw(2) == big
    d.stop()


def control(d):
    """A raw connection to the control socket; ask(obj) -> reply lines up to done."""
    import socket
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(30)
    s.connect(os.path.join(d.state, "control.sock"))
    f = s.makefile("rb")

    def send(obj):
        s.sendall(json.dumps(obj).encode() + b"\n")

    def replies():
        out = []
        while True:
            line = json.loads(f.readline())
            out.append(line)
            if line.get("done"):
                return out
    return s, send, replies


def test_release_is_done_once(quarantining):
    # the same seq twice in a request, and two releases of the same records
    # at the same time: each quarantined record is released exactly once
    d, rules = quarantining
    quar = sorted(r["seq"] for r in records(d) if r["disposition"] == "QUARANTINED")
    fix_rules(d, rules)
    r = d.cli("quarantine", "release", "-c", d.config, str(quar[0]), str(quar[0]),
              "--json")
    assert [l["new_seq"] for l in jl(r.stdout) if "seq" in l] == [11]
    a, send_a, replies_a = control(d)
    b, send_b, replies_b = control(d)
    req = {"op": "reprocess", "seqs": quar, "quarantined_only": True, "release": True}
    send_a(req)
    send_b(req)
    got = [l for l in replies_a() + replies_b() if "seq" in l]
    a.close()
    b.close()
    made = sorted(l["seq"] for l in got if "new_seq" in l)
    refused = [l for l in got if "error" in l]
    assert made == quar[1:], got
    assert len(refused) == len(quar) + 1 and all("already" in l["error"] for l in refused)
    d.wait_records(10 + len(quar))
    back = sorted(x["reprocessed_from"] for x in records(d) if x["reprocessed_from"])
    assert back == quar
    # force does it again, on purpose
    r = d.cli("quarantine", "release", "-c", d.config, "--force", str(quar[0]), "--json")
    assert len([l for l in jl(r.stdout) if "new_seq" in l]) == 1


def test_reprocessed_duplicate_stays_a_duplicate(make_daemon):
    d = make_daemon().start()
    m = message(1)
    d.maildir().deliver(m)
    d.wait_records(1)
    d.maildir().deliver(m)          # same bytes, another name
    d.wait_records(2)
    assert records(d)[1]["disposition"] == "DUPLICATE"
    out = jl(d.cli("reprocess", "-c", d.config, "2", "--json").stdout)
    assert [l["new_seq"] for l in out if "seq" in l] == [3]
    r = records(d)[2]
    assert r["disposition"] == "DUPLICATE" and r["duplicate_of"] == 1, r
    assert r["reprocessed_from"] == 2 and r["topics"] == []
    d.stop()


def test_reprocess_from_another_store_is_refused(make_daemon):
    d = make_daemon().start()
    d.maildir().deliver(message(1))
    d.wait_records(1)
    other = make_daemon().start()
    other.maildir().deliver(message(2))
    other.wait_records(1)
    other.stop()
    # seq 1 of the other store is not seq 1 here
    r = d.cli("reprocess", "-c", d.config, "--store", other.store, "1", check=False)
    assert r.returncode == 2 and "another store" in r.stdout + r.stderr, r
    assert d.stats()["last_seq"] == 1
    d.stop()


def test_control_client_that_reads_no_reply_is_closed(daemon):
    # a client that sends requests and reads none of the replies: its
    # replies are not piled up without end, it is closed, ingest goes on
    import socket
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(os.path.join(daemon.state, "control.sock"))
    s.settimeout(10)
    ping = b'{"op":"ping"}\n' * 4096
    sent = 0
    try:
        while sent < (32 << 20):
            sent += s.send(ping)
    except OSError:
        pass                    # closed by the daemon: what we want
    wait_for(lambda: "reads none of its" in daemon.log(), what="client closed")
    daemon.maildir().deliver(message(1))
    daemon.wait_records(1)
    # the other connections still work
    c, send, replies = control(daemon)
    send({"op": "ping"})
    assert replies() == [{"done": True, "ok": True}]
    c.close()
    s.close()
    assert daemon.alive()
