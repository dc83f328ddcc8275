#!/bin/sh
# build-tools.sh BUILD_DIR - compile the bench/test helper programs
# (bench/mkstore.c) against BUILD_DIR's libraries into BUILD_DIR/bench/.
# Used by bench/replay.sh and tests/e2e/test_retention.py; the Makefile
# does not build them (they are not part of the product).
set -e
B=${1:?usage: build-tools.sh BUILD_DIR}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
mkdir -p "$B/bench"
PKGS="gmime-3.0 glib-2.0 libprotobuf-c lmdb libzmq libmicrohttpd inih jansson libsystemd"
# a sanitizer build (make asan, BUILD=build-asan SAN=1) needs the runtime too
SAN=
if nm "$B/libvmingest.a" 2>/dev/null | grep -q __asan_init; then
	SAN="-fsanitize=address,undefined"
fi
for p in mkstore; do
	src="$HERE/$p.c"
	out="$B/bench/$p"
	if [ ! -x "$out" ] || [ "$src" -nt "$out" ] || [ "$B/libvmingest.a" -nt "$out" ]; then
		${CC:-cc} -std=gnu11 -O2 -g -Wall -Wextra -D_GNU_SOURCE $SAN \
		    -iquote "$ROOT/lib" -isystem "$B/gen" $(pkg-config --cflags $PKGS) \
		    -o "$out" "$src" "$B/libvmingest.a" $(pkg-config --libs $PKGS) -lm -pthread
	fi
done
