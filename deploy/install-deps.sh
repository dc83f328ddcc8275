#!/bin/sh
# install-deps.sh - install every Debian package vmingest needs to build,
# test, benchmark and demo.  Idempotent: when everything is present it does
# nothing and touches no package list.  Run as root (or via sudo).
#
#   deploy/install-deps.sh          install what is missing
#   deploy/install-deps.sh --check  exit 0 if nothing is missing, 1 otherwise
set -eu

PKGS="
build-essential pkg-config git
libglib2.0-dev libgmime-3.0-dev libssl-dev
liblmdb-dev lmdb-utils
libprotobuf-c-dev protobuf-c-compiler protobuf-compiler
libzmq3-dev
libmicrohttpd-dev
libinih-dev
libjansson-dev
libsystemd-dev
libcmocka-dev
clang libclang-rt-14-dev
python3 python3-pytest python3-zmq python3-protobuf
curl procps
procmail
dovecot-core dovecot-sieve
postfix swaks postfix-lmdb
prometheus
apache2-utils
groff man-db
systemd
"

missing=""
for p in $PKGS; do
	st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
	case "$st" in
	*" installed") ;;
	*) missing="$missing $p" ;;
	esac
done

if [ -z "$missing" ]; then
	exit 0
fi
if [ "${1:-}" = "--check" ]; then
	echo "missing:$missing"
	exit 1
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
	SUDO=sudo
fi

echo "install-deps: installing:$missing" >&2
export DEBIAN_FRONTEND=noninteractive
# Postfix asks how to configure itself; we configure our own instances.
echo "postfix postfix/main_mailer_type select No configuration" | $SUDO debconf-set-selections
$SUDO apt-get update -q
# shellcheck disable=SC2086
$SUDO apt-get install -y -q --no-install-recommends $missing
