#!/bin/sh
# CLI tests for `qforge tokenize`: fixture ids, GGUF vocabularies, JSON, gzip, errors.
. "${QF_SRCDIR:-.}/tests/tap-sh.sh"
M="$QF_SRCDIR/models"; T="$QF_SRCDIR/tests/data"

for m in tiny-dsv3 stories260k-hf; do
	run "$QFORGE" tokenize --ids "$M/$m" "$T/eval-a.txt"
	expect_rc 0 "tokenize eval-a.txt with $m"
	[ "$out" = "$(tr -s ' \n' '  ' < "$T/tokens/eval-a.$m.ids" | sed 's/ *$//')" ]; ok $? "$m: the ids are Hugging Face's"
done
"$QFORGE" convert -q -o "$tmp/st.gguf" "$M/stories260k-hf" > /dev/null
run "$QFORGE" tokenize --ids "$tmp/st.gguf" "$T/eval-a.txt"
[ "$out" = "$(tr -s ' \n' '  ' < "$T/tokens/eval-a.stories260k-hf.ids" | sed 's/ *$//')" ]; ok $? "a converted GGUF's vocabulary gives the same ids"
gzip -c "$T/eval-a.txt" > "$tmp/eval.txt.gz"
run "$QFORGE" tokenize --ids "$M/tiny-dsv3" "$tmp/eval.txt.gz"
[ "$out" = "$(tr -s ' \n' '  ' < "$T/tokens/eval-a.tiny-dsv3.ids" | sed 's/ *$//')" ]; ok $? "gzip'd text gives the same ids"
printf 'Hello world' > "$tmp/h.txt"
run "$QFORGE" tokenize --json "$M/tiny-dsv3" "$tmp/h.txt"
expect_rc 0 "--json"
contains "$out" '"pieces":'; ok $? "JSON has the pieces"
contains "$out" '"offsets":'; ok $? "JSON has the byte offsets"
run "$QFORGE" tokenize "$M/stories260k-hf" "$tmp/h.txt"
contains "$out" "▁He"; ok $? "table shows pieces"
run "$QFORGE" tokenize --ids --no-special "$M/stories260k-hf" "$tmp/h.txt"
[ "$out" = "346 306 414 263 304 341" ]; ok $? "--no-special drops BOS: $out"
run "$QFORGE" tokenize "$M/tiny-dsv3" "$tmp/missing.txt"
expect_rc 3 "missing text file"
contains "$err" "missing.txt"; ok $? "names it: $err"
run "$QFORGE" tokenize "$M/tiny-dsv3"
expect_rc 2 "one argument is a usage error"
finish
