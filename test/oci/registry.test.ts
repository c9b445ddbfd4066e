import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { PassThrough, Writable } from 'node:stream';
import { join } from 'node:path';
import { registryFixture } from '../harness/registry.js';
import { run, runOk } from '../harness/proc.js';
import { makeLayoutImage } from '../harness/images.js';
import { RegistryClient } from '../../src/oci/registry/client.js';
import { copyImage } from '../../src/oci/copy.js';
import { resolveImage } from '../../src/oci/image.js';
import { OciLayout } from '../../src/oci/layout.js';
import { MediaType } from '../../src/oci/mediatype.js';
import { encodeJson } from '../../src/oci/manifest.js';
import { sha256 } from '../../src/oci/digest.js';
import { treeEntries, writeLayerFile } from '../../src/oci/layer.js';

const fx = registryFixture();

test('push a layout image, read it back by tag and by digest, list tags', async () => {
  const { layout, digest } = await makeLayoutImage(join(fx.work, 'l1'), 'v1', [{ 'etc/a': 'a' }, { 'app/b': 'b'.repeat(5000) }]);
  const client = new RegistryClient(fx.reg.host);
  await client.ping();
  const repo = client.repository('test/app');
  const r = await copyImage(layout, 'v1', repo, 'v1');
  assert.equal(r.digest, digest);
  assert.equal(r.uploaded, 3, 'config and two layers sent');
  const byTag = await resolveImage(repo, 'v1');
  assert.equal(byTag.manifest.digest, digest);
  assert.equal(byTag.config.rootfs.diff_ids.length, 2);
  const byDigest = await repo.getManifest(digest);
  assert.equal(byDigest.digest, digest);
  assert.deepEqual(await repo.listTags(), ['v1']);
  assert.equal((await repo.headManifest('v1'))?.digest, digest);
  // Independent reader: skopeo sees the same bytes.
  const raw = await runOk('skopeo', ['inspect', '--tls-verify=false', '--raw', `docker://${fx.reg.host}/test/app:v1`]);
  assert.equal(sha256(Buffer.from(raw)), digest);
});

test('a second push sends no blobs; a push to another repository mounts them', async () => {
  const { layout } = await makeLayoutImage(join(fx.work, 'l2'), 'v1', [{ 'x': randomBytes(1000) }, { 'y': randomBytes(2000) }]);
  const repo = new RegistryClient(fx.reg.host).repository('mount/src');
  const first = await copyImage(layout, 'v1', repo, 'one');
  assert.equal(first.uploaded, 3);
  const again = await copyImage(layout, 'v1', repo, 'two');
  assert.equal(again.uploaded, 0);
  assert.equal(again.existing, 3);
  const other = new RegistryClient(fx.reg.host).repository('mount/dst');
  const mounted = await copyImage(repo, 'one', other, 'v1');
  assert.equal(mounted.mounted, 3);
  assert.equal(mounted.uploaded, 0);
  const lines = await fx.reg.requests();
  assert.ok(lines.some((l) => l.startsWith('POST /v2/mount/dst/blobs/uploads/?') && l.includes('mount=') && l.includes('from=mount%2Fsrc')), 'registry saw a mount request');
});

test('large blobs go up in PATCH chunks and arrive intact', async () => {
  const big = randomBytes(700_000);
  const { layout, digest } = await makeLayoutImage(join(fx.work, 'l3'), 'v1', [{ 'big.bin': big }]);
  const client = new RegistryClient(fx.reg.host, { monolithicMax: 100_000, chunkSize: 200_000 });
  const repo = client.repository('chunked/app');
  await copyImage(layout, 'v1', repo, 'v1');
  const lines = await fx.reg.requests();
  const patches = lines.filter((l) => l.startsWith('PATCH /v2/chunked/app/blobs/uploads/'));
  assert.ok(patches.length >= 4, `expected ≥4 PATCH chunks, saw ${patches.length}`);
  // Read back into a fresh layout: every blob verified on the way.
  const back = await OciLayout.open(join(fx.work, 'l3-back'), { create: true });
  const r = await copyImage(repo, 'v1', back, 'v1');
  assert.equal(r.digest, digest);
});

test('an index with two platforms is copied whole and keeps its digest', async () => {
  const dir = join(fx.work, 'multi');
  const { layout, digest: amd } = await makeLayoutImage(dir, 'amd', [{ 'f': 'amd64' }]);
  const { digest: arm } = await makeLayoutImage(dir, 'arm', [{ 'f': 'arm64' }]);
  const amdM = await layout.getManifest(amd);
  const armM = await layout.getManifest(arm);
  const index = {
    schemaVersion: 2,
    mediaType: MediaType.OciIndex,
    manifests: [
      { mediaType: MediaType.OciManifest, digest: amd, size: amdM.bytes.length, platform: { os: 'linux', architecture: 'amd64' } },
      { mediaType: MediaType.OciManifest, digest: arm, size: armM.bytes.length, platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } },
    ],
  };
  const bytes = encodeJson(index);
  const idx = await layout.putManifest(bytes, MediaType.OciIndex, 'multi');
  const repo = new RegistryClient(fx.reg.host).repository('multi/app');
  const r = await copyImage(layout, 'multi', repo, 'latest');
  assert.equal(r.digest, idx);
  const raw = await runOk('skopeo', ['inspect', '--tls-verify=false', '--raw', `docker://${fx.reg.host}/multi/app:latest`]);
  assert.equal(sha256(Buffer.from(raw)), idx);
  const arm64 = await resolveImage(repo, 'latest', { os: 'linux', architecture: 'arm64' });
  assert.equal(arm64.manifest.digest, arm);
  await assert.rejects(resolveImage(repo, 'latest', { os: 'linux', architecture: 's390x' }), /no image for linux\/s390x in its index \(has: linux\/amd64, linux\/arm64\/v8\)/);
});

test('a corrupt blob in the registry is detected by digest and named', async () => {
  const { layout } = await makeLayoutImage(join(fx.work, 'l4'), 'v1', [{ 'data': 'precious data '.repeat(100) }]);
  const repo = new RegistryClient(fx.reg.host).repository('corrupt/app');
  await copyImage(layout, 'v1', repo, 'v1');
  const img = await resolveImage(repo, 'v1');
  const layer = img.manifest.manifest.layers[0]!;
  // Flip the stored bytes behind the registry's back.
  const hex = layer.digest.slice(7);
  const blobData = join(fx.reg.dataDir, 'docker/registry/v2/blobs/sha256', hex.slice(0, 2), hex, 'data');
  const data = await readFile(blobData);
  data[data.length - 10] ^= 0xff;
  await writeFile(blobData, data);
  const dest = await OciLayout.open(join(fx.work, 'l4-back'), { create: true });
  await assert.rejects(copyImage(repo, 'v1', dest, 'v1'), new RegExp(`blob ${layer.digest} is corrupt`));
  // Nothing half-written: no tag, no partial blob file.
  assert.deepEqual(await dest.listTags(), []);
  assert.ok(!(await dest.hasBlob(layer.digest)));
  const leftovers = (await readdir(join(dest.root, 'blobs/sha256'))).filter((f) => f.startsWith('.tmp'));
  assert.deepEqual(leftovers, []);
});

test('missing manifest, unreachable registry and unknown media type give one-line errors', async () => {
  const repo = new RegistryClient(fx.reg.host).repository('nothing/here');
  await assert.rejects(repo.getManifest('nope'), { message: `${fx.reg.host}/nothing/here:nope: manifest not found` });
  const dead = new RegistryClient('127.0.0.1:1').repository('x/y');
  await assert.rejects(dead.getManifest('latest'), /^StrataError: cannot reach registry 127\.0\.0\.1:1 \(ECONNREFUSED\): is it running/);
  const layout = await OciLayout.open(join(fx.work, 'weird'), { create: true });
  const weird = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.example.thing+json' }));
  await layout.putManifest(weird, 'application/vnd.example.thing+json', 'weird');
  await assert.rejects(layout.getManifest('weird'), /unknown manifest media type "application\/vnd\.example\.thing\+json"/);
});

test('a manifest referencing a missing blob is refused by the registry and the tag does not move', async () => {
  const { layout } = await makeLayoutImage(join(fx.work, 'l5'), 'v1', [{ 'a': 'one' }]);
  const repo = new RegistryClient(fx.reg.host).repository('keep/app');
  const r1 = await copyImage(layout, 'v1', repo, 'stable');
  const m = JSON.parse((await layout.getManifest('v1')).bytes.toString()) as { layers: { digest: string }[] };
  m.layers[0]!.digest = sha256('never uploaded');
  await assert.rejects(repo.putManifest(encodeJson(m), MediaType.OciManifest, 'stable'), /registry 127\.0\.0\.1:\d+: writing manifest keep\/app|writing manifest/);
  assert.equal((await repo.getManifest('stable')).digest, r1.digest);
});

test('skopeo inspect reads what strata pushed, including the config', async () => {
  const { layout } = await makeLayoutImage(join(fx.work, 'l6'), 'v1', [{ 'hello.txt': 'hi' }], { 'org.example.label': 'yes' });
  const repo = new RegistryClient(fx.reg.host).repository('skopeo/reads');
  await copyImage(layout, 'v1', repo, 'v1');
  const out = await run('skopeo', ['inspect', '--tls-verify=false', '--config', `docker://${fx.reg.host}/skopeo/reads:v1`]);
  assert.equal(out.code, 0, out.stderr);
  const cfg = JSON.parse(out.stdout) as { config: { Labels: Record<string, string> } };
  assert.equal(cfg.config.Labels['org.example.label'], 'yes');
});

test('a layer sent while it is compressed: one streamed PATCH and a PUT with the digest the registry checks; a failed copy never fails the layer', async () => {
  const dir = await mkdtemp(join(fx.work, 'stream-'));
  try {
    await mkdir(join(dir, 'tree'));
    await writeFile(join(dir, 'tree', 'data'), randomBytes(3_000_000));
    const repo = new RegistryClient(fx.reg.host).repository('streamed/app');
    const sending = await repo.streamBlob();
    const info = await writeLayerFile(treeEntries(join(dir, 'tree')), join(dir, 'a.tgz'), { copyTo: sending.sink });
    const desc = { mediaType: info.mediaType, digest: info.digest, size: info.size };
    assert.equal(await sending.finish(desc), true);
    assert.equal(await repo.hasBlob(info.digest), true);
    assert.ok((await readFile(join(dir, 'a.tgz'))).equals(await repo.getBlobBytes(desc)), 'the registry holds the bytes of the file');
    assert.ok((await fx.reg.requests()).some((l) => l.startsWith('PATCH /v2/streamed/app/blobs/uploads/')));
    // Closed under another digest, the registry refuses: finish says so, and nothing is stored under either.
    const wrong = await repo.streamBlob();
    wrong.sink.end(Buffer.from('not the layer'));
    assert.equal(await wrong.finish({ ...desc, digest: sha256(Buffer.from('something else')) }), false);
    // A copy that breaks half-way is dropped; the layer is written whole, the same bytes as without it.
    let seen = 0;
    const breaking = new Writable({
      write(chunk: Buffer, _e, cb) {
        seen += chunk.length;
        cb(seen > 100_000 ? new Error('connection reset') : null);
      },
    });
    const again = await writeLayerFile(treeEntries(join(dir, 'tree')), join(dir, 'b.tgz'), { copyTo: breaking });
    assert.deepEqual(again, info);
    assert.ok((await readFile(join(dir, 'b.tgz'))).equals(await readFile(join(dir, 'a.tgz'))));
    // Nor does one closed under it without a word, or an upload given up half-way.
    const closed = new PassThrough();
    closed.once('data', () => closed.destroy());
    assert.deepEqual(await writeLayerFile(treeEntries(join(dir, 'tree')), join(dir, 'c.tgz'), { copyTo: closed }), info);
    const unread = await repo.streamBlob();
    unread.sink.once('data', () => unread.abort());
    assert.deepEqual(await writeLayerFile(treeEntries(join(dir, 'tree')), join(dir, 'd.tgz'), { copyTo: unread.sink }), info);
    assert.equal(await unread.finish(desc), false);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
