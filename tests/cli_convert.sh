#!/bin/sh
# CLI tests for `qforge convert`: outputs, summaries, JSON, exit codes, no partial files.
. "${QF_SRCDIR:-.}/tests/tap-sh.sh"
M="$QF_SRCDIR/models"

run "$QFORGE" convert -q -o "$tmp/ds.gguf" "$M/tiny-dsv3"
expect_rc 0 "convert the FP8 DeepSeek checkpoint"
contains "$out" "deepseek2): 70 tensors"; ok $? "summary names the architecture and tensor count"
contains "$out" "data xxh64 77ffbe11ca0d8d67"; ok $? "summary carries the golden data hash"
[ -f "$tmp/ds.gguf" ] && [ -z "$(temps "$tmp/ds.gguf")" ]; ok $? "output in place, no .tmp left"

run "$QFORGE" convert -o "$tmp/ds.gguf" "$M/tiny-dsv3"
expect_rc 2 "existing output is not overwritten without --force"
contains "$err" "--force"; ok $? "message says how to overwrite"

run "$QFORGE" convert --json --force -o "$tmp/ds.gguf" "$M/tiny-dsv3"
expect_rc 0 "--json"
contains "$out" '"data_xxh64":	"77ffbe11ca0d8d67"'; ok $? "JSON summary has the data hash"

run "$QFORGE" convert --dry-run -o "$tmp/dry.gguf" "$M/tiny-dsv3"
expect_rc 0 "--dry-run"
contains "$out" "blk.1.ffn_up_exps.weight"; ok $? "plan lists stacked experts"
contains "$out" "kv_b→k_b"; ok $? "plan shows the kv_b split"
[ ! -e "$tmp/dry.gguf" ]; ok $? "--dry-run writes nothing"

run "$QFORGE" convert --legacy-kv-b --dry-run "$M/tiny-dsv3"
contains "$out" "blk.0.attn_kv_b.weight"; ok $? "--legacy-kv-b keeps one attn_kv_b"

run "$QFORGE" convert --keep-mtp --dry-run "$M/tiny-dsv3"
contains "$out" "blk.4.nextn.eh_proj.weight"; ok $? "--keep-mtp keeps the MTP layer"

mkdir "$tmp/noshard" && cp "$M/tiny-dsv3"/* "$tmp/noshard"/ && rm "$tmp/noshard/model-00002-of-00003.safetensors"
run "$QFORGE" convert -o "$tmp/x.gguf" "$tmp/noshard"
expect_rc 3 "missing shard"
contains "$err" "model-00002-of-00003.safetensors named by the index is missing"; ok $? "names the shard: $err"
[ ! -e "$tmp/x.gguf" ] && [ -z "$(temps "$tmp/x.gguf")" ]; ok $? "no partial output"

mkdir "$tmp/trunc" && cp "$M/tiny-dsv3"/* "$tmp/trunc"/ && chmod u+w "$tmp/trunc"/* && truncate -s 1000000 "$tmp/trunc/model-00003-of-00003.safetensors"
run "$QFORGE" convert -o "$tmp/x.gguf" "$tmp/trunc"
expect_rc 3 "truncated shard"
contains "$err" "model-00003-of-00003.safetensors"; ok $? "names the file: $err"

mkdir "$tmp/ro" && chmod 555 "$tmp/ro"
if [ "$(id -u)" = 0 ]; then
	echo "ok $((n=n+1)) - unwritable output # SKIP running as root"
else
	run "$QFORGE" convert -o "$tmp/ro/x.gguf" "$M/stories260k-hf"
	expect_rc 4 "unwritable output folder is an I/O error"
fi
run "$QFORGE" convert -o "/proc/qforge-test/x.gguf" "$M/stories260k-hf"
expect_rc 4 "output in a folder that cannot exist is an I/O error"
contains "$err" "cannot create"; ok $? "says it cannot create: $err"

run "$QFORGE" convert --outtype q9 "$M/stories260k-hf"
expect_rc 2 "bad --outtype is a usage error"

tar -C "$M" -cf "$tmp/st.tar" stories260k-hf
run "$QFORGE" convert -q --outtype f32 -o "$tmp/tar.gguf" "$tmp/st.tar"
expect_rc 0 "convert straight from a tar"
contains "$out" "data xxh64 ebb6009c62465889"; ok $? "same golden hash as from the folder"

# split GGUF: gguf-split's names and decimal sizes; read back by its first part; every part verified
run "$QFORGE" convert -q --outtype f32 --split-max-size 400K -o "$tmp/sp.gguf" "$M/stories260k-hf"
expect_rc 0 "--split-max-size 400K"
contains "$out" "sp-00001-of-00003.gguf (3 parts)"; ok $? "names the first of 3 parts: $out"
contains "$out" "data xxh64 ebb6009c62465889"; ok $? "same data as one file"
[ -f "$tmp/sp-00003-of-00003.gguf" ] && [ ! -e "$tmp/sp.gguf" ] && [ -z "$(ls "$tmp" | grep qftmp-)" ]; ok $? "three parts, no single file, no .tmp left"
run "$QFORGE" convert -q --outtype f32 -o "$tmp/joined.gguf" "$tmp/sp-00001-of-00003.gguf"
contains "$out" "data xxh64 ebb6009c62465889"; ok $? "a split set converts back by its first part"
run "$QFORGE" verify "$tmp/sp-00001-of-00003.gguf"
expect_rc 0 "verify checks a split set"
contains "$out" "47 hashes match over 47 tensors"; ok $? "every part's hashes: $out"
printf 'X' | dd of="$tmp/sp-00002-of-00003.gguf" bs=1 seek=200000 conv=notrunc 2>/dev/null
run "$QFORGE" verify "$tmp/sp-00001-of-00003.gguf"
expect_rc 1 "a flipped byte in part 2 fails verify"
contains "$out" "sp-00002-of-00003.gguf"; ok $? "names the part: $out"
run "$QFORGE" convert -q -o "$tmp/y.gguf" "$tmp/sp-00002-of-00003.gguf"
expect_rc 3 "a middle part is not a source"
contains "$err" "open its first part"; ok $? "says to open the first part: $err"
run "$QFORGE" convert --split-max-size 12X "$M/stories260k-hf"
expect_rc 2 "a bad size is a usage error"

# Corruption is not laundered: a GGUF or bundle source whose recorded hashes fail is refused
# (exit 3, no output) unless --ignore-input-hashes. Each case corrupts a copy of a fresh output.
"$QFORGE" convert -q -o "$tmp/src.gguf" "$M/tiny-dsv3" > /dev/null
"$QFORGE" convert -q --format packed -o "$tmp/src.qfpack" "$M/tiny-dsv3" > /dev/null
# name | source | file to corrupt (inside the copy) | byte offset (@TEXT: inside TEXT) | what stderr must say
while IFS='|' read -r what src file at want; do
	rm -rf "$tmp/bad" "$tmp/bad.out" "$tmp/bad.out.tmp"; cp -r "$tmp/$src" "$tmp/bad"
	f="$tmp/bad$file"
	case "$at" in @*) at=$(( $(grep -obUa "${at#@}" "$f" | head -1 | cut -d: -f1) + 2 ));; esac
	b=$(dd if="$f" bs=1 skip="$at" count=1 2>/dev/null | od -An -tu1 | tr -d ' ')
	printf "$(printf '\\%03o' $(( (b ^ 8) & 255 )))" | dd of="$f" bs=1 seek="$at" conv=notrunc 2>/dev/null
	run "$QFORGE" convert -q -o "$tmp/bad.out" "$tmp/bad"
	expect_rc 3 "convert refuses $what"
	contains "$err" "$want"; ok $? "says: $want"
	[ ! -e "$tmp/bad.out" ] && [ -z "$(ls "$tmp" | grep 'bad.out.*tmp')" ]; ok $? "writes nothing"
	run "$QFORGE" quantize -q --target llamacpp-q8_0 -o "$tmp/bad.out" "$tmp/bad"
	expect_rc 3 "quantize refuses $what"
	run "$QFORGE" convert -q --ignore-input-hashes -o "$tmp/bad.out" "$tmp/bad"
	expect_rc 0 "--ignore-input-hashes converts $what anyway"
done <<EOF
a GGUF with a flipped tensor bit|src.gguf||2000000|hash mismatch (recorded
a GGUF with a flipped metadata bit|src.gguf||@tiny-dsv3|metadata hash mismatch
a bundle with a flipped tensors.bin bit|src.qfpack|/tensors.bin|5000|hash mismatch
a bundle with a flipped metadata.gguf bit|src.qfpack|/metadata.gguf|200|metadata.gguf: hash mismatch
a bundle with an edited manifest|src.qfpack|/manifest.json|@"qforge 0.1|manifest.json hash mismatch
EOF
run "$QFORGE" convert -q -o "$tmp/sp-out.gguf" "$tmp/sp-00001-of-00003.gguf"
expect_rc 3 "a split set whose part 2 is corrupted is refused"
contains "$err" "sp-00002-of-00003.gguf: tensor"; ok $? "names the part and the tensor: $err"

# zero tensors: nothing to convert is an input error, not an empty output
printf 'GGUF\003\000\000\000\000\000\000\000\000\000\000\000\001\000\000\000\000\000\000\000\024\000\000\000\000\000\000\000general.architecture\010\000\000\000\005\000\000\000\000\000\000\000llama' > "$tmp/empty.gguf"
mkdir -p "$tmp/empty.qfpack"; : > "$tmp/empty.qfpack/tensors.bin"
printf '{"format":"qforge-packed","version":1,"architecture":"llama","files":[{"name":"tensors.bin","size":0}],"tensors":[]}' > "$tmp/empty.qfpack/manifest.json"
for e in empty.gguf empty.qfpack; do
	run "$QFORGE" convert -q -o "$tmp/empty.out" "$tmp/$e"
	expect_rc 3 "a zero-tensor source: $e"
	contains "$err" "holds no tensors"; ok $? "says so: $err"
done

finish
