"""vmingest backup: a hot copy taken while mail is ingested opens and lists
correctly (a consistent snapshot: seqs 1..N without a hole, bytes intact)."""
import json
import os
import shutil
import subprocess
import threading
import time

from conftest import VMINGEST, message, wait_for


def jl(text):
    return [json.loads(l) for l in text.split("\n") if l.strip()]


def test_backup_during_ingest(make_daemon):
    d = make_daemon()
    d.start()
    msgs = {}

    def feed():
        # paced (~400/s), so that the copies are taken while mail arrives
        # however fast the daemon drains
        for i in range(400):
            m = message(i, body="body %d\n" % i + "x" * (i * 37 % 4000) + "\n")
            msgs[d.maildir().deliver(m)] = m.encode()
            if i % 4 == 3:
                time.sleep(0.01)
    t = threading.Thread(target=feed)
    t.start()
    wait_for(lambda: d.stats()["last_seq"] >= 20, what="ingest under way")
    copies = []
    while t.is_alive() or not copies:
        out = os.path.join(d.root, "backup%d" % len(copies))
        r = d.cli("backup", "-c", d.config, "--out", out, "--json")
        copies.append((out, json.loads(r.stdout)))
        if len(copies) >= 5:
            break
    t.join()
    d.wait_records(400)
    final = {r["seq"]: r for r in jl(d.cli("list", "--store", d.store, "--json").stdout)}
    assert len(final) == 400
    for out, info in copies:
        assert oct(os.stat(os.path.join(out, "data.mdb")).st_mode & 0o777) == "0o600"
        recs = jl(d.cli("list", "--store", out, "--json").stdout)
        seqs = [r["seq"] for r in recs]
        assert seqs == list(range(1, info["head_seq"] + 1))
        assert 20 <= info["head_seq"] <= 400
        for r in recs:
            assert r["sha256"] == final[r["seq"]]["sha256"]
        # raw bytes straight from the copy
        raw = d.cli("replay", "--store", out, "--format", "raw", binary=True).stdout
        assert raw == b"".join(msgs[r["maildir_name"]] for r in recs)
    # at least one copy was taken while mail was still coming in
    assert min(info["head_seq"] for _, info in copies) < 400
    # the copy is a store the daemon's tools accept like the original
    st = json.loads(d.cli("stats", "--store", copies[0][0], "--json").stdout)
    assert st["epoch"] == json.loads(d.cli("stats", "--store", d.store, "--json").stdout)["epoch"]
    # refuses to overwrite
    r = d.cli("backup", "-c", d.config, "--out", copies[0][0], check=False)
    assert r.returncode == 2 and "not empty" in r.stderr


def test_restored_backup_is_a_new_stream(make_daemon, tmp_path):
    # a backup put back rewinds the log: seqs after its head go to other
    # mail.  A subscriber past that head must be told (new epoch), not
    # take the new mail for records it has (it used to skip it silently).
    d = make_daemon().start()
    for i in range(3):
        d.maildir().deliver(message(i))
    d.wait_records(3)
    out = str(tmp_path / "backup")
    d.cli("backup", "-c", d.config, "--out", out)
    for i in range(3, 6):
        d.maildir().deliver(message(i))
    d.wait_records(6)
    ck = str(tmp_path / "ck")
    sub = [VMINGEST, "sub", "--endpoint", d.pub_endpoint, "--replay-endpoint",
           d.replay_endpoint, "--checkpoint", ck]
    r = subprocess.run(sub + ["--from-start", "--count", "6", "--summary"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and json.loads(r.stdout)["last_seq"] == 6
    old_epoch = d.stats()["epoch"]
    d.stop()
    shutil.rmtree(d.store)
    shutil.copytree(out, d.store)
    d.start()
    assert "is a backup put in place: new epoch" in d.log_since_start()
    assert d.stats()["epoch"] != old_epoch
    for i in range(6, 8):
        d.maildir().deliver(message(i))
    d.wait_records(5)
    r = subprocess.run(sub + ["--timeout", "10"], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 1 and "epoch" in r.stderr, r.stderr
    # started again in the new stream, it gets the new mail
    os.unlink(ck)
    r = subprocess.run(sub + ["--from", "4", "--count", "2", "--json"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0
    assert [json.loads(l)["seq"] for l in r.stdout.splitlines()] == [4, 5]
    # only once: a restart keeps the new epoch
    epoch = d.stats()["epoch"]
    d.stop()
    d.start()
    assert d.stats()["epoch"] == epoch
    d.stop()
