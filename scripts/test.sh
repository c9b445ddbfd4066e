#!/usr/bin/env bash
# The whole test suite from a fresh machine: install, build, test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/run-tests.sh "$@"
