#!/bin/bash
# run.sh BUILD_DIR - the `make bench` driver.
#
# Runs each section script that exists, in this order:
#     bench/ingest.sh publish.sh http.sh rules.sh ims.sh replay.sh
# each as `bench/NAME.sh BUILD_DIR`, which prints its section's markdown
# on stdout (progress on stderr), and writes bench/RESULTS.md: a header
# (date, machine: nproc, CPU model, kernel, memory, load average before
# and after, build flags, git revision) followed by every section.  A
# section that fails keeps its output and gets a note; the others still
# run.  Exit status: 0 if every section ran, 1 if one failed, 2 usage.
#
# BENCH_ONLY="ingest http" runs only the named sections; BENCH_QUICK=1 is
# passed on (smaller sizes).  The results are written to RESULTS.md.new
# first and renamed at the end, so an interrupted run keeps the last
# complete RESULTS.md.
set -uo pipefail

if [ $# -ne 1 ] || [ ! -d "$1" ]; then
	echo "usage: bench/run.sh BUILD_DIR" >&2
	exit 2
fi
BUILD=$(cd "$1" && pwd)
HERE=$(cd "$(dirname "$0")" && pwd)
TOP=$(cd "$HERE/.." && pwd)
OUT="$HERE/RESULTS.md"
SECTIONS="ingest publish http rules ims replay"

loadavg() { cut -d' ' -f1-3 /proc/loadavg; }
cflags() {
	make -s -C "$TOP" BUILD="$BUILD" -pn 2>/dev/null |
	    sed -n 's/^OPT[ :]*= *//p' | head -n 1
}

TMP=$(mktemp "$HERE/RESULTS.md.new.XXXXXX")
trap 'rm -f "$TMP" "$TMP.sec"' EXIT
START=$(date -u '+%Y-%m-%d %H:%M:%S UTC')
LOAD0=$(loadavg)
T0=$(date +%s)
failed=0
body=""

for s in $SECTIONS; do
	script="$HERE/$s.sh"
	[ -f "$script" ] || continue
	if [ -n "${BENCH_ONLY:-}" ] && ! echo " $BENCH_ONLY " | grep -q " $s "; then
		continue
	fi
	echo "bench: $s" >&2
	t=$(date +%s)
	if bash "$script" "$BUILD" >"$TMP.sec"; then
		note=""
	else
		note="**The $s section failed (exit $?); its output is incomplete.**"
		failed=1
	fi
	body+="$(cat "$TMP.sec")"$'\n\n'
	[ -n "$note" ] && body+="$note"$'\n\n'
	body+="_Section $s took $(( $(date +%s) - t )) s._"$'\n\n'
done

{
	echo "# vmingest benchmark results"
	echo
	echo "Written by \`make bench\` (bench/run.sh); do not edit by hand."
	echo
	echo "| | |"
	echo "| --- | --- |"
	echo "| date | $START |"
	echo "| revision | $(git -C "$TOP" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$TOP" diff --quiet HEAD 2>/dev/null || echo ' (working tree has uncommitted changes)') |"
	echo "| CPUs (nproc) | $(nproc) |"
	echo "| CPU model | $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1) |"
	echo "| memory | $(awk '/^MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo) |"
	echo "| kernel | $(uname -sr) |"
	echo "| OS | $(. /etc/os-release 2>/dev/null && echo "$PRETTY_NAME") |"
	echo "| compiler | $(${CC:-cc} --version | head -n 1) |"
	echo "| build flags (OPT) | \`$(cflags)\` |"
	echo "| GMime / LMDB | $(pkg-config --modversion gmime-3.0) / $(pkg-config --modversion lmdb 2>/dev/null || echo '?') |"
	echo "| load average (1/5/15 min) before / after | $LOAD0 / $(loadavg) |"
	echo "| total time | $(( $(date +%s) - T0 )) s |"
	echo
	echo "The machine is shared with other work: absolute rates drift with"
	echo "its load (see the load average above); each section compares"
	echo "against baselines measured in the same run."
	echo
	printf '%s' "$body"
} >"$TMP"
mv "$TMP" "$OUT"
echo "bench: wrote $OUT" >&2
exit $failed
