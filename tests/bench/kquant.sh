#!/bin/sh
# Benchmark: Q4_K_M of a generated full-width DeepSeek-V3 layer (1 layer, 64 routed
# experts, vocab 1024) from a BF16 GGUF — qforge quantize next to llama.cpp's own
# llama_model_quantize (npm libllama) with the same threads, with peak RSS, and
# whether every tensor's bytes are the same.
# usage: tests/bench/kquant.sh [WORKDIR] [THREADS]   (run from the build folder)
set -e
W=${1:-/tmp/qforge-kbench}; T=${2:-2}
mkdir -p "$W"
[ -d "$W/ckpt" ] || ./tests/bench/gen_dsv3 "$W/ckpt" --layers 1 --experts 64 --vocab 1024
[ -f "$W/bf16.gguf" ] || ./qforge convert -q -f --outtype bf16 -o "$W/bf16.gguf" "$W/ckpt" >/dev/null
echo "source: $(du -h "$W/bf16.gguf" | cut -f1) BF16 GGUF, 1 layer, 64 experts, vocab 1024; $T threads"
t() { /usr/bin/time -f "%e s  peak RSS %M KiB" "$@"; }
sync
echo "llama.cpp llama_model_quantize Q4_K_M:"; rm -f "$W/ref.gguf"
t ./tests/bench/llama_quantize "$W/bf16.gguf" "$W/ref.gguf" 15 "$T"
echo "qforge quantize --target llamacpp-q4_k_m:"; rm -f "$W/ours.gguf"
t ./qforge quantize -q --no-quality -t "$T" --target llamacpp-q4_k_m -f -o "$W/ours.gguf" "$W/bf16.gguf" | head -1
./qforge inspect --hashes "$W/ref.gguf" | grep -E '^  (blk\.|token_embd\.|output\.)' | awk '{print $1, $2, $NF}' | sort > "$W/ref.txt"
./qforge inspect --hashes "$W/ours.gguf" | grep -E '^  (blk\.|token_embd\.|output\.)' | awk '{print $1, $2, $NF}' | sort > "$W/ours.txt"
if cmp -s "$W/ref.txt" "$W/ours.txt"; then echo "every tensor: same type and bytes"; else echo "DIFFERENT:"; diff "$W/ref.txt" "$W/ours.txt" | head; fi
rm -f "$W/ref.gguf" "$W/ours.gguf"
