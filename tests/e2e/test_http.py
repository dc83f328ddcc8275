"""End-to-end tests of the HTTP status endpoint (daemon/http.c, metrics.c)
and `vmingest status`, against the real vmingestd on loopback.

  * every endpoint: status code, content type, body (with curl)
  * /metrics passes `promtool check metrics`; counters move as mail arrives
  * readiness tells the truth: a Maildir that cannot be opened, a store map
    filling up: /readyz 503 naming the check, /healthz still 200, back to
    200 when fixed; `vmingest status` exits 0 / 1 / 2 accordingly
  * abuse: 500 connections, half requests, a 1 MB header, garbage bytes:
    ingestion goes on, memory stays bounded, the endpoint answers after
  * listen = off, an IPv6 listen address

Runs as root (the harness does): a Maildir is made unreadable by putting a
plain file where new/ was (root ignores permissions).
"""
import json
import os
import re
import shutil
import socket
import subprocess
import time

import pytest

from conftest import VMINGEST, message, wait_for

CURL = shutil.which("curl")
PROMTOOL = shutil.which("promtool")

pytestmark = pytest.mark.skipif(CURL is None, reason="curl not installed")


def curl(url, *args):
    """(status code, content type, body bytes) of one request."""
    r = subprocess.run([CURL, "-s", "-g", "-o", "-", "-w",
                        "\n%{http_code} %{content_type}", "--max-time", "10"]
                       + list(args) + [url], capture_output=True, timeout=20)
    out = r.stdout
    cut = out.rfind(b"\n")
    code, _, ctype = out[cut + 1:].decode().partition(" ")
    return int(code), ctype, out[:cut]


def get_json(d, path):
    code, ctype, body = curl(d.url(path))
    assert ctype == "application/json"
    return code, json.loads(body)


def metrics(d):
    code, ctype, body = curl(d.url("/metrics"))
    assert code == 200
    out = {}
    for line in body.decode().splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


def status_cli(d, *args):
    return subprocess.run([VMINGEST, "status"] + list(args), capture_output=True,
                          timeout=30, text=True)


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


# ---------------------------------------------------------------- endpoints

def test_endpoints(daemon):
    d = daemon
    code, ctype, body = curl(d.url("/healthz"))
    assert (code, ctype, body) == (200, "text/plain; charset=utf-8", b"ok\n")

    wait_for(lambda: curl(d.url("/readyz"))[0] == 200, 10, what="/readyz 200")
    code, j = get_json(d, "/readyz")
    assert code == 200 and j["ready"] is True and j["failing"] == []

    code, ctype, body = curl(d.url("/metrics"))
    assert code == 200
    assert ctype == "text/plain; version=0.0.4; charset=utf-8"
    text = body.decode()
    for fam in ("vmingest_messages_total", "vmingest_bytes_total",
                "vmingest_published_total", "vmingest_replay_requests_total",
                "vmingest_replayed_records_total", "vmingest_backlog_files",
                "vmingest_backlog_oldest_seconds", "vmingest_store_map_bytes",
                "vmingest_store_used_bytes", "vmingest_last_seq",
                "vmingest_subscribers", "vmingest_auth_failures_total",
                "vmingest_build_info", "vmingest_start_time_seconds",
                "vmingest_pruned_records_total", "vmingest_pruned_bytes_total"):
        assert re.search(r"^# TYPE %s (counter|gauge)$" % fam, text, re.M), fam
    for fam in ("vmingest_ingest_latency_seconds", "vmingest_commit_seconds"):
        assert "# TYPE %s histogram" % fam in text
        assert '%s_bucket{le="+Inf"}' % fam in text
    assert 'vmingest_backlog_files{queue="default"} 0' in text
    m = re.search(r'^vmingest_build_info\{version="([^"]+)"\} 1$', text, re.M)
    assert m
    start = metrics(d)["vmingest_start_time_seconds"]
    assert abs(start - time.time()) < 3600

    code, j = get_json(d, "/status")
    assert code == 200
    assert j["version"] == m.group(1)
    assert j["store_path"] == d.store
    assert j["config_file"] == d.config
    assert re.fullmatch(r"[0-9a-f]{16}", j["epoch"])
    assert j["last_seq"] == 0 and j["quarantined"] == 0
    assert j["uptime_s"] >= 0 and j["ready"] is True
    assert [q["name"] for q in j["queues"]] == ["default"]
    assert j["queues"][0]["maildir"] == d.maildir().path
    assert j["queues"][0]["backlog_files"] == 0
    assert "rate_1m" in j["queues"][0] and "subscribers" in j

    code, ctype, body = curl(d.url("/nope"))
    assert code == 404 and ctype.startswith("text/plain")
    code, _, body = curl(d.url("/metrics/"))
    assert code == 404
    for method in ("POST", "PUT", "DELETE", "OPTIONS"):
        code, _, _ = curl(d.url("/metrics"), "-X", method)
        assert code == 405, method
    r = subprocess.run([CURL, "-s", "-i", "-X", "POST", d.url("/healthz")],
                       capture_output=True, timeout=20)
    assert re.search(rb"^Allow: GET, HEAD\r$", r.stdout, re.M)
    # HEAD: the headers of GET, no body
    r = subprocess.run([CURL, "-s", "-I", d.url("/metrics")], capture_output=True,
                       timeout=20)
    assert r.stdout.startswith(b"HTTP/1.1 200")
    assert b"Content-Type: text/plain; version=0.0.4" in r.stdout
    assert r.stdout.endswith(b"\r\n\r\n")
    # a GET with a body is refused, not read
    code, _, _ = curl(d.url("/healthz"), "--data-binary", "x" * 100, "-X", "GET")
    assert code == 413


@pytest.mark.skipif(PROMTOOL is None, reason="promtool (Debian prometheus) not installed")
def test_metrics_promtool(daemon):
    d = daemon
    d.maildir().deliver(message(1))
    d.wait_records(1)
    _, _, body = curl(d.url("/metrics"))
    r = subprocess.run([PROMTOOL, "check", "metrics"], input=body,
                       capture_output=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.strip() == b"" and r.stderr.strip() == b"", r.stdout + r.stderr


def test_counters_move(make_daemon):
    d = make_daemon(queues={"default": {"topic": "rn.test"}}).start()
    before = metrics(d)
    n = 5
    sizes = 0
    for i in range(n):
        data = message(i).encode()
        sizes += len(data)
        d.maildir().deliver(data)
    key = 'vmingest_messages_total{queue="default",disposition="published"}'
    wait_for(lambda: metrics(d).get(key, 0) == before.get(key, 0) + n, 30,
             what="%d published in /metrics" % n)
    m = metrics(d)
    assert m['vmingest_bytes_total{queue="default"}'] == sizes
    assert m["vmingest_ingest_latency_seconds_count"] == n
    assert m['vmingest_ingest_latency_seconds_bucket{le="+Inf"}'] == n
    assert m["vmingest_commit_seconds_count"] >= 1
    wait_for(lambda: metrics(d)["vmingest_last_seq"] == n, 10, what="last_seq")
    wait_for(lambda: metrics(d).get('vmingest_published_total{topic="rn.test"}') == n,
             10, what="published_total by topic")
    code, j = get_json(d, "/status")
    assert j["last_seq"] == n
    t = [t for t in j["topics"] if t["topic"] == "rn.test"]
    assert t and t[0]["head_topic_seq"] == n and t[0]["published"] == n
    # the rate is recomputed once a second by the main loop
    wait_for(lambda: get_json(d, "/status")[1]["queues"][0]["rate_1m"] > 0, 10,
             what="rate_1m > 0")

    # the person's table says the same
    r = status_cli(d, "-c", d.config)
    assert r.returncode == 0, r.stderr
    assert "READY" in r.stdout and "last seq %d" % n in r.stdout
    assert re.search(r"^rn\.test\s+%d\s+%d$" % (n, n), r.stdout, re.M), r.stdout
    r = status_cli(d, "--http", d.url("/"), "--json")
    assert r.returncode == 0
    assert json.loads(r.stdout)["last_seq"] == n


# ---------------------------------------------------------------- readiness

def failing(d):
    code, j = get_json(d, "/readyz")
    assert (code == 200) == j["ready"]
    return {(f["check"], f.get("queue")) for f in j["failing"]}, j


def exchange(a, b):
    """Swap two paths atomically (Linux renameat2 RENAME_EXCHANGE)."""
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    AT_FDCWD, RENAME_EXCHANGE = -100, 2
    if libc.renameat2(AT_FDCWD, a.encode(), AT_FDCWD, b.encode(),
                      RENAME_EXCHANGE) != 0:
        raise OSError(ctypes.get_errno(), "renameat2 %s %s" % (a, b))


def test_readiness_maildir(make_daemon):
    # a short rescan so the queue is reopened quickly once fixed
    d = make_daemon(queues={"default": {}, "other": {}},
                    extra={"store": {"rescan_s": "1"}}).start()
    wait_for(lambda: curl(d.url("/readyz"))[0] == 200, 10, what="ready")
    md = d.maildir("default").path
    # swap new/ and a plain file in one step (renameat2 RENAME_EXCHANGE):
    # renaming new/ away first would let the daemon recreate it between
    # the two renames
    blocker = os.path.join(md, "new.file")
    with open(blocker, "w") as f:
        f.write("not a directory\n")
    exchange(blocker, os.path.join(md, "new"))
    seen = []

    def named():
        f = failing(d)
        seen.append(f[1])
        return f[0] == {("maildir_readable", "default")} and f
    try:
        got = wait_for(named, 15, what="/readyz naming the default queue")
    except AssertionError:
        raise AssertionError("last /readyz: %r" % seen[-1:])
    assert "Not a directory" in got[1]["failing"][0]["why"]
    assert curl(d.url("/healthz"))[0] == 200
    assert metrics(d)['vmingest_maildir_readable{queue="default"}'] == 0
    assert metrics(d)['vmingest_maildir_readable{queue="other"}'] == 1
    assert metrics(d)["vmingest_ready"] == 0
    r = status_cli(d, "-c", d.config)
    assert r.returncode == 1
    assert "NOT READY" in r.stdout and "maildir_readable [default]" in r.stdout
    # the other queue still ingests meanwhile
    d.maildir("other").deliver(message(1))
    d.wait_records(1)

    exchange(blocker, os.path.join(md, "new"))
    assert os.path.isdir(os.path.join(md, "new"))
    wait_for(lambda: curl(d.url("/readyz"))[0] == 200, 15, what="ready again")
    assert status_cli(d, "-c", d.config).returncode == 0
    d.maildir("default").deliver(message(2))
    d.wait_records(2)


def test_readiness_new_replaced(make_daemon):
    """An operator replaces new/ (rm -r new; mkdir new): the daemon must
    either ingest from the new directory or say it cannot."""
    d = make_daemon(extra={"store": {"rescan_s": "1"}}).start()
    new = os.path.join(d.maildir().path, "new")
    shutil.rmtree(new)
    os.mkdir(new)
    name = d.maildir().deliver(message(1))

    def truthful():
        if d.stats()["last_seq"] >= 1:
            return "ingested"
        code, j = get_json(d, "/readyz")
        if code == 503:
            return "not ready"
        return None
    wait_for(truthful, 10, what="ingested, or /readyz 503")
    assert name not in d.maildir().new_files() or \
        get_json(d, "/readyz")[0] == 503


def test_readiness_map_full(make_daemon, tmp_path):
    # the threshold applies to the disk too: stay below its free share
    vfs = os.statvfs(str(tmp_path))
    pct = min(40, int(100 * vfs.f_bavail / vfs.f_blocks) - 2)
    if pct < 10:
        pytest.skip("the disk under %s is nearly full" % tmp_path)
    d = make_daemon(extra={"store": {"map_size": "1M", "min_free_pct": str(pct)},
                           "http": {"stall_s": "2"}}).start()
    wait_for(lambda: curl(d.url("/readyz"))[0] == 200, 10, what="ready")
    body = "".join("%06d %s\n" % (k, "y" * 70) for k in range(1500))  # ~115 KB
    n = 12      # ~1.4 MB of raw mail: more than the map holds
    for i in range(n):
        d.maildir().deliver(message(i, body=body))
    fails = wait_for(lambda: ("map_headroom", None) in failing(d)[0] and failing(d),
                     60, what="/readyz naming map_headroom")
    why = [f["why"] for f in fails[1]["failing"] if f["check"] == "map_headroom"][0]
    assert "below min_free_pct %d" % pct in why
    assert curl(d.url("/healthz"))[0] == 200
    assert status_cli(d, "-c", d.config).returncode == 1
    # the files that do not fit wait in new/, and readiness says so
    wait_for(lambda: ("store_writable", None) in failing(d)[0], 60,
             what="/readyz naming store_writable")
    assert metrics(d)["vmingest_store_writable"] == 0
    waiting = len(d.maildir().new_files())
    assert 0 < waiting < n
    # nothing commits any more: after stall_s the backlog counts as stuck,
    # while the main loop itself is alive
    got = wait_for(lambda: ("backlog_progress", "default") in failing(d)[0] and failing(d),
                   30, what="/readyz naming backlog_progress")
    assert ("main_loop", None) not in got[0]
    assert curl(d.url("/healthz"))[0] == 200

    # fixed: a larger map; everything waiting goes in, ready again
    assert d.stop() == 0
    d.extra["store"]["map_size"] = "64M"
    d.write_config()
    d.start()
    wait_for(lambda: curl(d.url("/readyz"))[0] == 200, 30, what="ready after fix")
    d.wait_records(n)
    assert d.maildir().new_files() == []
    assert status_cli(d, "-c", d.config).returncode == 0


def freeze_main_thread(pid):
    """Stop only the daemon's main thread (ptrace is per thread: the HTTP
    thread keeps answering).  Returns a function that lets it go, or None
    when ptrace is not permitted here."""
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p,
                            ctypes.c_void_p]
    PTRACE_SEIZE, PTRACE_INTERRUPT, PTRACE_DETACH = 0x4206, 0x4207, 17
    if libc.ptrace(PTRACE_SEIZE, pid, None, None) != 0:
        return None
    assert libc.ptrace(PTRACE_INTERRUPT, pid, None, None) == 0
    os.waitpid(pid, 0x40000000)         # __WALL: until it is stopped

    def release():
        assert libc.ptrace(PTRACE_DETACH, pid, None, None) == 0
    return release


def test_healthz_stalled_loop(make_daemon):
    d = make_daemon(extra={"http": {"stall_s": "2"}}).start()
    wait_for(lambda: curl(d.url("/readyz"))[0] == 200, 10, what="ready")
    release = freeze_main_thread(d.proc.pid)
    if release is None:
        pytest.skip("ptrace not permitted")
    try:
        code, _, body = wait_for(lambda: (lambda r: r[0] == 503 and r)(curl(d.url("/healthz"))),
                                 15, what="/healthz 503")
        assert body.startswith(b"stalled: the main loop last ticked")
        assert ("main_loop", None) in failing(d)[0]
        assert status_cli(d, "-c", d.config).returncode == 1
    finally:
        release()
    wait_for(lambda: curl(d.url("/healthz"))[0] == 200, 15, what="/healthz 200 again")
    wait_for(lambda: curl(d.url("/readyz"))[0] == 200, 15, what="/readyz 200 again")
    d.maildir().deliver(message(1))
    d.wait_records(1)


def test_status_unreachable(make_daemon, tmp_path):
    d = make_daemon()           # configured, never started
    r = status_cli(d, "-c", d.config)
    assert r.returncode == 2 and "cannot reach" in r.stderr
    r = status_cli(d, "--http", "http://127.0.0.1:%d" % d.http_port, "--timeout", "2")
    assert r.returncode == 2
    assert status_cli(d, "--http", "not a url:x").returncode == 2
    assert status_cli(d, "--bogus").returncode == 2
    r = status_cli(d, "--help")
    assert r.returncode == 0 and "Exit status" in r.stdout
    # something that is not vmingestd answering
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    port = srv.getsockname()[1]
    import threading

    def answer():
        c, _ = srv.accept()
        c.recv(4096)
        c.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: text/html\r\n\r\n<html>hi</html>")
        c.close()
    t = threading.Thread(target=answer)
    t.start()
    r = status_cli(d, "--http", "127.0.0.1:%d" % port)
    t.join()
    srv.close()
    assert r.returncode == 2 and "not a vmingestd status document" in r.stderr


def test_listen_off(make_daemon):
    d = make_daemon(http=False).start()
    assert "http: disabled" in d.log_since_start()
    d.maildir().deliver(message(1))
    d.wait_records(1)
    r = status_cli(d, "-c", d.config)
    assert r.returncode == 2 and "listen = off" in r.stderr


def ipv6_loopback():
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not ipv6_loopback(), reason="no IPv6 loopback")
def test_listen_ipv6(make_daemon):
    d = make_daemon()
    port = d.http_port
    d.extra = {"http": {"listen": "[::1]:%d" % port}}
    d.write_config()
    d.start()
    code, _, body = curl("http://[::1]:%d/healthz" % port)
    assert (code, body) == (200, b"ok\n")
    r = status_cli(d, "-c", d.config)
    assert r.returncode == 0, r.stderr
    assert "http://[::1]:%d" % port in r.stdout


def test_bad_listen_refused(make_daemon):
    d = make_daemon()
    d.extra = {"http": {"listen": "127.0.0.1"}}
    d.write_config()
    d.start(wait=False)
    assert d.proc.wait(30) == 1
    assert "[http] listen" in d.log_since_start()


# ---------------------------------------------------------------- abuse

def raw_request(port, data, src="127.0.0.1", timeout=10):
    """Send bytes, return what comes back until close (or timeout)."""
    s = socket.socket()
    s.settimeout(timeout)
    s.bind((src, 0))
    s.connect(("127.0.0.1", port))
    out = b""
    try:
        s.sendall(data)
        while True:
            b = s.recv(65536)
            if not b:
                break
            out += b
    except (ConnectionResetError, BrokenPipeError):
        pass
    finally:
        s.close()
    return out


def test_abuse(make_daemon):
    d = make_daemon(extra={"http": {"timeout_s": "2", "max_connections": "64",
                                    "per_ip": "32", "request_bytes": "16K"}}).start()
    port = d.http_port
    pid = d.proc.pid
    assert curl(d.url("/metrics"))[0] == 200
    rss0 = rss_kb(pid)

    # 500 connections at once, each with half a request (slowloris)
    held = []
    for i in range(500):
        s = socket.socket()
        s.setblocking(False)
        try:
            s.connect(("127.0.0.1", port))
        except BlockingIOError:
            pass
        held.append(s)
    for s in held:
        try:
            s.send(b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        except OSError:
            pass

    # ingestion carries on meanwhile
    n = 30
    for i in range(n):
        d.maildir().deliver(message(i))

    # a 1 MB header: refused with 431 (or cut off), not buffered
    big = raw_request(port, b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: " +
                      b"a" * (1 << 20) + b"\r\n\r\n", src="127.0.0.2")
    assert big == b"" or big.startswith(b"HTTP/1.1 431"), big[:100]
    # a 100 KB request line: refused too
    long_url = raw_request(port, b"GET /" + b"m" * 100000 + b" HTTP/1.1\r\n\r\n",
                           src="127.0.0.2")
    assert long_url == b"" or re.match(rb"HTTP/1.1 4(14|31)", long_url), long_url[:100]
    # garbage bytes: an error answer or a closed connection, nothing else
    junk = raw_request(port, bytes(range(256)) * 64 + b"\r\n\r\n", src="127.0.0.3")
    assert junk == b"" or junk.startswith(b"HTTP/1.1 4"), junk[:100]
    # another address is not locked out by the slowloris on 127.0.0.1
    # (per_ip < max_connections)
    ok = raw_request(port, b"GET /healthz HTTP/1.0\r\n\r\n", src="127.0.0.4")
    assert ok.startswith(b"HTTP/1.0 200") or ok.startswith(b"HTTP/1.1 200"), ok[:100]

    d.wait_records(n)
    assert d.alive()
    assert rss_kb(pid) - rss0 < 100 * 1024, (rss0, rss_kb(pid))

    for s in held:
        s.close()
    # the endpoint answers again from the abusing address once the slots
    # are free (closed above, or timed out after timeout_s)
    wait_for(lambda: raw_request(port, b"GET /healthz HTTP/1.0\r\n\r\n",
                                 timeout=5).endswith(b"ok\n"),
             30, interval=0.2, what="/healthz answering again")
    code, _, _ = curl(d.url("/metrics"))
    assert code == 200

    # the counters move right after the commit the store shows: poll
    def counted():
        m = metrics(d)
        return m['vmingest_messages_total{queue="default",disposition="stored"}'] + \
            m['vmingest_messages_total{queue="default",disposition="published"}']
    wait_for(lambda: counted() == n, 10, what="%d messages counted" % n)
