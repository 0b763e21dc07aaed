#!/bin/sh
# The kernel tests again with QF_NO_SIMD=1: the portable paths must pass the same
# byte-for-byte checks as the SIMD ones (which the other runs exercise).
. "${QF_SRCDIR:-.}/tests/tap-sh.sh"
for t in test_dtype test_ggml_quants test_kquants test_quantize; do
	QF_NO_SIMD=1 "$QF_BUILDDIR/tests/$t" > "$tmp/$t.tap" 2>&1
	rc=$?
	bad=$(grep -c '^not ok' "$tmp/$t.tap")
	total=$(grep -c '^ok\|^not ok' "$tmp/$t.tap")
	[ $rc = 0 ] && [ "$bad" = 0 ] && [ "$total" -gt 10 ]; ok $? "$t with QF_NO_SIMD=1: $total checks, $bad failed"
	[ "$bad" = 0 ] || grep '^not ok' "$tmp/$t.tap" | sed 's/^/# /'
done
finish
