#!/bin/sh
# ims.sh BUILD_DIR [CORPUS] - IMS parse cost next to normalize, as a
# markdown section on stdout (bench/run.sh appends it to RESULTS.md).
#
# Builds BUILD_DIR/bench/ims_cost with the Makefile rule for bench/*.c
# (same compiler flags as the product), then runs it on CORPUS/ims
# (default $VMI_CORPUS, else ../shared/corpus).  Exit 0 with a "skipped"
# line when the corpus is absent.
set -e
B=${1:?usage: ims.sh BUILD_DIR [CORPUS]}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
CORPUS=${2:-${VMI_CORPUS:-$ROOT/../shared/corpus}}
SAMPLES=${IMS_SAMPLES:-31}

echo "## IMS parse cost (issue 6)"
echo
if [ ! -d "$CORPUS/ims" ]; then
	echo "skipped: no IMS corpus in $CORPUS/ims"
	exit 0
fi
make -s -C "$ROOT" BUILD="$B" "$B/bench/ims_cost" >&2
echo "Median per-message time over $SAMPLES samples on $(uname -m)," \
    "$(nproc) CPU(s), $(date -u +%Y-%m-%dT%H:%MZ)." \
    "\"normalize\" is normalize_message() on the whole mail (GMime parse," \
    "decoding, hashing and the IMS parse it calls); \"IMS parse\" is" \
    "ims_parse_part() on the decoded text parts plus ims_finish();" \
    "\"IMS adds\" is IMS / (normalize - IMS).  Files that are not mail" \
    "are wrapped as a text/plain body.  Goal: at most 20%."
echo
case $B in /*) BIN=$B ;; *) BIN=$ROOT/$B ;; esac
"$BIN/bench/ims_cost" "$CORPUS/ims" "$SAMPLES"
