#!/bin/sh
# Benchmark: the reference forward pass on a generated one-layer DeepSeek-V3 checkpoint at full
# width (hidden 7168, MLA 1536/512, 128 heads, experts of 2048; FP8 with scales), weights
# streamed from the mmap'd shards, next to memcpy of the same bytes.
# usage: tests/bench/forward.sh [WORKDIR] [EXPERTS] [THREADS]   (from the build folder)
set -e
W=${1:-/tmp/qforge-bench-fwd}; E=${2:-32}; TH=${3:-2}
mkdir -p "$W"
[ -d "$W/ckpt" ] || ./tests/bench/gen_dsv3 "$W/ckpt" --layers 1 --experts "$E" --vocab 16384
cat "$W"/ckpt/*.safetensors > /dev/null   # page cache: measure compute, not the disk
/usr/bin/time -f "peak RSS %M KiB" ./tests/bench/bench_forward "$W/ckpt" "$TH" 64
