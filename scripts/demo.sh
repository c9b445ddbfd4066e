#!/usr/bin/env bash
# The main job, for now: a short tour of `strata image` against a real local registry. An image made by umoci
# (an independent tool) from busybox-static is pushed by strata, read back, copied into a layout, and checked
# digest for digest — by strata and by skopeo.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

work=$(mktemp -d /tmp/strata-demo.XXXXXX)
reg_pid=""
cleanup() { [ -n "$reg_pid" ] && kill "$reg_pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

port=$(node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
cat > "$work/registry.yml" <<YAML
version: 0.1
log: { level: error }
storage: { filesystem: { rootdirectory: $work/registry }, delete: { enabled: true } }
http: { addr: 127.0.0.1:$port }
YAML
docker-registry serve "$work/registry.yml" > "$work/registry.log" 2>&1 &
reg_pid=$!
node -e 'const u=process.argv[1];const t=Date.now();(async()=>{for(;;){try{if((await fetch(u)).ok)return}catch{}
  if(Date.now()-t>10000){console.error("registry did not start");process.exit(1)}await new Promise(r=>setTimeout(r,50))}})()' "http://127.0.0.1:$port/v2/"
REG="127.0.0.1:$port"
say() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

say "Making a busybox image with umoci (not strata), in $work/umoci"
mkdir -p "$work/rootfs/bin"
cp /bin/busybox "$work/rootfs/bin/busybox"
ln -s busybox "$work/rootfs/bin/sh"
umoci init --layout "$work/umoci" >/dev/null
umoci new --image "$work/umoci:busybox" >/dev/null
umoci insert --image "$work/umoci:busybox" "$work/rootfs" / >/dev/null
umoci config --image "$work/umoci:busybox" --config.cmd /bin/sh >/dev/null
original=$(bin/strata image digest "oci:$work/umoci:busybox")
echo "umoci's image digest: $original"

say "strata image copy oci:…:busybox $REG/demo/busybox:1.0"
bin/strata image copy "oci:$work/umoci:busybox" "$REG/demo/busybox:1.0"

say "strata image digest / tags / manifest / config, read from the registry"
echo "digest:   $(bin/strata image digest "$REG/demo/busybox:1.0")"
echo "tags:     $(bin/strata image tags "$REG/demo/busybox" | tr '\n' ' ')"
echo "manifest: $(bin/strata image manifest "$REG/demo/busybox:1.0" | head -c 300)…"
echo "config:   $(bin/strata image config "$REG/demo/busybox:1.0" | head -c 300)…"

say "Copy again under another tag and into another repository: nothing re-sent, blobs mounted"
bin/strata image copy "$REG/demo/busybox:1.0" "$REG/demo/busybox:latest"
bin/strata image copy "$REG/demo/busybox:1.0" "$REG/other/busybox:1.0"

say "Pull back into a fresh OCI layout and compare"
bin/strata image copy "$REG/demo/busybox:1.0" "oci:$work/pulled:busybox"
pulled=$(bin/strata image digest "oci:$work/pulled:busybox")
viaskopeo=$(skopeo inspect --tls-verify=false --raw "docker://$REG/demo/busybox:1.0" | sha256sum | cut -d' ' -f1)
echo "umoci:  $original"
echo "layout: $pulled"
echo "skopeo: sha256:$viaskopeo"
if [ "$original" = "$pulled" ] && [ "$original" = "sha256:$viaskopeo" ]; then
  echo "round trip OK: identical digests"
else
  echo "round trip FAILED: digests differ" >&2; exit 1
fi
umoci unpack --image "$work/pulled:busybox" "$work/bundle" >/dev/null
echo "umoci unpacked strata's copy: $("$work/bundle/rootfs/bin/busybox" echo 'busybox runs from the unpacked image')"
