#!/bin/sh
# demo.sh BUILD - the `make demo` walk-through on the embedded default.
#
# Starts vmingestd with no config file (state in ./var/vmingest, queue
# "default" on ./var/maildir), starts a subscriber, delivers sample
# verification mail as an MTA does (write into tmp/, rename into new/):
# an IMS2.0 waveform, a radionuclide spectrum, an AutoDRM request and a
# broken message; shows what the subscriber received and what the store
# holds; stops the daemon cleanly.  ./var is the demo's scratch space and
# is wiped first.
set -eu
B=${1:-build}
D=tests/data/demo
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

rm -rf ./var
mkdir -p ./var/maildir/tmp ./var/maildir/new ./var/maildir/cur

say "starting vmingestd (embedded default: ./var/vmingest, ./var/maildir)"
"$B/vmingestd" > ./var/vmingestd.log 2>&1 &
dpid=$!
sub=""
cleanup() {
	[ -n "$sub" ] && kill "$sub" 2>/dev/null || true
	kill "$dpid" 2>/dev/null || true
}
trap cleanup EXIT INT TERM
# wait until the daemon says it is ready (store open, queues watched)
i=0
until grep -q 'ready:' ./var/vmingestd.log; do
	i=$((i + 1))
	if [ $i -gt 300 ] || ! kill -0 "$dpid" 2>/dev/null; then
		cat ./var/vmingestd.log; echo "demo: vmingestd did not start"; exit 1
	fi
	sleep 0.05
done
cat ./var/vmingestd.log

n=$(ls $D/*.eml | wc -l)
if "$B/vmingest" sub --help >/dev/null 2>&1; then
	say "subscriber: vmingest sub --from-start --count $((n - 1)) --stats (all topics)"
	"$B/vmingest" sub --from-start --count $((n - 1)) --stats > ./var/sub.out 2>&1 &
	sub=$!
fi

say "delivering $n messages into ./var/maildir (tmp/ then rename into new/)"
k=0
for f in $D/*.eml; do
	k=$((k + 1))
	name="$(date +%s).M${k}P$$.demo"
	cp "$f" "./var/maildir/tmp/$name"
	mv "./var/maildir/tmp/$name" "./var/maildir/new/$name"
	echo "  $f -> new/$name"
done

# wait until every file is committed and gone from new/
i=0
until [ -z "$(ls ./var/maildir/new)" ] &&
    [ "$("$B/vmingest" stats --json 2>/dev/null | sed -n 's/.*"last_seq": *\([0-9]*\).*/\1/p')" = "$n" ]; do
	i=$((i + 1))
	[ $i -gt 600 ] && { echo "demo: messages were not ingested"; cat ./var/vmingestd.log; exit 1; }
	sleep 0.05
done

say "the daemon's decisions (one log line per message)"
grep 'seq=' ./var/vmingestd.log

if [ -n "$sub" ]; then
	say "what the subscriber received (the broken message is quarantined, not published)"
	i=0
	while kill -0 "$sub" 2>/dev/null; do
		i=$((i + 1))
		[ $i -gt 200 ] && { echo "demo: subscriber still waiting"; break; }
		sleep 0.05
	done
	cat ./var/sub.out
	sub=""
fi

say "vmingest list"
"$B/vmingest" list

say "vmingest show 1"
"$B/vmingest" show 1

say "stopping vmingestd (SIGTERM: finish the batch, exit 0)"
kill -TERM "$dpid"
wait "$dpid" && echo "vmingestd exited 0"
tail -1 ./var/vmingestd.log
trap - EXIT INT TERM
say "done: try  $B/vmingest list --json  or  $B/vmingest show 4 --raw | od -c | head"
