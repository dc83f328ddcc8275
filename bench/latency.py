#!/usr/bin/python3
"""latency.py - drive a real vmingestd for bench/ingest.sh.

Two modes, each starts build/vmingestd on a fresh temporary directory
(Maildir + state, free loopback ports, allow_root = yes), prints one JSON
object on stdout and stops the daemon with SIGTERM:

  latency.py drain BUILD SRC_DIR WORK_DIR [--workers N] [--perf FILE]
      Hard-link every file of SRC_DIR into the Maildir's new/ (a
      prefilled backlog), start the daemon, and time from the start until
      new/ is empty (a file leaves new/ only after its record is durably
      committed).  Reports seconds, messages/s, MiB/s, the daemon's peak
      RSS (VmHWM of /proc/PID/status just before the stop) and, after the
      stop, the store's last_seq and records (`vmingest stats --json`),
      which must both equal the number of files.  With --perf the daemon
      runs under `perf record --call-graph dwarf` into FILE.

  latency.py rate BUILD SRC_DIR WORK_DIR [--rate R] [--count N] [--nice K]
      Start the daemon on an empty Maildir, wait for its "ready" log line,
      then write N messages of SRC_DIR into tmp/ (write, fsync, as an MTA
      does) and rename them into new/ at R messages/s, noting the time
      right after each rename.  The daemon logs one line per message
      decision after the commit (daemon/ingest.c finish_jobs: commit ->
      unlink -> log); the time that line is read from the daemon's stderr
      pipe, minus the rename time, is the latency.  It is an upper bound of
      rename -> durable commit (it adds the unlink, the log write and this
      script's reading).  If the daemon serves /metrics with an ingest
      latency histogram, its p99 bucket bound is reported too.

  latency.py fsync BUILD SRC_DIR WORK_DIR [--count N]
      The disk's own latency, as a baseline measured in the same run: N
      (500) appends of 4 KiB to a file in WORK_DIR, each followed by
      fdatasync; p50/p99/max.  A durable commit needs at least two such
      flushes (LMDB data + meta) before the file can leave new/.

Timing uses CLOCK_MONOTONIC.  Polling (every 10 ms) checks conditions with
a deadline; nothing sleeps in place of a readiness check.  Exit status 0
when the run completed and the counts check out, 1 otherwise, 2 usage.
"""

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request

POLL_S = 0.010


def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def make_env(work, workers):
    if os.path.exists(work):
        shutil.rmtree(work)
    md = os.path.join(work, "maildir")
    for sub in ("tmp", "new", "cur"):
        os.makedirs(os.path.join(md, sub))
    state = os.path.join(work, "state")
    os.makedirs(state)
    http = free_port()
    conf = os.path.join(work, "vmingestd.conf")
    with open(conf, "w") as f:
        f.write("[daemon]\nstate_dir = %s\nallow_root = yes\nworkers = %d\n\n"
                "[http]\nlisten = 127.0.0.1:%d\n\n"
                "[publish]\nendpoint = tcp://127.0.0.1:%d\n"
                "replay_endpoint = tcp://127.0.0.1:%d\n\n"
                "[queue bench]\nmaildir = %s\ntopic = auto\n"
                % (state, workers, http, free_port(), free_port(), md))
    return conf, md, state, http


def vmhwm_kb(pid):
    return proc_status(pid).get("VmHWM", -1)


def proc_status(pid):
    """VmHWM, VmRSS, RssAnon, RssFile in KiB from /proc/PID/status."""
    out = {}
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                k = line.split(":")[0]
                if k in ("VmHWM", "VmRSS", "RssAnon", "RssFile", "RssShmem"):
                    out[k] = int(line.split()[1])
    except OSError:
        pass
    return out


def sched(pid):
    """Sum over the daemon's threads of /proc/PID/task/*/schedstat:
    (seconds on a CPU, seconds runnable but waiting for a CPU).  The wait
    shows how much a loaded machine, not the daemon, adds to a latency."""
    run = wait = 0
    try:
        for t in os.listdir("/proc/%d/task" % pid):
            try:
                with open("/proc/%d/task/%s/schedstat" % (pid, t)) as f:
                    v = f.read().split()
                run += int(v[0])
                wait += int(v[1])
            except OSError:
                pass
    except OSError:
        return None, None
    return run / 1e9, wait / 1e9


class PeakRss:
    """Peak RssAnon / RssFile over samples (VmHWM has no such split)."""
    def __init__(self):
        self.anon = self.file = 0

    def sample(self, pid):
        s = proc_status(pid)
        self.anon = max(self.anon, s.get("RssAnon", 0))
        self.file = max(self.file, s.get("RssFile", 0))


def store_stats(build, state):
    out = subprocess.run([os.path.join(build, "vmingest"), "stats", "--json",
                          "--store", os.path.join(state, "store")],
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out)


def stop(proc, timeout=60, sig=signal.SIGTERM):
    proc.send_signal(sig)
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return -9


def new_empty(newdir):
    with os.scandir(newdir) as it:
        for e in it:
            if not e.name.startswith("."):
                return False
    return True


def do_drain(a):
    conf, md, state, http = make_env(a.work, a.workers)
    names = sorted(n for n in os.listdir(a.src) if not n.startswith("."))
    total = 0
    for n in names:
        src = os.path.join(a.src, n)
        os.link(src, os.path.join(md, "new", n))
        total += os.stat(src).st_size
    log = open(os.path.join(a.work, "daemon.log"), "wb")
    t0 = time.monotonic()
    cmd = [os.path.join(a.build, "vmingestd"), "-c", conf]
    if a.perf:
        # profile run: RSS and timing below are perf's and the daemon's
        cmd = ["perf", "record", "-q", "-F", "499", "--call-graph",
               "dwarf,16384", "-o", a.perf, "--"] + cmd
    proc = subprocess.Popen(cmd, stdout=log, stderr=log)
    deadline = t0 + a.timeout
    newdir = os.path.join(md, "new")
    ok = True
    peak = PeakRss()
    polls = 0
    while not new_empty(newdir):
        polls += 1
        if polls % 5 == 0:
            peak.sample(proc.pid)
        if proc.poll() is not None:
            ok = False
            break
        if time.monotonic() > deadline:
            ok = False
            break
        time.sleep(POLL_S)
    t1 = time.monotonic()
    hwm = vmhwm_kb(proc.pid) if proc.poll() is None else -1
    cpu_s, wait_s = sched(proc.pid) if proc.poll() is None else (None, None)
    ms = metrics_summary(http) if proc.poll() is None else None
    # perf record passes SIGINT on to the daemon as SIGTERM
    rc = stop(proc, sig=signal.SIGINT if a.perf else signal.SIGTERM)
    log.close()
    st = store_stats(a.build, state) if ok else {}
    secs = t1 - t0
    res = {"mode": "drain", "files": len(names), "bytes": total,
           "seconds": round(secs, 3),
           "msgs_per_s": round(len(names) / secs, 1),
           "mib_per_s": round(total / secs / 1048576.0, 2),
           "vmhwm_kib": hwm, "peak_rss_anon_kib": peak.anon,
           "peak_rss_file_kib": peak.file, "exit": rc, "metrics": ms,
           "cpu_s": cpu_s, "runq_wait_s": wait_s,
           "cpu_ms_per_msg": round(cpu_s * 1e3 / len(names), 4) if cpu_s else None,
           "last_seq": st.get("last_seq"), "records": st.get("records"),
           "dispositions": st.get("dispositions")}
    res["ok"] = bool(ok and rc == 0 and st.get("last_seq") == len(names)
                     and st.get("records") == len(names))
    if not res["ok"]:
        res["log_tail"] = open(os.path.join(a.work, "daemon.log"),
                               errors="replace").read()[-2000:]
    print(json.dumps(res))
    return 0 if res["ok"] else 1


NAME_RE = re.compile(rb" name=(\S+)")


def reader(pipe, arrivals, ready, logf):
    for line in iter(pipe.readline, b""):
        t = time.monotonic()
        logf.write(line)
        if b"ready:" in line:
            ready.set()
        m = NAME_RE.search(line)
        if m and b"seq=" in line:
            arrivals.setdefault(m.group(1).decode("ascii", "replace"), t)


def metrics_fetch(port):
    """The daemon's /metrics text, or None (no HTTP endpoint yet)."""
    try:
        return urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port,
                                      timeout=2).read().decode()
    except Exception:
        return None


def metrics_hist(body, name):
    """(sorted [(le, cumulative count)], count, sum) of histogram NAME."""
    buckets, count, total = [], None, None
    for line in (body or "").splitlines():
        m = re.match(r'^%s_bucket\{.*le="([^"]+)"\}\s+(\S+)' % name, line)
        if m:
            le = float("inf") if m.group(1) == "+Inf" else float(m.group(1))
            buckets.append((le, float(m.group(2))))
        elif line.startswith(name + "_count "):
            count = float(line.split()[1])
        elif line.startswith(name + "_sum "):
            total = float(line.split()[1])
    buckets.sort()
    return buckets, count, total


def hist_quantile_le(buckets, q):
    """Upper bound of the bucket holding quantile q (None if empty)."""
    if not buckets or buckets[-1][1] <= 0:
        return None
    for le, c in buckets:
        if c >= q * buckets[-1][1]:
            return le
    return None


def metrics_summary(port):
    body = metrics_fetch(port)
    if body is None:
        return None
    lat, lat_n, _ = metrics_hist(body, "vmingest_ingest_latency_seconds")
    _, com_n, com_s = metrics_hist(body, "vmingest_commit_seconds")
    return {"latency_p50_le_s": hist_quantile_le(lat, 0.50),
            "latency_p99_le_s": hist_quantile_le(lat, 0.99),
            "latency_count": lat_n, "commits": com_n,
            "commit_seconds_sum": com_s}


def pct(v, q):
    v = sorted(v)
    if not v:
        return None
    i = min(len(v) - 1, max(0, int(round(q * (len(v) - 1)))))
    return v[i]


def do_rate(a):
    conf, md, state, http = make_env(a.work, a.workers)
    names = sorted(n for n in os.listdir(a.src) if not n.startswith("."))
    names = names[:a.count] if a.count else names
    data = []
    for n in names:
        with open(os.path.join(a.src, n), "rb") as f:
            data.append(f.read())
    arrivals, ready = {}, threading.Event()
    logf = open(os.path.join(a.work, "daemon.log"), "wb")
    prio = (lambda: os.nice(a.nice)) if a.nice else None
    proc = subprocess.Popen([os.path.join(a.build, "vmingestd"), "-c", conf],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            preexec_fn=prio)
    th = threading.Thread(target=reader, args=(proc.stderr, arrivals, ready, logf),
                          daemon=True)
    th.start()
    if not ready.wait(timeout=30):
        stop(proc)
        print(json.dumps({"mode": "rate", "ok": False, "error": "not ready"}))
        return 1
    tmpd, newd = os.path.join(md, "tmp"), os.path.join(md, "new")
    # The MTA's write + fsync happens in tmp/ before the clock starts: the
    # latency is from the rename into new/, and a single-threaded sender
    # could not hold the rate with an fsync per file on a loaded machine.
    for n, b in zip(names, data):
        fd = os.open(os.path.join(tmpd, n), os.O_WRONLY | os.O_CREAT | os.O_EXCL,
                     0o600)
        os.write(fd, b)
        os.fsync(fd)
        os.close(fd)
    renamed = {}
    period = 1.0 / a.rate
    start = time.monotonic() + 0.1
    late = 0
    for i, n in enumerate(names):
        due = start + i * period
        now = time.monotonic()
        if due > now:
            time.sleep(due - now)   # pacing the sender, not a readiness wait
        elif now - due > period:
            late += 1
        os.rename(os.path.join(tmpd, n), os.path.join(newd, n))
        renamed[n] = time.monotonic()
    sent_s = time.monotonic() - start
    deadline = time.monotonic() + a.timeout
    while len(arrivals) < len(names) and time.monotonic() < deadline \
            and proc.poll() is None:
        time.sleep(POLL_S)
    mp99 = metrics_summary(http)
    hwm = vmhwm_kb(proc.pid) if proc.poll() is None else -1
    cpu_s, wait_s = sched(proc.pid) if proc.poll() is None else (None, None)
    rc = stop(proc)
    th.join(timeout=10)
    logf.close()
    lat = [arrivals[n] - renamed[n] for n in names if n in arrivals]
    st = store_stats(a.build, state)
    res = {"mode": "rate", "rate": a.rate, "files": len(names), "nice": a.nice,
           "achieved_rate": round(len(names) / sent_s, 1), "late_sends": late,
           "seen": len(lat),
           "p50_ms": round(pct(lat, 0.50) * 1e3, 3) if lat else None,
           "p90_ms": round(pct(lat, 0.90) * 1e3, 3) if lat else None,
           "p99_ms": round(pct(lat, 0.99) * 1e3, 3) if lat else None,
           "max_ms": round(max(lat) * 1e3, 3) if lat else None,
           "metrics": mp99, "vmhwm_kib": hwm, "exit": rc,
           "cpu_s": cpu_s, "runq_wait_s": wait_s,
           "loadavg": open("/proc/loadavg").read().split()[:3],
           "last_seq": st.get("last_seq"), "records": st.get("records")}
    res["ok"] = bool(len(lat) == len(names) and rc == 0
                     and st.get("records") == len(names))
    print(json.dumps(res))
    return 0 if res["ok"] else 1


def do_fsync(a):
    """Baseline for the latency target: 4 KiB append + fdatasync, COUNT
    times, in WORK_DIR (the file system the daemon's store uses)."""
    os.makedirs(a.work, exist_ok=True)
    path = os.path.join(a.work, "fsync.probe")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    blk = b"x" * 4096
    lat = []
    for _ in range(a.count or 500):
        t = time.monotonic()
        os.write(fd, blk)
        os.fdatasync(fd)
        lat.append(time.monotonic() - t)
    os.close(fd)
    os.unlink(path)
    print(json.dumps({"mode": "fsync", "count": len(lat),
                      "p50_ms": round(pct(lat, 0.50) * 1e3, 3),
                      "p99_ms": round(pct(lat, 0.99) * 1e3, 3),
                      "max_ms": round(max(lat) * 1e3, 3), "ok": True}))
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("mode", choices=["drain", "rate", "fsync"])
    ap.add_argument("build")
    ap.add_argument("src")
    ap.add_argument("work")
    ap.add_argument("--workers", type=int, default=0)
    ap.add_argument("--rate", type=float, default=500.0)
    ap.add_argument("--count", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=1800.0)
    ap.add_argument("--nice", type=int, default=0,
                    help="rate: run the daemon at this nice value (root may "
                    "go negative: approximates a machine without other load)")
    ap.add_argument("--perf", help="drain: run the daemon under perf record "
                    "into this file")
    a = ap.parse_args()
    a.build = os.path.abspath(a.build)
    if a.rate <= 0 or a.rate > 100000:
        ap.error("--rate must be in (0, 100000]")
    if a.mode == "fsync":
        return do_fsync(a)
    return do_drain(a) if a.mode == "drain" else do_rate(a)


if __name__ == "__main__":
    sys.exit(main())
