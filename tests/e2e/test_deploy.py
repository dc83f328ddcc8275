"""Deployment (issue 8): the systemd unit, sysusers/tmpfiles, make install,
privilege drop, sd_notify, and the man pages against the binaries.

- `make -f deploy/install.mk` into a DESTDIR, then `systemd-analyze verify`
  on the installed unit (ExecStart pointed at the built binary, the man
  pages found in the DESTDIR: verify runs `man` for Documentation=).
- systemd-sysusers / systemd-tmpfiles applied to an empty --root.
- vmingestd started as root with [daemon] user = nobody: /proc shows
  every uid and gid changed, no capabilities left; the store belongs to
  nobody; a store path outside what nobody may write fails to open.
- vmingestd refuses root without user = / allow_root.
- sd_notify: READY=1, then WATCHDOG=1 with STATUS= (backlog) when
  WATCHDOG_USEC is set, read from a NOTIFY_SOCKET we own.
- every page renders with `groff -ww` and `man -l` without a warning;
  `--help` of vmingestd, vmingest and every subcommand the binary has
  agrees with the pages; vmingestd.conf(5) names every key.
"""
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile

import pytest

from conftest import BUILD, REPO, VMINGEST, VMINGESTD, Daemon, wait_for

MAN = os.path.join(REPO, "docs", "man")
PAGES = ("vmingestd.8", "vmingest.1", "vmingestd.conf.5")
ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not ROOT, reason="needs root (privilege drop, "
                                "chown); CI runs as root")


def run(*args, **kw):
    kw.setdefault("capture_output", True)
    kw.setdefault("text", True)
    kw.setdefault("timeout", 120)
    return subprocess.run(list(args), **kw)


# ---- install, systemd ----

@pytest.fixture(scope="module")
def destdir():
    d = tempfile.mkdtemp(prefix="vmi-destdir-")
    r = run("make", "--no-print-directory", "-f", "deploy/install.mk", "PREFIX=/usr",
            "DESTDIR=" + d, "BUILD=" + BUILD, cwd=REPO)
    assert r.returncode == 0, r.stdout + r.stderr
    yield d
    shutil.rmtree(d, ignore_errors=True)


def unit_in(destdir):
    """Where install.mk put the unit: systemd.pc's systemdsystemunitdir
    (Debian 12: /lib/systemd/system) or /usr/lib/systemd/system."""
    for d in ("lib/systemd/system", "usr/lib/systemd/system"):
        p = os.path.join(destdir, d, "vmingestd.service")
        if os.path.exists(p):
            return p
    raise AssertionError("make install did not install vmingestd.service")


def test_install_layout(destdir):
    want = [os.path.relpath(unit_in(destdir), destdir),
            "usr/lib/sysusers.d/vmingest.conf",
            "usr/lib/tmpfiles.d/vmingest.conf",
            "usr/share/doc/vmingest/postfix/main.cf",
            "usr/share/doc/vmingest/postfix/vmingest_mailboxes"]
    want += ["usr/share/man/man%s/%s.gz" % (p.rsplit(".", 1)[1], p) for p in PAGES]
    for w in want:
        p = os.path.join(destdir, w)
        assert os.path.isfile(p), "make install did not install " + w
        assert os.stat(p).st_mode & 0o777 == 0o644, w
    with open(os.path.join(destdir, want[0])) as f:
        unit = f.read()
    assert not re.findall(r"@[A-Z_]+@", unit), "placeholder left in the unit"
    assert "ExecStart=/usr/sbin/vmingestd -c /etc/vmingest/vmingestd.conf" in unit


@pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                    reason="systemd-analyze not installed")
def test_unit_verifies(destdir, tmp_path):
    with open(unit_in(destdir)) as f:
        unit = f.read()
    # verify checks that ExecStart's binary exists: point it at ours
    unit = unit.replace("/usr/sbin/vmingestd", VMINGESTD)
    for key in ("Type=notify", "User=vmingest", "SupplementaryGroups=vmail",
                "ExecReload=/bin/kill -HUP $MAINPID", "WatchdogSec=",
                "NoNewPrivileges=yes", "ProtectSystem=strict", "ReadWritePaths=",
                "ProtectHome=yes", "PrivateTmp=yes", "PrivateDevices=yes",
                "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK\n",
                "SystemCallFilter=@system-service", "MemoryDenyWriteExecute=yes",
                "LockPersonality=yes", "\nCapabilityBoundingSet=\n"):
        assert key in unit, "unit lacks " + key.strip()
    path = tmp_path / "vmingestd.service"
    path.write_text(unit)
    env = dict(os.environ, MANPATH=os.path.join(destdir, "usr/share/man"))
    r = run("systemd-analyze", "verify", str(path), env=env)
    assert r.returncode == 0 and "vmingestd" not in r.stderr, r.stderr
    # and it does fail on a broken unit (the check can fail)
    bad = tmp_path / "broken.service"
    bad.write_text(unit.replace("Type=notify", "Type=notifyy"))
    r = run("systemd-analyze", "verify", str(bad), env=env)
    assert r.returncode != 0 or "notifyy" in r.stderr


def test_shipped_config_fits_the_unit():
    """config/vmingestd.conf, run by the unit: every path it writes is one
    the sandbox lets it write (ProtectSystem=strict), and its user is the
    unit's User=."""
    unit = open(os.path.join(REPO, "deploy/systemd/vmingestd.service")).read()
    rw = []
    for m in re.finditer(r"(?m)^ReadWritePaths=(.*)$", unit):
        rw += m.group(1).split()
    m = re.search(r"(?m)^StateDirectory=(\S+)$", unit)
    rw.append("/var/lib/" + m.group(1))
    m = re.search(r"(?m)^RuntimeDirectory=(\S+)$", unit)
    rw.append("/run/" + m.group(1))
    conf = os.path.join(REPO, "config", "vmingestd.conf")
    if not os.path.exists(conf):
        pytest.skip("config/vmingestd.conf not written yet")
    dump = help_text(VMINGESTD, "--dump-config", "-c", conf)
    paths = re.findall(r"(?m)^(?:state_dir|path|control_socket|maildir) = (\S+)$", dump)
    assert paths, dump
    for p in paths:
        assert os.path.isabs(p), "relative path %s: the unit runs in /" % p
        assert any(p == d or p.startswith(d.rstrip("/") + "/") for d in rw), \
            "%s is not writable under the unit (ReadWritePaths=%s)" % (p, rw)
    user = re.search(r"(?m)^user = (\S*)$", dump).group(1)
    assert user == re.search(r"(?m)^User=(\S+)$", unit).group(1)


@pytest.mark.skipif(shutil.which("systemd-sysusers") is None,
                    reason="systemd-sysusers not installed")
def test_sysusers_and_tmpfiles(destdir, tmp_path):
    root = str(tmp_path / "root")
    os.makedirs(os.path.join(root, "etc"))
    su = os.path.join(destdir, "usr/lib/sysusers.d/vmingest.conf")
    r = run("systemd-sysusers", "--root=" + root, su)
    assert r.returncode == 0, r.stderr
    users = {l.split(":")[0]: l.split(":") for l in open(os.path.join(root, "etc/passwd"))}
    groups = {l.split(":")[0]: l.strip().split(":") for l in open(os.path.join(root, "etc/group"))}
    assert "vmingest" in users and "vmail" in users and "vmail" in groups
    assert "vmingest" in groups["vmail"][3].split(","), "vmingest not in group vmail"
    assert users["vmingest"][6].strip() == "/usr/sbin/nologin"
    if not ROOT:
        return
    tf = os.path.join(destdir, "usr/lib/tmpfiles.d/vmingest.conf")
    r = run("systemd-tmpfiles", "--root=" + root, "--create", tf)
    assert r.returncode == 0, r.stderr
    vm_uid, vmail_uid = int(users["vmingest"][2]), int(users["vmail"][2])
    vmail_gid = int(groups["vmail"][2])
    for p, mode, uid in (("var/lib/vmingest", 0o750, vm_uid), ("run/vmingest", 0o750, vm_uid),
                         ("var/mail/vdms", 0o2770, vmail_uid),
                         ("var/mail/vdms/rms/new", 0o2770, vmail_uid)):
        st = os.stat(os.path.join(root, p))
        assert (st.st_mode & 0o7777, st.st_uid) == (mode, uid), p
    assert os.stat(os.path.join(root, "var/mail/vdms/seismic/tmp")).st_gid == vmail_gid


@pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                    reason="systemd-analyze not installed")
def test_security_exposure_recorded(destdir, tmp_path):
    """docs/OPERATIONS.md records `systemd-analyze security`; the figure
    there must be the one the unit gets today."""
    unit = open(unit_in(destdir)).read()
    path = tmp_path / "vmingestd.service"
    path.write_text(unit.replace("/usr/sbin/vmingestd", VMINGESTD))
    r = run("systemd-analyze", "security", "--offline=yes", "--no-pager", str(path))
    m = re.search(r"Overall exposure level for vmingestd.service: ([0-9.]+)", r.stdout)
    if m is None:
        pytest.skip("systemd-analyze security --offline unsupported here: %s" % r.stderr[-200:])
    doc = open(os.path.join(REPO, "docs", "OPERATIONS.md")).read()
    assert "exposure level for vmingestd.service: %s" % m.group(1) in doc, \
        "OPERATIONS.md does not record the current exposure %s" % m.group(1)


# ---- privilege drop ----

def _status(pid):
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            out[k] = v.split()
    return out


@pytest.fixture
def open_root():
    """A temp dir nobody can traverse to (not under pytest's 0700 dirs)."""
    d = tempfile.mkdtemp(prefix="vmi-deploy-", dir="/tmp")
    os.chmod(d, 0o755)
    made = []
    yield d, made
    for dm in made:
        if dm.alive():
            dm.kill9()
    shutil.rmtree(d, ignore_errors=True)


@needs_root
def test_privdrop_to_nobody(open_root):
    root, made = open_root
    nobody = pwd.getpwnam("nobody")
    mail = os.path.join(root, "mail")
    d = Daemon(root, queues={"default": {"maildir": mail}},
               extra={"daemon": {"user": "nobody"}})
    made.append(d)
    # the Maildir is the daemon user's, as Postfix would leave it
    for dp, dn, _fn in os.walk(mail):
        os.chown(dp, nobody.pw_uid, nobody.pw_gid)
    d.start()
    st = _status(d.proc.pid)
    assert st["Uid"] == [str(nobody.pw_uid)] * 4, st["Uid"]
    assert st["Gid"] == [str(nobody.pw_gid)] * 4, st["Gid"]
    assert "0" not in st.get("Groups", []), st.get("Groups")
    for cap in ("CapEff", "CapPrm", "CapAmb"):
        assert int(st[cap][0], 16) == 0, (cap, st[cap])
    assert "running as user nobody" in d.log()
    s = os.stat(d.store)
    assert (s.st_uid, s.st_gid) == (nobody.pw_uid, nobody.pw_gid), "store not nobody's"
    # it still works as nobody
    d.maildir().deliver("From: a@b\nSubject: x\nMessage-ID: <pd1@t>\n\nbody\n")
    d.wait_records(1)
    wait_for(lambda: not d.maildir().new_files(), 30, what="file removed")
    assert d.stop() == 0


@needs_root
def test_privdrop_cannot_write_outside(open_root):
    """After the drop, a store outside what nobody may write fails to
    open, though root could have made it: the drop happened first."""
    root, made = open_root
    nobody = pwd.getpwnam("nobody")
    locked = os.path.join(root, "rootonly")
    os.makedirs(locked, mode=0o755)
    mail = os.path.join(root, "mail")
    d = Daemon(root, queues={"default": {"maildir": mail}},
               extra={"daemon": {"user": "nobody"},
                      "store": {"path": os.path.join(locked, "store")}})
    made.append(d)
    for dp, dn, _fn in os.walk(mail):
        os.chown(dp, nobody.pw_uid, nobody.pw_gid)
    d.start(wait=False)
    rc = d.proc.wait(30)
    assert rc == 1, "vmingestd as nobody opened a store in a root-only dir"
    assert "ermission denied" in d.log(), d.log()
    assert not os.path.exists(os.path.join(locked, "store", "data.mdb"))


@needs_root
def test_refuses_root_without_user(tmp_path):
    conf = tmp_path / "c.conf"
    conf.write_text("[daemon]\nstate_dir = %s\n[http]\nlisten = off\n"
                    "[queue q]\nmaildir = %s\n" % (tmp_path / "s", tmp_path / "m"))
    r = run(VMINGESTD, "-c", str(conf), timeout=30)
    assert r.returncode == 1
    assert "refusing to run as root" in r.stderr
    conf.write_text(conf.read_text().replace("[daemon]\n", "[daemon]\nuser = no-such-user-vmi\n"))
    r = run(VMINGESTD, "-c", str(conf), timeout=30)
    assert r.returncode == 1 and "no-such-user-vmi" in r.stderr, r.stderr


# ---- sd_notify ----

def test_sd_notify_ready_watchdog_status(make_daemon, tmp_path):
    sock_path = str(tmp_path / "notify.sock")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(sock_path)
    s.settimeout(0.2)
    d = make_daemon()
    d.maildir().deliver("From: a@b\nSubject: x\nMessage-ID: <n1@t>\n\nbody\n")
    env_keep = dict(os.environ)
    os.environ["NOTIFY_SOCKET"] = sock_path
    os.environ["WATCHDOG_USEC"] = "2000000"
    try:
        d.start(wait=False)
    finally:
        os.environ.clear()
        os.environ.update(env_keep)
    msgs = []

    def got(pred):
        def f():
            try:
                msgs.append(s.recv(4096).decode())
            except socket.timeout:
                pass
            if d.proc is not None and d.proc.poll() is not None:
                raise AssertionError("vmingestd exited: " + d.log())
            return any(pred(m) for m in msgs)
        return f
    try:
        wait_for(got(lambda m: "READY=1" in m.split("\n")), 30, what="READY=1")
        wait_for(got(lambda m: "WATCHDOG=1" in m.split("\n") and "STATUS=" in m), 30,
                 what="WATCHDOG=1 with STATUS=")
        d.wait_records(1)
        wait_for(got(lambda m: re.search(r"STATUS=.*backlog 0 file.*last seq 1", m)), 30,
                 what="STATUS showing the drained backlog")
        st = [m for m in msgs if "STATUS=" in m and "WATCHDOG=1" in m][-1]
        assert re.search(r"STATUS=ingesting: backlog \d+ file\(s\), oldest \d+s", st), st
        assert d.stop() == 0
        wait_for(got(lambda m: "STOPPING=1" in m), 10, what="STOPPING=1")
    finally:
        s.close()


# ---- man pages ----

def page(name):
    with open(os.path.join(MAN, name)) as f:
        return f.read()


@pytest.mark.parametrize("name", PAGES)
def test_man_page_renders_without_warnings(name):
    path = os.path.join(MAN, name)
    assert os.path.isfile(path), "missing docs/man/" + name
    r = run("groff", "-ww", "-mandoc", "-Tutf8", "-z", path)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    env = dict(os.environ, MANWIDTH="80", MAN_KEEP_STDERR="1", LC_ALL="C.UTF-8")
    r = run("man", "--warnings=w", "-l", path, env=env)
    assert r.returncode == 0, r.stderr
    assert r.stderr == "", r.stderr
    assert len(r.stdout.splitlines()) > 30
    text = page(name)
    assert re.search(r"(?m)^\.Dd ", text) and re.search(r"(?m)^\.Dt ", text), "not mdoc"


def help_text(*args):
    r = run(*args)
    assert r.returncode == 0, (args, r.stderr)
    return r.stdout


def long_options(text):
    return set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", text))


def help_options(text):
    """The long options a --help text offers: those in its usage synopsis
    (up to the first blank line) and those opening an option-list line
    ("  -c, --config FILE  ..." or "  --json  ..."), not the ones it merely
    mentions (e.g. keygen's "use vmingest sub --key")."""
    synopsis = text.split("\n\n", 1)[0]
    listed = re.findall(r"(?m)^\s+(?:-\w,?\s+)?(--[a-z][a-z0-9-]*)", text)
    return long_options(synopsis) | set(listed)


def mdoc_options(text):
    """Long options an mdoc text names: .Fl -foo (shown as --foo)."""
    return set("--" + m for m in re.findall(r"Fl -([a-z][a-z0-9-]*)", text))


def test_vmingestd_help_agrees_with_page():
    h = help_options(help_text(VMINGESTD, "--help"))
    p = mdoc_options(page("vmingestd.8"))
    assert h, "no options in vmingestd --help"
    assert h - p == set(), "in --help, not in vmingestd(8): %s" % sorted(h - p)
    assert p - h == set(), "in vmingestd(8), not in --help: %s" % sorted(p - h)
    for short in re.findall(r"^\s+-([a-zA-Z]),", help_text(VMINGESTD, "--help"), re.M):
        assert re.search(r"Fl %s\b" % short, page("vmingestd.8")), "-%s not in page" % short


def binary_commands():
    h = help_text(VMINGEST, "--help")
    block = h.split("Commands:", 1)[1].split("\n\n", 1)[0]
    return [l.split()[0] for l in block.splitlines() if l.strip()]


def page_section(text, cmd):
    """The part of vmingest(1) about one subcommand: from its
    `.Ss vmingest CMD` to the next subsection or section."""
    m = re.search(r"(?m)^\.Ss vmingest %s\b.*$" % re.escape(cmd), text)
    assert m, "vmingest(1) has no section for %s" % cmd
    rest = text[m.end():]
    n = re.search(r"(?m)^\.S[sh] ", rest)
    return rest[:n.start()] if n else rest


def test_vmingest_commands_agree_with_page():
    text = page("vmingest.1")
    cmds = binary_commands()
    assert "list" in cmds and "show" in cmds
    documented = re.findall(r"(?m)^\.Ss vmingest ([a-z]+)", text)
    for c in cmds:
        assert c in documented, "vmingest %s not in vmingest(1)" % c


def subcommand_help(cmd):
    r = run(VMINGEST, cmd, "--help")
    assert r.returncode == 0, "vmingest %s --help exits %d" % (cmd, r.returncode)
    assert r.stdout.strip(), "vmingest %s --help prints nothing on stdout" % cmd
    return r.stdout


ALL_COMMANDS = ("list", "show", "stats", "sub", "keygen", "rules", "status", "replay",
                "reprocess", "quarantine", "compact", "backup")


@pytest.mark.parametrize("cmd", ALL_COMMANDS)
def test_subcommand_help_agrees_with_page(cmd):
    if cmd not in binary_commands():
        pytest.skip("vmingest %s is not in this build yet" % cmd)
    h = help_options(subcommand_help(cmd)) - {"--help"}
    p = mdoc_options(page_section(page("vmingest.1"), cmd)) - {"--help"}
    assert h - p == set(), "vmingest %s --help has options vmingest(1) lacks: %s" % (
        cmd, sorted(h - p))
    assert p - h == set(), "vmingest(1) documents options vmingest %s --help lacks: %s" % (
        cmd, sorted(p - h))


def test_conf_page_names_every_key(tmp_path):
    dump = help_text(VMINGESTD, "--dump-config")
    text = page("vmingestd.conf.5")
    section = None
    keys = []
    for line in dump.splitlines():
        m = re.match(r"\[(\w+)(?: .*)?\]$", line)
        if m:
            section = m.group(1)
            continue
        m = re.match(r"(\w+) =", line)
        if m:
            keys.append((section, m.group(1)))
    assert len(keys) > 40
    for sec, key in keys:
        assert re.search(r"(?m)^\.It Cm %s\b" % key, text), \
            "vmingestd.conf(5) does not document [%s] %s" % (sec, key)
        assert re.search(r"(?m)^\.Ss \[%s" % sec, text), "no [%s] section in the page" % sec


def test_watchdog_s_spaces_the_pings(make_daemon, tmp_path):
    """[daemon] watchdog_s = 2: consecutive WATCHDOG=1 at least ~2 s apart
    (the default pings every second).  A lower bound only, measured only
    between pings that arrived while this test was already waiting for
    them, so a busy machine cannot make it fail."""
    import time
    sock_path = str(tmp_path / "notify.sock")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(sock_path)
    d = make_daemon(extra={"daemon": {"watchdog_s": "2"}})
    env_keep = dict(os.environ)
    os.environ["NOTIFY_SOCKET"] = sock_path
    os.environ["WATCHDOG_USEC"] = "30000000"
    try:
        d.start(wait=False)
    finally:
        os.environ.clear()
        os.environ.update(env_keep)
    pings = []      # (receive time, received while we were waiting)

    import select
    s.settimeout(0.5)

    def recv():
        # queued already: its arrival time is unknown
        waited = not select.select([s], [], [], 0)[0]
        try:
            m = s.recv(4096)
        except socket.timeout:
            return
        if "WATCHDOG=1" in m.decode().split("\n"):
            pings.append((time.monotonic(), waited))

    def enough():
        recv()
        good = [b[0] - a[0] for a, b in zip(pings, pings[1:]) if a[1] and b[1]]
        return len(good) >= 2 and good
    try:
        gaps = wait_for(enough, 90, interval=0, what="two measurable ping gaps")
        assert all(g >= 1.5 for g in gaps), gaps
        assert d.stop() == 0
    finally:
        s.close()


# ---- the unit's sandbox, emulated ----
#
# No systemd runs here as PID 1, so the unit cannot be started for real.
# Three of its restrictions are the kind that break a daemon at run time
# rather than fail `verify`: SystemCallFilter= (other syscalls fail with
# EPERM), RestrictAddressFamilies= (socket() of another family fails with
# EAFNOSUPPORT) and MemoryDenyWriteExecute= (W+X mappings and
# mprotect(PROT_EXEC) fail with EPERM).  This installs seccomp rules to
# the same effect (x86-64), built from the unit's own lines (syscall sets
# expanded by `systemd-analyze syscall-filter`), and runs the daemon under
# them as an unprivileged user, as User= would.

needs_sandbox_emulation = pytest.mark.skipif(
    os.uname().machine != "x86_64" or shutil.which("systemd-analyze") is None
    or not os.path.exists("/usr/include/x86_64-linux-gnu/asm/unistd_64.h"),
    reason="seccomp emulation needs x86-64, systemd-analyze, linux-libc-dev")

AF = {"AF_UNIX": 1, "AF_INET": 2, "AF_INET6": 10, "AF_NETLINK": 16, "AF_PACKET": 17}


def _seccomp_preexec(families, mdwe, allow_nrs=None, user=None):
    """A preexec_fn: become user (uid, gid) as User= would, then install
    systemd's rules for RestrictAddressFamilies=families, for
    MemoryDenyWriteExecute= (mdwe) and, with allow_nrs, for
    SystemCallFilter= (anything else fails with EPERM, as
    SystemCallErrorNumber=EPERM)."""
    import ctypes
    import struct
    libc = ctypes.CDLL(None, use_errno=True)
    LD_ABS, JEQ, JSET, RET, AND = 0x20, 0x15, 0x45, 0x06, 0x54
    ALLOW, ERRNO = 0x7fff0000, 0x00050000
    EAFNOSUPPORT, EPERM = 97, 1
    prog = []

    def ins(code, jt, jf, k):
        prog.append((code, jt, jf, k))
    # arch check: anything but x86-64 is allowed unfiltered (test-only)
    ins(LD_ABS, 0, 0, 4)
    ins(JEQ, 1, 0, 0xc000003e)
    ins(RET, 0, 0, ALLOW)
    ins(LD_ABS, 0, 0, 0)                  # syscall nr
    body_sock = [(LD_ABS, 0, 0, 16)]      # args[0] (low half): family
    n = len(families)
    for i, fam in enumerate(families):
        body_sock.append((JEQ, n - i, 0, fam))
    body_sock.append((RET, 0, 0, ERRNO | EAFNOSUPPORT))
    body_sock.append((RET, 0, 0, ALLOW))
    body_mmap = [(LD_ABS, 0, 0, 32), (AND, 0, 0, 6), (JEQ, 0, 1, 6),
                 (RET, 0, 0, ERRNO | EPERM), (RET, 0, 0, ALLOW)]
    body_mprot = [(LD_ABS, 0, 0, 32), (JSET, 0, 1, 4),
                  (RET, 0, 0, ERRNO | EPERM), (RET, 0, 0, ALLOW)]
    checks = [(41, body_sock)]
    if mdwe:
        checks += [(9, body_mmap), (10, body_mprot), (329, body_mprot)]
    # dispatch: jeq nr -> its body (bodies follow, in order)
    offs = []
    pos = len(checks) + 1                 # after the jeqs and one "allow"
    for _nr, body in checks:
        offs.append(pos)
        pos += len(body)
    for i, (nr, _body) in enumerate(checks):
        ins(JEQ, offs[i] - i - 1, 0, nr)
    JA = 0x05
    ins(JA, 0, 0, sum(len(b) for _nr, b in checks))    # over the bodies
    for _nr, body in checks:
        for b in body:
            ins(*b)
    if allow_nrs is None:
        ins(RET, 0, 0, ALLOW)
    else:
        for nr in sorted(allow_nrs):
            ins(JEQ, 0, 1, nr)
            ins(RET, 0, 0, ALLOW)
        ins(RET, 0, 0, ERRNO | EPERM)
    raw = b"".join(struct.pack("HBBI", *p) for p in prog)
    buf = ctypes.create_string_buffer(raw)

    class Fprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]
    fp = Fprog(len(prog), ctypes.addressof(buf))

    ul = ctypes.c_ulong

    def preexec():
        if user is not None:
            os.setgroups([user[1]])
            os.setresgid(user[1], user[1], user[1])
            os.setresuid(user[0], user[0], user[0])
        # prctl is variadic: pass every argument as a full unsigned long
        if libc.prctl(ctypes.c_int(38), ul(1), ul(0), ul(0), ul(0)) != 0:   # NO_NEW_PRIVS
            raise OSError(ctypes.get_errno(), "prctl no_new_privs")
        if libc.prctl(ctypes.c_int(22), ul(2), ul(ctypes.addressof(fp)), ul(0), ul(0)) != 0:
            raise OSError(ctypes.get_errno(), "prctl seccomp")    # SECCOMP_MODE_FILTER
    preexec.keep = (buf, fp)      # the filter must outlive this function
    return preexec


def _unit_families():
    unit = open(os.path.join(REPO, "deploy/systemd/vmingestd.service")).read()
    m = re.search(r"(?m)^RestrictAddressFamilies=(.*)$", unit)
    assert m and "MemoryDenyWriteExecute=yes" in unit
    return [AF[f] for f in m.group(1).split()]


@needs_sandbox_emulation
@needs_root
def test_sandbox_emulation_blocks_what_it_should(tmp_path):
    """The emulation works: a socket(AF_PACKET), a W+X mapping and a
    syscall outside the filter (chroot, even as root) fail."""
    code = ("import socket, mmap, sys\n"
            "try:\n socket.socket(socket.AF_PACKET, socket.SOCK_RAW); sys.exit(3)\n"
            "except OSError as e:\n assert e.errno == 97, e\n"
            "try:\n mmap.mmap(-1, 4096, prot=mmap.PROT_READ|mmap.PROT_WRITE|mmap.PROT_EXEC); sys.exit(4)\n"
            "except OSError as e:\n assert e.errno == 1, e\n"
            "socket.socket(socket.AF_INET, socket.SOCK_STREAM).close()\n"
            "import os\n"
            "try:\n os.chroot('/'); sys.exit(5)\n"
            "except OSError as e:\n assert e.errno == 1, e\n")
    unit = open(os.path.join(REPO, "deploy/systemd/vmingestd.service")).read()
    r = subprocess.run(["/usr/bin/python3", "-c", code],
                       preexec_fn=_seccomp_preexec(_unit_families(), True,
                                                   allow_nrs=_syscall_filter(unit)),
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, (r.returncode, r.stderr)


def _syscall_filter(unit):
    """The syscall numbers the unit's SystemCallFilter= lines allow."""
    table = {}
    with open("/usr/include/x86_64-linux-gnu/asm/unistd_64.h") as f:
        for line in f:
            m = re.match(r"#define __NR_(\w+)\s+(\d+)", line)
            if m:
                table[m.group(1)] = int(m.group(2))

    def expand(group, depth=0):
        assert depth < 10
        r = run("systemd-analyze", "syscall-filter", group)
        assert r.returncode == 0, r.stderr
        out = set()
        for line in r.stdout.splitlines()[1:]:
            t = line.strip()
            if not t or t.startswith("#"):
                continue
            out |= expand(t, depth + 1) if t.startswith("@") else {t}
        return out
    allowed, denied = set(), set()
    for m in re.finditer(r"(?m)^SystemCallFilter=(~?)(.*)$", unit):
        names = set()
        for item in m.group(2).split():
            names |= expand(item) if item.startswith("@") else {item}
        (denied if m.group(1) else allowed).update(names)
    return {table[n] for n in allowed - denied if n in table}


@needs_sandbox_emulation
@needs_root
def test_daemon_runs_in_the_unit_sandbox(open_root):
    """vmingestd as an unprivileged user under the unit's
    SystemCallFilter=, RestrictAddressFamilies= and
    MemoryDenyWriteExecute=: starts, binds, ingests, publishes, answers
    HTTP, reloads on SIGHUP, stops cleanly."""
    import signal
    import urllib.request
    import zmq
    root, made = open_root
    unit = open(os.path.join(REPO, "deploy/systemd/vmingestd.service")).read()
    nrs = _syscall_filter(unit)
    assert len(nrs) > 200
    nobody = pwd.getpwnam("nobody")
    mail = os.path.join(root, "mail")
    d = Daemon(root, queues={"default": {"maildir": mail, "topic": "sandbox"}})
    made.append(d)
    for dp in (mail, os.path.join(mail, "tmp"), os.path.join(mail, "new"),
               os.path.join(mail, "cur")):
        os.chown(dp, nobody.pw_uid, nobody.pw_gid)
    os.makedirs(d.state)
    os.chown(d.state, nobody.pw_uid, nobody.pw_gid)
    d._log_offset = 0
    with open(d.log_path, "ab") as logf:
        d.proc = subprocess.Popen(
            [VMINGESTD, "-c", d.config], stdout=logf, stderr=subprocess.STDOUT,
            cwd=d.state, preexec_fn=_seccomp_preexec(
                _unit_families(), True, allow_nrs=nrs,
                user=(nobody.pw_uid, nobody.pw_gid)))
    d.wait_ready()
    ctx = zmq.Context()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.SUBSCRIBE, b"sandbox")
    sub.setsockopt(zmq.SUBSCRIBE, b"!hb")
    sub.connect(d.pub_endpoint)
    try:
        # PUB drops what it sends before the subscription arrives: the
        # subscription is live once a heartbeat comes through
        assert wait_for(lambda: sub.poll(100) and sub.recv_multipart()[0] == b"!hb",
                        30, what="a heartbeat")
        d.maildir().deliver("From: a@b\nSubject: sandbox\nMessage-ID: <sb1@t>\n\nbody\n")
        d.wait_records(1)
        assert wait_for(lambda: sub.poll(100) and sub.recv_multipart()[0] == b"sandbox",
                        30, what="the record published")
        with urllib.request.urlopen(d.url("/metrics"), timeout=10) as r:
            assert r.status == 200 and b"vmingest_last_seq 1" in r.read()
        d.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: "reload" in d.log().lower(), 30, what="the reload logged")
        d.maildir().deliver("From: a@b\nSubject: sandbox 2\nMessage-ID: <sb2@t>\n\nbody\n")
        d.wait_records(2)
        assert d.stop() == 0, d.log()
    finally:
        sub.close(0)
        ctx.term()
    assert "Operation not permitted" not in d.log(), d.log()
