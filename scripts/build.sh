#!/usr/bin/env bash
# Builds everything from a checkout: the TypeScript, the static C launcher, and dist/lifecycle/ — the lifecycle as a
# builder carries it, with one name per phase (links to the multi-call entry) and the launcher binary.
set -euo pipefail
cd "$(dirname "$0")/.."
# From clean: tsc leaves the output of a moved or deleted source behind, and dist/src is what builders carry.
rm -rf dist/src dist/test dist/bench dist/compile-cache
npx tsc -p tsconfig.json
bash scripts/node.sh --random-seed=1 scripts/lifecycle-cache.mjs
# The dashboard's script and style are served as written (no front-end build chain).
cp -r src/fleet/web/assets dist/src/fleet/web/
make -s -C launcher
# The launcher for arm64 too, where the cross compiler is (setup.sh installs it on amd64).
if [ "$(uname -m)" = x86_64 ] && command -v aarch64-linux-gnu-gcc >/dev/null; then
  make -s -C launcher CC=aarch64-linux-gnu-gcc OUT=build/linux-arm64/launcher
  rm -rf dist/platforms && mkdir -p dist/platforms/linux-arm64
  cp launcher/build/linux-arm64/launcher dist/platforms/linux-arm64/launcher
fi
out=dist/lifecycle
rm -rf "$out.tmp"
mkdir -p "$out.tmp"
for phase in lifecycle detector builder analyzer restorer exporter rebaser creator; do
  ln -s ../../bin/lifecycle "$out.tmp/$phase"
done
cp launcher/build/launcher "$out.tmp/launcher"
rm -rf "$out"
mv "$out.tmp" "$out"
