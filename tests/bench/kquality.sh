#!/bin/sh
# Quality of llama.cpp's formats where the K-quants really apply: the generated checkpoints
# whose rows are multiples of 256 (tests/gen_arch.h: dsv3-k256, llama-k256).  For each, Q8_0,
# Q4_0 and Q4_K_M without an importance matrix, and Q4_0 and Q4_K_M with one that
# `qforge calibrate` computes on the first half of tests/data/eval-a.txt; every output is
# scored on the other half (verify --ctx 128 --chunks 20 against the original checkpoint).
# Prints mean KLD ± error, bits per weight (all tensors of 2 or more dimensions) and the share
# of those weights that really got a K-quant.
# usage: tests/bench/kquality.sh [WORKDIR] [THREADS]   (from the build folder)
set -e
S=$(cd "$(dirname "$0")/../.." && pwd)
W=${1:-/tmp/qforge-kquality}; T=${2:-2}
mkdir -p "$W"
# the two halves of the text, cut at the line nearest its middle byte
LC_ALL=C awk -v half=$(($(wc -c < "$S/tests/data/eval-a.txt") / 2)) -v a="$W/calib.txt" -v b="$W/eval.txt" \
	'{ n += length($0) + 1; print > (n <= half ? a : b) }' "$S/tests/data/eval-a.txt"
# bits per weight and K-quant share of a GGUF, from inspect's tensor lines (NAME TYPE [dims] BYTES @OFF)
sizes() {
	./qforge inspect "$1" | awk '$3 ~ /^\[/ && $0 ~ /,/ {
		d = $0; sub(/^[^[]*\[/, "", d); sub(/\].*$/, "", d); k = split(d, v, ",")
		e = 1; for (i = 1; i <= k; i++) e *= v[i]
		b = $(NF - 1); el += e; by += b; if ($2 ~ /^Q[2-6]_K$/) ke += e
	} END { printf "%6.2f  %5.1f%%", 8 * by / el, 100 * ke / el }'
}
kld() {
	./qforge verify -t "$T" --no-tensors --json --reference "$1" --text "$W/eval.txt" --ctx 128 --chunks 20 "$2" |
		awk -F: '/"kld":/ { k = $2 } /"kld_err":/ { e = $2 } END { gsub(/[ ,\t]/, "", k); gsub(/[ ,\t]/, "", e); printf "%.5f ± %.5f", k, e }'
}
for m in dsv3-k256 llama-k256; do
	rm -rf "$W/$m" && ./tests/bench/gen_k256 "$m" "$W/$m"
	./qforge calibrate -q -f -t "$T" --text "$W/calib.txt" --ctx 128 -o "$W/$m.imatrix.gguf" "$W/$m"
	echo "$m: calibrated on the first half of eval-a.txt, scored on the second (--ctx 128 --chunks 20)"
	printf '%-22s %-20s %6s  %6s\n' format "mean KLD" bpw "K-quant"
	for row in llamacpp-q8_0: llamacpp-q4_0: llamacpp-q4_0:imatrix llamacpp-q4_k_m: llamacpp-q4_k_m:imatrix; do
		t=${row%%:*}; im=${row#*:}
		out="$W/$m-$t${im:+-imatrix}.gguf"
		./qforge quantize -q -f --no-quality -t "$T" --target "$t" ${im:+--imatrix "$W/$m.imatrix.gguf"} \
			-o "$out" "$W/$m" > /dev/null
		printf '%-22s %-20s %s\n' "${t#llamacpp-}${im:+ +imatrix}" "$(kld "$W/$m" "$out")" "$(sizes "$out")"
	done
	echo
done
