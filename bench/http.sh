#!/bin/sh
# http.sh BUILD_DIR - the status endpoint under load (issue 4), as a
# markdown section on stdout (bench/run.sh appends it to RESULTS.md).
#
# Starts BUILD_DIR/vmingestd in a temp dir on free loopback ports, then:
#   1. ingest rate without HTTP load: N messages (a few KB each) are
#      written to tmp/ and renamed into new/ in one burst; the rate is N
#      over the time until vmingest_last_seq reaches the new head
#   2. the same with `ab -k -c C` hammering /metrics the whole time
#      (rounds 1 and 2 alternate ROUNDS times; medians are reported)
#   3. /metrics alone: ab with keep-alive, and without (a new TCP
#      connection per request, as a naive poller does)
# Goals: /metrics >= 5,000 requests/s; ingest under load >= 90% of the
# rate without it.  Env: HTTP_N (messages per round, default 3000),
# HTTP_ROUNDS (default 3), HTTP_C (ab concurrency, default 4).
# Needs ab (apache2-utils) and curl; prints "skipped" without them.
set -e
B=${1:?usage: http.sh BUILD_DIR}
case $B in /*) ;; *) B=$(pwd)/$B ;; esac
N=${HTTP_N:-3000}
ROUNDS=${HTTP_ROUNDS:-3}
C=${HTTP_C:-4}
PY=/usr/bin/python3

echo "## HTTP status endpoint under load (issue 4)"
echo
for t in ab curl; do
	if ! command -v $t >/dev/null 2>&1; then
		echo "skipped: $t is not installed"
		exit 0
	fi
done

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

quiet=""
loaded=""
loadrps=""
r=0
while [ $r -lt "$ROUNDS" ]; do
	quiet="$quiet $(ingest_round q$r)"
	# load for the whole round: a time limit longer than the round, then stop
	ab -k -c "$C" -t 600 -n 100000000 "$URL/metrics" > "$T/ab.out" 2>&1 &
	ABPID=$!
	sleep 1		# ab warm-up; the load is on before the burst
	loaded="$loaded $(ingest_round l$r)"
	kill -INT "$ABPID" 2>/dev/null || true
	wait "$ABPID" 2>/dev/null || true
	ABPID=
	rps=$(awk '/^Requests per second/ { print $4 }' "$T/ab.out")
	loadrps="$loadrps ${rps:-?}"
	r=$((r + 1))
done
mq=$(echo "$quiet" | median)
ml=$(echo "$loaded" | median)
ka=$(ab_rps -k -c 8 -n 50000 "$URL/metrics")
nka=$(ab_rps -c 8 -n 20000 "$URL/metrics")
hz=$(ab_rps -k -c 8 -n 50000 "$URL/healthz")
size=$(curl -s "$URL/metrics" | wc -c)
rss=$(awk '/^VmRSS/ { print $2 }' /proc/$PID/status)

echo "$(uname -m), $(nproc) CPU(s) (shared with other work), $(date -u +%Y-%m-%dT%H:%MZ)," \
    "$N messages of ~3.4 KB per round, $ROUNDS rounds, load = \`ab -k -c $C\` on /metrics" \
    "(body $size bytes)."
echo
echo "| measure | result | goal |"
echo "| --- | --- | --- |"
echo "| ingest without HTTP load (msg/s, rounds:$quiet) | $mq | |"
echo "| ingest during /metrics load (msg/s, rounds:$loaded) | $ml | |"
echo "| ingest under load / without | $(awk -v a="$ml" -v b="$mq" 'BEGIN { printf "%.0f%%", 100 * a / b }') | >= 90% |"
echo "| /metrics req/s during those rounds |$loadrps | |"
echo "| /metrics req/s alone, keep-alive (ab -k -c 8) | $ka | >= 5,000 |"
echo "| /metrics req/s alone, new connection each (ab -c 8) | $nka | |"
echo "| /healthz req/s alone, keep-alive (ab -k -c 8) | $hz | |"
echo "| daemon RSS after the run | ${rss} kB | |"
echo
