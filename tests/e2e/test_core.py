"""The core promise: every delivered file becomes exactly one durable record.

Real daemon, real Maildirs, real LMDB store; the CLI reads the store back.
"""
import hashlib
import os
import random
import signal
import subprocess
import threading
import time

import pytest

from conftest import VMINGESTD, VMINGEST, message, wait_for


def sha(b):
    return hashlib.sha256(b).hexdigest()


def test_thousand_messages_two_queues(make_daemon):
    d = make_daemon(queues={"rms": {"topic": "rn.phd"}, "seismic": {"topic": "seismic.waveform"}})
    d.start()
    sent = {}
    for i in range(1000):
        q = "rms" if i % 2 else "seismic"
        body = ("x" * (i % 300)) + "\n"
        data = message(i, body=body).encode()
        name = d.maildir(q).deliver(data)
        sent[(q, name)] = data
    d.wait_records(1000)
    wait_for(lambda: not d.maildir("rms").new_files() and not d.maildir("seismic").new_files(),
             what="new/ empty")
    recs = d.records()
    assert len(recs) == 1000
    assert [r["seq"] for r in recs] == list(range(1, 1001))
    by_name = {(r["queue"], r["maildir_name"]): r for r in recs}
    assert set(by_name) == set(sent)
    for (q, name), data in sent.items():
        r = by_name[(q, name)]
        assert r["sha256"] == sha(data)
        assert r["raw_size"] == len(data)
        assert r["disposition"] == "PUBLISHED"
        assert r["topic"] == ("rn.phd" if q == "rms" else "seismic.waveform")
    # byte-identical raw bytes for a sample spread over the range, and all
    # of them through one store read per record
    for r in recs[::37] + recs[-3:]:
        assert d.raw(r["seq"]) == sent[(r["queue"], r["maildir_name"])]
    assert d.stop() == 0


def test_every_raw_byte_identical(make_daemon):
    """All 200 stored messages come back byte for byte, including binary junk."""
    d = make_daemon().start()
    rnd = random.Random(7)
    sent = {}
    for i in range(200):
        if i % 10 == 0:
            data = bytes(rnd.getrandbits(8) for _ in range(rnd.randint(0, 3000)))
        else:
            data = message(i, body="caf\xe9 \r\n\x00 bin %d\n" % i).encode("latin-1")
        sent[d.maildir().deliver(data)] = data
    d.wait_records(200)
    for r in d.records():
        assert d.raw(r["seq"]) == sent[r["maildir_name"]], r["seq"]
    d.stop()


def test_crash_kill9_exactly_once(make_daemon):
    """5000 messages (+ byte-identical copies), kill -9 at random moments."""
    d = make_daemon(extra={"store": {"batch_max": "64"}})
    rnd = random.Random(20261204)
    n_unique = 5000
    copies = 25
    datas = [message(i, body="payload %d %s\n" % (i, "y" * rnd.randint(0, 2000))).encode()
             for i in range(n_unique)]
    dup_src = rnd.sample(range(n_unique), copies)
    plan = list(range(n_unique)) + dup_src
    rnd.shuffle(plan)

    md = d.maildir()
    delivered = threading.Event()

    def deliver():
        # paced (~2000/s) so that the daemon is killed while mail still arrives
        for k, idx in enumerate(plan):
            md.deliver(datas[idx])
            if k % 10 == 9:
                time.sleep(0.005)
        delivered.set()

    t = threading.Thread(target=deliver)
    d.start()
    t.start()
    kills = 0
    last = 0
    while kills < 6 and not delivered.is_set():
        # a random moment while it ingests: after some progress
        wait_for(lambda: d.stats()["last_seq"] > last, timeout=60, interval=0.01,
                 what="progress before kill %d" % kills)
        time.sleep(rnd.uniform(0.0, 0.1))
        last = d.stats()["last_seq"]
        d.kill9()
        kills += 1
        d.start()
    t.join()
    assert kills >= 5, "delivery finished after %d kills; make it slower" % kills
    total = len(plan)
    wait_for(lambda: not md.new_files() and d.stats()["last_seq"] >= total, timeout=120,
             what="backlog drained")
    recs = d.records()
    d.stop()
    assert len(recs) == total, "records %d != delivered files %d" % (len(recs), total)
    assert [r["seq"] for r in recs] == list(range(1, total + 1))
    originals = [r for r in recs if r["disposition"] != "DUPLICATE"]
    dups = [r for r in recs if r["disposition"] == "DUPLICATE"]
    assert len(originals) == n_unique
    assert len(dups) == copies
    shas = [r["sha256"] for r in originals]
    assert len(set(shas)) == n_unique
    assert set(shas) == {sha(x) for x in datas}
    first = {r["sha256"]: r["seq"] for r in originals}
    for r in dups:
        assert r["duplicate_of"] == first[r["sha256"]]
    assert md.new_files() == []


def test_committed_file_seen_again_is_not_stored_twice(make_daemon):
    """A crash after commit but before unlink leaves the file in new/:
    the next pass recognises it (same name, same sha256) and removes it."""
    d = make_daemon().start()
    md = d.maildir()
    data = message(1).encode()
    name = md.deliver(data)
    d.wait_records(1)
    wait_for(lambda: not md.new_files(), what="file removed")
    d.stop()
    # put the very same file back, as if the unlink had not happened
    md.deliver(data, name=name)
    d.start()
    wait_for(lambda: not md.new_files(), what="file removed again")
    assert "action=removed reason=already-stored" in d.log_since_start()
    assert len(d.records()) == 1
    # the same bytes under a new name are a new delivery: a DUPLICATE record
    md.deliver(data)
    d.wait_records(2)
    recs = d.records()
    assert recs[1]["disposition"] == "DUPLICATE" and recs[1]["duplicate_of"] == 1
    d.stop()


def test_bad_mail_is_quarantined_not_dropped(make_daemon):
    d = make_daemon(extra={"limits": {"message_bytes": "64K"}}).start()
    md = d.maildir()
    garbage = bytes(range(256)) * 4
    big = message(2, body="z" * (100 * 1024) + "\n").encode()
    empty = b""
    names = [md.deliver(garbage), md.deliver(big), md.deliver(empty)]
    d.wait_records(3)
    recs = {r["maildir_name"]: r for r in d.records()}
    for n in names:
        assert recs[n]["disposition"] == "QUARANTINED", recs[n]
        assert recs[n]["reason"], recs[n]
    assert "message_bytes" in recs[names[1]]["reason"]
    assert d.raw(recs[names[0]]["seq"]) == garbage
    assert d.raw(recs[names[1]]["seq"]) == big
    assert md.new_files() == []
    assert d.alive()
    d.stop()


def test_record_too_big_is_stored_shrunk_with_its_raw_bytes(make_daemon):
    # three 40 KB text parts make a normalized record over record_bytes
    # (64K): the daemon stores a QUARANTINED record that keeps identity,
    # reason and the raw message, and goes on with the next file
    d = make_daemon(extra={"limits": {"record_bytes": "64K"}}).start()
    md = d.maildir()
    parts = "".join("--b\nContent-Type: text/plain\n\n%s\n" % (c * 40000)
                    for c in "xyz")
    big = ("From: a@b\nSubject: three parts\nMessage-ID: <big3@t>\n"
           "MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=b\n\n"
           "%s--b--\n" % parts).encode()
    nb = md.deliver(big)
    ns = md.deliver(message(1))
    d.wait_records(2)
    recs = {r["maildir_name"]: r for r in d.records()}
    r = recs[nb]
    assert r["disposition"] == "QUARANTINED", r
    assert "record_bytes" in r["reason"], r
    assert r["message_id"] == "big3@t" and r["subject"] == "three parts", r
    assert d.raw(r["seq"]) == big
    assert recs[ns]["disposition"] == "PUBLISHED", recs[ns]
    assert md.new_files() == []
    d.stop()


def test_reason_from_message_bytes_is_escaped_in_the_log(make_daemon, tmp_path):
    # a rule may build the quarantine reason from the message (variables);
    # its bytes must not reach the log raw: a newline there forges a line
    rules = tmp_path / "reason.sieve"
    rules.write_text('require ["variables", "vnd.vmingest"];\n'
                     'if header :matches "subject" "*" { quarantine "${1}"; }\n')
    d = make_daemon(queues={"default": {"rules": str(rules)}}).start()
    forged = "seq=999999 queue=default action=removed reason=forged"
    subj = "=?utf-8?q?x=0A%s?=" % forged.replace("=", "=3D").replace(" ", "_")
    name = d.maildir().deliver(message(1, subject=subj).encode())
    d.wait_records(1)
    rec = d.records()[0]
    assert rec["maildir_name"] == name
    assert rec["disposition"] == "QUARANTINED", rec
    assert "\n" + forged in rec["reason"], rec     # the rule saw the newline
    wait_for(lambda: "name=%s" % name in d.log(), what="the record's log line")
    for line in d.log().splitlines():
        assert not line.split(">", 1)[-1].startswith("seq=999999"), line
    d.stop()


def test_file_too_big_to_read_is_left_and_the_daemon_lives(make_daemon):
    # a sparse file claiming 1 TiB: no buffer for it can be had; the daemon
    # must keep ingesting and leave the file where it is (not lose it)
    d = make_daemon().start()
    md = d.maildir()
    huge = "%d.M1P1Q1.huge" % time.time()
    tmp = os.path.join(md.path, "tmp", huge)
    with open(tmp, "wb") as f:
        f.write(b"Subject: huge\n\n")
    os.truncate(tmp, 1 << 40)
    os.rename(tmp, os.path.join(md.path, "new", huge))
    name = md.deliver(message(1))
    d.wait_records(1)
    assert [r["maildir_name"] for r in d.records()] == [name]
    wait_for(lambda: huge in d.log_since_start(), what="a warning naming the file")
    assert d.alive()
    assert md.new_files() == [huge]
    d.stop()
    os.unlink(os.path.join(md.path, "new", huge))


def test_file_over_4gib_is_left_and_the_others_go_on(make_daemon):
    # LMDB keeps no value of 4 GiB or more: such a file can never be
    # stored, so it must not be read (nor block the batch it would be in)
    d = make_daemon(extra={"store": {"map_size": "6G"},
                           "daemon": {"workers": "1"}}).start()
    md = d.maildir()
    huge = "%d.M1P1Q1.huge" % time.time()
    tmp = os.path.join(md.path, "tmp", huge)
    with open(tmp, "wb") as f:
        f.write(b"Subject: huge\n\n")
    os.truncate(tmp, (4 << 30) + 4096)          # sparse: no disk used
    os.rename(tmp, os.path.join(md.path, "new", huge))
    small = md.deliver(message(1))
    d.wait_records(1)
    assert [r["maildir_name"] for r in d.records()] == [small]
    wait_for(lambda: "more than the store can hold" in d.log(), what="log line")
    assert md.new_files() == [huge]
    assert "commit failed" not in d.log()
    d.stop()


def _slow_fdatasync(tmp_path):
    so = str(tmp_path / "slow_fdatasync.so")
    subprocess.run(["cc", "-shared", "-fPIC", "-O2", "-o", so,
                    os.path.join(os.path.dirname(__file__), "slow_fdatasync.c"),
                    "-ldl"], check=True)
    return so


def test_file_replaced_while_being_stored_stays(make_daemon, tmp_path, monkeypatch):
    # new/NAME is read and committed; meanwhile another message is renamed
    # onto NAME.  Removing "NAME" after the commit would delete a message
    # that has no record: it must stay, and be stored next.
    flag, mark = str(tmp_path / "slow"), str(tmp_path / "insync")
    monkeypatch.setenv("LD_PRELOAD", _slow_fdatasync(tmp_path))
    monkeypatch.setenv("SLOWSYNC_FLAG", flag)
    monkeypatch.setenv("SLOWSYNC_MARK", mark)
    d = make_daemon().start()
    md = d.maildir()
    c1, c2 = message(1).encode(), message(2).encode()
    open(flag, "w").close()
    name = md.deliver(c1)
    wait_for(lambda: os.path.exists(mark), what="the commit of the first in fsync")
    md.deliver(c2, name=name)
    os.unlink(flag)
    d.wait_records(2)
    wait_for(lambda: md.new_files() == [], what="new/ empty")
    recs = d.records()
    assert [r["sha256"] for r in recs] == [hashlib.sha256(c).hexdigest()
                                           for c in (c1, c2)]
    assert d.raw(2) == c2
    assert "was replaced in new/ while it was being stored" in d.log()
    d.stop()


def _deliver_bytes_name(md, name, data):
    new = os.path.join(md.path, "new").encode()
    tmp = os.path.join(md.path, "tmp").encode()
    with open(os.path.join(tmp, name), "wb") as f:
        f.write(data)
    os.rename(os.path.join(tmp, name), os.path.join(new, name))


def test_name_not_utf8_seen_again_after_a_crash_is_not_stored_twice(make_daemon):
    # the record keeps the name repaired to UTF-8; crash recovery must
    # still recognise the file by the name the directory gives
    d = make_daemon().start()
    md = d.maildir()
    data = message(1).encode()
    name = b"1700000000.M1P1Q1.caf\xe9"
    _deliver_bytes_name(md, name, data)
    d.wait_records(1)
    wait_for(lambda: md.new_files() == [], what="file removed")
    d.stop()
    _deliver_bytes_name(md, name, data)   # as if the unlink had not happened
    d.start()
    wait_for(lambda: "reason=already-stored" in d.log_since_start(),
             what="recognised as already stored")
    wait_for(lambda: md.new_files() == [], what="file removed again")
    recs = d.records()
    assert len(recs) == 1 and recs[0]["maildir_name"] == "1700000000.M1P1Q1.caf\ufffd"
    d.stop()


def test_name_equal_to_the_repair_of_another_is_a_new_delivery(make_daemon):
    d = make_daemon().start()
    md = d.maildir()
    data = message(7).encode()
    _deliver_bytes_name(md, b"1700000000.M1P1Q1.x\xff", data)
    d.wait_records(1)
    wait_for(lambda: md.new_files() == [], what="first removed")
    # another file, named as the first one's repaired name, same bytes
    _deliver_bytes_name(md, "1700000000.M1P1Q1.x\ufffd".encode(), data)
    d.wait_records(2)
    recs = d.records()
    assert [r["disposition"] for r in recs] == ["PUBLISHED", "DUPLICATE"]
    assert recs[1]["duplicate_of"] == 1
    d.stop()


def test_file_that_does_not_fit_does_not_hold_back_smaller_ones(make_daemon):
    d = make_daemon(extra={"store": {"map_size": "1M"}}).start()
    md = d.maildir()
    for i in range(20):
        md.deliver(message(i, body=("%05d " % i) * 2000 + "\n"))   # ~12 KiB
    d.wait_records(20)
    big = md.deliver(message(100, body="B" * 900000 + "\n"))
    wait_for(lambda: "cannot be stored now" in d.log(), what="big one set aside")
    small = [md.deliver(message(200 + i)) for i in range(5)]
    d.wait_records(25)
    assert md.new_files() == [big]
    assert d.alive()
    d.stop()
    assert "exiting with 1 file(s) uncommitted" in d.log()
    # with room, it goes in too
    d.extra["store"]["map_size"] = "8M"
    d.write_config()
    d.start()
    d.wait_records(26)
    assert md.new_files() == []
    d.stop()


def test_symlink_and_dotfiles(make_daemon):
    d = make_daemon().start()
    md = d.maildir()
    secret = os.path.join(d.root, "secret")
    with open(secret, "w") as f:
        f.write("not for you\n")
    os.symlink(secret, os.path.join(md.path, "new", "1700000000.link.host"))
    with open(os.path.join(md.path, "new", ".hidden"), "w") as f:
        f.write("dot file\n")
    md.deliver(message(3))
    d.wait_records(2)
    recs = d.records()
    link = [r for r in recs if r["maildir_name"] == "1700000000.link.host"][0]
    assert link["disposition"] == "QUARANTINED"
    assert "not a regular file" in link["reason"]
    assert link["raw_size"] == 0
    assert os.path.exists(secret)
    assert os.path.exists(os.path.join(md.path, "new", ".hidden"))
    d.stop()


def test_second_symlink_is_quarantined_not_a_duplicate(make_daemon):
    # nothing is read from a symlink: two of them share no bytes, and each
    # must keep the reason an operator looks for in quarantine
    d = make_daemon().start()
    new = os.path.join(d.maildir().path, "new")
    names = ["1700000000.link%d.host" % i for i in range(2)]
    for n in names:
        os.symlink("/etc/hostname", os.path.join(new, n))
    d.wait_records(2)
    for r in d.records():
        assert r["maildir_name"] in names
        assert r["disposition"] == "QUARANTINED", r
        assert "not a regular file" in r["reason"], r
        assert not r["duplicate_of"], r
    d.stop()


def test_keep_cur(make_daemon):
    d = make_daemon(queues={"default": {"keep": "cur"}}).start()
    md = d.maildir()
    name = md.deliver(message(4))
    d.wait_records(1)
    wait_for(lambda: md.cur_files() == [name + ":2,S"], what="file in cur/")
    assert md.new_files() == []
    d.stop()


def test_second_daemon_refused(make_daemon):
    d = make_daemon().start()
    r = subprocess.run([VMINGESTD, "-c", d.config], capture_output=True, timeout=30)
    assert r.returncode == 1
    assert b"in use by another vmingestd" in r.stderr
    assert d.alive()
    d.stop()


def test_threads_are_named_for_top_and_perf(make_daemon):
    # vmingestd(8) THREADS: what `top -H` and perf show an operator
    d = make_daemon(extra={"daemon": {"workers": "3"}}).start()
    names = []
    for tid in os.listdir("/proc/%d/task" % d.proc.pid):
        with open("/proc/%d/task/%s/comm" % (d.proc.pid, tid)) as f:
            names.append(f.read().strip())
    assert names.count("vmi-worker") == 3
    for one in ("vmingestd", "vmi-commit", "vmi-publish", "vmi-replay",
                "MHD-single"):
        assert names.count(one) == 1, (one, names)
    assert "vmi-zap" not in names  # no CURVE configured
    d.stop()


def test_sigterm_commits_and_exits_zero(make_daemon):
    d = make_daemon().start()
    md = d.maildir()
    for i in range(300):
        md.deliver(message(i))
    assert d.stop() == 0  # no wait: it stops while busy
    assert "stopped cleanly" in d.log()
    # whatever was not committed is still in new/, and nothing is in both
    stored = {r["maildir_name"] for r in d.records()}
    left = set(md.new_files())
    assert not (stored & left)
    assert len(stored) + len(left) == 300
    d.start()
    d.wait_records(300)
    d.stop()


def test_full_map_pauses_then_drains(make_daemon):
    d = make_daemon(extra={"store": {"map_size": "1M"}})
    d.start()
    md = d.maildir()
    n = 120
    for i in range(n):
        md.deliver(message(i, body=("%05d " % i) * 2000 + "\n"))  # ~12 KiB each
    wait_for(lambda: "ingestion paused" in d.log(), timeout=60, what="pause on full map")
    assert d.alive()
    stored = d.stats()["last_seq"]
    assert 0 < stored < n
    left = md.new_files()
    assert len(left) == n - stored
    d.stop()
    # a bigger map: the rest drains, nothing lost, nothing doubled
    d.extra["store"]["map_size"] = "64M"
    d.write_config()
    d.start()
    wait_for(lambda: not md.new_files(), timeout=60, what="drain")
    recs = d.records()
    assert len(recs) == n
    assert len({r["sha256"] for r in recs}) == n
    d.stop()


def test_check_config(tmp_path):
    good = tmp_path / "good.conf"
    good.write_text("[daemon]\nstate_dir = %s\n[queue a]\nmaildir = %s\n"
                    % (tmp_path / "s", tmp_path / "m"))
    r = subprocess.run([VMINGESTD, "--check-config", "-c", str(good)], capture_output=True)
    assert r.returncode == 0, r.stderr
    bad = tmp_path / "bad.conf"
    bad.write_text("[daemon]\nstate_dir = /tmp/x\n\n[store]\nbatch_max = lots\n")
    r = subprocess.run([VMINGESTD, "--check-config", "-c", str(bad)], capture_output=True)
    assert r.returncode == 1
    assert b"bad.conf:5: [store] batch_max: not a number" in r.stderr, r.stderr
    unknown = tmp_path / "unknown.conf"
    unknown.write_text("[store]\nmap_sise = 1G\n")
    r = subprocess.run([VMINGESTD, "--check-config", "-c", str(unknown)], capture_output=True)
    assert r.returncode == 1
    assert b"unknown.conf:2: [store] map_sise: unknown key" in r.stderr, r.stderr


def test_cli_exit_codes(daemon):
    md = daemon.maildir()
    md.deliver(message(1))
    daemon.wait_records(1)
    r = daemon.cli("show", "99", "--store", daemon.store, check=False)
    assert r.returncode == 1 and "no record 99" in r.stderr
    r = daemon.cli("show", "--store", daemon.store, check=False)
    assert r.returncode == 2
    r = daemon.cli("list", "--store", "/nonexistent/store", check=False)
    assert r.returncode == 2 and "no store" in r.stderr
    r = daemon.cli("show", "1", "--store", daemon.store)
    assert "seq:          1" in r.stdout
    # output that does not reach its file is a failure, not a success
    for cmd in (["list"], ["list", "--json"], ["show", "1"], ["stats"],
                ["quarantine", "list"]):
        with open("/dev/full", "w") as full:
            r = subprocess.run([VMINGEST] + cmd + ["--store", daemon.store],
                               stdout=full, stderr=subprocess.PIPE, timeout=30)
        assert r.returncode == 2, (cmd, r.returncode)
        assert b"standard output" in r.stderr, (cmd, r.stderr)
    daemon.stop()


def test_store_is_readable_by_its_group_and_nobody_else(make_daemon):
    # operators in the store's group run vmingest list/show/replay without
    # any write right to the mail: group read on the store and data.mdb,
    # group write on lock.mdb (LMDB readers register there)
    import shutil
    import tempfile
    base = tempfile.mkdtemp(dir="/tmp")
    try:
        os.chmod(base, 0o711)
        state = os.path.join(base, "state")
        d = make_daemon(extra={"daemon": {"state_dir": state}})
        d.store = os.path.join(state, "store")
        d.start()
        d.maildir().deliver(message(1))
        d.wait_records(1)
        modes = {f: oct(os.stat(os.path.join(d.store, f)).st_mode & 0o777)
                 for f in (".", "data.mdb", "lock.mdb")}
        assert modes == {".": "0o750", "data.mdb": "0o640", "lock.mdb": "0o660"}, modes
        cli = os.path.join(base, "vmingest")          # where uid 4242 may run it
        shutil.copy(VMINGEST, cli)
        os.chmod(state, 0o750)
        gid = os.stat(d.store).st_gid

        def list_as(uid, g):
            def drop():
                os.setgroups([])
                os.setgid(g)
                os.setuid(uid)
            return subprocess.run([cli, "list", "--store", d.store, "--json"],
                                  preexec_fn=drop, capture_output=True, timeout=30)
        r = list_as(4242, gid)
        assert r.returncode == 0, r.stderr
        assert len(r.stdout.splitlines()) == 1
        r = list_as(4242, 4242)
        assert r.returncode == 2 and b"permission denied" in r.stderr, r.stderr
        d.stop()
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_show_does_not_send_message_control_bytes_to_the_terminal(daemon):
    # ESC [ 2 J clears an operator's screen; OSC sequences can do worse
    subj = "=?utf-8?q?a=1B]0;owned=07b=1B[2Jc=C2=9Bd?="
    daemon.maildir().deliver(message(1, subject=subj))
    daemon.wait_records(1)
    assert "\x1b" in daemon.records()[0]["subject"]     # stored as sent
    out = daemon.cli("show", "1", "--store", daemon.store, binary=True).stdout
    assert b"subject:" in out
    for bad in (b"\x1b", b"\x07", b"\xc2\x9b"):
        assert bad not in out, out
    daemon.stop()
