#!/bin/sh
# Benchmark: FP8 → BF16 GGUF conversion of a generated DeepSeek-V3-shaped checkpoint,
# next to `cat FILES > /dev/null` and `cp` of the same bytes, with peak RSS.
# usage: tests/bench/convert.sh [WORKDIR] [EXPERTS] [VOCAB]   (run from the build folder)
set -e
W=${1:-/tmp/qforge-bench}; E=${2:-96}; V=${3:-32000}
mkdir -p "$W"
[ -d "$W/ckpt" ] || ./tests/bench/gen_dsv3 "$W/ckpt" --layers 1 --experts "$E" --vocab "$V"
bytes=$(cat "$W"/ckpt/*.safetensors | wc -c)
echo "checkpoint: $(du -sh "$W/ckpt" | cut -f1) ($bytes bytes of shards), 1 layer, $E experts, vocab $V"
t() { /usr/bin/time -f "%e s  peak RSS %M KiB" "$@"; }
sync
echo "cat > /dev/null:"; t sh -c "cat '$W'/ckpt/*.safetensors > /dev/null"
echo "cp:"; rm -rf "$W/cp"; mkdir "$W/cp"; t cp "$W"/ckpt/*.safetensors "$W/cp/"; rm -rf "$W/cp"
for th in 1 2; do
	echo "qforge convert -t $th:"; rm -f "$W/out.gguf"
	t ./qforge convert -q -t "$th" -f -o "$W/out.gguf" "$W/ckpt"
done
rm -f "$W/out.gguf"
for tg in llamacpp-q4_0 llamacpp-q8_0 hopper-fp8 bundle-w4a16; do
	echo "qforge quantize --target $tg -t 2:"; rm -rf "$W/q.out"
	t ./qforge quantize -q --no-quality -t 2 --target "$tg" -f -o "$W/q.out" "$W/ckpt" | head -1
done
rm -rf "$W/q.out"
