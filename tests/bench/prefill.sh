#!/bin/sh
# Benchmark: prompt processing of qforge's forward pass against llama.cpp (npm libllama,
# dlopen'ed) on the same GGUF, threads and context, with the machine's fp32 peak measured in the
# same run (tests/bench/bench_prefill).  Models, generated once into WORKDIR:
#   - an 8-layer Llama (hidden 1024, 16 heads / 4 KV heads, FFN 2816; stories260K's tokenizer)
#     in F32, Q8_0 and Q4_0;
#   - a one-layer full-width DeepSeek-V3 with 16 routed experts in F32 (about 4.7 GB).
# usage: tests/bench/prefill.sh [WORKDIR] [THREADS] [CTX] [CHUNKS]   (from the build folder)
set -e
W=${1:-/tmp/qforge-bench-prefill}; TH=${2:-2}; CTX=${3:-512}; N=${4:-2}
S=${QF_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
mkdir -p "$W"
if [ ! -f "$W/llama-f32.gguf" ]; then
	./tests/bench/gen_dsv3 "$W/llama" --llama "$S/models/stories260k-hf"
	./qforge convert -qf --outtype f32 -o "$W/llama-f32.gguf" "$W/llama"
	rm -rf "$W/llama"
fi
for q in q8_0 q4_0; do
	[ -f "$W/llama-$q.gguf" ] || ./qforge quantize -qf --target "llamacpp-$q" -o "$W/llama-$q.gguf" "$W/llama-f32.gguf"
done
if [ ! -f "$W/dsv3-f32.gguf" ]; then
	./tests/bench/gen_dsv3 "$W/dsv3" --layers 1 --experts 16 --vocab 16384
	./qforge convert -qf --outtype f32 -o "$W/dsv3-f32.gguf" "$W/dsv3"
	rm -rf "$W/dsv3"
fi
for m in llama-f32 llama-q8_0 llama-q4_0 dsv3-f32; do
	./tests/bench/bench_prefill "$W/$m.gguf" "$TH" "$CTX" "$N"
done
