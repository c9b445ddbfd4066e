#!/usr/bin/env bash
# The main job: the story that introduced Cloud Native Buildpacks, told with strata and real output (src/demo/demo.ts).
# A yarn app is built with strata's Node.js buildpacks on Debian base images made here, published to a local registry,
# inspected, rebuilt on a newer builder reusing node_modules, rebased onto a patched run image, and run — HTTP 200.
# Only the npm and Debian package clients reach the internet. Needs root (debootstrap, the runc sandbox).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec bash scripts/node.sh dist/src/demo/demo.js
