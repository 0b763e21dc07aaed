#!/bin/sh
# CLI tests for Hugging Face folder output (--format safetensors, safetensors targets): names,
# shards, summaries, exit codes, integrity, and no partial folder on failure.
. "${QF_SRCDIR:-.}/tests/tap-sh.sh"
M="$QF_SRCDIR/models"

run "$QFORGE" convert -q --format safetensors -o "$tmp/bf16" "$M/tiny-dsv3"
expect_rc 0 "convert --format safetensors"
contains "$out" "269 tensors"; ok $? "summary counts the source's tensors"
[ -f "$tmp/bf16/model.safetensors" ] && [ -f "$tmp/bf16/config.json" ] && [ -f "$tmp/bf16/tokenizer_config.json" ]; ok $? "folder has model.safetensors, config and tokenizer files"
[ ! -e "$tmp/bf16.tmp" ]; ok $? "no temporary folder left"
run "$QFORGE" verify "$tmp/bf16"
expect_rc 0 "verify checks the per-tensor hashes"
contains "$out" "269 hashes match"; ok $? "every tensor's hash: $out"

run "$QFORGE" convert --format safetensors -o "$tmp/bf16" "$M/tiny-dsv3"
expect_rc 2 "an existing output folder is not replaced without --force"
run "$QFORGE" convert -q --force --format safetensors -o "$tmp/bf16" "$M/tiny-dsv3"
expect_rc 0 "--force replaces a safetensors folder qforge wrote"
mkdir "$tmp/foreign" && echo x > "$tmp/foreign/notes.bin"
run "$QFORGE" convert -q --force --format safetensors -o "$tmp/foreign" "$M/tiny-dsv3"
expect_rc 2 "--force never replaces a folder qforge did not write"
[ -f "$tmp/foreign/notes.bin" ]; ok $? "the foreign folder is untouched"

run "$QFORGE" convert -q --format safetensors --shard-size 4MB -o "$tmp/sh" "$M/tiny-dsv3"
expect_rc 0 "--shard-size 4MB"
[ -f "$tmp/sh/model-00004-of-00004.safetensors" ] && [ -f "$tmp/sh/model.safetensors.index.json" ]; ok $? "four shards and an index"
run "$QFORGE" convert --format safetensors --shard-size 4XB "$M/tiny-dsv3"
expect_rc 2 "a bad --shard-size is a usage error"
run "$QFORGE" convert --shard-size 4MB -o "$tmp/x.gguf" "$M/tiny-dsv3"
expect_rc 2 "--shard-size without safetensors output is a usage error"

run "$QFORGE" convert --dry-run --format safetensors "$M/tiny-dsv3"
expect_rc 0 "--dry-run"
contains "$out" "model.layers.1.mlp.experts.15.down_proj.weight"; ok $? "plan lists experts one by one"
contains "$out" "fp8-dequant"; ok $? "plan shows FP8 dequantized"

run "$QFORGE" quantize --list-targets
for t in vllm-fp8-block vllm-fp8-block-ue8m0 vllm-fp8-block-ct vllm-w4a16 vllm-w8a16 vllm-w8a8 ascend-w4a16 ascend-w8a16 ascend-w8a8-dynamic; do
	contains "$out" "$t "; ok $? "lists $t"
done

run "$QFORGE" quantize -q --target vllm-fp8-block -o "$tmp/fp8" "$M/tiny-dsv3"
expect_rc 0 "vllm-fp8-block"
contains "$out" "byte for byte"; ok $? "summary says the FP8 weights were kept as released"
run "$QFORGE" quantize -q --target vllm-fp8-block-ue8m0 -o "$tmp/ue" "$M/tiny-dsv3"
expect_rc 0 "vllm-fp8-block-ue8m0"
contains "$out" "(lossy)"; ok $? "summary says ue8m0 from free scales is lossy"
run "$QFORGE" quantize -q --target ascend-w8a16 -o "$tmp/ms" "$M/tiny-dsv3"
expect_rc 0 "ascend-w8a16 (msModelSlim)"
[ -f "$tmp/ms/quant_model_description.json" ] && [ -f "$tmp/ms/quant_model_weights.safetensors" ]; ok $? "quant_model_description.json and quant_model_weights.safetensors"
run "$QFORGE" verify "$tmp/ms"
expect_rc 0 "verify checks the msModelSlim folder's hashes"
run "$QFORGE" quantize -q --target vllm-w4a16 --type 'experts=int4-g32' -o "$tmp/w4" "$M/tiny-dsv3"
expect_rc 0 "vllm-w4a16 with the experts in groups of 32"
contains "$out" "ct-int4"; ok $? "summary names the encoding"
run "$QFORGE" convert --format safetensors -o "$tmp/back" "$tmp/w4"
expect_rc 3 "a compressed-tensors source is refused, not copied under a float config"
contains "$err" "compressed-tensors checkpoints are not read"; ok $? "names the layout: $err"
run "$QFORGE" convert --format safetensors -o "$tmp/back" "$tmp/ms"
expect_rc 3 "an msModelSlim source is refused"
[ ! -e "$tmp/back" ]; ok $? "nothing written"
run "$QFORGE" quantize --target vllm-w4a16 --type 'experts=q4_0' "$M/tiny-dsv3"
expect_rc 2 "a GGUF format in a safetensors --type is a usage error"
run "$QFORGE" quantize --target vllm-fp8-block --format gguf -o "$tmp/x.gguf" "$M/tiny-dsv3"
expect_rc 2 "--format that disagrees with the profile"
contains "$err" "disagrees"; ok $? "says so: $err"

mkdir "$tmp/trunc" && cp "$M/tiny-dsv3"/* "$tmp/trunc"/ && chmod u+w "$tmp/trunc"/* && truncate -s 1000000 "$tmp/trunc/model-00003-of-00003.safetensors"
run "$QFORGE" convert --format safetensors -o "$tmp/t" "$M/tiny-dsv3" "$tmp/trunc"
expect_rc 2 "two sources is a usage error"
run "$QFORGE" convert --format safetensors -o "$tmp/t" "$tmp/trunc"
expect_rc 3 "truncated shard"
contains "$err" "model-00003-of-00003.safetensors"; ok $? "names the file: $err"
[ ! -e "$tmp/t" ] && [ ! -e "$tmp/t.tmp" ]; ok $? "no partial output"

finish
