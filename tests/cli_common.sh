#!/bin/sh
# The options convert and quantize share come from one table and mean the
# same in both; -t is bounded by the thread pool's cap in every command.
. "${QF_SRCDIR:-.}/tests/tap-sh.sh"
M="$QF_SRCDIR/models"

for cmd in "convert" "quantize --target llamacpp-q8_0"; do
	name=${cmd%% *}
	run "$QFORGE" $cmd -t 257 -o "$tmp/x.gguf" "$M/stories260k-hf"
	expect_rc 2 "$name -t 257 (above the pool's 256) is a usage error"
	contains "$err" "qforge $name: -t takes a thread count from 1 to 256, not '257'"; ok $? "$name names the bound: $err"
	[ ! -e "$tmp/x.gguf" ]; ok $? "$name wrote nothing"
	run "$QFORGE" $cmd -t 0 -o "$tmp/x.gguf" "$M/stories260k-hf"
	expect_rc 2 "$name -t 0 is a usage error"
	run "$QFORGE" $cmd --outtype f8 -o "$tmp/x.gguf" "$M/stories260k-hf"
	expect_rc 2 "$name --outtype f8 is a usage error"
	contains "$err" "--outtype must be f32, f16, bf16 or auto, not 'f8'"; ok $? "$name says which outtypes exist"
	run "$QFORGE" $cmd --dry-run --json -t 3 --outtype f16 --keep-mtp --legacy-kv-b "$M/tiny-dsv3"
	expect_rc 0 "$name takes every shared option"
	contains "$out" '"name":	"blk.0.attn_kv_b.weight"'; ok $? "$name --legacy-kv-b plans one attn_kv_b"
done
run "$QFORGE" verify -t 300 "$M/stories260k-hf"
expect_rc 2 "verify -t 300 is a usage error"
contains "$err" "from 1 to 256"; ok $? "verify names the bound"
run "$QFORGE" convert --dry-run --json --outtype f16 "$M/tiny-dsv3"
contains "$out" '"output":	"tiny-dsv3-f16.gguf"'; ok $? "--outtype f16 names the default output"
# a bundle of ggml blocks reads back: integrity, then the forward pass against the original
# bounds: measured mean KLD 0.0004 (q8_0) and 0.079 (q4_0) on these 2 chunks, with headroom
for tk in llamacpp-q8_0:0.005 llamacpp-q4_0:0.15; do
	t=${tk%%:*}; kld=${tk#*:}
	run "$QFORGE" quantize -q --target $t --format packed -o "$tmp/$t.qfpack" "$M/stories260k-hf"
	expect_rc 0 "$t as a bundle"
	run "$QFORGE" verify --reference "$M/stories260k-hf" --text "$QF_SRCDIR/tests/data/eval-a.txt" --ctx 128 --chunks 2 \
		--max-kld $kld "$tmp/$t.qfpack"
	expect_rc 0 "verify reads the $t bundle back and it computes the same model (mean KLD ≤ $kld)"
	contains "$out" "integrity: OK"; ok $? "its hashes match"
done
finish
