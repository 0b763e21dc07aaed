#!/bin/sh
# CLI tests for `qforge quantize` and packed bundles: targets, summaries, JSON, errors,
# inspect of bundles, and that an interrupted run leaves nothing behind.
. "${QF_SRCDIR:-.}/tests/tap-sh.sh"
M="$QF_SRCDIR/models"

run "$QFORGE" quantize --list-targets
expect_rc 0 "--list-targets"
for t in llamacpp-q8_0 llamacpp-q4_0 llamacpp-moe-mxfp4 hopper-fp8 bundle-w8a16 bundle-w4a16 ocp-mx \
	llamacpp-q2_k llamacpp-q3_k_m llamacpp-q4_k_m llamacpp-q5_k_m llamacpp-q6_k; do
	contains "$out" "$t "; ok $? "lists $t"
done
run "$QFORGE" quantize --list-targets --json
contains "$out" '"name":	"hopper-fp8"'; ok $? "--list-targets --json"

run "$QFORGE" quantize -q --target llamacpp-q4_0 -o "$tmp/q4.gguf" "$M/tiny-dsv3"
expect_rc 0 "quantize the FP8 checkpoint to q4_0 GGUF in one pass"
contains "$out" "expert         q4_0"; ok $? "summary row per class"
contains "$out" "rel-RMS"; ok $? "summary has the quality columns"
run "$QFORGE" inspect "$tmp/q4.gguf"
contains "$out" "Q4_0"; ok $? "the GGUF holds q4_0 tensors"
contains "$out" "general.file_type"; ok $? "file type recorded"

run "$QFORGE" quantize -q --target llamacpp-q4_k_m --split-max-size 1500K -o "$tmp/km.gguf" "$M/tiny-dsv3"
expect_rc 0 "Q4_K_M as llama.cpp mixes it, split"
contains "$out" "km-00001-of-00003.gguf (3 parts)"; ok $? "three parts: $out"
contains "$out" "blk.1.attn_k_b.weight (row length 32) → q5_0"; ok $? "attn_k_b falls back to q5_0 as in llama.cpp"
run "$QFORGE" inspect "$tmp/km-00001-of-00003.gguf"
contains "$out" "general.file_type                            u32  15"; ok $? "general.file_type 15 (MOSTLY_Q4_K_M)"
contains "$out" "general.quantization_version                 u32  2"; ok $? "general.quantization_version 2"

run "$QFORGE" quantize -q --json --target bundle-w4a16 -o "$tmp/w4" "$M/tiny-dsv3"
expect_rc 0 "W4A16 bundle"
contains "$out" '"format":	"int4-g128"'; ok $? "JSON names the expert format"
contains "$out" '"rel_rms":'; ok $? "JSON has the quality figures"
[ -f "$tmp/w4/manifest.json" ] && [ -f "$tmp/w4/tensors.bin" ] && [ -f "$tmp/w4/tokenizer.json" ]; ok $? "bundle folder has manifest, payload and tokenizer"
run "$QFORGE" inspect "$tmp/w4"
contains "$out" "blk.1.ffn_up_exps.weight_scale"; ok $? "inspect lists the companion scales"
contains "$out" "int4-g128"; ok $? "inspect shows formats"

run "$QFORGE" quantize --target hopper-fp8 --format gguf -o "$tmp/fp8.gguf" "$M/tiny-dsv3"
expect_rc 2 "fp8-b128 cannot go into GGUF"
contains "$err" "packed bundle"; ok $? "message names the bundle: $err"
[ ! -e "$tmp/fp8.gguf" ] && [ -z "$(temps "$tmp/fp8.gguf")" ]; ok $? "no partial output"

run "$QFORGE" quantize --target no-such-chip "$M/tiny-dsv3"
expect_rc 2 "unknown target"
run "$QFORGE" quantize --type 'attn(=q8_0' "$M/tiny-dsv3"
expect_rc 2 "bad --type regex"
contains "$err" "bad regular expression"; ok $? "says so: $err"
run "$QFORGE" quantize --type 'attn=iq4_xs' "$M/tiny-dsv3"
expect_rc 2 "unknown format"
contains "$err" "unknown format 'iq4_xs'"; ok $? "names it: $err"
printf '{"name":"mine","classes":{"expert":"int4-g128","attn":"bogus"}}' > "$tmp/bad.json"
run "$QFORGE" quantize --profile "$tmp/bad.json" "$M/tiny-dsv3"
expect_rc 2 "bad user profile"
contains "$err" "$tmp/bad.json: class 'attn': unknown format 'bogus'"; ok $? "names file, class and format: $err"
printf '{"name":"mine","output":"packed","classes":{"expert":"int4-g128-asym"}}' > "$tmp/mine.json"
run "$QFORGE" quantize -q --profile "$tmp/mine.json" -o "$tmp/mine.tar" "$M/tiny-dsv3"
expect_rc 0 "a user profile, written as a tar"
contains "$out" "int4-g128-asym"; ok $? "summary shows the user's format"
run "$QFORGE" inspect "$tmp/mine.tar"
contains "$out" "weight_zero"; ok $? "tar bundle inspects, with zero points"

run "$QFORGE" quantize -q --target llamacpp-q8_0 -o "$tmp/st.gguf" "$M/stories260k-hf"
contains "$out" "fallback: 5 tensors"; ok $? "fallback reported: rows of 172 are not a multiple of 32"

run "$QFORGE" convert -q --outtype f32 -o "$tmp/deq.gguf" "$tmp/q4.gguf"
expect_rc 0 "convert dequantizes a quantized GGUF"
run "$QFORGE" inspect "$tmp/deq.gguf"
! contains "$out" "Q4_0"; ok $? "… to F32, no q4_0 left"
run "$QFORGE" quantize --target llamacpp-q8_0 -o "$tmp/rq.gguf" "$tmp/q4.gguf"
expect_rc 2 "re-quantizing q4_0 to q8_0 needs --allow-requantize"
contains "$err" "already quantized"; ok $? "says why: $err"

# convert and quantize write bundles the same way
run "$QFORGE" convert -q --format packed -o "$tmp/cv" "$M/tiny-dsv3"
expect_rc 0 "convert --format packed"
run "$QFORGE" convert -q -o "$tmp/back.gguf" "$tmp/cv"
contains "$out" "data xxh64 77ffbe11ca0d8d67"; ok $? "bundle → GGUF gives the golden BF16 hash"

# SIGINT during a long conversion: no output, no temporary left
GEN="$QF_BUILDDIR/tests/bench/gen_dsv3"
if [ -x "$GEN" ]; then
	"$GEN" "$tmp/big" --layers 1 --experts 2 --vocab 2000 >/dev/null 2>&1
	"$QFORGE" convert -t 1 -q -o "$tmp/big.gguf" "$tmp/big" >/dev/null 2>&1 &
	pid=$!
	i=0
	while ! [ -s "$(temps "$tmp/big.gguf")" ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done
	kill -INT $pid
	wait $pid; rc=$?
	[ $i -lt 200 ] || [ $rc != 0 ]; ok $? "conversion was running when interrupted (exit $rc)"
	[ $rc = 130 ]; ok $? "SIGINT ends it with the signal's status (exit $rc)"
	[ ! -e "$tmp/big.gguf" ] && [ -z "$(temps "$tmp/big.gguf")" ]; ok $? "no partial output after SIGINT"
	"$QFORGE" quantize -t 1 -q --target hopper-fp8 -o "$tmp/big.tar" "$tmp/big" >/dev/null 2>&1 &
	pid=$!
	i=0
	while [ -z "$(temps "$tmp/big.tar.stage")" ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done
	kill -TERM $pid
	wait $pid; rc=$?
	[ ! -e "$tmp/big.tar" ] && [ -z "$(temps "$tmp/big.tar.stage")$(temps "$tmp/big.tar")" ]; ok $? "no partial bundle after SIGTERM (exit $rc)"
	rm -rf "$tmp/big"
else
	echo "ok $((n=n+1)) - SIGINT test # SKIP gen_dsv3 not built"
fi
# --no-quality measures nothing, so no class may claim to be "exact"
run "$QFORGE" quantize -f --no-quality --target llamacpp-q4_0 -o "$tmp/nq.gguf" "$M/tiny-dsv3"
expect_rc 0 "--no-quality"
contains "$out" "exact"; [ $? != 0 ]; ok $? "--no-quality never prints exact in the error column"
# --imatrix: a legacy .dat of one entry (256 columns of weight 1.0, ncall 1)
dat() { # NAME: one entry of 256 ones
	printf '\001\000\000\000'
	printf "\\$(printf %03o ${#1})\000\000\000"
	printf '%s' "$1"
	printf '\001\000\000\000\000\001\000\000'
	i=0; while [ $i -lt 256 ]; do printf '\000\000\200\077'; i=$((i + 1)); done
}
dat blk.1.attn_q_a.weight > "$tmp/one.dat"
run "$QFORGE" quantize -f --target llamacpp-q4_k_m --imatrix "$tmp/one.dat" -o "$tmp/im.gguf" "$M/tiny-dsv3"
expect_rc 0 "--imatrix with a legacy .dat"
contains "$out" "1 tensors weighted"; ok $? "says what it weighted: $(echo "$out" | grep imatrix)"
run "$QFORGE" inspect "$tmp/im.gguf"
contains "$out" "quantize.imatrix.file"; ok $? "records the imatrix as llama-quantize does"
run "$QFORGE" quantize -f --target ocp-mx --imatrix "$tmp/one.dat" -o "$tmp/mx" "$M/tiny-dsv3"
expect_rc 0 "--imatrix with a target whose formats take no weights"
contains "$err" "--imatrix ignored"; ok $? "says it ignores it: $err"
dat blk.1.ffn_up_exps.weight > "$tmp/bad.dat"
run "$QFORGE" quantize -f --target llamacpp-q4_k_m --imatrix "$tmp/bad.dat" -o "$tmp/bad.gguf" "$M/tiny-dsv3"
expect_rc 3 "an imatrix entry of the wrong size"
contains "$err" "blk.1.ffn_up_exps.weight"; ok $? "names the tensor: $err"
finish
