#!/bin/sh
# setup.sh — from a fresh Debian machine to a built qforge.
# Installs missing build dependencies (only when missing; only as root, otherwise
# prints the apt-get line), then autoreconf + configure + make. Idempotent.
# Usage: ./setup.sh [configure options...]
set -e
cd "$(dirname "$0")"
PKGS="build-essential autoconf automake pkg-config libarchive-dev zlib1g-dev libcjson-dev libxxhash-dev libonig-dev libutf8proc-dev"
missing=""
for p in $PKGS; do
	dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
done
if [ -n "$missing" ]; then
	if [ "$(id -u)" = 0 ]; then
		echo "setup: installing$missing" >&2
		export DEBIAN_FRONTEND=noninteractive
		apt-get update -qq >/dev/null
		apt-get install -y -qq --no-install-recommends $missing >/dev/null
	else
		echo "setup: missing packages. Run as root:" >&2
		echo "  apt-get install -y$missing" >&2
		exit 1
	fi
fi
[ -x configure ] && [ configure -nt configure.ac ] && [ Makefile.in -nt Makefile.am ] || autoreconf -fi >/dev/null 2>&1 || autoreconf -fi
[ -f Makefile ] && [ Makefile -nt configure ] && [ "$#" = 0 ] || ./configure -q "$@"
make -s -j"$(nproc 2>/dev/null || echo 2)" >/dev/null
echo "setup: built $(pwd)/qforge" >&2
