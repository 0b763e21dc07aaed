# tap-sh.sh — TAP helpers for the CLI tests (sourced).
n=0; failed=0
ok() { n=$((n+1)); if [ "$1" = 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; failed=$((failed+1)); fi; }
# run CMD...: sets $out, $err, $rc
run() { out=$("$@" 2>"$tmp/stderr"); rc=$?; err=$(cat "$tmp/stderr"); }
expect_rc() { [ "$rc" = "$1" ]; ok $? "$2 (exit $rc, want $1)"; [ "$rc" = "$1" ] || echo "# stderr: $err"; }
contains() { case "$1" in *"$2"*) return 0;; *) return 1;; esac; }
# temps OUT: the temporaries qforge is writing (or left) for output OUT, one per line
temps() { for f in "$1".qftmp-*; do [ -e "$f" ] && echo "$f"; done; }
finish() { echo "1..$n"; [ "$failed" = 0 ]; }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/qfcli-XXXXXX"); trap 'rm -rf "$tmp"' EXIT
: "${QFORGE:=./qforge}" "${QF_SRCDIR:=.}"
