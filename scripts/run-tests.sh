#!/usr/bin/env bash
# Runs every compiled test file with Node's built-in runner. Files are listed explicitly because directory
# arguments mean different things to `node --test` on Node 20 and on 22+.
set -euo pipefail
cd "$(dirname "$0")/.."
mapfile -t files < <(find dist -name '*.test.js' -not -path '*/node_modules/*' | sort)
if [ ${#files[@]} -eq 0 ]; then echo "no test files found under dist/ (did the build run?)" >&2; exit 1; fi
exec bash scripts/node.sh --test --test-reporter=spec "$@" "${files[@]}"
