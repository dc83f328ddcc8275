#!/bin/sh
# publish.sh BUILD_DIR - the ZeroMQ publisher and replay service (issue 3),
# as a markdown section on stdout (bench/run.sh appends it to RESULTS.md).
#
# 1. replay: a store of PB_RECORDS (default 200000) records of ~4 KiB is
#    built directly with lib/store.h (publish_bench mkstore), vmingestd is
#    started on it, and one libvmingest-client subscriber replays it all
#    from the start over tcp loopback; next to it, a bare libzmq PUB/SUB
#    of the same frame sizes in one process (the ceiling).
# 2. latency: 10 subscribers "from now"; mails renamed into new/ at
#    1000/s; rename -> the subscriber's vmi_sub_next(), and the daemon's
#    send -> vmi_sub_next() (the publish path alone).
# 3. ingest: a backlog of PB_INGEST (default 5000) mails renamed into new/
#    at once, time until all are committed, with 0 and with 10 live
#    subscribers (in the bench process, on the same machine).
#
# Env: PB_RECORDS, PB_LAT_COUNT (3000), PB_INGEST (5000), PB_TMP (mktemp).
set -e
B=${1:?usage: publish.sh BUILD_DIR}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
case $B in /*) BIN=$B ;; *) BIN=$ROOT/$B ;; esac
N=${PB_RECORDS:-200000}
LATN=${PB_LAT_COUNT:-3000}
ING=${PB_INGEST:-5000}
W=${PB_TMP:-$(mktemp -d /tmp/vmi-publish-bench.XXXXXX)}
make -s -C "$ROOT" BUILD="$B" "$B/bench/publish_bench" >&2
PB=$BIN/bench/publish_bench
PID=

free_port() {
	/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

start_daemon() {	# DIR
	d=$1
	mkdir -p "$d/md/tmp" "$d/md/new" "$d/md/cur"
	P1=$(free_port); P2=$(free_port)
	PUB=tcp://127.0.0.1:$P1
	REP=tcp://127.0.0.1:$P2
	cat > "$d/vmingestd.conf" <<CONF
[daemon]
state_dir = $d
allow_root = yes
[store]
path = $d/store
map_size = 16G
[http]
listen = off
[publish]
endpoint = $PUB
replay_endpoint = $REP
[queue default]
maildir = $d/md
topic = bench.data
CONF
	"$BIN/vmingestd" -c "$d/vmingestd.conf" 2> "$d/vmingestd.log" &
	PID=$!
	i=0
	until grep -q "ready:" "$d/vmingestd.log" 2>/dev/null; do
		i=$((i + 1))
		if [ $i -gt 3000 ] || ! kill -0 $PID 2>/dev/null; then
			echo "vmingestd did not start:" >&2
			cat "$d/vmingestd.log" >&2
			exit 1
		fi
		sleep 0.01
	done
}

stop_daemon() {
	kill $PID 2>/dev/null && wait $PID 2>/dev/null || true
	PID=
}
trap 'stop_daemon; rm -rf "$W"' EXIT

j() {	# JSON KEY
	/usr/bin/python3 -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"
}

echo "## Publish and replay over ZeroMQ (issue 3)"
echo
echo "$(uname -m), $(nproc) CPU(s), load average $(cut -d' ' -f1-3 /proc/loadavg)" \
    "at the start, $(date -u +%Y-%m-%dT%H:%MZ); libzmq $(pkg-config --modversion libzmq)," \
    "tcp loopback, defaults for every [store] and [publish] key."
echo

# ---- 1. replay ----
mkdir -p "$W/replay"
"$PB" mkstore "$W/replay/store" "$N" 4096 >&2
start_daemon "$W/replay"
R=$("$PB" replay "$PUB" "$REP" "$N")
stop_daemon
rm -rf "$W/replay"
BL=$("$PB" baseline "$N" 4096)
RR=$(j "$R" records_per_s); BR=$(j "$BL" records_per_s)
PCT=$(/usr/bin/python3 -c "print('%.0f' % (100.0 * $RR / $BR))")
echo "### Replay of $N records from the log to one subscriber"
echo
echo "| path | records/s | MB/s | record bytes |"
echo "| --- | ---: | ---: | ---: |"
echo "| vmingestd replay -> libvmingest-client | $RR | $(j "$R" mb_per_s) | $(j "$R" record_bytes) |"
echo "| bare libzmq PUB/SUB, 4096-byte body | $BR | $(j "$BL" mb_per_s) | 4096 |"
echo
echo "Replay reaches ${PCT}% of the bare PUB/SUB (goal: at least 40%, and at" \
    "least 100,000 records/s)."
echo

# ---- 2. latency ----
mkdir -p "$W/lat"
start_daemon "$W/lat"
L=$("$PB" latency "$PUB" "$REP" "$W/lat/md" 10 1000 "$LATN")
stop_daemon
rm -rf "$W/lat"
echo "### End-to-end latency, 10 subscribers, 1000 messages/s"
echo
echo "$LATN messages renamed into new/ at 1000/s, each received by 10" \
    "libvmingest-client subscribers ($(j "$L" samples) of $(j "$L" expected) samples)."
echo
echo "| measured | p50 ms | p90 ms | p99 ms | max ms |"
echo "| --- | ---: | ---: | ---: | ---: |"
echo "| rename into new/ -> vmi_sub_next() | $(j "$L" p50_ms) | $(j "$L" p90_ms) | $(j "$L" p99_ms) | $(j "$L" max_ms) |"
echo "| daemon send -> vmi_sub_next() | $(j "$L" pub_p50_ms) | | $(j "$L" pub_p99_ms) | |"
echo
echo "Goal: p50 at most 3 ms, p99 at most 15 ms (rename -> next)."
echo

# ---- 3. ingest rate with and without subscribers ----
mkdir -p "$W/ing0" "$W/ing10"
start_daemon "$W/ing0"
I0=$("$PB" ingest "$PUB" "$REP" "$W/ing0/md" "$W/ing0/store" 0 "$ING")
stop_daemon
start_daemon "$W/ing10"
I10=$("$PB" ingest "$PUB" "$REP" "$W/ing10/md" "$W/ing10/store" 10 "$ING")
stop_daemon
R0=$(j "$I0" messages_per_s); R10=$(j "$I10" messages_per_s)
echo "### Ingest rate with subscribers connected"
echo
echo "| subscribers | messages | seconds | messages/s | least received by a subscriber |"
echo "| ---: | ---: | ---: | ---: | ---: |"
echo "| 0 | $ING | $(j "$I0" seconds) | $R0 | - |"
echo "| 10 | $ING | $(j "$I10" seconds) | $R10 | $(j "$I10" min_received) |"
echo
echo "With 10 subscribers: $(/usr/bin/python3 -c "print('%.0f' % (100.0 * $R10 / $R0))")%" \
    "of the rate without (goal: at least 90%).  The subscribers run on the" \
    "same machine as the daemon and compete with it for the CPUs."
