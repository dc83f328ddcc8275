"""vmingest replay: the bytes written are the bytes delivered.

mbox is mboxrd as `vmingest replay --help` documents it; the test undoes
exactly that (separator line, one '>' off /^>+From /, the added final
newline of a message that had none, the blank line after each message)
and compares with what was delivered.  maildir and raw are byte for byte.
"""
import json
import os
import random
import re
import signal
import subprocess

import pytest

from conftest import BUILD, CORPUS, REPO, VMINGEST, message, wait_for

MKSTORE = os.path.join(BUILD, "bench", "mkstore")


def jl(text):
    """JSON lines.  Split on "\n" only: str.splitlines() also splits on
    U+2028, NEL and the like, which JSON strings may hold unescaped."""
    return [json.loads(l) for l in text.split("\n") if l.strip()]


def records(d, *extra):
    return jl(d.cli("list", "--store", d.store, "--json", *extra).stdout)


def corpus_messages(limit):
    """Regular files of the shared corpus (mail + IMS), sorted, unique bytes."""
    out, seen = [], set()
    for sub in ("mail", "ims"):
        top = os.path.join(CORPUS, sub)
        for dirpath, dirs, files in sorted(os.walk(top)):
            dirs.sort()
            for f in sorted(files):
                p = os.path.join(dirpath, f)
                if not os.path.isfile(p) or os.path.islink(p):
                    continue
                with open(p, "rb") as fh:
                    data = fh.read()
                if data in seen or len(data) > 4 << 20:
                    continue
                seen.add(data)
                out.append(data)
                if len(out) >= limit:
                    return out
    return out


def junk_messages(n, seed=7):
    """Generated mail with binary junk, "From " lines, CRLF, no final newline."""
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        head = ("From: gen%d@example.org\nSubject: junk %d\n\n" % (i, i)).encode()
        body = bytearray()
        body += b"From the start of a line\n>From quoted once\n>>From twice\n"
        body += bytes(rnd.randrange(256) for _ in range(rnd.randrange(1, 3000)))
        body += b"\r\nFrom \r\n\x00\xff"
        if i % 3 == 0:
            body += b"\n"
        out.append(head + bytes(body))
    return out


def thousand_messages():
    msgs = corpus_messages(900) if os.path.isdir(CORPUS) else []
    return msgs + junk_messages(1000 - len(msgs))


def undo_mboxrd(data):
    """Split a `--format mbox` stream into {seq: bytes} undoing what it documents."""
    msgs, cur, seq = {}, None, None
    sep = re.compile(rb"^From vmingest@seq-(\d+) ")
    for line in data.splitlines(keepends=True):
        m = sep.match(line)
        if m:
            if seq is not None:
                msgs[seq] = cur
            seq, cur = int(m.group(1)), []
            continue
        assert seq is not None, "mbox does not start with a From line"
        if re.match(rb"^>+From ", line):
            line = line[1:]
        cur.append(line)
    if seq is not None:
        msgs[seq] = cur
    out = {}
    for s, lines in msgs.items():
        body = b"".join(lines)
        assert body.endswith(b"\n\n") or body == b"\n\n" or body.endswith(b"\n"), s
        out[s] = body[:-1]          # the blank line after each message
    return out


def mbox_expected(raw):
    return raw if raw.endswith(b"\n") else raw + b"\n"


@pytest.fixture(scope="module")
def filled(tmp_path_factory):
    """One daemon with 1000 delivered messages (corpus + junk), shared by the tests."""
    from conftest import Daemon
    root = str(tmp_path_factory.mktemp("replay"))
    d = Daemon(root)
    d.start()
    msgs = thousand_messages()
    names = {}
    for data in msgs:
        names[d.maildir().deliver(data)] = data
    d.wait_records(len(msgs), timeout=300)
    recs = records(d)
    by_seq = {r["seq"]: names[r["maildir_name"]] for r in recs}
    assert len(by_seq) == 1000
    yield d, recs, by_seq
    d.kill9()


def test_maildir_bytes_equal_delivered(filled, tmp_path):
    d, recs, by_seq = filled
    out = str(tmp_path / "md")
    d.cli("replay", "-c", d.config, "--format", "maildir", "--out", out)
    files = os.listdir(os.path.join(out, "new"))
    assert os.listdir(os.path.join(out, "tmp")) == []
    got = {}
    for f in files:
        m = re.match(r"^\d+\.S(\d+)\.vmingest-replay$", f)
        assert m, f
        with open(os.path.join(out, "new", f), "rb") as fh:
            got[int(m.group(1))] = fh.read()
    assert sorted(got) == sorted(by_seq)
    bad = [s for s in by_seq if got[s] != by_seq[s]]
    assert bad == []


def test_mbox_bytes_equal_delivered_after_undoing_mboxrd(filled, tmp_path):
    d, recs, by_seq = filled
    out = str(tmp_path / "all.mbox")
    d.cli("replay", "--store", d.store, "--format", "mbox", "--out", out)
    with open(out, "rb") as fh:
        data = fh.read()
    got = undo_mboxrd(data)
    assert sorted(got) == sorted(by_seq)
    bad = [s for s in by_seq if got[s] != mbox_expected(by_seq[s])]
    assert bad == []
    # the format did quote something: the junk has "From " lines
    assert b"\n>From the start" in data and b"\n>>From quoted once" in data


def test_raw_concatenated_and_per_file(filled, tmp_path):
    d, recs, by_seq = filled
    r = d.cli("replay", "--store", d.store, "--format", "raw", binary=True)
    assert r.returncode == 0
    assert r.stdout == b"".join(by_seq[s] for s in sorted(by_seq))
    out = tmp_path / "rawdir"
    out.mkdir()
    d.cli("replay", "--store", d.store, "--format", "raw", "--out", str(out),
          "--from", "10", "--to", "19")
    assert sorted(os.listdir(out)) == sorted("%d.eml" % s for s in range(10, 20))
    for s in range(10, 20):
        assert (out / ("%d.eml" % s)).read_bytes() == by_seq[s]


def test_json_range_quarantined_and_times(filled):
    d, recs, by_seq = filled
    lines = d.cli("replay", "--store", d.store, "--from", "100", "--to", "199").stdout
    got = jl(lines)
    assert [g["seq"] for g in got] == list(range(100, 200))
    assert got[0]["sha256"] == [r for r in recs if r["seq"] == 100][0]["sha256"]
    # --quarantined: exactly the QUARANTINED ones
    q = d.cli("replay", "--store", d.store, "--quarantined").stdout
    want = [r["seq"] for r in recs if r["disposition"] == "QUARANTINED"]
    assert [g["seq"] for g in jl(q)] == want
    # --since/--until by the received time of record 500 (ISO 8601, us)
    t = [r for r in recs if r["seq"] == 500][0]["received_at_us"]
    iso = subprocess.run(["date", "-u", "-d", "@%d.%06d" % (t // 1000000, t % 1000000),
                          "+%Y-%m-%dT%H:%M:%S.%6NZ"], capture_output=True,
                         text=True, check=True).stdout.strip()
    since = d.cli("replay", "--store", d.store, "--since", iso).stdout
    want = sorted(r["seq"] for r in recs if r["received_at_us"] >= t)
    assert sorted(g["seq"] for g in jl(since)) == want
    until = d.cli("replay", "--store", d.store, "--until", iso).stdout
    want = sorted(r["seq"] for r in recs if r["received_at_us"] < t)
    assert sorted(g["seq"] for g in jl(until)) == want
    # relative times: everything was received in the last day, nothing later
    assert len(jl(d.cli("replay", "--store", d.store, "--since", "-1d").stdout)) == 1000
    assert d.cli("replay", "--store", d.store, "--until", "-1d").stdout == ""


def test_topic_prefix(make_daemon, tmp_path):
    rules = tmp_path / "r.sieve"
    rules.write_text('require ["fileinto"];\n'
                     'if header :contains "subject" "alpha" { fileinto "rn.alpha"; stop; }\n'
                     'if header :contains "subject" "beta" { fileinto "rn.beta"; stop; }\n'
                     'fileinto "other.x";\n')
    d = make_daemon(queues={"default": {"rules": str(rules)}}).start()
    for i in range(30):
        d.maildir().deliver(message(i, subject=["alpha", "beta", "gamma"][i % 3]))
    d.wait_records(30)
    def seqs(*args):
        out = d.cli("replay", "--store", d.store, *args).stdout
        return [g["seq"] for g in jl(out)]
    recs = records(d)
    topic = {r["seq"]: r["topics"][0]["topic"] for r in recs}
    assert seqs("--topic", "rn.alpha") == [s for s in sorted(topic) if topic[s] == "rn.alpha"]
    assert seqs("--topic", "rn.") == [s for s in sorted(topic) if topic[s].startswith("rn.")]
    assert seqs("--topic", "rn.beta", "--topic", "other") == \
        [s for s in sorted(topic) if topic[s] in ("rn.beta", "other.x")]
    assert seqs("--topic", "nomatch") == []


def test_usage_errors(daemon):
    for args in (["--format", "pdf"], ["--since", "yesterday"], ["--from", "9", "--to", "3"],
                 ["--format", "maildir"], ["extra"]):
        r = daemon.cli("replay", "--store", daemon.store, *args, check=False)
        assert r.returncode == 2, args
    r = daemon.cli("replay", "--help")
    assert "mboxrd" in r.stdout and "Exit status" in r.stdout
    r = daemon.cli("replay", "--store", str(daemon.root) + "/nostore", check=False)
    assert r.returncode == 2


def build_mkstore():
    subprocess.run([os.path.join(REPO, "bench", "build-tools.sh"), BUILD], check=True)
    return MKSTORE


def test_sigint_leaves_whole_messages(tmp_path):
    """Ctrl-C while the reader is slow: what was written parses, every message whole."""
    mk = build_mkstore()
    store = str(tmp_path / "store")
    subprocess.run([mk, store, "5000", "--size", "3000"], check=True,
                   capture_output=True)
    fifo = str(tmp_path / "fifo")
    os.mkfifo(fifo)
    p = subprocess.Popen([VMINGEST, "replay", "--store", store, "--format", "mbox",
                          "--out", fifo], stderr=subprocess.PIPE)
    with open(fifo, "rb") as f:
        first = f.read(2 << 20)     # replay is now blocked on the full pipe
        p.send_signal(signal.SIGINT)
        rest = f.read()
    err = p.stderr.read().decode()
    assert p.wait(30) == 1, err
    assert "interrupted" in err
    msgs = undo_mboxrd(first + rest)
    assert 0 < len(msgs) < 5000
    assert sorted(msgs) == list(range(1, len(msgs) + 1))
    sizes = {len(m) for m in msgs.values()}
    assert sizes == {3000}


def test_remote_replay_same_as_local(filled, tmp_path):
    """Through the replay endpoint: the same records and bytes as the local
    store gives for the published records (the service sends only those),
    and the same quarantined ones with --quarantined."""
    d, recs, by_seq = filled
    published = [r["seq"] for r in recs if r["topics"]]
    assert len(published) > 500
    local = {g["seq"]: g for g in jl(d.cli("replay", "--store", d.store).stdout)}
    remote = jl(d.cli("replay", "--endpoint", d.replay_endpoint).stdout)
    assert [g["seq"] for g in remote] == published
    assert all(g == local[g["seq"]] for g in remote)

    rq = d.cli("replay", "--endpoint", d.replay_endpoint, "--quarantined").stdout
    lq = d.cli("replay", "--store", d.store, "--quarantined").stdout
    assert jl(rq) == jl(lq)

    r = d.cli("replay", "--endpoint", d.replay_endpoint, "--format", "mbox", binary=True)
    got = undo_mboxrd(r.stdout)
    assert sorted(got) == published
    assert all(got[s] == mbox_expected(by_seq[s]) for s in published)

    out = str(tmp_path / "rmd")
    d.cli("replay", "--endpoint", d.replay_endpoint, "--format", "maildir", "--out", out,
          "--from", "200", "--to", "399")
    files = os.listdir(os.path.join(out, "new"))
    want = [s for s in published if 200 <= s <= 399]
    assert sorted(int(re.match(r"^\d+\.S(\d+)\.", f).group(1)) for f in files) == want
    for f in files:
        s = int(re.match(r"^\d+\.S(\d+)\.", f).group(1))
        with open(os.path.join(out, "new", f), "rb") as fh:
            assert fh.read() == by_seq[s]


def test_remote_replay_with_curve(make_daemon, tmp_path):
    keys = tmp_path / "keys"
    auth = tmp_path / "authorized"
    keys.mkdir()
    auth.mkdir()
    for name in ("server", "analyst"):
        subprocess.run([VMINGEST, "keygen", str(keys / name)], check=True,
                       capture_output=True)
    (auth / "analyst.pub").write_bytes((keys / "analyst.pub").read_bytes())
    d = make_daemon(extra={"publish": {
        "curve_secret_key_file": str(keys / "server.key"),
        "authorized_keys_dir": str(auth)}}).start()
    for i in range(20):
        d.maildir().deliver(message(i))
    d.wait_records(20)
    r = d.cli("replay", "--endpoint", d.replay_endpoint, "--server-key",
              str(keys / "server.pub"), "--key", str(keys / "analyst.key"),
              "--format", "raw", binary=True)
    assert r.stdout == d.cli("replay", "--store", d.store, "--format", "raw",
                             binary=True).stdout
    assert r.stdout.count(b"Subject: test message") == 20
    # keys are checked before anything is sent
    r = d.cli("replay", "--endpoint", d.replay_endpoint, "--server-key",
              str(keys / "server.pub"), "--key", str(tmp_path / "nokey"), check=False)
    assert r.returncode == 2
