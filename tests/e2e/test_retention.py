"""Retention: old records go, oldest first, during live ingest; nothing else.

The old records are written before the daemon starts by bench/mkstore
(through lib/store.h, with received_at_us in the past) - the daemon's own
clock is never faked.  Then the daemon runs with retain_days = 1 while
mail is delivered.
"""
import json
import os
import subprocess
import threading
import time
import urllib.request

import pytest

from conftest import BUILD, REPO, message, wait_for

DAY_US = 86400 * 1000000


def jl(text):
    return [json.loads(l) for l in text.split("\n") if l.strip()]


def records(d, store=None):
    return jl(d.cli("list", "--store", store or d.store, "--json").stdout)


def mkstore(store, n, start_us, step_us, size=500):
    subprocess.run([os.path.join(REPO, "bench", "build-tools.sh"), BUILD], check=True)
    os.makedirs(os.path.dirname(store), exist_ok=True)
    r = subprocess.run([os.path.join(BUILD, "bench", "mkstore"), store, str(n),
                        "--start-us", str(start_us), "--step-us", str(step_us),
                        "--size", str(size)], check=True, capture_output=True, text=True)
    return [int(x) for x in r.stdout.split()]


def status(d):
    with urllib.request.urlopen(d.url("/status"), timeout=10) as r:
        return json.loads(r.read())


def deliver_while(d, msgs):
    names = {}

    def run():
        for i, m in enumerate(msgs):
            names[d.maildir().deliver(m)] = m
    t = threading.Thread(target=run)
    t.start()
    return t, names


def test_retain_days_prunes_only_old_during_ingest(make_daemon):
    d = make_daemon(extra={"store": {"retain_days": "1"}})
    now = int(time.time() * 1e6)
    assert mkstore(d.store, 200, now - 3 * DAY_US, 1000000) == [1, 200]
    # just inside the limit: 23 h old, must stay
    assert mkstore(d.store, 50, now - DAY_US + 3600 * 1000000, 1000000) == [201, 250]
    early = [message(i) for i in range(50)]
    for m in early:                       # waiting in new/ when the daemon starts
        d.maildir().deliver(m)
    d.start()
    t, names = deliver_while(d, [message(100 + i) for i in range(100)])
    t.join()
    wait_for(lambda: d.stats()["last_seq"] >= 400 and d.stats().get("first_seq") == 201,
             timeout=60, what="200 old records pruned and 150 new ones stored")
    recs = records(d)
    assert [r["seq"] for r in recs] == list(range(201, 401))
    assert all(r["received_at_us"] >= now - DAY_US for r in recs)
    # the new mail is all there, bytes intact
    by_name = {r["maildir_name"]: r["seq"] for r in recs}
    for name, data in names.items():
        assert d.raw(by_name[name]) == data.encode()
    st = status(d)
    assert st["pruned_records"] == 200
    with urllib.request.urlopen(d.url("/metrics"), timeout=10) as r:
        metrics = r.read().decode()
    assert "vmingest_pruned_records_total 200" in metrics
    assert "vmingest_pruned_bytes_total %d" % (200 * 500) in metrics
    assert "retention: pruned" in d.log_since_start()
    assert d.stop() == 0

    # compacting the pruned store gives the disk back and keeps every record
    out = os.path.join(d.root, "compacted")
    r = d.cli("compact", "--store", d.store, "--out", out, "--json")
    info = json.loads(r.stdout)
    assert info["first_seq"] == 201 and info["head_seq"] == 400
    assert os.path.getsize(os.path.join(out, "data.mdb")) < \
        os.path.getsize(os.path.join(d.store, "data.mdb"))
    assert [x["sha256"] for x in records(d, out)] == [x["sha256"] for x in recs]


def test_retain_raw_days_keeps_records(make_daemon):
    d = make_daemon(extra={"store": {"retain_raw_days": "2"}})
    now = int(time.time() * 1e6)
    mkstore(d.store, 30, now - 5 * DAY_US, 1000000)
    mkstore(d.store, 10, now - DAY_US, 1000000)
    d.start()
    d.maildir().deliver(message(1))
    d.wait_records(41)

    def raw_gone():
        r = d.cli("show", "30", "--store", d.store, "--raw", check=False, binary=True)
        return r.returncode != 0
    wait_for(raw_gone, timeout=30, what="raw of seq 30 pruned")
    recs = records(d)
    assert [r["seq"] for r in recs] == list(range(1, 42))    # every record stays
    r = d.cli("show", "31", "--store", d.store, "--raw", binary=True)
    assert len(r.stdout) == 500
    r = d.cli("replay", "--store", d.store, "--format", "raw", "--to", "31",
              check=False, binary=True)
    assert r.returncode == 1
    assert r.stderr.decode().count("pruned by retention") == 30
    assert len(r.stdout) == 500                                # seq 31 only
    # the same through the replay service: no empty message, exit 1
    r = d.cli("replay", "--endpoint", d.replay_endpoint, "--format", "raw",
              "--to", "31", check=False, binary=True)
    assert r.returncode == 1, r.stderr
    assert r.stderr.decode().count("pruned by retention") == 30
    assert r.stdout == d.raw(31)
    assert status(d)["pruned_records"] == 0


def test_sub_raw_dir_reports_raw_removed_by_retention(make_daemon, tmp_path):
    # the records stay, their raw bytes went: `sub --raw-dir` says so per
    # record and goes on, rather than writing empty files or stopping
    d = make_daemon(extra={"store": {"retain_raw_days": "2"}})
    now = int(time.time() * 1e6)
    mkstore(d.store, 30, now - 5 * DAY_US, 1000000)
    mkstore(d.store, 10, now - DAY_US, 1000000)
    d.start()
    wait_for(lambda: d.cli("show", "30", "--store", d.store, "--raw",
                           check=False, binary=True).returncode != 0,
             timeout=30, what="raw of seq 30 pruned")
    out = tmp_path / "raw"
    out.mkdir()
    r = subprocess.run([os.path.join(BUILD, "vmingest"), "sub", "--endpoint",
                        d.pub_endpoint, "--replay-endpoint", d.replay_endpoint,
                        "--from-start", "--count", "40", "--summary",
                        "--raw-dir", str(out)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stderr.count("no longer in the log") == 30, r.stderr
    summary = json.loads(r.stdout)
    assert summary["records"] == 40 and summary["raw_missing"] == 30, summary
    assert sorted(os.listdir(out)) == sorted("%d.eml" % s for s in range(31, 41))
    assert (out / "31.eml").read_bytes() == d.raw(31)
    d.stop()


def test_retain_bytes_drops_oldest_first(make_daemon):
    d = make_daemon(extra={"store": {"retain_bytes": "1M"}})
    now = int(time.time() * 1e6)
    mkstore(d.store, 400, now - 3600 * 1000000, 1000000, size=8000)
    d.start()
    d.maildir().deliver(message(1))
    d.wait_records(401)
    # 8000-byte messages take two 4 KiB pages each: 1 MiB holds at most 128;
    # each step deletes 64, so 64..128 stay
    n = wait_for(lambda: (lambda k: k if k <= 128 else None)(len(records(d))),
                 timeout=30, what="size limit reached")
    assert "limit=retain_bytes" in d.log_since_start()
    seqs = [r["seq"] for r in records(d)]
    # a suffix of the log: the newest stay, the delivered message too
    assert seqs == list(range(402 - len(seqs), 402))
    assert 64 <= len(seqs) <= 128
    assert status(d)["pruned_records"] == 401 - len(seqs)


@pytest.mark.parametrize("reader", [["list", "--json"], ["replay", "--format", "raw"]])
def test_cli_reader_stalled_on_a_pipe_does_not_fill_the_map(make_daemon, reader):
    # an LMDB reader pins the pages freed after its snapshot: a CLI left
    # blocked on a full pipe (a pager nobody reads) must not hold one, or
    # retention frees nothing the daemon can reuse and the map fills
    d = make_daemon(extra={"store": {"map_size": "16M", "retain_bytes": "2M"}}).start()
    md = d.maildir()
    for i in range(200):
        md.deliver(message(i, body="x" * 2000 + "\n"))
    d.wait_records(200)
    cli = subprocess.Popen([os.path.join(BUILD, "vmingest")] + reader +
                           ["--store", d.store], stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL)
    try:
        # 24 MiB through a 16 MiB map while the reader is stuck, paced so
        # that retention (2 MiB) keeps up: only pinned pages can fill it
        body = ("%05d " % 0) * 10000 + "\n"          # ~60 KB
        for k in range(8):
            for i in range(50):
                md.deliver(message(1000 + 50 * k + i, body=body))
            d.wait_records(250 + 50 * k, timeout=30)
            wait_for(lambda: d.stats()["records"] <= 40, timeout=30,
                     what="retention caught up")
        assert md.new_files() == []
        assert cli.poll() is None, "the reader was not blocked after all"
        assert "ingestion paused" not in d.log()
    finally:
        cli.kill()
        cli.wait()
    d.stop()
