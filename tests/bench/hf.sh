#!/bin/sh
# Benchmark: FP8 → BF16 Hugging Face safetensors (convert --format safetensors) of a generated
# full-width DeepSeek-V3 layer, next to `cp` of one file the size of the output, in the same run:
# RUNS pairs in turn (qforge, cp, qforge, cp …), each with /usr/bin/time, then min and median of
# wall seconds, the per-pair ratio and peak RSS.  With SYNC=1 each command is followed by `sync`
# (time until the data is on disk: cp's output otherwise waits in the page cache, qforge's
# O_DIRECT writes do not), which is the fair comparison on a machine with RAM to spare.
# usage: tests/bench/hf.sh [WORKDIR] [EXPERTS] [VOCAB] [THREADS] [RUNS]   (run from the build folder)
set -e
W=${1:-/tmp/qforge-bench-hf}; E=${2:-64}; V=${3:-1024}; T=${4:-2}; N=${5:-3}
mkdir -p "$W"
[ -d "$W/ckpt" ] || ./tests/bench/gen_dsv3 "$W/ckpt" --layers 1 --experts "$E" --vocab "$V"
echo "checkpoint: $(du -sh "$W/ckpt" | cut -f1), 1 layer, $E experts, vocab $V; $T threads; load: $(cut -d' ' -f1-3 /proc/loadavg)"
rm -rf "$W/out"
./qforge convert -q -t "$T" --format safetensors -o "$W/out" "$W/ckpt"
bytes=$(cat "$W"/out/*.safetensors | wc -c)
cat "$W"/out/*.safetensors > "$W/one.bin"
rm -rf "$W/out"
S=${SYNC:+ && sync}
echo "each run: wall s, user s, sys s, peak RSS KiB${SYNC:+ (each command followed by sync)}"
: > "$W/times"
i=0
while [ "$i" -lt "$N" ]; do
	rm -rf "$W/out"; rm -f "$W/cp.bin"; sync
	/usr/bin/time -f "qforge %e %U %S %M" -a -o "$W/times" sh -c "./qforge convert -q -t $T --format safetensors -o '$W/out' '$W/ckpt' >/dev/null$S"
	rm -rf "$W/out"; sync
	/usr/bin/time -f "cp %e %U %S %M" -a -o "$W/times" sh -c "cp '$W/one.bin' '$W/cp.bin'$S"
	rm -f "$W/cp.bin"
	i=$((i + 1))
done
cat "$W/times"
awk -v bytes="$bytes" '
	{ w[$1, ++n[$1]] = $2; m[$1] = $5 > m[$1] ? $5 : m[$1] }
	function stat(k, a, i, j, t, c) {
		c = n[k]; for (i = 1; i <= c; i++) a[i] = w[k, i]
		for (i = 1; i <= c; i++) for (j = i + 1; j <= c; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
		return sprintf("min %.2f s, median %.2f s", a[1], c % 2 ? a[(c + 1) / 2] : (a[c / 2] + a[c / 2 + 1]) / 2)
	}
	END {
		printf "qforge convert --format safetensors: %s, peak RSS %d KiB\n", stat("qforge"), m["qforge"]
		printf "cp of one %.0f-byte file (the output size): %s, peak RSS %d KiB\n", bytes, stat("cp"), m["cp"]
		for (i = 1; i <= n["qforge"]; i++) { r[i] = w["qforge", i] / w["cp", i] }
		c = n["qforge"]
		for (i = 1; i <= c; i++) for (j = i + 1; j <= c; j++) if (r[j] < r[i]) { t = r[i]; r[i] = r[j]; r[j] = t }
		printf "qforge / cp, pair by pair: min %.2f, median %.2f\n", r[1], c % 2 ? r[(c + 1) / 2] : (r[c / 2] + r[c / 2 + 1]) / 2
	}' "$W/times"
echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
rm -f "$W/one.bin" "$W/times"
