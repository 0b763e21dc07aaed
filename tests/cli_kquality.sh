#!/bin/sh
# The importance matrix helps where the K-quants really apply: on the generated Llama whose rows
# are multiples of 256 (tests/gen_arch.h llama-k256), qforge calibrate on the first half of
# eval-a.txt, then Q4_K_M with and without it, scored on the other half against the original.
# Bound (generous; tests/bench/kquality.sh measured 0.0390 with, 0.0445 without, 20 chunks):
IMATRIX_KLD_RATIO_MAX=1.05   # mean KLD with the imatrix ≤ without × this
. "${QF_SRCDIR:-.}/tests/tap-sh.sh"
G="${QF_BUILDDIR:-.}/tests/bench/gen_k256"
"$G" llama-k256 "$tmp/m"; ok $? "llama-k256 generated"
LC_ALL=C awk -v half=$(($(wc -c < "$QF_SRCDIR/tests/data/eval-a.txt") / 2)) -v a="$tmp/calib.txt" -v b="$tmp/eval.txt" \
	'{ n += length($0) + 1; print > (n <= half ? a : b) }' "$QF_SRCDIR/tests/data/eval-a.txt"
run "$QFORGE" calibrate -q --text "$tmp/calib.txt" --ctx 128 --chunks 24 -o "$tmp/imatrix.gguf" "$tmp/m"
expect_rc 0 "calibrate on the first half"
kld() { "$QFORGE" verify --no-tensors --json --reference "$tmp/m" --text "$tmp/eval.txt" --ctx 128 --chunks 10 "$1" |
	awk -F: '/"kld":/ { gsub(/[ ,\t]/, "", $2); print $2 }'; }
run "$QFORGE" quantize -q --no-quality --target llamacpp-q4_k_m -o "$tmp/plain.gguf" "$tmp/m"
expect_rc 0 "Q4_K_M without an imatrix"
run "$QFORGE" quantize -q --no-quality --target llamacpp-q4_k_m --imatrix "$tmp/imatrix.gguf" -o "$tmp/imx.gguf" "$tmp/m"
expect_rc 0 "Q4_K_M with it"
cmp -s "$tmp/plain.gguf" "$tmp/imx.gguf"; [ $? = 1 ]; ok $? "the imatrix changes the bytes"
a=$(kld "$tmp/plain.gguf"); b=$(kld "$tmp/imx.gguf")
awk -v a="$a" -v b="$b" -v r=$IMATRIX_KLD_RATIO_MAX 'BEGIN { exit !(a > 0 && b > 0 && b <= a * r) }'
ok $? "held-out mean KLD with the imatrix $b ≤ without $a × $IMATRIX_KLD_RATIO_MAX"
finish
