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
expect_rc 0 "a compressed-tensors source is read: its modules decode to BF16"
! grep -q quantization_config "$tmp/back/config.json"; ok $? "the float folder's config.json has no quantization_config"
run "$QFORGE" inspect "$tmp/back"
! contains "$out" "weight_packed" && contains "$out" "experts.0.up_proj.weight"; ok $? "packed tensors became float weights under their own names"
run "$QFORGE" quantize --target llamacpp-q4_0 -o "$tmp/w4-q4.gguf" "$tmp/w4"
expect_rc 0 "a compressed-tensors int4 source quantizes to llamacpp-q4_0"
contains "$out" "repacked losslessly from compressed-tensors int4" && contains "$out" "blk.1.ffn_down_exps.weight → q4_0"; ok $? "the summary lists the repacked tensors"
run "$QFORGE" quantize --json --force --target llamacpp-q4_0 -o "$tmp/w4-q4.gguf" "$tmp/w4"
printf '%s' "$out" | grep -q '"repacked_lossless"' && printf '%s' "$out" | grep -q '"repack_fallbacks"'; ok $? "--json has repacked_lossless and repack_fallbacks"
run "$QFORGE" inspect "$tmp/w4"
contains "$out" "compressed-tensors: " && contains "$out" "int4 g32 pack-quantized"; ok $? "inspect summarizes the quantized modules: $(printf '%s' "$out" | grep compressed-tensors:)"
run "$QFORGE" verify --reference "$M/tiny-dsv3-bf16" --top 1 "$tmp/w4"
expect_rc 0 "verify reads a compressed-tensors folder against the BF16 original"
row=$(printf '%s\n' "$out" | awk '$1 == "expert" && NF == 5 { print $3, $5 }' | tail -1)
printf '%s\n' "$row" | awk '{ exit !($1 > 0.01 && $1 < 0.2 && $2 > 0.98) }'; ok $? "experts: int4 g32 error against BF16 (rel-RMS, cosine: $row)"
printf 'Hello world\n' > "$tmp/hello-ct.txt"
run "$QFORGE" tokenize --ids "$M/tiny-dsv3" "$tmp/hello-ct.txt"
ids_ct_ref=$out
run "$QFORGE" tokenize --ids "$tmp/w4" "$tmp/hello-ct.txt"
[ -n "$out" ] && [ "$out" = "$ids_ct_ref" ]; ok $? "tokenize reads the compressed-tensors folder: the original's ids ($out)"
cp -r "$tmp/w4" "$tmp/w4-bad" && sed -i 's/"pack-quantized"/"pack-quantised"/' "$tmp/w4-bad/config.json"
run "$QFORGE" convert -o "$tmp/w4-bad.gguf" "$tmp/w4-bad"
expect_rc 3 "an unknown compressed-tensors format is bad input"
contains "$err" "w4-bad/model.safetensors: tensor 'model." && contains "$err" "\"pack-quantised\""; ok $? "names file, tensor and format: $err"
[ ! -e "$tmp/w4-bad.gguf" ]; ok $? "nothing written"
run "$QFORGE" convert --format safetensors -o "$tmp/back-ms" "$tmp/ms"
expect_rc 0 "an msModelSlim source is read: its int8 weights dequantized"
[ -f "$tmp/back-ms/model.safetensors" ] && [ ! -e "$tmp/back-ms/quant_model_description.json" ]; ok $? "a float folder, no description"
run "$QFORGE" convert --format safetensors --dry-run "$tmp/ms"
contains "$out" "ms-dequant"; ok $? "plan shows msModelSlim weights dequantized"
run "$QFORGE" convert -q -o "$tmp/ms.gguf" "$tmp/ms"
expect_rc 0 "msModelSlim → GGUF"
mkdir "$tmp/msbad" && cp "$tmp/ms"/* "$tmp/msbad"/ && chmod u+w "$tmp/msbad"/*
sed 's/"model.layers.0.self_attn.q_b_proj.weight_scale": "W8A16",//' "$tmp/ms/quant_model_description.json" > "$tmp/msbad/quant_model_description.json"
for c in "convert -o $tmp/bad.gguf" "convert --format safetensors -o $tmp/badf" "quantize --target llamacpp-q8_0 -o $tmp/bad8.gguf" "inspect"; do
	run "$QFORGE" $c "$tmp/msbad"
	expect_rc 3 "$c: a tensor the description does not type is bad input"
	contains "$err" "quant_model_description.json: no entry for tensor 'model.layers.0.self_attn.q_b_proj.weight_scale'"; ok $? "  names the file and tensor: $err"
done
[ ! -e "$tmp/bad.gguf" ] && [ ! -e "$tmp/badf" ] && [ ! -e "$tmp/bad8.gguf" ]; ok $? "nothing written"
run "$QFORGE" inspect "$tmp/ms"
contains "$out" "quantization: msModelSlim W8A16"; ok $? "inspect names the msModelSlim type"
printf 'Hello world\n' > "$tmp/hello.txt"
run "$QFORGE" tokenize --ids "$M/tiny-dsv3" "$tmp/hello.txt"
ids_ref=$out
run "$QFORGE" tokenize --ids "$tmp/ms" "$tmp/hello.txt"
expect_rc 0 "tokenize reads an msModelSlim folder"
[ -n "$out" ] && [ "$out" = "$ids_ref" ]; ok $? "the same ids as the original ($out)"
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


# FP8 → BF16 goes in one pass and through O_DIRECT; the two-pass f32 route, buffered writes and
# other thread counts must give the same bytes and the same errors
run "$QFORGE" convert -q -t 3 --format safetensors -o "$tmp/bf16-t3" "$M/tiny-dsv3"
cmp -s "$tmp/bf16/model.safetensors" "$tmp/bf16-t3/model.safetensors"; ok $? "BF16 output identical for 2 and 3 threads"
run env QF_NO_DIRECT_IO=1 "$QFORGE" convert -q -t 1 --format safetensors -o "$tmp/bf16-buf" "$M/tiny-dsv3"
cmp -s "$tmp/bf16/model.safetensors" "$tmp/bf16-buf/model.safetensors"; ok $? "BF16 output identical with buffered writes (QF_NO_DIRECT_IO), 1 thread"
run env QF_NO_SIMD=1 "$QFORGE" convert -q --format safetensors -o "$tmp/bf16-scalar" "$M/tiny-dsv3"
cmp -s "$tmp/bf16/model.safetensors" "$tmp/bf16-scalar/model.safetensors"; ok $? "BF16 output identical with the portable kernels (QF_NO_SIMD)"
# a NaN block scale in layer 0's gate_proj: every product of that block is NaN
cp -r "$M/tiny-dsv3" "$tmp/nanm" && chmod -R u+w "$tmp/nanm"
off=$("$QFORGE" inspect --json "$M/tiny-dsv3" | tr -d '\n\t ' |
	sed 's/.*"model.layers.0.mlp.gate_proj.weight_scale_inv"[^}]*"offset":\([0-9]*\).*/\1/')
printf '\000\000\300\177' | dd of="$tmp/nanm/model-00001-of-00003.safetensors" bs=1 seek="$off" conv=notrunc 2>/dev/null
run "$QFORGE" convert -q --format safetensors -o "$tmp/nanbf" "$tmp/nanm"
expect_rc 3 "a NaN weight is refused (FP8 → BF16 in one pass)"
bf_err=$err
contains "$err" "model.layers.0.mlp.gate_proj.weight" && contains "$err" "row 0, column 0"; ok $? "names the tensor, row and column: $err"
run "$QFORGE" convert -q --format safetensors --outtype f32 -o "$tmp/nanf" "$tmp/nanm"
expect_rc 3 "and through f32"
[ "$err" = "$bf_err" ]; ok $? "with the same message as the f32 route"
[ ! -e "$tmp/nanbf" ] && [ ! -e "$tmp/nanf" ]; ok $? "no partial output"
run "$QFORGE" convert -q --allow-nonfinite --format safetensors -o "$tmp/nanbf" "$tmp/nanm"
expect_rc 0 "--allow-nonfinite writes it"

finish
