#!/bin/sh
# Benchmark: FP8 → BF16 Hugging Face safetensors (convert --format safetensors) of a generated
# full-width DeepSeek-V3 layer, next to `cp` of one file the size of the output, in the same run,
# with peak RSS.
# usage: tests/bench/hf.sh [WORKDIR] [EXPERTS] [VOCAB]   (run from the build folder)
set -e
W=${1:-/tmp/qforge-bench-hf}; E=${2:-64}; V=${3:-1024}
mkdir -p "$W"
[ -d "$W/ckpt" ] || ./tests/bench/gen_dsv3 "$W/ckpt" --layers 1 --experts "$E" --vocab "$V"
echo "checkpoint: $(du -sh "$W/ckpt" | cut -f1), 1 layer, $E experts, vocab $V"
t() { /usr/bin/time -f "%e s  peak RSS %M KiB" "$@"; }
rm -rf "$W/out"
./qforge convert -q --format safetensors --dry-run "$W/ckpt" | tail -1
sync
for th in 1 2; do
	echo "qforge convert --format safetensors -t $th:"; rm -rf "$W/out"
	t ./qforge convert -q -t "$th" --format safetensors -o "$W/out" "$W/ckpt"
	sync
done
bytes=$(cat "$W"/out/*.safetensors | wc -c)
cat "$W"/out/*.safetensors > "$W/one.bin"; rm -rf "$W/out"; sync
echo "cp of one $bytes-byte file (the output's size):"; rm -f "$W/cp.bin"
t cp "$W/one.bin" "$W/cp.bin"; sync
rm -f "$W/cp.bin" "$W/one.bin"
