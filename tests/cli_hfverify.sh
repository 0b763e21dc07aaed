#!/bin/sh
# verify of every Hugging Face layout qforge writes, read back as a source, against the original
# tiny-dsv3 (FP8): PPL ratio and mean KLD within bounds measured on this text (eval-a, ctx 128,
# 6237 scored positions), and a single-bit flip in a shard caught by its per-tensor hash, named.
. "${QF_SRCDIR:-.}/tests/tap-sh.sh"
M="$QF_SRCDIR/models"
TXT="$QF_SRCDIR/tests/data/eval-a.txt"

# The row of model NAME in verify's perplexity table: NAME PPL ± err ratio KLD±err p99 top-1 RMS
row() { printf '%s\n' "$out" | awk -v n="$1" '$1 == n { print; exit }'; }
# awk arithmetic check on fields of that row: $5 is the PPL ratio, k the mean KLD
within() { printf '%s\n' "$1" | awk "{ split(\$6, a, \"±\"); k = a[1] + 0; r = \$5 + 0; exit !($2) }"; }

# layout name | how it is made | bound on ratio r and KLD k | why that bound
# Measured (qforge 2026-12-02, eval-a, ctx 128): bf16 r 0.9997 k 0.00079; ascend-w8a16 and
# ascend-w8a8-dynamic r 1.0014 k 0.00208 (same int8 weights, the description differs);
# vllm-fp8-block r 1.0000 k 0; vllm-fp8-block-ue8m0 r 0.9979 k 0.00829; vllm-fp8-block-ct r 1.0000
# k 0; vllm-w8a16 and vllm-w8a8 r 1.0008 k 0.00205; vllm-w4a16 r 1.0060 k 0.0369; ascend-w4a16
# r 1.0000 k 0.00833.
check_layout() {
	name=$1 bound=$2 why=$3
	run "$QFORGE" verify --reference "$M/tiny-dsv3" --text "$TXT" --ctx 128 "$tmp/$name"
	expect_rc 0 "$name: verify against the original"
	contains "$out" "integrity: OK"; ok $? "$name: every per-tensor hash matches"
	r=$(row "$name")
	case "$r" in *nan*|*inf*) r="" ;; esac # finite, whatever awk makes of "nan"
	[ -n "$r" ] && within "$r" "r == r && k == k && $bound"; ok $? "$name: $bound ($why): $r"
}

# The quantize --json summary's rel_rms and cosine of class CLASS ("rel cos"; empty when not measured).
class_err() {
	printf '%s\n' "$out" | awk -v c="\"$1\"," '$1 == "\"class\":" { f = ($2 == c) } f && $1 == "\"rel_rms\":" { sub(",", "", $2); r = $2 }
		f && $1 == "\"cosine\":" { sub(",", "", $2); print r, $2; exit }'
}
# $1 target, $2 awk bound on the expert class's rel-RMS e and cosine c, $3 why
sumcheck() {
	e=$(class_err expert)
	printf '%s\n' "$e" | awk "{ e = \$1 + 0; c = \$2 + 0; exit !(NF == 2 && $2) }"; ok $? "$1: summary's expert rel-RMS and cosine $e: $2 ($3)"
}

run "$QFORGE" convert -q --format safetensors -o "$tmp/bf16" "$M/tiny-dsv3"
expect_rc 0 "float layout (bf16)"
check_layout bf16 "r > 0.998 && r < 1.002 && k > 0 && k < 0.002" \
	"only BF16 rounding of the dequantized FP8: 2.5x the measured KLD"

for t in ascend-w8a16 ascend-w8a8-dynamic; do
	run "$QFORGE" quantize --json --target $t -o "$tmp/$t" "$M/tiny-dsv3"
	expect_rc 0 "$t"
	sumcheck $t "e > 0.003 && e < 0.014 && c > 0.9999" "per-channel int8: measured 0.00684, 2x either way"
	e=$(class_err expert)
	check_layout $t "r > 0.995 && r < 1.005 && k > 0.0005 && k < 0.005" \
		"per-channel int8, absmax/127: about 2.4x the measured KLD, and not lossless"
	# every expert is quantized, so verify's per-class error (its own reader) is the summary's
	v=$(printf '%s\n' "$out" | awk '$1 == "expert" && NF == 5 { print $3; exit }')
	[ -n "$v" ] && printf '%s %s\n' "$e" "$v" | awk '{ exit !($1 - $3 < 1e-5 && $3 - $1 < 1e-5) }'; ok $? "$t: the summary's expert rel-RMS ($e) is verify's ($v)"
done

run "$QFORGE" quantize --json --target vllm-fp8-block -o "$tmp/vllm-fp8-block" "$M/tiny-dsv3"
expect_rc 0 "vllm-fp8-block"
[ -z "$(class_err expert)" ]; ok $? "vllm-fp8-block: the copied FP8 experts are not reported as re-quantized"
check_layout vllm-fp8-block "r == 1 && k == 0" "the release's own FP8 blocks and scales, byte for byte: exactly the original"

run "$QFORGE" quantize --json --target vllm-fp8-block-ue8m0 -o "$tmp/vllm-fp8-block-ue8m0" "$M/tiny-dsv3"
expect_rc 0 "vllm-fp8-block-ue8m0"
sumcheck vllm-fp8-block-ue8m0 "e > 0.012 && e < 0.055 && c > 0.999" "E4M3 under power-of-two scales: measured 0.02715"
check_layout vllm-fp8-block-ue8m0 "r > 0.99 && r < 1.01 && k > 0.002 && k < 0.02" \
	"scales rounded up to powers of two re-quantize the FP8: 2.4x the measured KLD"

run "$QFORGE" quantize --json --target vllm-fp8-block-ct -o "$tmp/vllm-fp8-block-ct" "$M/tiny-dsv3"
expect_rc 0 "vllm-fp8-block-ct"
[ -z "$(class_err expert)" ]; ok $? "vllm-fp8-block-ct: the release's blocks are not reported as re-quantized"
check_layout vllm-fp8-block-ct "r == 1 && k == 0" "the release's FP8 blocks with their F32 scales under compressed-tensors names: exact"

for t in vllm-w8a16 vllm-w8a8; do
	run "$QFORGE" quantize --json --target $t -o "$tmp/$t" "$M/tiny-dsv3"
	expect_rc 0 "$t"
	sumcheck $t "e > 0.003 && e < 0.014 && c > 0.9999" "per-channel int8: measured 0.00665"
	check_layout $t "r > 0.995 && r < 1.005 && k > 0.0005 && k < 0.005" \
		"per-channel int8, absmax/127.5 in BF16 scales: about 2.4x the measured KLD, and not lossless"
done

run "$QFORGE" quantize --json --target vllm-w4a16 -o "$tmp/vllm-w4a16" "$M/tiny-dsv3"
expect_rc 0 "vllm-w4a16"
sumcheck vllm-w4a16 "e > 0.05 && e < 0.22 && c > 0.99" "int4 groups of 128, where they fit: measured 0.11084"
check_layout vllm-w4a16 "r > 0.98 && r < 1.02 && k > 0.01 && k < 0.08" \
	"symmetric int4 in groups of 128, the coarsest layout: about 2.2x the measured KLD"

run "$QFORGE" quantize --json --target ascend-w4a16 -o "$tmp/ascend-w4a16" "$M/tiny-dsv3"
expect_rc 0 "ascend-w4a16"
sumcheck ascend-w4a16 "e > 0.045 && e < 0.2 && c > 0.99" "int4 groups of 32: measured 0.09513"
check_layout ascend-w4a16 "r > 0.99 && r < 1.01 && k > 0.002 && k < 0.02" \
	"int4 groups of 32 for the routed experts, int8 elsewhere: 2.4x the measured KLD"

# One bit of one tensor's data flipped in a copy of each folder: verify fails (exit 1) naming it.
# $1 folder, $2 shard, $3 tensor
flip() {
	rm -rf "$tmp/flip" && cp -r "$tmp/$1" "$tmp/flip" && chmod -R u+w "$tmp/flip"
	run "$QFORGE" inspect --json "$tmp/flip"
	off=$(printf '%s\n' "$out" | awk -v n="\"$3\"," '$2 == n { f = 1 } f && $1 == "\"offset\":" { sub(",", "", $2); print $2; exit }')
	[ -n "$off" ]; ok $? "$1: $3 is in the folder"
	p=${off:-0} # its first byte: every tensor has one
	f="$tmp/flip/$2"
	b=$(od -An -tu1 -j "$p" -N1 "$f" | tr -d ' ')
	printf "\\$(printf %03o $((b ^ 4)))" | dd of="$f" bs=1 seek="$p" conv=notrunc 2>/dev/null
	run "$QFORGE" verify "$tmp/flip"
	expect_rc 1 "$1: a bit flipped in $3 fails verify"
	contains "$out" "MISMATCH $3:"; ok $? "  names the tensor"
	contains "$err" "$3: hash mismatch"; ok $? "  and says so on stderr: $err"
}
flip bf16 model.safetensors model.layers.1.mlp.experts.3.down_proj.weight
flip ascend-w8a16 quant_model_weights.safetensors model.layers.1.mlp.experts.3.down_proj.weight
flip ascend-w8a8-dynamic quant_model_weights.safetensors model.layers.2.self_attn.kv_b_proj.weight_scale
flip vllm-fp8-block model.safetensors model.layers.0.self_attn.q_b_proj.weight_scale_inv
flip vllm-fp8-block-ue8m0 model.safetensors model.layers.3.mlp.shared_experts.up_proj.weight
flip vllm-fp8-block-ct model.safetensors model.layers.2.mlp.experts.0.gate_proj.weight_scale
flip vllm-w8a16 model.safetensors model.layers.0.self_attn.o_proj.weight_packed
flip vllm-w8a8 model.safetensors model.layers.0.self_attn.o_proj.weight
flip vllm-w4a16 model.safetensors model.layers.1.mlp.experts.3.gate_proj.weight_packed
flip ascend-w4a16 model.safetensors model.layers.1.mlp.experts.3.down_proj.weight_shape

finish
