#!/bin/sh
# replay.sh BUILDDIR - replay every harness's seed corpus (tests/fuzz/seeds/NAME)
# through BUILDDIR/fuzz_NAME (ASan+UBSan); any crash or leak fails.
dir=$1
rc=0
n=0
for b in "$dir"/fuzz_*; do
	[ -x "$b" ] || continue
	name=$(basename "$b" | sed 's/^fuzz_//')
	seeds=tests/fuzz/seeds/$name
	if [ ! -d "$seeds" ]; then
		echo "fuzz $name: no seed corpus in $seeds"; rc=1; continue
	fi
	if out=$(ASAN_OPTIONS=detect_leaks=1 "$b" "$seeds" 2>&1); then
		echo "fuzz $name: $(printf '%s\n' "$out" | tail -1) replayed clean"
		n=$((n + 1))
	else
		printf '%s\n' "$out" | tail -30
		echo "fuzz $name: FAILED"
		rc=1
	fi
done
exit $rc
