#!/bin/sh
# CLI tests for hostile outputs and inputs: nothing destroyed, nothing left behind, nothing hangs.
# Each row: want-exit, what, stderr must contain, command...; then no temporary may remain in $tmp.
. "${QF_SRCDIR:-.}/tests/tap-sh.sh"
M="$QF_SRCDIR/models"
T=120 # seconds before a case counts as hung: generous, for a 2-core machine at load 25 (a real hang still fails)

leftovers() { find "$tmp" -name '*.qftmp-*' 2>/dev/null | head -3; }
row() {
	want=$1 what=$2 msg=$3; shift 3
	run timeout $T "$@"
	expect_rc "$want" "$what"
	[ -z "$msg" ] || { contains "$err" "$msg"; ok $? "… says '$msg': $(echo "$err" | head -1)"; }
	[ -z "$(leftovers)" ]; ok $? "… leaves no temporary ($(leftovers))"
}
sum() { cksum <"$1" 2>/dev/null; }

cp -R "$M/tiny-dsv3" "$tmp/ck" && chmod -R u+w "$tmp/ck"
shard="$tmp/ck/model-00002-of-00003.safetensors"
shard_sum=$(sum "$shard")

# ---- outputs that must not destroy anything ----
mkdir "$tmp/home" && echo mine >"$tmp/home/notes.txt"
ln -s "$tmp/home/notes.txt" "$tmp/link.gguf"
mkfifo "$tmp/fifo.gguf"
row 2 '-o "" is a usage error' "-o needs a file name" "$QFORGE" convert -o "" "$M/stories260k-hf"
# a device node of our own when root can make one: a qforge that gets this wrong must not
# replace the machine's /dev/null (a non-root run cannot replace it)
dev=/dev/null
[ "$(id -u)" = 0 ] && mknod "$tmp/null" c 1 3 2>/dev/null && dev="$tmp/null"
row 2 '-f -o a device node (/dev/null) is refused' "a character device" "$QFORGE" convert -f -o "$dev" "$M/stories260k-hf"
[ -c "$dev" ]; ok $? "$dev is still a device"
row 2 '-f --format packed -o a foreign folder is refused' "a folder qforge did not write" \
	"$QFORGE" convert -f --format packed -o "$tmp/home" "$M/stories260k-hf"
[ "$(cat "$tmp/home/notes.txt")" = mine ]; ok $? "the folder and its file are intact"
row 2 '-f -o a folder for a GGUF is refused' "is a folder" "$QFORGE" convert -f -o "$tmp/home" "$M/stories260k-hf"
row 2 '-f -o a symlink is refused' "symbolic link" "$QFORGE" convert -f -o "$tmp/link.gguf" "$M/stories260k-hf"
[ "$(cat "$tmp/home/notes.txt")" = mine ]; ok $? "the link's target is intact"
row 2 '-f -o a FIFO is refused (and does not hang)' "a FIFO" "$QFORGE" convert -f -o "$tmp/fifo.gguf" "$M/stories260k-hf"
row 2 '-f -o one of the source shards is refused' "is a file of the source" "$QFORGE" convert -f -o "$shard" "$tmp/ck"
row 2 '-f -o the source config.json is refused' "is a file of the source" "$QFORGE" convert -f -o "$tmp/ck/config.json" "$tmp/ck"
ln "$shard" "$tmp/hardlink.gguf"
row 2 '-f -o a hard link to a source shard is refused' "is a file of the source" "$QFORGE" convert -f -o "$tmp/hardlink.gguf" "$tmp/ck"
rm -f "$tmp/hardlink.gguf"
[ "$(sum "$shard")" = "$shard_sum" ]; ok $? "the shard is intact"
row 0 'convert --format packed' "" "$QFORGE" convert -q --format packed -o "$tmp/bundle" "$M/stories260k-hf"
row 0 '-f replaces a bundle qforge wrote' "" "$QFORGE" convert -q -f --format packed -o "$tmp/bundle" "$M/stories260k-hf"
row 2 '-f -o the source bundle is refused' "is a file of the source" "$QFORGE" convert -q -f --format packed -o "$tmp/bundle" "$tmp/bundle"
echo mine >"$tmp/bundle/notes.txt"
row 2 '-f refuses a bundle that holds a file qforge did not write' "which its manifest does not list" \
	"$QFORGE" convert -q -f --format packed -o "$tmp/bundle" "$M/stories260k-hf"
[ -f "$tmp/bundle/notes.txt" ]; ok $? "… and it is intact"
ln -s "$tmp/home/notes.txt" "$tmp/out.gguf.tmp"
row 0 'a symlink at the old fixed OUT.tmp name is not followed' "" "$QFORGE" convert -q -o "$tmp/out.gguf" "$M/stories260k-hf"
[ "$(cat "$tmp/home/notes.txt")" = mine ] && [ -L "$tmp/out.gguf.tmp" ]; ok $? "its target is intact"

# two writers of one output at once: each its own temporary; the output is one whole file
"$QFORGE" convert -q -f -o "$tmp/both.gguf" "$M/tiny-dsv3" >/dev/null 2>&1 & p1=$!
"$QFORGE" convert -q -f -o "$tmp/both.gguf" "$M/tiny-dsv3" >/dev/null 2>&1 & p2=$!
wait $p1; r1=$?; wait $p2; r2=$?
[ $r1 = 0 ] && [ $r2 = 0 ]; ok $? "two concurrent -f writers both finish (exit $r1, $r2)"
run "$QFORGE" verify "$tmp/both.gguf"
expect_rc 0 "the output they raced for is whole (its hashes verify)"
[ -z "$(leftovers)" ]; ok $? "… and no temporary is left"

# a temporary that a SIGKILLed run left is swept by the next run for that output
host=$(hostname | tr -c 'A-Za-z0-9.\n' '_' | cut -c1-32)
sh -c 'exit 0' & dead=$!; wait $dead
echo x >"$tmp/k.gguf.qftmp-$dead-abcdef-$host"
row 0 'a later run for the same output' "" "$QFORGE" convert -q -o "$tmp/k.gguf" "$M/stories260k-hf"

# ---- inputs that are not regular files ----
fifo_case() { # FILE-IN-CHECKPOINT what
	rm -rf "$tmp/ff" && cp -R "$tmp/ck" "$tmp/ff" && rm -f "$tmp/ff/$1" && mkfifo "$tmp/ff/$1"
	row 3 "a FIFO as $2 is refused without hanging" "not a regular file" "$QFORGE" convert -o "$tmp/ff.gguf" "$tmp/ff"
}
fifo_case model-00001-of-00003.safetensors "a shard"
fifo_case config.json "config.json"
fifo_case model.safetensors.index.json "the index"
fifo_case tokenizer.json "tokenizer.json"
fifo_case tokenizer_config.json "tokenizer_config.json"
rm -rf "$tmp/ff" && cp -R "$tmp/ck" "$tmp/ff" && rm "$tmp/ff/tokenizer.json" && mkfifo "$tmp/ff/tokenizer.json"
row 3 'tokenize with a FIFO tokenizer.json' "not a regular file" "$QFORGE" tokenize "$tmp/ff" "$QF_SRCDIR/tests/data/eval-a.txt"
cp -R "$tmp/bundle" "$tmp/fb" && rm -f "$tmp/fb/notes.txt" "$tmp/fb/tensors.bin" && mkfifo "$tmp/fb/tensors.bin"
row 3 'a FIFO as tensors.bin of a bundle' "not a regular file" "$QFORGE" inspect "$tmp/fb"
mkfifo "$tmp/src.gguf"
row 3 'a FIFO as the source itself' "not a regular file" "$QFORGE" convert -o "$tmp/x.gguf" "$tmp/src.gguf"
# symlinks to regular files are fine: Hugging Face's cache is all symlinks
mkdir "$tmp/hub" && for f in "$tmp/ck"/*; do ln -s "$f" "$tmp/hub/$(basename "$f")"; done
row 0 'a checkpoint of symlinks (as in the HF cache)' "" "$QFORGE" convert -q -o "$tmp/hub.gguf" "$tmp/hub"

# ---- sizes that grow without bound ----
rm -rf "$tmp/cf" && cp -R "$tmp/ck" "$tmp/cf"
{ printf '{"a": ['; head -c 48000000 /dev/zero | tr '\0' '0' | sed 's/0/0,/g' | head -c 47999990; printf '0]}'; } >"$tmp/cf/config.json"
row 3 'a 48 MB config.json is refused before it becomes GBs of JSON tree' "more than the 4 MiB" \
	"$QFORGE" convert --dry-run "$tmp/cf"
rm -rf "$tmp/cf"

# ---- what a bundle copies ----
rm -rf "$tmp/gs" && cp -R "$M/stories260k-hf" "$tmp/gs" && chmod -R u+w "$tmp/gs"
echo "root:x:0:0:secret" >"$tmp/secret"
rm -f "$tmp/gs/generation_config.json" && ln -s "$tmp/secret" "$tmp/gs/generation_config.json"
row 3 'a generation_config.json linking to a non-JSON secret is not copied into a bundle' "not a JSON object" \
	"$QFORGE" convert -q --format packed -o "$tmp/gsb" "$tmp/gs"
[ ! -e "$tmp/gsb" ]; ok $? "… and no bundle holds it"
rm -f "$tmp/gs/generation_config.json" && echo '{"bos_token_id": 1}' >"$tmp/genc.json" && ln -s "$tmp/genc.json" "$tmp/gs/generation_config.json"
row 0 'a symlinked generation_config.json that is JSON is carried' "" "$QFORGE" convert -q --format packed -o "$tmp/gsb" "$tmp/gs"
cmp -s "$tmp/gsb/generation_config.json" "$tmp/genc.json"; ok $? "… byte for byte"

# ---- what a Hugging Face folder copies: the known side files, each only once it parses ----
rm -rf "$tmp/hs" && cp -R "$tmp/ck" "$tmp/hs"
ln -s /etc/passwd "$tmp/hs/secret.json"
printf '#version: 0.2\nh e\n' >"$tmp/merges.txt" && ln -s "$tmp/merges.txt" "$tmp/hs/merges.txt"
printf '{%% for m in messages %%}{{ m.content }}{%% endfor %%}' >"$tmp/hs/chat_template.jinja"
row 0 'an HF folder from a checkpoint with secret.json -> /etc/passwd' "" "$QFORGE" convert -q --format safetensors -o "$tmp/hso" "$tmp/hs"
[ ! -e "$tmp/hso/secret.json" ]; ok $? "… does not carry secret.json"
cmp -s "$tmp/hso/merges.txt" "$tmp/merges.txt" && cmp -s "$tmp/hso/chat_template.jinja" "$tmp/hs/chat_template.jinja" &&
	cmp -s "$tmp/hso/tokenizer.json" "$tmp/ck/tokenizer.json"; ok $? "… and carries merges.txt (a symlink), chat_template.jinja and tokenizer.json byte for byte"
# each row: side file, what it links to (or 'fifo'), message
while read -r side target msg; do
	rm -rf "$tmp/hb" && cp -R "$tmp/hs" "$tmp/hb" && rm -f "$tmp/hb/$side"
	if [ "$target" = fifo ]; then mkfifo "$tmp/hb/$side"; else ln -s "$target" "$tmp/hb/$side"; fi
	row 3 "an HF folder from a checkpoint whose $side is $target" "$(echo "$msg" | tr _ ' ')" \
		"$QFORGE" convert -q --format safetensors -o "$tmp/hbo" "$tmp/hb"
	[ ! -e "$tmp/hbo" ]; ok $? "… and no folder is written"
done <<ROWS
generation_config.json $tmp/secret not_a_JSON_object
merges.txt /etc/passwd not_a_merges.txt
chat_template.jinja $tmp/secret not_a_Jinja_chat_template
special_tokens_map.json fifo not_a_regular_file
ROWS
rm -rf "$tmp/hb" "$tmp/hso"
tar -C "$tmp" -chf "$tmp/hs.tar" hs # -h: the links as the files they name
row 0 'an HF folder from a tar checkpoint' "" "$QFORGE" convert -q --format safetensors -o "$tmp/hto" "$tmp/hs.tar"
cmp -s "$tmp/hto/merges.txt" "$tmp/merges.txt" && [ ! -e "$tmp/hto/secret.json" ]; ok $? "… carries the tar's merges.txt too, and no secret.json"
rm -rf "$tmp/hs" "$tmp/hs.tar" "$tmp/hto"

# ---- compressed-tensors targets: a costly regex is an error, not a hang or "no match" ----
"$QFORGE" quantize -q --target vllm-w4a16 -o "$tmp/ctq" "$M/tiny-dsv3-bf16" >/dev/null 2>&1
# each row: want-exit, the target put first in config_groups.group_0.targets, message
while read -r want target msg; do
	rm -rf "$tmp/ctx" && cp -R "$tmp/ctq" "$tmp/ctx"
	sed "s/\"targets\": \[/\"targets\": [\"$target\", /" "$tmp/ctq/config.json" >"$tmp/ctx/config.json"
	[ "$msg" = - ] && msg=""
	row "$want" "compressed-tensors target $target" "$(echo "$msg" | tr _ ' ')" "$QFORGE" convert -q -o "$tmp/ctx.gguf" "$tmp/ctx"
	rm -f "$tmp/ctx.gguf"
done <<'ROWS'
0 re:.*mlp\\\\.experts\\\\..*_proj$ -
3 re:(.*)*x$ gave_up_matching_module
3 re:(.*)*(.*)*(.*)*(.*)*x$ gave_up_matching_module
ROWS
rm -rf "$tmp/ctq" "$tmp/ctx"

# ---- messages keep their reason on long paths ----
long="$tmp"; i=0; while [ $i -lt 40 ]; do i=$((i+1)); long="$long/a-rather-long-folder-name-$i-of-forty-x"; done
mkdir -p "$long" && cp -R "$tmp/ck" "$long/ck" && truncate -s 4 "$long/ck/model-00002-of-00003.safetensors"
row 3 'a bad shard under a 1.7 KB path' "model-00002-of-00003.safetensors: file too short" "$QFORGE" convert -o "$tmp/l.gguf" "$long/ck"
rm -rf "$tmp/a-rather-long-folder-name-1-of-forty-x"

# ---- tar checkpoints ----
tar -C "$tmp" -cf "$tmp/ck.tar" ck
run "$QFORGE" tokenize --ids "$M/tiny-dsv3" "$QF_SRCDIR/tests/data/eval-a.txt"; want_ids=$out
row 0 'tokenize reads a tar checkpoint' "" "$QFORGE" tokenize --ids "$tmp/ck.tar" "$QF_SRCDIR/tests/data/eval-a.txt"
[ -n "$out" ] && [ "$out" = "$want_ids" ]; ok $? "… the same ids as from the folder"
row 0 'convert from the tar' "" "$QFORGE" convert -q -o "$tmp/ckt.gguf" "$tmp/ck.tar"
row 0 'verify --text takes a tar reference (its tokenizer too)' "" "$QFORGE" verify --no-tensors --reference "$tmp/ck.tar" --text "$QF_SRCDIR/tests/data/eval-a.txt" --ctx 64 --chunks 1 "$tmp/ckt.gguf"
rm -rf "$tmp/cj" && cp -R "$tmp/ck" "$tmp/cj" && head -c 30000000 /dev/zero >"$tmp/cj/junk.bin" && head -c 1000 /dev/zero >"$tmp/cj/unlisted.safetensors"
tar -C "$tmp" -czf "$tmp/cj.tar.gz" cj && rm -rf "$tmp/cj"
row 0 'a 30 MB junk member is not staged (--max-stage-size 12MB passes)' "" "$QFORGE" convert -q --max-stage-size 12MB -o "$tmp/cj.gguf" "$tmp/cj.tar.gz"
row 3 'staging past --max-stage-size is refused' "would pass --max-stage-size" "$QFORGE" convert -q --max-stage-size 3MB -o "$tmp/cj2.gguf" "$tmp/cj.tar.gz"
rm -rf "$tmp/cs" && cp -R "$tmp/ck" "$tmp/cs" && rm "$tmp/cs/model-00003-of-00003.safetensors" && truncate -s 2G "$tmp/cs/model-00003-of-00003.safetensors"
tar -C "$tmp" -cSf "$tmp/cs.tar" cs && rm -rf "$tmp/cs"
row 3 'a sparse member is refused' "sparse" "$QFORGE" convert -q -o "$tmp/cs.gguf" "$tmp/cs.tar"
rm -rf "$tmp/cb" && cp -R "$tmp/ck" "$tmp/cb" && head -c 110000000 /dev/zero >"$tmp/cb/model-00003-of-00003.safetensors"
tar -C "$tmp" -czf "$tmp/cb.tar.gz" cb && rm -rf "$tmp/cb"
row 3 'a shard larger than the index declares is refused' "more than the index declares" "$QFORGE" convert -q -o "$tmp/cb.gguf" "$tmp/cb.tar.gz"
tar -C "$tmp" -czf "$tmp/gz.tar.gz" ck
row 0 'a good .tar.gz converts' "" "$QFORGE" convert -q -o "$tmp/gz.gguf" "$tmp/gz.tar.gz"
cp "$tmp/gz.tar.gz" "$tmp/crc.tar.gz"
sz=$(wc -c <"$tmp/crc.tar.gz"); printf '\000\000\000\000' | dd of="$tmp/crc.tar.gz" bs=1 seek=$((sz - 8)) conv=notrunc 2>/dev/null
row 3 'a .tar.gz with a bad gzip CRC is refused (read to the end)' "incorrect data check" "$QFORGE" convert -q -o "$tmp/crc.gguf" "$tmp/crc.tar.gz"
head -c $((sz - 50)) "$tmp/gz.tar.gz" >"$tmp/cut.tar.gz"
row 3 'a truncated .tar.gz is refused' "truncated" "$QFORGE" convert -q -o "$tmp/cut.gguf" "$tmp/cut.tar.gz"
# zstd, xz and bzip2 are read to the end of the compressed stream, so their final checksums are
# checked. 1 MiB tar records put the checksum far past the tar's end marker, where reading used
# to stop. Each row: suffix, compressor, byte from the end to flip (what it is), what breaks.
data_hash() { "$QFORGE" inspect "$1" | grep 'qforge.data_xxh64'; }
tar -b 2048 -C "$tmp" -cf "$tmp/big-record.tar" ck
while read -r ext prog at part name; do
	if ! command -v "$prog" >/dev/null 2>&1; then
		if [ "${CI:-}" = true ]; then ok 1 "$prog is installed (.ci/run installs it)"; else echo "ok $((n=n+1)) - .tar.$ext # SKIP no $prog"; fi
		continue
	fi
	"$prog" -c <"$tmp/big-record.tar" >"$tmp/c.tar.$ext"
	row 0 "a good .tar.$ext converts" "" "$QFORGE" convert -q -o "$tmp/c-$ext.gguf" "$tmp/c.tar.$ext"
	[ "$(data_hash "$tmp/c-$ext.gguf")" = "$(data_hash "$tmp/ckt.gguf")" ]; ok $? "… to the same tensor data as the plain tar"
	sz=$(wc -c <"$tmp/c.tar.$ext"); cp "$tmp/c.tar.$ext" "$tmp/bad.tar.$ext"
	b=$(od -An -tu1 -j $((sz - at)) -N1 "$tmp/bad.tar.$ext" | tr -d ' ')
	printf "\\$(printf %03o $((b ^ 255)))" | dd of="$tmp/bad.tar.$ext" bs=1 seek=$((sz - at)) conv=notrunc 2>/dev/null
	row 3 ".tar.$ext with a bad $(echo "$part" | tr _ " ") is refused (read to the end)" "bad.tar.$ext: corrupt $name data" \
		"$QFORGE" convert -q -o "$tmp/bad-$ext.gguf" "$tmp/bad.tar.$ext"
	[ ! -e "$tmp/bad-$ext.gguf" ]; ok $? "… and writes nothing"
	head -c $((sz - 20)) "$tmp/c.tar.$ext" >"$tmp/cut.tar.$ext"
	row 3 "a truncated .tar.$ext is refused" "cut.tar.$ext: corrupt $name data" "$QFORGE" convert -q -o "$tmp/cut-$ext.gguf" "$tmp/cut.tar.$ext"
done <<'ROWS'
zst zstd 1 content_checksum zstd
xz xz 12 stream_footer_CRC32 xz
bz2 bzip2 3 stream_CRC bzip2
ROWS
rm -f "$tmp"/*.tar.zst "$tmp"/*.tar.xz "$tmp"/*.tar.bz2 "$tmp/big-record.tar"
# Without the index's total_size, or without an index, staging is bounded by 8× the tar's own size
# + 1 GiB: a 1.2 GB shard of zeros in a ~5 MB .tar.zst is a bomb, refused before a byte of it is
# written. Rows: folder, how it is made, want-exit, message.
if command -v zstd >/dev/null 2>&1; then
	mkdir -p "$tmp/stg2"
	while read -r name how want msg; do
		rm -rf "$tmp/$name" && cp -R "$tmp/ck" "$tmp/$name"
		sed 's/"total_size": [0-9]*/"format": "pt"/' "$tmp/ck/model.safetensors.index.json" >"$tmp/$name/model.safetensors.index.json"
		case $how in
		bomb) rm "$tmp/$name/model-00003-of-00003.safetensors" && truncate -s 1200M "$tmp/$name/model-00003-of-00003.safetensors" ;;
		noindex) rm "$tmp/$name"/model* && truncate -s 1200M "$tmp/$name/model.safetensors" ;;
		esac
		tar -C "$tmp" -cf - "$name" | zstd -q -1 >"$tmp/$name.tar.zst" && rm -rf "$tmp/$name"
		[ "$msg" = - ] && msg=""
		row "$want" "$name.tar.zst: no total_size ($how)" "$(echo "$msg" | tr _ ' ')" \
			env TMPDIR="$tmp/stg2" "$QFORGE" convert -q -o "$tmp/$name.gguf" "$tmp/$name.tar.zst"
		[ -z "$(ls "$tmp/stg2")" ]; ok $? "… and nothing stays staged ($(ls "$tmp/stg2"))"
		rm -f "$tmp/$name.tar.zst"
	done <<'ROWS'
nt good 0 -
nb bomb 3 would_pass_the_staging_bound
ni noindex 3 would_pass_the_staging_bound
ROWS
else
	echo "ok $((n=n+1)) - staging bound without total_size # SKIP no zstd"
fi
rm -rf "$tmp/ct" && cp -R "$tmp/ck" "$tmp/ct" && truncate -s 1000 "$tmp/ct/model-00003-of-00003.safetensors"
tar -C "$tmp" -cf "$tmp/ct.tar" ct && rm -rf "$tmp/ct"
row 3 'a bad shard in a tar is named as the tar member' "ct.tar: member model-00003-of-00003.safetensors" "$QFORGE" convert -q -o "$tmp/ct.gguf" "$tmp/ct.tar"
! contains "$err" "qforge-stage"; ok $? "… not as the deleted staging path"

# ---- signals ----
row 4 'a file-size limit (SIGXFSZ) is an I/O error' "file too large" sh -c "ulimit -f 200; exec \"$QFORGE\" convert -q -o \"$tmp/big.gguf\" \"$M/tiny-dsv3\""
[ ! -e "$tmp/big.gguf" ]; ok $? "… and no output"

GEN="$QF_BUILDDIR/tests/bench/gen_dsv3"
if [ -x "$GEN" ]; then
	"$GEN" "$tmp/gen" --layers 1 --experts 2 --vocab 2000 >/dev/null 2>&1
	"$QFORGE" convert -t 1 -q -o "$tmp/gen.gguf" "$tmp/gen" >"$tmp/bus.out" 2>"$tmp/bus.err" &
	pid=$!
	i=0
	while [ -z "$(temps "$tmp/gen.gguf")" ] && [ $i -lt 400 ]; do sleep 0.02; i=$((i+1)); done
	kill -STOP $pid
	for f in "$tmp/gen"/*.safetensors; do truncate -s 65536 "$f"; done
	kill -CONT $pid
	wait $pid; rc=$?
	err=$(cat "$tmp/bus.err")
	expect_rc 3 "a shard truncated while it is read (SIGBUS) is bad input"
	contains "$err" "changed while it was being read"; ok $? "… says the source changed: $err"
	[ ! -e "$tmp/gen.gguf" ] && [ -z "$(leftovers)" ]; ok $? "… and leaves nothing"
	# SIGTERM while a tar checkpoint is being staged: the staging folder goes too
	"$GEN" "$tmp/gen" --layers 1 --experts 2 --vocab 2000 >/dev/null 2>&1
	tar -C "$tmp" -cf "$tmp/gen.tar" gen && rm -rf "$tmp/gen" && mkdir "$tmp/stg"
	TMPDIR="$tmp/stg" "$QFORGE" convert -t 1 -q -o "$tmp/gt.gguf" "$tmp/gen.tar" >/dev/null 2>&1 &
	pid=$!
	i=0
	while [ -z "$(ls "$tmp/stg")" ] && [ $i -lt 400 ]; do sleep 0.02; i=$((i+1)); done
	kill -TERM $pid
	wait $pid; rc=$?
	[ $i -lt 400 ] && [ $rc = 143 ]; ok $? "SIGTERM while staging a tar ends it (exit $rc)"
	[ -z "$(ls "$tmp/stg")" ] && [ -z "$(leftovers)" ]; ok $? "… and the staging folder is removed ($(ls "$tmp/stg"))"
	rm -f "$tmp/gen.tar"
else
	echo "ok $((n=n+1)) - SIGBUS test # SKIP gen_dsv3 not built"
fi
finish
