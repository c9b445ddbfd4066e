#!/usr/bin/env bash
# Runs the Node.js strata uses: the one setup.sh installed into .node/ (where the system's is older than 22), else
# the system's. bin/strata makes the same choice.
root="$(cd "$(dirname "$0")/.." && pwd)"
if [ -x "$root/.node/bin/node" ]; then exec "$root/.node/bin/node" "$@"; fi
exec node "$@"
