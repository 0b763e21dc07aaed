#!/bin/sh
# CLI tests for `qforge inspect`: expected output, JSON and exit codes.
. "${QF_SRCDIR:-.}/tests/tap-sh.sh"
M="$QF_SRCDIR/models"

run "$QFORGE" inspect "$M/tiny-dsv3"
expect_rc 0 "inspect a sharded FP8 checkpoint"
contains "$out" "3 safetensors files" ; ok $? "reports 3 shards"
contains "$out" "architecture: DeepseekV3ForCausalLM"; ok $? "reports the architecture"
contains "$out" "quantization: fp8 e4m3"; ok $? "reports the FP8 quantization config"
contains "$out" "model.layers.1.mlp.experts.15.up_proj.weight_scale_inv"; ok $? "lists scale tensors"
contains "$out" "totals: 501 tensors"; ok $? "totals count 501 tensors"

run "$QFORGE" inspect --json "$M/stories260k-hf"
expect_rc 0 "inspect --json"
contains "$out" '"parameters":	260032' || contains "$out" '"parameters": 260032'; ok $? "JSON totals: 260032 parameters"
contains "$out" '"kind":	"safetensors"'; ok $? "JSON kind"

run "$QFORGE" inspect --hashes "$M/stories260k-hf/model.safetensors"
expect_rc 0 "inspect --hashes on a single file"
h=$(printf '%s\n' "$out" | awk '$1=="model.norm.weight"{print $NF}')
[ ${#h} = 16 ]; ok $? "prints a 16-hex-digit xxh64 per tensor ($h)"

run "$QFORGE" inspect "$tmp/none"
expect_rc 3 "missing path is an input error"
contains "$err" "qforge inspect: $tmp/none"; ok $? "message names the path"

printf 'GGUF\003\000\000\000' > "$tmp/short.gguf"
run "$QFORGE" inspect "$tmp/short.gguf"
expect_rc 3 "truncated GGUF"
contains "$err" "short.gguf: offset 8: tensor count runs past end of file"; ok $? "one clear line: $err"
[ "$(printf '%s\n' "$err" | wc -l)" = 1 ]; ok $? "exactly one line on stderr"

# integers print as integers, never %g (4294967295 is not 4.2949673e+09), in text and JSON
"$QFORGE" convert -q -o "$tmp/ints.gguf" "$QF_SRCDIR/models/tiny-dsv3" > /dev/null
perl -0777 -pe 's/(deepseek2\.context_length\x04\x00\x00\x00)..../$1\xff\xff\xff\xff/s' "$tmp/ints.gguf" > "$tmp/umax.gguf"
run "$QFORGE" inspect "$tmp/umax.gguf"
contains "$out" "deepseek2.context_length                     u32  4294967295"; ok $? "a u32 prints exactly"
contains "$out" "tokenizer.ggml.token_type                    arr  [i32 × 1024] 3 3"; ok $? "integer arrays print integers"
run "$QFORGE" inspect --json "$tmp/umax.gguf"
contains "$out" '"deepseek2.context_length":	4294967295,'; ok $? "JSON has the exact integer"

run "$QFORGE" inspect
expect_rc 2 "no path is a usage error"
run "$QFORGE" inspect --bogus x
expect_rc 2 "unknown option is a usage error"
run "$QFORGE" frobnicate
expect_rc 2 "unknown command is a usage error"
run "$QFORGE" help inspect
expect_rc 0 "help inspect"
contains "$out" "qforge inspect"; ok $? "help text shows usage"
finish
