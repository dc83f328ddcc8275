#!/bin/sh
# http.sh BUILD_DIR - the status endpoint under load (issue 4), as a
# markdown section on stdout (bench/run.sh appends it to RESULTS.md).
#
# Starts BUILD_DIR/vmingestd in a temp dir on free loopback ports, then:
#   1. ingest rate without HTTP load: N messages (a few KB each) are
#      written to tmp/ and renamed into new/ in one burst; the rate is N
#      over the time until vmingest_last_seq reaches the new head
#   2. the same while bench/http_load sends RATE requests/s to /metrics
#      over 4 keep-alive connections the whole time (rounds 1 and 2
#      alternate ROUNDS times; medians are reported)
#   3. the same with `ab -k -c 4` (as fast as it can: on a small machine
#      this mostly measures the CPU that ab and the kernel take away)
#   4. /metrics alone: ab with keep-alive, and without (a new TCP
#      connection per request, as a naive poller does)
# Goals: /metrics >= 5,000 requests/s; ingest under a 5,000 requests/s
# load >= 90% of the rate without it.  Env: HTTP_N (messages per round,
# default 8000), HTTP_ROUNDS (default 5), HTTP_RATE (default 5000).
# Needs ab (apache2-utils) and curl; prints "skipped" without them.
set -e
B=${1:?usage: http.sh BUILD_DIR}
case $B in /*) ;; *) B=$(pwd)/$B ;; esac
N=${HTTP_N:-8000}
ROUNDS=${HTTP_ROUNDS:-5}
RATE=${HTTP_RATE:-5000}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
PY=/usr/bin/python3

echo "## HTTP status endpoint under load (issue 4)"
echo
for t in ab curl; do
	if ! command -v $t >/dev/null 2>&1; then
		echo "skipped: $t is not installed"
		exit 0
	fi
done

make -s -C "$ROOT" BUILD="$B" "$B/bench/http_load" >&2
T=$(mktemp -d /tmp/vmi-bench-http.XXXXXX)
PID=
ABPID=
cleanup() {
	[ -n "$ABPID" ] && kill "$ABPID" 2>/dev/null || true
	if [ -n "$PID" ]; then
		kill "$PID" 2>/dev/null || true
		wait "$PID" 2>/dev/null || true
	fi
	rm -rf "$T"
}
trap cleanup EXIT INT TERM

ports=$($PY -c '
import socket
ss = [socket.socket() for _ in range(3)]
for s in ss: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in ss))')
set -- $ports
HP=$1
URL=http://127.0.0.1:$HP
mkdir -p "$T/mail/tmp" "$T/mail/new" "$T/mail/cur"
cat > "$T/vmingestd.conf" <<EOF
[daemon]
state_dir = $T/state
allow_root = yes
[store]
map_size = 2G
[http]
listen = 127.0.0.1:$HP
max_connections = 256
per_ip = 256
[publish]
endpoint = tcp://127.0.0.1:$2
replay_endpoint = tcp://127.0.0.1:$3
[queue default]
maildir = $T/mail
topic = bench.http
EOF
"$B/vmingestd" -c "$T/vmingestd.conf" > "$T/log" 2>&1 &
PID=$!
i=0
until curl -sf -o /dev/null "$URL/healthz"; do
	i=$((i + 1))
	if [ $i -gt 300 ] || ! kill -0 $PID 2>/dev/null; then
		echo "vmingestd did not come up:"; cat "$T/log"; exit 1
	fi
	sleep 0.1
done

# ingest_round: deliver N messages in one burst, print messages/s
ingest_round() {
	$PY - "$T/mail" "$N" "$URL" "$1" <<'EOF'
import os, sys, time, urllib.request
md, n, url, tag = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
def last_seq():
    for line in urllib.request.urlopen(url + "/metrics", timeout=10).read().decode().splitlines():
        if line.startswith("vmingest_last_seq "):
            return int(float(line.split()[1]))
start_seq = last_seq()
body = "".join("%05d the quick brown fox jumps over the lazy dog\n" % k for k in range(60))
names = []
for i in range(n):
    name = "%d.M%dP%d.%s%d.bench" % (time.time(), i, os.getpid(), tag, i)
    with open(os.path.join(md, "tmp", name), "w") as f:
        f.write("From: bench@example\nTo: ops@example\nSubject: %s %d\n"
                "Message-ID: <%s.%d.%d@bench>\n\n%s" % (tag, i, tag, i, os.getpid(), body))
    names.append(name)
t0 = time.monotonic()
for name in names:
    os.rename(os.path.join(md, "tmp", name), os.path.join(md, "new", name))
deadline = t0 + 600
while last_seq() < start_seq + n:
    if time.monotonic() > deadline:
        sys.exit("timed out")
    time.sleep(0.01)
print("%.0f" % (n / (time.monotonic() - t0)))
EOF
}

# ab_rps ARGS...: requests per second from ab's report
ab_rps() {
	ab "$@" 2>/dev/null | awk '/^Requests per second/ { print $4 }'
}

median() {
	tr ' ' '\n' | grep . | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'
}

# CPU time (clock ticks) of the daemon's HTTP thread (MHD names it "MHD-single")
mhd_tid=$(for t in /proc/$PID/task/*; do grep -q '^MHD' $t/comm && basename $t; done | head -1)
mhd_ticks() { awk '{ print $14 + $15 }' /proc/$PID/task/$mhd_tid/stat; }
HZ=$(getconf CLK_TCK)
quiet=""
paced=""
mhdcpu=""
pacedrps=""
abl=""
abrps=""
r=0
while [ $r -lt "$ROUNDS" ]; do
	quiet="$quiet $(ingest_round q$r)"
	# the load runs for the whole round: started before the burst, stopped after
	"$B/bench/http_load" 127.0.0.1 "$HP" /metrics "$RATE" 600 4 > "$T/load.out" &
	ABPID=$!
	sleep 1
	c0=$(mhd_ticks); w0=$(date +%s.%N)
	paced="$paced $(ingest_round p$r)"
	c1=$(mhd_ticks); w1=$(date +%s.%N)
	kill -TERM "$ABPID"; wait "$ABPID" || true
	ABPID=
	mhdcpu="$mhdcpu $(awk -v c="$((c1 - c0))" -v hz="$HZ" -v a="$w0" -v b="$w1" \
	    'BEGIN { printf "%.1f", 100 * c / hz / (b - a) }')"
	pacedrps="$pacedrps $(sed -n 's/.*rate=\([0-9]*\).*/\1/p' "$T/load.out")"
	r=$((r + 1))
done
# as fast as ab can (fewer rounds: it only shows the CPU cost of a flood)
r=0
while [ $r -lt 2 ]; do
	ab -k -c 4 -t 600 -n 100000000 "$URL/metrics" > "$T/ab.out" 2>&1 &
	ABPID=$!
	sleep 1
	abl="$abl $(ingest_round a$r)"
	kill -INT "$ABPID" 2>/dev/null || true
	wait "$ABPID" 2>/dev/null || true
	ABPID=
	rps=$(awk '/^Requests per second/ { printf "%.0f", $4 }' "$T/ab.out")
	abrps="$abrps ${rps:-?}"
	r=$((r + 1))
done
mq=$(echo "$quiet" | median)
mp=$(echo "$paced" | median)
ma=$(echo "$abl" | median)
ka=$(ab_rps -k -c 8 -n 50000 "$URL/metrics")
nka=$(ab_rps -c 8 -n 20000 "$URL/metrics")
hz=$(ab_rps -k -c 8 -n 50000 "$URL/healthz")
size=$(curl -s "$URL/metrics" | wc -c)
rss=$(awk '/^VmRSS/ { print $2 }' /proc/$PID/status)
pct() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.0f%%", 100 * a / b }'; }

echo "$(uname -m), $(nproc) CPU(s) shared with other work (load average" \
    "$(cut -d' ' -f1 /proc/loadavg) at the end), $(date -u +%Y-%m-%dT%H:%MZ)." \
    "$N messages of ~3.4 KB per round, burst-renamed into new/; /metrics body" \
    "$size bytes.  Medians of $ROUNDS alternating rounds (each round's figure" \
    "in brackets)."
echo
echo "| measure | result | goal |"
echo "| --- | --- | --- |"
echo "| ingest, no HTTP load (msg/s) [$quiet ] | $mq | |"
echo "| ingest, /metrics at $RATE req/s (msg/s) [$paced ] | $mp | |"
echo "| ratio loaded / unloaded | $(pct "$mp" "$mq") | >= 90% |"
echo "| /metrics req/s achieved by the paced load [$pacedrps ] | | $RATE |"
echo "| HTTP thread CPU at $RATE req/s, % of one core [$mhdcpu ] | $(echo "$mhdcpu" | median)% | |"
echo "| ingest, /metrics flooded by ab -k -c 4 (msg/s) [$abl ] | $ma ($(pct "$ma" "$mq")) | |"
echo "| /metrics req/s during the flood [$abrps ] | | |"
echo "| /metrics req/s alone, keep-alive (ab -k -c 8) | $ka | >= 5,000 |"
echo "| /metrics req/s alone, new connection each (ab -c 8) | $nka | |"
echo "| /healthz req/s alone, keep-alive (ab -k -c 8) | $hz | |"
echo "| daemon RSS after the run | ${rss} kB | |"
echo
