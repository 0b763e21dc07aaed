#!/bin/sh
# The house is one-way: each room includes only rooms above it, and only cli/
# prints, exits or installs signal handlers.  (DESIGN.md "Architecture";
# docs/design.md.)  The checker is first shown a tree with each kind of
# violation, so this test can fail.
. "${QF_SRCDIR:-.}/tests/tap-sh.sh"

ROOMS="util formats convert forward quantize verify cli"

rank() { # rank ROOM → its position in ROOMS, or nothing
	i=0
	for r in $ROOMS; do
		[ "$r" = "$1" ] && { echo $i; return; }
		i=$((i + 1))
	done
}

# check TREE: prints one line per violation; exit status 1 if any
check() {
	bad=0
	for room in $ROOMS; do
		[ -d "$1/$room" ] || continue
		me=$(rank "$room")
		for f in "$1/$room"/*.c "$1/$room"/*.h; do
			[ -f "$f" ] || continue
			for inc in $(sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([a-z_]*\)\/.*/\1/p' "$f" | sort -u); do
				[ "$inc" = tests ] && { echo "${f#$1/}: includes tests/"; bad=1; continue; }
				up=$(rank "$inc")
				if [ -z "$up" ]; then
					echo "${f#$1/}: includes $inc/, which is no room"; bad=1
				elif [ "$up" -gt "$me" ]; then
					echo "${f#$1/}: $room/ includes $inc/, which stands below it"; bad=1
				fi
			done
			[ "$room" = cli ] && continue
			# library code never prints, exits or installs signal handlers
			hits=$(sed -e 's://.*$::' "$f" | grep -n -E '(^|[^a-z_])(printf|puts|putchar|perror|exit|_exit|signal|sigaction)[[:space:]]*\(|fprintf[[:space:]]*\([[:space:]]*std(out|err)|fputs[[:space:]]*\([^;]*std(out|err)' | grep -v -E 'snprintf|vsnprintf' | head -3)
			if [ -n "$hits" ]; then
				printf '%s\n' "$hits" | sed "s|^|${f#$1/}:|; s|\$| (only cli/ prints, exits or handles signals)|"
				bad=1
			fi
		done
	done
	# every folder with C sources is a room (or tests/)
	for d in "$1"/*/; do
		d=${d%/}; d=${d##*/}
		ls "$1/$d"/*.c >/dev/null 2>&1 || continue
		[ "$d" = tests ] || [ -n "$(rank "$d")" ] || { echo "$d/: C sources outside the rooms ($ROOMS)"; bad=1; }
	done
	return $bad
}

# 1. the checker catches each kind of violation
t="$tmp/tree"
mkdir -p "$t/formats" "$t/quantize" "$t/verify" "$t/misc"
printf '#include "quantize/profile.h"\n' > "$t/formats/a.c"
printf '#include "formats/dtype.h"\nint f(void) { printf("x"); return 0; }\n' > "$t/verify/b.c"
printf 'void g(void) { exit(1); }\n' > "$t/quantize/c.c"
printf 'int h;\n' > "$t/misc/d.c"
report=$(check "$t"); rc=$?
[ $rc = 1 ]; ok $? "the checker fails a tree with violations"
contains "$report" "formats/a.c: formats/ includes quantize/, which stands below it"; ok $? "it names a back edge"
contains "$report" "verify/b.c:2:" && contains "$report" "only cli/ prints"; ok $? "it names printing outside cli/"
contains "$report" "quantize/c.c:1:"; ok $? "it names exiting outside cli/"
contains "$report" "misc/: C sources outside the rooms"; ok $? "it names a folder that is no room"
printf 'int snprintf_user(char *b) { return snprintf(b, 4, "x"); }\n' > "$t/formats/a.c"
rm -r "$t/verify" "$t/quantize" "$t/misc"
check "$t" >/dev/null; ok $? "snprintf into a buffer is not printing"

# 2. the real tree
report=$(check "$QF_SRCDIR"); rc=$?
[ $rc = 0 ]; ok $? "the house is one-way: $ROOMS"
[ $rc = 0 ] || printf '%s\n' "$report" | sed 's/^/# /'
finish
