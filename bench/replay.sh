#!/bin/sh
# replay.sh BUILD_DIR - benchmark `vmingest replay`; prints a markdown section.
#
#   1. raw replay to /dev/null from a warm store: MB/s of raw message bytes
#      (store: REPLAY_N messages of REPLAY_SIZE bytes, default 20000 x 32 KiB)
#   2. `--since` on a SINCE_N-record store (default 1,000,000): time from
#      exec to the first byte on stdout, for a time near the end and one in
#      the middle of the log
#
# Stores are built with bench/mkstore (through lib/store.h, not the daemon)
# in $BENCH_WORK (default BUILD_DIR/bench/work) and kept for the next run;
# `rm -rf` it to rebuild (a store whose size differs is rebuilt too).
# BENCH_QUICK=1: 2000 x 32 KiB and 100,000 records.  Nothing here asserts:
# it measures and prints.
set -e
B=$(cd "${1:?usage: replay.sh BUILD_DIR}" && pwd)
HERE=$(cd "$(dirname "$0")" && pwd)
W=${BENCH_WORK:-$B/bench/work}
if [ "${BENCH_QUICK:-0}" = 1 ]; then
	RN=${REPLAY_N:-2000}; SN=${SINCE_N:-100000}
else
	RN=${REPLAY_N:-20000}; SN=${SINCE_N:-1000000}
fi
RS=${REPLAY_SIZE:-32768}
VMI=$B/vmingest
PY=${PYTHON:-/usr/bin/python3}

"$HERE/build-tools.sh" "$B"
mkdir -p "$W"

build() {	# dir n size step_us
	if [ ! -f "$1/built" ] || [ "$(cat "$1/n" 2>/dev/null)" != "$2 $3" ]; then
		rm -rf "$1"
		t0=$(date +%s.%N)
		"$B/bench/mkstore" "$1" "$2" --size "$3" --step-us "$4" --batch 5000 \
		    --map $((64 << 30)) >/dev/null
		t1=$(date +%s.%N)
		echo "$t0 $t1" | awk '{ printf "%.1f\n", $2 - $1 }' >"$1/built"
		echo "$2 $3" >"$1/n"
	fi
}

build "$W/tput" "$RN" "$RS" 1000
build "$W/since" "$SN" 200 1000

# 1. throughput: one warm-up pass, then the best of three
"$VMI" replay --store "$W/tput" --format raw >/dev/null
best=999999
for i in 1 2 3; do
	t0=$(date +%s.%N)
	"$VMI" replay --store "$W/tput" --format raw >/dev/null
	t1=$(date +%s.%N)
	best=$(echo "$t0 $t1 $best" | awk '{ d = $2 - $1; print (d < $3) ? d : $3 }')
done
bytes=$((RN * RS))
mbs=$(echo "$bytes $best" | awk '{ printf "%.0f", $1 / $2 / 1e6 }')
# the same with a filter that needs every record unpacked
t0=$(date +%s.%N)
"$VMI" replay --store "$W/tput" --format raw --topic bench. >/dev/null
t1=$(date +%s.%N)
mbs_f=$(echo "$t0 $t1 $bytes" | awk '{ printf "%.0f", $3 / ($2 - $1) / 1e6 }')
t0=$(date +%s.%N)
"$VMI" replay --store "$W/tput" --format mbox >/dev/null
t1=$(date +%s.%N)
mbs_m=$(echo "$t0 $t1 $bytes" | awk '{ printf "%.0f", $3 / ($2 - $1) / 1e6 }')

# 2. --since: time to first byte (python measures exec -> first stdout byte)
ttfb() {	# store since
	"$PY" - "$VMI" "$1" "$2" <<'EOF'
import subprocess, sys, time
vmi, store, since = sys.argv[1:4]
best = None
for _ in range(5):
    t0 = time.monotonic()
    p = subprocess.Popen([vmi, "replay", "--store", store, "--since", since,
                          "--format", "raw"], stdout=subprocess.PIPE)
    first = p.stdout.read(1)
    t = time.monotonic() - t0
    p.kill()
    p.wait()
    assert first, "no output"
    best = t if best is None or t < best else best
print("%.1f" % (best * 1000))
EOF
}
# received times: start = build time - N*1ms; record i at start + i ms
first_us=$("$VMI" replay --store "$W/since" --to 1 | "$PY" -c \
    'import json,sys; print(json.loads(sys.stdin.readline())["received_at_us"])')
near_end=$(( (first_us + (SN - 1000) * 1000) / 1000000 ))
middle=$(( (first_us + (SN / 2) * 1000) / 1000000 ))
t_end=$(ttfb "$W/since" "@$near_end")
t_mid=$(ttfb "$W/since" "@$middle")
t_start=$(ttfb "$W/since" "@$(( first_us / 1000000 ))")
size_since=$(du -sh "$W/since/data.mdb" | cut -f1)

cat <<EOF
## Replay (bench/replay.sh)

Machine: $(nproc) CPUs, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo) RAM; stores built with bench/mkstore
(tput: $(cat "$W/tput/built") s, since: $(cat "$W/since/built") s).

| measurement | result | target |
| --- | --- | --- |
| raw replay to /dev/null, warm store, $RN x $RS B (best of 3) | **$mbs MB/s** | >= 300 MB/s |
| same with \`--topic bench.\` (every record unpacked) | $mbs_f MB/s | - |
| \`--format mbox\` (mboxrd quoting scan) | $mbs_m MB/s | - |
| \`--since\` near the end, $SN-record store ($size_since): exec to first byte (best of 5) | **$t_end ms** | < 50 ms |
| \`--since\` in the middle | $t_mid ms | < 50 ms |
| \`--since\` at the first record | $t_start ms | - |

\`--since\` seeks the by_time index (store_time_seek) and looks back at most
4096 seqs for records that finished out of order, so its start cost does not
grow with the store.
EOF
