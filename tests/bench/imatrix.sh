#!/bin/sh
# Benchmark: what an importance matrix from `qforge calibrate` does to a llama.cpp mix.
# Calibrates MODEL on the first half of TEXT (split at the middle line), quantizes it with
# and without that imatrix (llamacpp-q4_k_m, and q4_0 / q8_0 next to it), and measures each
# against MODEL on the other half with `qforge verify --ctx CTX`: mean KLD, PPL ratio,
# bits per weight of the whole file and the share of weights that really got a K-quant.
# usage: tests/bench/imatrix.sh MODEL [TEXT] [WORKDIR] [CTX] [THREADS]   (from the build folder)
set -e
M=${1:?usage: $0 MODEL [TEXT] [WORKDIR] [CTX] [THREADS]}
X=${2:-${QF_SRCDIR:-.}/tests/data/eval-a.txt}; W=${3:-/tmp/qforge-imatrix-bench}; C=${4:-128}; T=${5:-2}
mkdir -p "$W"
n=$(wc -l < "$X"); h=$((n / 2))
head -n "$h" "$X" > "$W/calib.txt"; tail -n +"$((h + 1))" "$X" > "$W/eval.txt"
echo "model $M; calibration: lines 1-$h of $X ($(wc -c < "$W/calib.txt") bytes); evaluation: lines $((h + 1))-$n ($(wc -c < "$W/eval.txt") bytes); ctx $C; $T threads"
./qforge calibrate -f -t "$T" --text "$W/calib.txt" --ctx "$C" -o "$W/imatrix.gguf" "$M"
# bits per weight and K-quant share of a GGUF's weight tensors (names ending .weight, 2-D or more)
bpw() {
	./qforge inspect "$1" | awk '
	$1 ~ /\.weight$/ && $0 ~ /\[[0-9]+, / {
		s = $0; sub(/^[^[]*\[/, "", s); sub(/\].*/, "", s); k = split(s, d, ", "); e = 1
		for (i = 1; i <= k; i++) e *= d[i]
		b = $(NF - 1); tot += e; bytes += b; if ($2 ~ /^Q[2-6]_K$/) kq += e
	}
	END { printf "%.3f bits/weight, %.1f%% of weights in K-quants", 8 * bytes / tot, 100 * kq / tot }'
}
for q in "llamacpp-q4_k_m:" "llamacpp-q4_k_m:--imatrix $W/imatrix.gguf" "llamacpp-q4_0:" "llamacpp-q4_0:--imatrix $W/imatrix.gguf" "llamacpp-q8_0:"; do
	tg=${q%%:*}; opt=${q#*:}; name=$tg${opt:+-imatrix}
	./qforge quantize -q -f -t "$T" --target "$tg" $opt -o "$W/$name.gguf" "$M" > /dev/null
	echo "$name: $(bpw "$W/$name.gguf")"
done
./qforge verify -t "$T" --no-tensors --reference "$M" --text "$W/eval.txt" --ctx "$C" "$W/llamacpp-q4_k_m.gguf" \
	"$W/llamacpp-q4_k_m-imatrix.gguf" "$W/llamacpp-q4_0.gguf" "$W/llamacpp-q4_0-imatrix.gguf" "$W/llamacpp-q8_0.gguf" |
	sed -n '/^perplexity/,$p'
