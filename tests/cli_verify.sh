#!/bin/sh
# CLI tests for `qforge verify`: integrity, per-tensor report, perplexity table, limits, JSON, exit codes.
. "${QF_SRCDIR:-.}/tests/tap-sh.sh"
M="$QF_SRCDIR/models"; T="$QF_SRCDIR/tests/data"

"$QFORGE" convert -q -o "$tmp/bf16.gguf" "$M/tiny-dsv3" > /dev/null
"$QFORGE" quantize -q --target llamacpp-q4_0 -o "$tmp/q4.gguf" "$M/tiny-dsv3" > /dev/null
"$QFORGE" quantize -q --target bundle-w4a16 -o "$tmp/w4" "$M/tiny-dsv3" > /dev/null

run "$QFORGE" verify "$tmp/bf16.gguf"
expect_rc 0 "integrity of a fresh GGUF"
contains "$out" "integrity: OK — 70 hashes match"; ok $? "says all hashes match"

run "$QFORGE" verify --reference "$M/tiny-dsv3" --text "$T/eval-a.txt" --ctx 128 --chunks 12 --top 3 "$tmp/bf16.gguf" "$tmp/q4.gguf" "$tmp/w4"
expect_rc 0 "reference, text and three candidates"
contains "$out" "perplexity on eval-a.txt"; ok $? "prints the perplexity table"
contains "$out" "(ref)"; ok $? "the reference row is marked"
contains "$out" "int4-g128"; ok $? "per-tensor report names the formats"
contains "$out" "verify: OK"; ok $? "ends OK"

run "$QFORGE" verify --reference "$M/tiny-dsv3" --text "$T/eval-a.txt" --ctx 128 --chunks 12 --max-ppl-ratio 1.0001 --no-tensors "$tmp/q4.gguf"
expect_rc 1 "a PPL ratio above --max-ppl-ratio fails"
contains "$err" "exceeds --max-ppl-ratio 1.0001"; ok $? "says which limit: $err"
run "$QFORGE" verify --reference "$M/tiny-dsv3" --text "$T/eval-a.txt" --ctx 128 --chunks 12 --max-kld 0.000001 --no-tensors "$tmp/q4.gguf"
expect_rc 1 "a KLD above --max-kld fails"
contains "$err" "exceeds --max-kld"; ok $? "says which limit: $err"
run "$QFORGE" verify --reference "$M/tiny-dsv3" --text "$T/eval-a.txt" --ctx 128 --chunks 12 --max-kld 1 --max-ppl-ratio 1.5 --json --no-tensors "$tmp/q4.gguf"
expect_rc 0 "generous limits pass"
contains "$out" '"same_top1":'; ok $? "JSON has the metrics"
contains "$out" '"ok":	true'; ok $? "JSON says ok"

cp "$tmp/q4.gguf" "$tmp/flip.gguf"
printf '\377' | dd of="$tmp/flip.gguf" bs=1 seek=400000 conv=notrunc 2>/dev/null
run "$QFORGE" verify "$tmp/flip.gguf"
expect_rc 1 "a corrupted tensor fails integrity"
contains "$err" "hash mismatch"; ok $? "names the tensor: $err"

# a GGUF with no qforge hashes (renamed away, same length) is NOT checked, said in text and JSON, never OK
perl -0777 -pe 's/qforge\.(tensor|data|meta)_xxh64/qforge.$1_xxh6X/g' "$tmp/bf16.gguf" > "$tmp/nohash.gguf"
# (nor a failure: a third-party GGUF or an HF checkpoint has none, and its perplexity still counts)
run "$QFORGE" verify "$tmp/nohash.gguf"
expect_rc 0 "a GGUF without qforge hashes is no failure"
contains "$out" "integrity: NOT checked — no qforge hashes"; ok $? "says integrity was NOT checked"
contains "$out" "verify: passed what was checked (see NOT checked above)"; ok $? "ends with what was checked"
contains "$out" "OK"; [ $? != 0 ]; ok $? "never says OK: $out"
run "$QFORGE" verify --json "$tmp/nohash.gguf"
contains "$out" '"status":	"NOT checked"'; ok $? "JSON says NOT checked"
contains "$out" '"complete":	false'; ok $? "JSON is not complete"
run "$QFORGE" verify --text "$QF_SRCDIR/tests/data/eval-a.txt" --ctx 128 --chunks 2 "$QF_SRCDIR/models/tiny-dsv3"
expect_rc 0 "the perplexity of an HF checkpoint (no qforge hashes) is measured, exit 0"
contains "$out" "18.7" || contains "$out" "PPL"; ok $? "prints its perplexity"
contains "$out" "verify: OK"; [ $? != 0 ]; ok $? "and never says OK"
# one bit turns qforge.tensor_xxh64's U64 elements into I64: the data and metadata hashes still check
perl -0777 -pe 's/(qforge\.tensor_xxh64\x09\x00\x00\x00)\x0a/$1\x0b/' "$tmp/flip.gguf" > "$tmp/i64.gguf"
run "$QFORGE" verify "$tmp/i64.gguf"
expect_rc 1 "a mistyped tensor hash array does not switch the checks off"
contains "$out" "MISMATCH (all tensor data)"; ok $? "the flipped tensor is still caught by the data hash"
contains "$err" "has type arr of i64, not an array of u64"; ok $? "names the mistyped key: $err"

# a version 1 bundle (no manifest_xxh64) is read; verify says its manifest was NOT checked, not plain OK
cp -r "$tmp/w4" "$tmp/v1"
perl -0777 -pi -e 's/\t"manifest_xxh64":\t"[0-9a-f]{16}",/" " x 38/e; s/"version":\t2/"version":\t1/' "$tmp/v1/manifest.json"
run "$QFORGE" verify "$tmp/v1"
expect_rc 0 "a version 1 bundle verifies what it can"
contains "$out" "NOT checked: manifest.json itself"; ok $? "says the manifest was not checked"
contains "$out" "verify: OK"; [ $? != 0 ]; ok $? "does not say a plain OK: $out"

# NaN must fail, never pass as "not above the limit" (NaN compares false): all 32 bytes of
# layer 0's gate_proj scale set to NaN, converted with --allow-nonfinite, so that tensor is all NaN
cp -r "$M/tiny-dsv3" "$tmp/nanm"
off=$("$QFORGE" inspect --json "$M/tiny-dsv3" | tr -d '\n\t ' |
	sed 's/.*"model.layers.0.mlp.gate_proj.weight_scale_inv"[^}]*"offset":\([0-9]*\).*/\1/')
for i in 1 2 3 4 5 6 7 8; do printf '\000\000\300\177'; done |
	dd of="$tmp/nanm/model-00001-of-00003.safetensors" bs=1 seek="$off" conv=notrunc 2>/dev/null
"$QFORGE" convert -q --allow-nonfinite -o "$tmp/nan.gguf" "$tmp/nanm" > /dev/null
V="--reference $M/tiny-dsv3 --text $T/eval-a.txt --ctx 128 --chunks 2"
# limits | what stderr must say
while IFS='|' read -r lim want; do
	run "$QFORGE" verify $V $lim --no-tensors "$tmp/nan.gguf"
	expect_rc 1 "NaN logits fail verify with '$lim'"
	contains "$err" "$want"; ok $? "says: $want"
	contains "$out" "verify: OK"; [ $? != 0 ]; ok $? "does not say OK"
done <<EOF
--max-ppl-ratio 1.5|non-finite logit at token 64 of the text (chunk 0, position 64)
--max-ppl-ratio 1.5|PPL ratio nan exceeds --max-ppl-ratio
--max-kld 1|mean KLD nan exceeds --max-kld
|non-finite logit at token 64
EOF
run "$QFORGE" verify $V --json --no-tensors "$tmp/nan.gguf"
contains "$out" '"nonfinite_at":	64'; ok $? "JSON names the first non-finite position"
run "$QFORGE" verify --reference "$M/tiny-dsv3" --top 1 "$tmp/nan.gguf"
contains "$out" "blk.0.ffn_gate.weight                        bf16                   nan"; ok $? "an all-NaN tensor sorts as the worst"

# the reference is checked too: a corrupted reference GGUF fails, naming it
run "$QFORGE" verify --reference "$tmp/flip.gguf" --no-tensors "$tmp/bf16.gguf"
expect_rc 1 "a corrupted reference fails verify"
contains "$err" "flip.gguf (the reference): blk.0.ffn_gate.weight: hash mismatch"; ok $? "names the reference: $err"
# a NaN on the reference side is never "0 error, cosine 1", per tensor or per class
run "$QFORGE" verify --reference "$tmp/nan.gguf" --top 1 "$tmp/bf16.gguf"
contains "$out" "blk.0.ffn_gate.weight                        bf16                   nan        inf        nan"; ok $? "a NaN reference tensor shows NaN error"
contains "$out" "dense_ffn            3        nan        inf        nan"; ok $? "and so does its class"

gzip -c "$T/eval-a.txt" > "$tmp/eval.txt.gz"
run "$QFORGE" verify --text "$tmp/eval.txt.gz" --ctx 128 --chunks 4 "$tmp/bf16.gguf"
expect_rc 0 "perplexity alone, from gzip'd text"
run "$QFORGE" verify --text "$tmp/none.txt" "$tmp/bf16.gguf"
expect_rc 3 "a missing text file is an input error"
run "$QFORGE" verify --max-kld 1 "$tmp/bf16.gguf"
expect_rc 2 "limits without --reference and --text are a usage error"
run "$QFORGE" verify --text "$T/eval-a.txt" --ctx 100000 "$tmp/bf16.gguf"
expect_rc 2 "a text shorter than one chunk is a usage error"
# dynamic RoPE scaling: no effect up to max_position_embeddings, so verify runs there; above it
# the model differs from what verify computes: --ctx is refused (exit 2) on the checkpoint, its
# GGUF, as a reference, and before the text's length is looked at
mkdir "$tmp/dyn"; cp "$M/stories260k-hf/"* "$tmp/dyn/"
perl -0777 -pi -e 's/"max_position_embeddings": 512/"max_position_embeddings": 128/; s/"rope_scaling": null/"rope_scaling": {"type": "dynamic", "factor": 2.0}/' "$tmp/dyn/config.json"
run "$QFORGE" convert -q -o "$tmp/dyn.gguf" "$tmp/dyn"
expect_rc 0 "a Llama with dynamic RoPE scaling converts"
run "$QFORGE" verify --text "$T/eval-a.txt" --ctx 128 --chunks 2 "$tmp/dyn"
expect_rc 0 "dynamic RoPE: --ctx 128 = max_position_embeddings is accepted"
contains "$out" "PPL"; ok $? "and measured"
for m in "$tmp/dyn" "$tmp/dyn.gguf" "--reference $tmp/dyn $tmp/dyn.gguf"; do
	run "$QFORGE" verify --text "$T/eval-a.txt" --ctx 129 --chunks 2 $m
	expect_rc 2 "dynamic RoPE: --ctx 129 > max_position_embeddings 128 refused ($m)"
	contains "$err" "129 tokens exceed 128: dynamic RoPE scaling changes the model beyond context_length, and verify does not compute it (use --ctx 128 or less)"; ok $? "says why and what to use: $err"
	contains "$out" "PPL"; [ $? != 0 ]; ok $? "and prints no perplexity"
done
run "$QFORGE" calibrate --text "$T/eval-a.txt" --ctx 192 --chunks 1 -o "$tmp/dyn.imatrix" "$tmp/dyn"
expect_rc 2 "dynamic RoPE: calibrate --ctx 192 > max_position_embeddings 128 refused too"
contains "$err" "192"; ok $? "naming the context: $err"
[ ! -e "$tmp/dyn.imatrix" ]; ok $? "and writes nothing"
head -c 200 "$T/eval-a.txt" > "$tmp/short.txt"
run "$QFORGE" verify --text "$tmp/short.txt" --ctx 4096 "$tmp/dyn.gguf"
expect_rc 2 "dynamic RoPE: a too-long --ctx is refused as such even when the text is shorter than one chunk"
contains "$err" "4096 tokens exceed 128"; ok $? "names the context, not the text: $err"
finish
