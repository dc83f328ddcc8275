"""End-to-end fixtures: a real vmingestd on real Maildirs, real sockets.

A test asks for `daemon` (started, ready) or `make_daemon` (to choose the
config and start/stop/kill it several times).  Each daemon lives in a
fresh temp dir with its own Maildirs, store and free loopback ports.
Readiness is polled, never slept for: a daemon is ready when its log says
"ready:", emitted after the store is open, every queue is watched and the
HTTP and ZeroMQ sockets are bound.

Mail is delivered as an MTA does: written into tmp/, then renamed into
new/ (see Maildir.deliver).
"""
import json
import os
import signal
import socket
import subprocess
import time
import itertools
import shutil

import pytest

BUILD = os.environ.get("VMI_BUILD") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", "..", "build"))
CORPUS = os.environ.get("VMI_CORPUS") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "corpus"))
VMINGESTD = os.path.join(BUILD, "vmingestd")
VMINGEST = os.path.join(BUILD, "vmingest")
REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))

_seq = itertools.count()


_given_ports = set()


def free_port():
    """A loopback port nobody listens on, never the same twice in a run
    (the kernel may hand a just-closed port out again at once, and a
    daemon given one port for two sockets cannot start)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _given_ports:
            _given_ports.add(port)
            return port


def protoc_pb2(tmpdir):
    """vmingest_pb2, generated from proto/ by protoc into tmpdir (the
    consumer's view: classes from the .proto alone)."""
    import sys
    protoc = shutil.which("protoc")
    if protoc is None:
        pytest.skip("protoc not installed (Debian protobuf-compiler)")
    subprocess.run([protoc, "--proto_path", os.path.join(REPO, "proto"),
                    "--python_out", tmpdir, "vmingest.proto"], check=True)
    sys.path.insert(0, tmpdir)
    try:
        import vmingest_pb2
        return vmingest_pb2
    finally:
        sys.path.remove(tmpdir)


def wait_for(cond, timeout=30.0, interval=0.02, what="condition"):
    """Poll cond() until it returns a true value; fail after timeout."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = cond()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError("timed out after %.1fs waiting for %s (last: %r)"
                         % (timeout, what, last))


class Maildir:
    """A Maildir an MTA delivers into: tmp/ then rename into new/."""

    def __init__(self, path):
        self.path = path
        for sub in ("tmp", "new", "cur"):
            os.makedirs(os.path.join(path, sub), exist_ok=True)

    def deliver(self, data, name=None):
        if isinstance(data, str):
            data = data.encode()
        if name is None:
            name = "%d.M%dP%dQ%d.vmtest" % (time.time(), time.time_ns() % 1000000,
                                            os.getpid(), next(_seq))
        tmp = os.path.join(self.path, "tmp", name)
        with open(tmp, "wb") as f:
            f.write(data)
        os.rename(tmp, os.path.join(self.path, "new", name))
        return name

    def new_files(self):
        return sorted(n for n in os.listdir(os.path.join(self.path, "new"))
                      if not n.startswith("."))

    def cur_files(self):
        return sorted(os.listdir(os.path.join(self.path, "cur")))


class Daemon:
    """One vmingestd instance with its config, dirs and ports."""

    def __init__(self, root, queues=None, extra=None, http=True):
        self.root = root
        self.state = os.path.join(root, "state")
        self.store = os.path.join(self.state, "store")
        self.log_path = os.path.join(root, "vmingestd.log")
        self.http_port = free_port() if http else None
        self.pub_port = free_port()
        self.replay_port = free_port()
        self.pub_endpoint = "tcp://127.0.0.1:%d" % self.pub_port
        self.replay_endpoint = "tcp://127.0.0.1:%d" % self.replay_port
        self.queues = queues or {"default": {}}
        self.maildirs = {}
        self.extra = extra or {}
        self.proc = None
        self.config = os.path.join(root, "vmingestd.conf")
        self.write_config()

    def write_config(self):
        sections = {
            "daemon": {"state_dir": self.state, "allow_root": "yes"},
            "store": {"rescan_s": "60"},
            "http": {"listen": "127.0.0.1:%d" % self.http_port
                     if self.http_port else "off"},
            "publish": {"endpoint": self.pub_endpoint,
                        "replay_endpoint": self.replay_endpoint},
        }
        for sec, kv in self.extra.items():
            if sec.startswith("queue "):
                continue
            sections.setdefault(sec, {}).update(kv)
        lines = []
        for sec, kv in sections.items():
            lines.append("[%s]" % sec)
            for k, v in kv.items():
                lines.append("%s = %s" % (k, v))
            lines.append("")
        for name, q in self.queues.items():
            md = q.get("maildir") or os.path.join(self.root, "mail", name)
            self.maildirs[name] = Maildir(md)
            lines.append("[queue %s]" % name)
            lines.append("maildir = %s" % md)
            for k, v in q.items():
                if k != "maildir":
                    lines.append("%s = %s" % (k, v))
            lines.append("")
        with open(self.config, "w") as f:
            f.write("\n".join(lines))

    def maildir(self, name="default"):
        return self.maildirs[name]

    # -- process --
    def start(self, wait=True, args=()):
        self._log_offset = os.path.getsize(self.log_path) if os.path.exists(self.log_path) else 0
        self._logf = open(self.log_path, "ab")
        self.proc = subprocess.Popen([VMINGESTD, "-c", self.config] + list(args),
                                     stdout=self._logf, stderr=subprocess.STDOUT,
                                     cwd=self.root)
        if wait:
            self.wait_ready()
        return self

    def log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def log_since_start(self):
        with open(self.log_path, "rb") as f:
            f.seek(self._log_offset)
            return f.read().decode(errors="replace")

    def wait_ready(self, timeout=30):
        def ready():
            if self.proc.poll() is not None:
                raise AssertionError("vmingestd exited %s:\n%s"
                                     % (self.proc.returncode, self.log_since_start()))
            return "ready:" in self.log_since_start()
        # "ready:" is logged after the HTTP and ZeroMQ sockets are bound
        # (main.c starts them before the loop), so nothing more to wait for.
        wait_for(ready, timeout, what="vmingestd ready")

    def url(self, path):
        return "http://127.0.0.1:%d%s" % (self.http_port, path)

    def stop(self, timeout=60):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("vmingestd did not stop on SIGTERM")
        rc = self.proc.returncode if self.proc else None
        self.proc = None
        return rc

    def kill9(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
        self.proc = None

    def hup(self):
        self.proc.send_signal(signal.SIGHUP)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    # -- CLI --
    def cli(self, *args, check=True, binary=False, timeout=120):
        r = subprocess.run([VMINGEST] + list(args), capture_output=True,
                           timeout=timeout)
        if check and r.returncode != 0:
            raise AssertionError("vmingest %s failed (%d): %s"
                                 % (" ".join(args), r.returncode, r.stderr.decode()))
        if binary:
            return r
        r.stdout = r.stdout.decode(errors="replace")
        r.stderr = r.stderr.decode(errors="replace")
        return r

    def records(self, *extra):
        out = self.cli("list", "--store", self.store, "--json", *extra).stdout
        return [json.loads(l) for l in out.split("\n") if l.strip()]

    def stats(self):
        if not os.path.exists(os.path.join(self.store, "data.mdb")):
            return {"last_seq": 0, "records": 0}
        return json.loads(self.cli("stats", "--store", self.store, "--json").stdout)

    def wait_records(self, n, timeout=60):
        return wait_for(lambda: self.stats()["last_seq"] >= n and self.stats(),
                        timeout, interval=0.05, what="%d records" % n)

    def raw(self, seq):
        return self.cli("show", str(seq), "--store", self.store, "--raw",
                        binary=True).stdout


@pytest.fixture
def make_daemon(tmp_path):
    made = []

    def make(**kw):
        root = str(tmp_path / ("d%d" % len(made)))
        os.makedirs(root)
        d = Daemon(root, **kw)
        made.append(d)
        return d
    yield make
    for d in made:
        if d.alive():
            d.kill9()


@pytest.fixture
def daemon(make_daemon):
    return make_daemon().start()


def message(i, subject=None, body=None, extra_headers="", sender="station@ims.example",
            rcpt="rms@vdms.example"):
    """A plain RFC 5322 message, unique per i."""
    subject = subject or "test message %d" % i
    body = body or "line one of %d\nline two\n" % i
    return ("Return-Path: <%s>\nDelivered-To: %s\nFrom: Station <%s>\nTo: %s\n"
            "Subject: %s\nMessage-ID: <m%d.%d@vmtest>\nDate: Fri, 04 Dec 2026 12:00:00 +0000\n"
            "%s\n%s" % (sender, rcpt, sender, rcpt, subject, i, os.getpid(),
                        extra_headers, body))
