// `strata build` against a hostile buildpack, hostile caches, a hostile previous image and hostile builders. Each
// attack aims at a "host" dir holding a root-only secret and an empty dir; after it, the host must be untouched and
// the secret must appear nowhere strata wrote.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { registryFixture } from '../harness/registry.js';
import { hostToolImageFiles, makeLayoutImage } from '../harness/images.js';
import { orderToml, writeBuildpack } from '../harness/buildpacks.js';
import { run, runOk, type RunResult } from '../harness/proc.js';
import { PROJECT_ROOT } from '../../src/version.js';
import { OciLayout } from '../../src/oci/layout.js';
import { RegistryClient } from '../../src/oci/registry/client.js';
import { resolveImage } from '../../src/oci/image.js';
import { LABEL, parseLifecycleMetadata } from '../../src/lifecycle/labels.js';
import { CACHE_LABEL, type CacheMetadata } from '../../src/lifecycle/cache.js';
import { appendLayers, writeImage } from '../../src/oci/mutate.js';
import { sha256 } from '../../src/oci/digest.js';
import { MediaType } from '../../src/oci/mediatype.js';
import { Readable } from 'node:stream';
import { replaceLayer, tarBytes } from './corpus.js';

const STRATA = join(PROJECT_ROOT, 'bin', 'strata');
const SECRET = 'ROOT-ONLY-SECRET-7f3a';
const fx = registryFixture();
const ctx = {} as { host: string; app: string; builder: string; env: NodeJS.ProcessEnv; images: string };

/** The evil buildpack: a normal Node-like layer, plus whatever $ATTACK asks for, aimed at $VICTIM on the host. */
const DETECT = `case "\${ATTACK:-}" in
  detect-links)
    mkdir -p /layers/sbom/launch/evil_bp/node /layers/sbom/cache/evil_bp/node
    busybox ln -s "$VICTIM/secret" /layers/sbom/launch/evil_bp/node/sbom.cdx.json
    busybox ln -s "$VICTIM/secret" /layers/sbom/cache/evil_bp/node/sbom.cdx.json
    busybox ln -s "$VICTIM/dir" /layers/evil_bp
    busybox ln -s "$VICTIM/dir" /layers/config
    busybox ln -s "$VICTIM/secret.toml" /layers/store.toml ;;
esac
exit 0`;

const BUILD = `L="$1"
mkdir -p "$L/node/bin"
echo tool > "$L/node/bin/tool"
printf '[types]\\nlaunch = true\\ncache = true\\n' > "$L/node.toml"
mkdir -p "$L/deps" && echo d > "$L/deps/d" && printf '[types]\\ncache = true\\n' > "$L/deps.toml"
echo '{"bomFormat":"CycloneDX","components":[{"name":"evil-node"}]}' > "$L/node.sbom.cdx.json"
printf '[[processes]]\\ntype = "web"\\ncommand = ["bash", "-c", "echo running"]\\ndefault = true\\n' > "$L/launch.toml"
echo "app sees: $(cat /workspace/hello.txt) INJECTED=\${INJECTED_ENV:-none}"
case "\${ATTACK:-}" in
  store-link) busybox ln -s "$VICTIM/secret.toml" "$L/store.toml" ;;
  layer-toml-link) busybox rm "$L/node.toml"; busybox ln -s "$VICTIM/secret.toml" "$L/node.toml" ;;
  layer-dir-link) busybox rm -r "$L/node"; busybox ln -s "$VICTIM/dir" "$L/node" ;;
  launch-file-link) busybox ln -s "$VICTIM/secret" "$L/node/bin/secret" ;;
  sbom-dir-link) busybox ln -s "$VICTIM/dir" "$L/other"; printf '[types]\\nlaunch = true\\n' > "$L/other.toml" ;;
esac`;

let setup: Promise<void> | undefined;
/** Made once, on first use: test hooks of one file run in no guaranteed order with the registry fixture's. */
const ready = (): Promise<void> => (setup ??= prepare());

async function prepare(): Promise<void> {
  const w = fx.work;
  ctx.host = join(w, 'host');
  await mkdir(join(ctx.host, 'dir'), { recursive: true });
  await writeFile(join(ctx.host, 'secret'), SECRET, { mode: 0o600 });
  await writeFile(join(ctx.host, 'secret.toml'), `[types]\nlaunch = true\n[metadata]\nstolen = "${SECRET}"\n`, { mode: 0o600 });
  ctx.images = join(w, 'images');
  const tools = await hostToolImageFiles();
  await makeLayoutImage(ctx.images, 'build', [tools], {}, ['CNB_USER_ID=1000', 'CNB_GROUP_ID=1000']);
  await makeLayoutImage(ctx.images, 'run', [tools], { 'io.buildpacks.rebasable': 'true' });
  const bp = await writeBuildpack(join(w, 'bps'), { id: 'evil/bp', api: '0.10', buildpackKeys: 'sbom-formats = ["application/vnd.cyclonedx+json"]', detect: DETECT, build: BUILD });
  await writeFile(join(w, 'builder.toml'), `[[buildpacks]]\nuri = "${bp}"\n${orderToml([['evil/bp']])}\n[build]\nimage = "oci:${ctx.images}:build"\n[[run.images]]\nimage = "oci:${ctx.images}:run"\n`);
  ctx.env = { ...process.env, STRATA_HOME: join(w, 'home') };
  ctx.builder = `oci:${w}/builder:1`;
  await runOk(STRATA, ['builder', 'create', ctx.builder, '--config', join(w, 'builder.toml')], { env: ctx.env });
  ctx.app = join(w, 'app');
  await mkdir(ctx.app);
  await writeFile(join(ctx.app, 'hello.txt'), 'world');
}

function build(image: string, attack: string, extra: string[] = [], env = ctx.env): Promise<RunResult> {
  return run(STRATA, ['build', image, '--builder', ctx.builder, '--path', ctx.app, '--env', `ATTACK=${attack}`, '--env', `VICTIM=${ctx.host}`, ...extra], { env });
}

async function hostUntouched(): Promise<void> {
  assert.deepEqual((await readdir(ctx.host)).sort(), ['dir', 'secret', 'secret.toml']);
  assert.deepEqual(await readdir(join(ctx.host, 'dir')), [], 'nothing was written into the host dir');
  assert.equal(await readFile(join(ctx.host, 'secret'), 'utf8'), SECRET);
}

function noSecret(r: RunResult): void {
  assert.doesNotMatch(r.stdout + r.stderr, new RegExp(SECRET));
}

/** Every blob of a layout, gunzipped where it is gzip: the secret must be in none of them. */
async function layoutHasNoSecret(dir: string): Promise<void> {
  for (const name of await readdir(join(dir, 'blobs', 'sha256'))) {
    let bytes = await readFile(join(dir, 'blobs', 'sha256', name));
    if (bytes[0] === 0x1f && bytes[1] === 0x8b) bytes = gunzipSync(bytes);
    assert.ok(!bytes.includes(SECRET), `blob ${name} holds the secret`);
  }
}

test('links bin/detect plants in /layers reach nothing on the host, on a first build and a cached rebuild', { timeout: 120_000 }, async () => {
  await ready();
  for (const round of [1, 2]) {
    const r = await build('detect-links', 'detect-links');
    assert.equal(r.code, 0, `round ${round}: ${r.stderr}${r.stdout}`);
    noSecret(r);
    await hostUntouched();
  }
  const bom = await runOk(STRATA, ['inspect', 'detect-links', '--bom'], { env: ctx.env });
  assert.match(bom, /evil-node/);
  assert.doesNotMatch(bom, new RegExp(SECRET));
});

for (const [attack, message] of [
  ['store-link', /store\.toml is a symbolic link.*refused/],
  ['layer-toml-link', /node\.toml is a symbolic link.*refused/],
  ['layer-dir-link', /evil_bp\/node is not a directory \(a link or file\).*refused/],
  ['sbom-dir-link', /evil_bp\/other is not a directory \(a link or file\).*refused/],
] as const) {
  test(`the exporter refuses a link bin/build left: ${attack}`, { timeout: 60_000 }, async () => {
  await ready();
    const r = await build(`refused-${attack}`, attack);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, message);
    assert.equal(r.stderr.trim().split('\n').filter((l) => l.startsWith('strata: error')).length, 1, 'one error line');
    noSecret(r);
    await hostUntouched();
    assert.doesNotMatch(await runOk(STRATA, ['images'], { env: ctx.env }), new RegExp(`refused-${attack}`), 'no image was tagged');
  });
}

test('a link inside a launch layer is exported as a link, never as what it points at', { timeout: 60_000 }, async () => {
  await ready();
  const out = join(fx.work, 'out-link');
  const r = await build(`oci:${out}:app`, 'launch-file-link');
  assert.equal(r.code, 0, r.stderr + r.stdout);
  await layoutHasNoSecret(out);
  await hostUntouched();
});

test('a cache image whose layer aims at the app source and the platform env is refused, and the build goes on', { timeout: 120_000 }, async () => {
  await ready();
  const name = `${fx.reg.host}/evil/app:1`;
  const cache = `${fx.reg.host}/evil/cache:1`;
  const first = await build(name, 'none', ['--publish', '--cache-image', cache]);
  assert.equal(first.code, 0, first.stderr + first.stdout);
  const repo = new RegistryClient(fx.reg.host).repository('evil/cache');
  const md = JSON.parse((await resolveImage(repo, '1')).config.config!.Labels![CACHE_LABEL]!) as CacheMetadata;
  const sha = md.buildpacks.find((b) => b.key === 'evil/bp')!.layers.deps!.sha;
  const hostile = await tarBytes([
    { name: 'layers/evil_bp/deps/d', body: 'd' },
    { name: 'workspace/hello.txt', body: 'pwned' },
    { name: 'platform/env/INJECTED_ENV', body: 'pwned' },
  ]);
  await replaceLayer(repo, '1', sha, hostile, (labels, diffID) => {
    md.buildpacks.find((b) => b.key === 'evil/bp')!.layers.deps!.sha = diffID;
    labels[CACHE_LABEL] = JSON.stringify(md);
  });
  const second = await build(name, 'none', ['--publish', '--cache-image', cache]);
  assert.equal(second.code, 0, second.stderr + second.stdout);
  assert.match(second.stdout, /could not restore evil\/bp:deps \(cached layer evil\/bp:deps: "workspace\/hello\.txt" is outside \/layers\/evil_bp\/deps.*refused\)/);
  assert.match(second.stdout, /app sees: world INJECTED=none/, 'the app source and platform env are untouched');
  assert.equal(await readFile(join(ctx.app, 'hello.txt'), 'utf8'), 'world');
});

test('a previous image whose SBOM layer holds whiteout tricks and links deletes nothing, and sbom download refuses it', { timeout: 120_000 }, async () => {
  await ready();
  const first = await build('sbom-app', 'none');
  assert.equal(first.code, 0, first.stderr + first.stdout);
  const store = await OciLayout.open(join(fx.work, 'home', 'images'));
  const tag = 'docker.io/library/sbom-app:latest';
  const image = await resolveImage(store, tag);
  const md = parseLifecycleMetadata(image.config.config?.Labels?.[LABEL.lifecycle])!;
  const hostile = await tarBytes([
    { name: 'layers/sbom/launch/evil_bp/node/sbom.cdx.json', type: 'symlink', linkname: join(ctx.host, 'secret') },
    { name: 'layers/sbom/launch/.wh...' },
    { name: 'layers/.wh..' },
    { name: 'layers/sbom/launch/.wh..wh..opq' },
  ]);
  await replaceLayer(store, tag, md.sbom!.sha, hostile, (labels, diffID) => {
    labels[LABEL.lifecycle] = JSON.stringify({ ...md, sbom: { sha: diffID } });
  });
  const canary = join(fx.work, 'home', 'builds', 'someone-elses');
  await mkdir(canary, { recursive: true });
  const second = await build('sbom-app', 'none');
  assert.equal(second.code, 0, second.stderr + second.stdout);
  assert.match(second.stdout, /SBOM layer: .*refused/);
  assert.deepEqual(await readdir(join(fx.work, 'home', 'builds')), ['someone-elses'], 'the builds dir and its neighbours survive');
  noSecret(second);
  // The rebuilt image is fine again; download the SBOM of the hostile one through a fresh copy of it.
  await replaceLayer(store, tag, parseLifecycleMetadata((await resolveImage(store, tag)).config.config?.Labels?.[LABEL.lifecycle])!.sbom!.sha, hostile, (labels, diffID) => {
    const m = parseLifecycleMetadata(labels[LABEL.lifecycle])!;
    labels[LABEL.lifecycle] = JSON.stringify({ ...m, sbom: { sha: diffID } });
  });
  const tmp = join(fx.work, 'tmpdir');
  await mkdir(join(tmp, 'precious'), { recursive: true });
  const dl = await run(STRATA, ['sbom', 'download', 'sbom-app', '-o', join(fx.work, 'sbom-out')], { env: { ...ctx.env, TMPDIR: tmp } });
  assert.notEqual(dl.code, 0);
  assert.match(dl.stderr.trim(), /^strata: error: SBOM layer: .*refused$/);
  assert.deepEqual(await readdir(tmp), ['precious'], '$TMPDIR survives');
  await hostUntouched();
});

/** A copy of the builder with one more layer on top (what a hostile builder image would hold). */
async function hostileBuilder(tag: string, entries: Parameters<typeof tarBytes>[0]): Promise<string> {
  const { gzipSync } = await import('node:zlib');
  const layout = await OciLayout.open(join(fx.work, 'builder'));
  const base = await resolveImage(layout, '1');
  const tar = await tarBytes(entries);
  const blob = gzipSync(tar);
  const desc = { mediaType: MediaType.OciLayerGzip, digest: sha256(blob), size: blob.length };
  await layout.putBlob(desc, async (s, e) => Readable.from([blob.subarray(s, e)]));
  const { config, manifest } = appendLayers(base.config, base.manifest.manifest, [{ descriptor: desc, diffID: sha256(tar) }]);
  await writeImage(layout, config, manifest, tag);
  return `oci:${join(fx.work, 'builder')}:${tag}`;
}

test('a hostile builder: its launcher as a link to a host file, its buildpacks dir as a link to a host dir, its order.toml as a link', { timeout: 120_000 }, async () => {
  await ready();
  const launcherLink = await hostileBuilder('launcher-link', [{ name: 'cnb/lifecycle/launcher', type: 'symlink', linkname: join(ctx.host, 'secret') }]);
  const r = await run(STRATA, ['build', 'hb1', '--builder', launcherLink, '--path', ctx.app], { env: ctx.env });
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /cnb\/lifecycle\/launcher is a symbolic link.*refused/);
  noSecret(r);
  const extra = await writeBuildpack(join(fx.work, 'extra-bps'), { id: 'test/extra' });
  const bpsLink = await hostileBuilder('buildpacks-link', [{ name: 'cnb/buildpacks', type: 'symlink', linkname: join(ctx.host, 'dir') }]);
  const r2 = await run(STRATA, ['build', 'hb2', '--builder', bpsLink, '--path', ctx.app, '--buildpack', extra], { env: ctx.env });
  assert.notEqual(r2.code, 0);
  assert.match(r2.stderr, /cnb\/buildpacks is a symbolic link.*refused/);
  // --pre-buildpack alone wraps the builder's own order: its order.toml as a link to a host file is not read.
  const orderLink = await hostileBuilder('order-link', [{ name: 'cnb/order.toml', type: 'symlink', linkname: join(ctx.host, 'secret.toml') }]);
  const r3 = await run(STRATA, ['build', 'hb3', '--builder', orderLink, '--path', ctx.app, '--pre-buildpack', extra], { env: ctx.env });
  assert.notEqual(r3.code, 0);
  assert.match(r3.stderr, /cnb\/order\.toml is a symbolic link.*refused/);
  noSecret(r3);
  await hostUntouched();
});

test('traversal in a buildpack version or a buildpackage label is refused before it reaches a path', { timeout: 60_000 }, async () => {
  await ready();
  const w = fx.work;
  const bp = await writeBuildpack(join(w, 'trav'), { id: 'test/trav', version: 'v1' });
  await writeFile(join(bp, 'buildpack.toml'), 'api = "0.10"\n[buildpack]\nid = "test/trav"\nversion = "../../../../escaped"\n');
  await writeFile(join(w, 'package.toml'), `[buildpack]\nuri = "${bp}"\n`);
  const pkg = await run(STRATA, ['buildpack', 'package', join(w, 'out', 'trav.cnb'), '--config', join(w, 'package.toml'), '--format', 'file'], { env: ctx.env });
  assert.notEqual(pkg.code, 0);
  assert.match(pkg.stderr.trim(), /^strata: error: .*buildpack\.toml: \[buildpack\] version "\.\.\/\.\.\/\.\.\/\.\.\/escaped" cannot be used as a file name.*refused$/);
  assert.deepEqual((await readdir(w)).filter((n) => n === 'escaped'), []);
  // A buildpackage image whose label names a version that climbs out of the buildpacks dir.
  await writeFile(join(bp, 'buildpack.toml'), 'api = "0.10"\n[buildpack]\nid = "test/trav"\nversion = "1.0.0"\n');
  await runOk(STRATA, ['buildpack', 'package', `oci:${w}/pkg:1`, '--config', join(w, 'package.toml')], { env: ctx.env });
  const layout = await OciLayout.open(join(w, 'pkg'));
  const image = await resolveImage(layout, '1');
  const labels = { ...image.config.config!.Labels! };
  labels['io.buildpacks.buildpack.layers'] = labels['io.buildpacks.buildpack.layers']!.replace('"1.0.0"', '"../../../../../escaped"');
  await writeImage(layout, { ...image.config, config: { ...image.config.config, Labels: labels } }, image.manifest.manifest, '1');
  const used = await run(STRATA, ['build', 'trav', '--builder', ctx.builder, '--path', ctx.app, '--buildpack', `oci:${w}/pkg:1`], { env: ctx.env });
  assert.notEqual(used.code, 0);
  assert.match(used.stderr.trim(), /^strata: error: .*io\.buildpacks\.buildpack\.layers: version of test\/trav "\.\.\/.*cannot be used as a file name.*refused$/);
  await chmod(w, 0o755);
});

test('builder create --flatten unpacks each buildpackage layer only into its own dir: an entry aimed elsewhere is refused', { timeout: 60_000 }, async () => {
  await ready();
  const w = join(fx.work, 'flat-evil');
  const bp = await writeBuildpack(join(w, 'src'), { id: 'test/flatevil' });
  await writeFile(join(w, 'package.toml'), `[buildpack]\nuri = "${bp}"\n`);
  await runOk(STRATA, ['buildpack', 'package', `oci:${w}/pkg:1`, '--config', join(w, 'package.toml')], { env: ctx.env });
  const layout = await OciLayout.open(join(w, 'pkg'));
  const image = await resolveImage(layout, '1');
  const old = image.config.rootfs.diff_ids[0]!;
  // The buildpack's own files, and one more aimed at another buildpack's dir and one climbing out.
  const hostile = await tarBytes([
    { name: 'cnb/buildpacks/test_flatevil/1.0.0/buildpack.toml', body: 'api = "0.12"\n[buildpack]\nid = "test/flatevil"\nversion = "1.0.0"\n' },
    { name: 'cnb/buildpacks/other_bp/1.0.0/bin/build', body: '#!/bin/sh\necho planted\n' },
  ]);
  await replaceLayer(layout, '1', old, hostile, (labels, diffID) => {
    labels['io.buildpacks.buildpack.layers'] = labels['io.buildpacks.buildpack.layers']!.replace(old, diffID);
  });
  await writeFile(join(w, 'builder.toml'), `[[buildpacks]]\nimage = "oci:${w}/pkg:1"\n[[order]]\n[[order.group]]\nid = "test/flatevil"\n[build]\nimage = "oci:${ctx.images}:build"\n[[run.images]]\nimage = "oci:${ctx.images}:run"\n`);
  const r = await run(STRATA, ['builder', 'create', `oci:${w}/b:1`, '--config', join(w, 'builder.toml'), '--flatten', 'test/flatevil@1.0.0'], { env: ctx.env });
  assert.notEqual(r.code, 0);
  assert.match(r.stderr.trim(), /^strata: error: test\/flatevil@1\.0\.0: "cnb\/buildpacks\/other_bp\/1\.0\.0\/bin\/build" is outside \/cnb\/buildpacks\/test_flatevil\/1\.0\.0, the only tree this layer may hold; refused$/);
  await assert.rejects(readdir(join(w, 'b')), 'no builder was written');
});
