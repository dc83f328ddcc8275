#!/bin/bash
# ingest.sh BUILD_DIR - the ingest benchmark section of `make bench`.
#
# Writes the section's markdown to stdout (bench/run.sh collects it),
# progress to stderr.  In one run, on the same generated messages
# (bench/gen_mail.py, fixed seed):
#
#   ceiling   GMime parse-only rate on all cores (bench/parse_ceiling.c)
#   vmingestd a prefilled Maildir drained by the real daemon, start to
#             empty new/ (bench/latency.py drain): msgs/s, MiB/s, peak RSS
#   procmail  `procmail -m RC < msg`, one process per message as an MDA
#             runs it, with the 10-recipe bench/procmailrc.tmpl
#   latency   rename into new/ -> commit at 500 msgs/s (latency.py rate)
#   backlog   peak RSS draining a 200,000-file backlog (one run)
#   profile   where the daemon's CPU goes (perf, one drain), if perf works
#
# Each of ceiling/vmingestd/procmail/latency runs RUNS (3) times,
# interleaved so drift hits all alike; medians are reported, and ratios
# against baselines measured in the same run.  Nothing here asserts speed.
#
# Environment:
#   BENCH_QUICK=1          small sizes (a quick look, ~2 minutes)
#   BENCH_N                messages for ceiling/vmingestd (default 10000)
#   BENCH_PROCMAIL_N       messages through procmail per run (default 2000)
#   BENCH_BACKLOG_N        backlog files for the RSS run (default 200000)
#   BENCH_LATENCY_N        messages per latency run (default 10000 = 20 s)
#   BENCH_RUNS             repetitions (default 3)
#   BENCH_PERF=0           skip the perf profile
#   BENCH_TMP              where the temporary tree goes (default /tmp)
#
# SECURITY: runs the daemon as root with allow_root = yes on a private
# temporary directory with loopback ports; nothing is installed.
set -euo pipefail

if [ $# -ne 1 ]; then
	echo "usage: bench/ingest.sh BUILD_DIR" >&2
	exit 2
fi
BUILD=$(cd "$1" && pwd)
HERE=$(cd "$(dirname "$0")" && pwd)
TOP=$(cd "$HERE/.." && pwd)
PY=/usr/bin/python3

if [ "${BENCH_QUICK:-0}" = 1 ]; then
	N=${BENCH_N:-2000}; PM_N=${BENCH_PROCMAIL_N:-300}
	BACKLOG_N=${BENCH_BACKLOG_N:-20000}; LAT_N=${BENCH_LATENCY_N:-2500}
else
	N=${BENCH_N:-10000}; PM_N=${BENCH_PROCMAIL_N:-2000}
	BACKLOG_N=${BENCH_BACKLOG_N:-200000}; LAT_N=${BENCH_LATENCY_N:-10000}
fi
RUNS=${BENCH_RUNS:-3}
RATE=500

log() { echo "bench/ingest: $*" >&2; }

WORK=$(mktemp -d "${BENCH_TMP:-/tmp}/vmi-bench-ingest.XXXXXX")
cleanup() { rm -rf "$WORK"; }
trap cleanup EXIT

# The working tree is shared and build/ may be relinked under us while we
# run: take private copies of the binaries first.
make -s -C "$TOP" BUILD="$BUILD" "$BUILD/vmingestd" "$BUILD/vmingest" \
    "$BUILD/bench/parse_ceiling" >&2
mkdir -p "$WORK/bin"
cp "$BUILD/vmingestd" "$BUILD/vmingest" "$BUILD/bench/parse_ceiling" "$WORK/bin/"
BIN="$WORK/bin"

log "generating $N messages"
GEN_MAIN=$($PY "$HERE/gen_mail.py" "$N" "$WORK/msgs")
mkdir -p "$WORK/pm-msgs"
ls "$WORK/msgs" | sort | sed -n "1,${PM_N}p" | while read -r f; do
	ln "$WORK/msgs/$f" "$WORK/pm-msgs/$f"
done
PM_BYTES=$(du -sb --apparent-size "$WORK/pm-msgs" | cut -f1)

RES="$WORK/results"
mkdir -p "$RES"

run_procmail() {
	local dir="$WORK/pm-out" rc="$WORK/procmailrc" t0 t1 n
	rm -rf "$dir"
	mkdir -p "$dir"
	sed "s#@MAILDIR@#$dir#g" "$HERE/procmailrc.tmpl" >"$rc"
	# bash's `time` gives wall, user and system seconds (children included)
	local TIMEFORMAT='%3R %3U %3S' tm
	tm=$( { time for f in "$WORK/pm-msgs"/*; do
		procmail -m "$rc" <"$f" || { log "procmail failed on $f"; exit 1; }
	done; } 2>&1 ) || return 1
	n=$(find "$dir" -type f -path '*/new/*' | wc -l)
	$PY -c 'import json,sys; n,want,b=int(sys.argv[1]),int(sys.argv[2]),int(sys.argv[3]); s,u,y=map(float,sys.argv[4:7]); print(json.dumps({"mode":"procmail","files":want,"delivered":n,"seconds":s,"msgs_per_s":round(want/s,1),"mib_per_s":round(b/s/1048576,2),"cpu_ms_per_msg":round((u+y)*1e3/want,4),"ok":n==want}))' \
	    "$n" "$PM_N" "$PM_BYTES" $tm
}

for r in $(seq 1 "$RUNS"); do
	log "round $r/$RUNS: parse ceiling"
	"$BIN/parse_ceiling" "$WORK/msgs" >>"$RES/ceiling.txt"
	log "round $r/$RUNS: vmingestd drain of $N"
	$PY "$HERE/latency.py" drain "$BIN" "$WORK/msgs" "$WORK/run" >>"$RES/drain.json" ||
	    log "drain run $r failed (see results)"
	log "round $r/$RUNS: procmail on $PM_N"
	run_procmail >>"$RES/procmail.json"
	$PY "$HERE/latency.py" fsync "$BIN" "$WORK/msgs" "$WORK/fsync" >>"$RES/fsync.json"
	log "round $r/$RUNS: latency at $RATE/s, $LAT_N messages"
	$PY "$HERE/latency.py" rate "$BIN" "$WORK/msgs" "$WORK/run" --rate "$RATE" \
	    --count "$LAT_N" >>"$RES/latency.json" || log "latency run $r failed"
	rm -rf "$WORK/run"
done

# The machine is shared: one more latency run with the daemon at nice -10
# shows what the daemon does when it is not waiting for a CPU.
if [ "$(id -u)" = 0 ]; then
	log "latency at $RATE/s with the daemon at nice -10"
	$PY "$HERE/latency.py" rate "$BIN" "$WORK/msgs" "$WORK/run" --rate "$RATE" \
	    --count "$LAT_N" --nice -10 >>"$RES/latency.json" || log "niced latency run failed"
	rm -rf "$WORK/run"
fi

PROFILE=""
if [ "${BENCH_PERF:-1}" != 0 ] && command -v perf >/dev/null &&
    perf record -q -o "$WORK/perf.probe" -- true >/dev/null 2>&1; then
	log "profile: one drain of $N under perf"
	$PY "$HERE/latency.py" drain "$BIN" "$WORK/msgs" "$WORK/run" \
	    --perf "$WORK/perf.data" >"$RES/perf-drain.json" || true
	if [ -s "$WORK/perf.data" ]; then
		perf report -i "$WORK/perf.data" --children --sort symbol --stdio \
		    -g none 2>/dev/null >"$RES/perf.txt" || true
		PROFILE="$RES/perf.txt"
	fi
	rm -rf "$WORK/run"
fi

rm -rf "$WORK/pm-out" "$WORK/pm-msgs"
log "generating the $BACKLOG_N-file backlog"
GEN_BIG=$($PY "$HERE/gen_mail.py" --seed 7 --prefix backlog "$BACKLOG_N" "$WORK/big")
log "draining the $BACKLOG_N-file backlog (one run)"
$PY "$HERE/latency.py" drain "$BIN" "$WORK/big" "$WORK/run" >"$RES/backlog.json" ||
    log "backlog run failed (see results)"
rm -rf "$WORK/big" "$WORK/run"

$PY - "$RES" "$N" "$PM_N" "$BACKLOG_N" "$LAT_N" "$RATE" "$RUNS" "$GEN_MAIN" \
    "$GEN_BIG" "$PROFILE" <<'EOF'
import json, os, statistics, sys

res, n, pm_n, big_n, lat_n, rate, runs, gen_main, gen_big, prof = sys.argv[1:11]

def jl(name):
    p = os.path.join(res, name)
    if not os.path.exists(p):
        return []
    return [json.loads(l) for l in open(p) if l.strip()]

def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None

def f(x, d=1):
    return "n/a" if x is None else ("%.*f" % (d, x))

ceil = []
for line in open(os.path.join(res, "ceiling.txt")):
    ceil.append(dict(kv.split("=") for kv in line.split()))
c_rate = med([float(c["msgs_per_s"]) for c in ceil])
c_mib = med([float(c["mb_per_s"]) for c in ceil])
drain, pm, lat = jl("drain.json"), jl("procmail.json"), jl("latency.json")
backlog = jl("backlog.json")
d_rate = med([d["msgs_per_s"] for d in drain if d.get("ok")])
d_mib = med([d["mib_per_s"] for d in drain if d.get("ok")])
d_hwm = med([d["vmhwm_kib"] / 1024 for d in drain if d.get("ok")])
d_anon = med([d["peak_rss_anon_kib"] / 1024 for d in drain if d.get("ok")])
p_rate = med([p["msgs_per_s"] for p in pm if p.get("ok")])
p_mib = med([p["mib_per_s"] for p in pm if p.get("ok")])
l_ok = [l for l in lat if l.get("ok")]

def kv(s):
    return dict(x.split("=") for x in s.split())

gm = kv(gen_main)
out = []
w = out.append
w("## Ingest (bench/ingest.sh)\n")
w("Messages: %s generated by `bench/gen_mail.py` (seed 20261204): %s bytes, "
  "%s with a 20-200 KiB attachment; IMS2.0 waveform/PHD/request/SOH and "
  "operator mail, Postfix-style headers. %s runs of each measurement, "
  "interleaved; medians. The machine is shared (see the load average in the "
  "header): compare the ratios, not the absolute rates.\n"
  % (gm["files"], gm["bytes"], gm["attachments"], runs))
c_cpu = med([float(c["cpu_ms_per_msg"]) for c in ceil if "cpu_ms_per_msg" in c])
d_cpu = med([d.get("cpu_ms_per_msg") for d in drain if d.get("ok")])
p_cpu = med([p.get("cpu_ms_per_msg") for p in pm if p.get("ok")])
w("| measurement | msgs/s (median) | MiB/s | CPU ms/msg | runs (msgs/s) |")
w("| --- | ---: | ---: | ---: | --- |")
w("| GMime parse-only ceiling, %s threads | %s | %s | %s | %s |" % (
    ceil[0]["threads"] if ceil else "?", f(c_rate), f(c_mib, 2), f(c_cpu, 4),
    ", ".join(c["msgs_per_s"] for c in ceil)))
w("| vmingestd drain of %s (start to empty new/) | %s | %s | %s | %s |" % (
    n, f(d_rate), f(d_mib, 2), f(d_cpu, 4),
    ", ".join(str(d["msgs_per_s"]) if d.get("ok") else "FAILED" for d in drain)))
w("| procmail, 10 recipes, 1 process/msg (first %s msgs) | %s | %s | %s | %s |" % (
    pm_n, f(p_rate), f(p_mib, 2), f(p_cpu, 4),
    ", ".join(str(p["msgs_per_s"]) if p.get("ok") else "FAILED" for p in pm)))
w("")
w("CPU ms/msg is user+system CPU time per message (parse_ceiling: "
  "getrusage; vmingestd: /proc/PID/task/*/schedstat; procmail: bash "
  "`time`, children included). It depends much less on what else the "
  "machine runs than the wall-clock rate does, so the ratios are given "
  "both ways.\n")
r_ceil = d_rate / c_rate if d_rate and c_rate else None
r_pm = d_rate / p_rate if d_rate and p_rate else None
rc_ceil = c_cpu / d_cpu if c_cpu and d_cpu else None
rc_pm = p_cpu / d_cpu if p_cpu and d_cpu else None
w("| ratio | wall rate | CPU per message | target | met (wall) |")
w("| --- | ---: | ---: | ---: | --- |")
w("| vmingestd / parse ceiling | %s%% | %s%% | >= 60%% | %s |" % (
    f(r_ceil * 100 if r_ceil else None), f(rc_ceil * 100 if rc_ceil else None),
    "yes" if r_ceil and r_ceil >= 0.6 else "**no**"))
w("| vmingestd / procmail | %sx | %sx | >= 15x | %s |" % (
    f(r_pm), f(rc_pm), "yes" if r_pm and r_pm >= 15 else "**no**"))
w("")
w("Every drain run checks that `vmingest stats --json` shows last_seq == "
  "records == %s after the stop (%d of %d runs ok); every procmail run that "
  "all %s messages were delivered (%d of %d ok). procmail fsyncs each "
  "delivery (checked with strace), vmingestd fsyncs each batch commit and "
  "new/ after the unlinks.\n" % (n, sum(1 for d in drain if d.get("ok")),
                                 len(drain), pm_n,
                                 sum(1 for p in pm if p.get("ok")), len(pm)))

w("### Memory\n")
w("Peak RSS is VmHWM from /proc/PID/status just before the stop; it counts "
  "the pages of the LMDB map the daemon has touched (file-backed, shared "
  "page cache, grows with the store, not with the backlog). RssAnon "
  "(private memory: heap, buffers, LMDB dirty pages) is sampled every 50 ms "
  "and its peak shown apart.\n")
w("| run | files | VmHWM MiB | peak RssAnon MiB | peak RssFile MiB | msgs/s | target |")
w("| --- | ---: | ---: | ---: | ---: | ---: | --- |")
w("| drain of %s (median of %s) | %s | %s | %s | %s | %s | |" % (
    n, runs, n, f(d_hwm), f(d_anon),
    f(med([d["peak_rss_file_kib"] / 1024 for d in drain if d.get("ok")])),
    f(d_rate)))
for b in backlog:
    target = "VmHWM <= 64 MiB: %s; RssAnon <= 64 MiB: %s" % (
        "yes" if b.get("vmhwm_kib", 1e12) <= 65536 else "**no**",
        "yes" if b.get("peak_rss_anon_kib", 1e12) <= 65536 else "**no**")
    w("| backlog of %s (1 run)%s | %s | %s | %s | %s | %s | %s |" % (
        big_n, "" if b.get("ok") else " FAILED", b.get("files"),
        f(b.get("vmhwm_kib", 0) / 1024), f(b.get("peak_rss_anon_kib", 0) / 1024),
        f(b.get("peak_rss_file_kib", 0) / 1024), f(b.get("msgs_per_s")), target))
if not backlog:
    w("| backlog of %s | not run | | | | | |" % big_n)
w("")

w("### Latency: rename into new/ -> commit at %s msgs/s\n" % rate)
w("`bench/latency.py rate`: %s messages are written and fsynced into tmp/ "
  "first, then renamed into new/ at %s/s by one thread, which notes the "
  "time after each rename. The daemon logs one line per message after the "
  "commit (commit -> unlink -> log line); the time that line is read from "
  "its stderr pipe minus the rename time is the latency, an upper bound of "
  "rename -> durable commit. The daemon's own histogram "
  "(`vmingest_ingest_latency_seconds` at /metrics, file ctime -> commit) "
  "gives the bucket bound holding the p99 as a cross-check.\n" % (lat_n, rate))
w("| run | sent msgs/s | p50 ms | p90 ms | p99 ms | max ms | /metrics p99 bucket | daemon CPU s | run-queue wait s | load avg | ok |")
w("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |")
for i, l in enumerate(lat):
    m = l.get("metrics") or {}
    le = m.get("latency_p99_le_s")
    w("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
        "%d%s" % (i + 1, " (nice %d)" % l["nice"] if l.get("nice") else ""),
        l.get("achieved_rate"), l.get("p50_ms"), l.get("p90_ms"),
        l.get("p99_ms"), l.get("max_ms"),
        "<= %g s" % le if le is not None else "n/a",
        f(l.get("cpu_s"), 2), f(l.get("runq_wait_s"), 2),
        " ".join(l.get("loadavg") or []), "yes" if l.get("ok") else "FAILED"))
fs = jl("fsync.json")
if fs:
    w("| baseline: one 4 KiB write + fdatasync on this disk (%s each, median of %d runs) | | %s | | %s | %s | | | | | |" % (
        fs[0]["count"], len(fs), f(med([x["p50_ms"] for x in fs]), 3),
        f(med([x["p99_ms"] for x in fs]), 3), f(med([x["max_ms"] for x in fs]), 3)))
w("")
w("Run-queue wait is the time the daemon's threads were runnable but "
  "waited for a CPU (schedstat), summed over threads: the share of the "
  "latency a loaded machine adds.")
l99 = med([l["p99_ms"] for l in l_ok if not l.get("nice")])
ln = [l["p99_ms"] for l in l_ok if l.get("nice")]
w("")
w("Median p99 of the %s ordinary runs: %s ms (target <= 10 ms: %s)." % (
    runs, f(l99, 2), "yes" if l99 is not None and l99 <= 10 else "**no**"))
if ln:
    w(" One more run with the daemon at nice -10 (the rest of the machine's "
      "load stays as it is): p99 %s ms (%s)." % (
          f(ln[0], 2), "<= 10 ms" if ln[0] <= 10 else "> 10 ms"))
w("")

cm = [d.get("metrics") or {} for d in drain if d.get("ok")]
com_n = med([m.get("commits") for m in cm])
com_s = med([m.get("commit_seconds_sum") for m in cm])
if com_n:
    w("### Commits during the drain\n")
    w("From /metrics `vmingest_commit_seconds` at the end of each drain "
      "(median): %s commits for %s messages (%s msgs per batch), %s s in "
      "store commits of a %s s drain (%s ms per commit, %s%% of the wall "
      "time on the main loop).\n" % (
          f(com_n, 0), n, f(int(n) / com_n), f(com_s, 2),
          f(med([d["seconds"] for d in drain if d.get("ok")]), 2),
          f(com_s / com_n * 1000 if com_s else None),
          f(com_s / med([d["seconds"] for d in drain if d.get("ok")]) * 100
            if com_s else None, 0)))

if prof and os.path.exists(prof):
    want = [("worker_main", "worker threads, total"),
            ("read_all", "  read the file (incl. interrupts taken there)"),
            ("pipeline_run", "  pipeline (normalize + IMS + rules)"),
            ("normalize_message", "    normalize_message"),
            ("g_mime_parser_construct_message", "      GMime parse"),
            ("walk", "      MIME walk (decode, charset, text)"),
            ("g_mime_encoding_base64_decode_step", "        base64 decode"),
            ("set_sha256", "      sha256 (raw + parts)"),
            ("ims_parse_part", "      IMS parse"),
            ("rules_run", "    Sieve rules"),
            ("ingest_run", "main loop, total"),
            ("commit_batch", "  commit_batch"),
            ("store_add", "    store_add (pack + LMDB puts)"),
            ("record_pack", "    record_pack (protobuf; also called outside store_add)"),
            ("mdb_txn_commit", "    mdb_txn_commit (write + fsync)"),
            ("finish_jobs", "    finish_jobs (unlink, log, publish)"),
            ("log_info", "      log_info"),
            ("do_fsync", "all fsync (kernel)")]
    got = {}
    for line in open(prof):
        p = line.split()
        if len(p) >= 4 and p[0].endswith("%") and p[2].startswith("["):
            sym = p[3]
            if sym not in got:
                got[sym] = (p[0], p[1])
    w("### Where the daemon's CPU goes (perf, one drain of %s)\n" % n)
    pd = jl("perf-drain.json")
    if pd:
        w("`perf record --call-graph dwarf` at 499 Hz on one drain (%s msgs/s "
          "under perf). Inclusive share of the daemon's CPU samples "
          "(children included; a thread blocked in fsync is off-CPU and not "
          "sampled):\n" % pd[0].get("msgs_per_s"))
    w("| where | inclusive % of CPU samples |")
    w("| --- | ---: |")
    for sym, label in want:
        if sym in got:
            w("| %s (`%s`) | %s |" % (label.replace("  ", "&nbsp;&nbsp;"), sym,
                                      got[sym][0]))
    w("")
print("\n".join(out))
EOF
