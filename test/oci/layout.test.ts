import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { OciLayout, REF_NAME } from '../../src/oci/layout.js';
import { sha256 } from '../../src/oci/digest.js';
import { MediaType } from '../../src/oci/mediatype.js';
import { encodeJson } from '../../src/oci/manifest.js';
import { tempDir } from '../harness/proc.js';

function manifestFor(n: number): Buffer {
  return encodeJson({ schemaVersion: 2, mediaType: MediaType.OciManifest, config: { mediaType: MediaType.OciConfig, digest: sha256(`c${n}`), size: 2 }, layers: [] });
}

test('a new layout has oci-layout and an empty index; opening a non-layout fails clearly', async () => {
  const t = await tempDir();
  try {
    await OciLayout.open(join(t.path, 'l'), { create: true });
    assert.deepEqual(JSON.parse(await readFile(join(t.path, 'l/oci-layout'), 'utf8')), { imageLayoutVersion: '1.0.0' });
    assert.deepEqual(JSON.parse(await readFile(join(t.path, 'l/index.json'), 'utf8')).manifests, []);
    await assert.rejects(OciLayout.open(join(t.path, 'other')), /not an OCI image layout \(no oci-layout file\)/);
  } finally {
    await t.cleanup();
  }
});

test('many images per layout, concurrent tag writes all land, re-tagging replaces, every entry has its blob', async () => {
  const t = await tempDir();
  try {
    const layout = await OciLayout.open(join(t.path, 'l'), { create: true });
    await Promise.all(Array.from({ length: 20 }, (_, i) => layout.putManifest(manifestFor(i), MediaType.OciManifest, `t${i}`)));
    assert.equal((await layout.listTags()).length, 20);
    await layout.putManifest(manifestFor(99), MediaType.OciManifest, 't3');
    const index = await layout.readIndex();
    assert.equal(index.manifests.filter((d) => d.annotations?.[REF_NAME] === 't3').length, 1);
    assert.equal((await layout.getManifest('t3')).digest, sha256(manifestFor(99)));
    for (const d of index.manifests) assert.ok(await layout.hasBlob(d.digest), `blob for ${d.annotations?.[REF_NAME]}`);
    assert.ok(await layout.removeTag('t0'));
    await assert.rejects(layout.getManifest('t0'), /no image "t0"/);
    const stray = (await readdir(join(t.path, 'l'))).filter((f) => f.startsWith('.'));
    assert.deepEqual(stray, [], 'no temp files or locks left');
  } finally {
    await t.cleanup();
  }
});

test('a blob that fails verification is not stored and leaves no temp file', async () => {
  const t = await tempDir();
  try {
    const layout = await OciLayout.open(join(t.path, 'l'), { create: true });
    const digest = sha256('expected');
    await assert.rejects(layout.putBlob({ mediaType: 'x', digest, size: 8 }, async () => Readable.from([Buffer.from('tampered')])), /corrupt/);
    assert.equal(await layout.hasBlob(digest), false);
    assert.deepEqual((await readdir(join(t.path, 'l/blobs/sha256'))).filter((f) => f.startsWith('.tmp')), []);
    assert.equal(await layout.putBlob({ mediaType: 'x', digest, size: 8 }, async () => Readable.from([Buffer.from('expected')])), 'uploaded');
    assert.equal(await layout.putBlob({ mediaType: 'x', digest, size: 8 }, async () => Readable.from([Buffer.from('expected')])), 'exists');
  } finally {
    await t.cleanup();
  }
});

test('an untagged image is found when it is the only one; several need a tag', async () => {
  const t = await tempDir();
  try {
    const layout = await OciLayout.open(join(t.path, 'l'), { create: true });
    await layout.putManifest(manifestFor(1), MediaType.OciManifest, 'only');
    assert.equal((await layout.getManifest()).digest, sha256(manifestFor(1)));
    await layout.putManifest(manifestFor(2), MediaType.OciManifest, 'second');
    await assert.rejects(layout.getManifest(), /holds 2 images; name one as oci:<dir>:<tag>/);
  } finally {
    await t.cleanup();
  }
});

test('a temp index.json left by a writer killed before its rename is removed at the next index write; a live writer\'s is not', async () => {
  const t = await tempDir();
  try {
    const layout = await OciLayout.open(t.path, { create: true });
    // A pid that cannot be alive (above pid_max), and ours.
    await writeFile(join(t.path, '.tmp-index.json-4194999-abcd1234'), '{"half":');
    await writeFile(join(t.path, `.tmp-index.json-${process.pid}-0badf00d`), '{}');
    const config = encodeJson({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } });
    await layout.putBlob({ mediaType: MediaType.OciConfig, digest: sha256(config), size: config.length }, async () => Readable.from([config]));
    await layout.putManifest(encodeJson({ schemaVersion: 2, mediaType: MediaType.OciManifest, config: { mediaType: MediaType.OciConfig, digest: sha256(config), size: config.length }, layers: [] }), MediaType.OciManifest, 'v1');
    const left = (await readdir(t.path)).filter((n) => n.startsWith('.tmp-'));
    assert.deepEqual(left, [`.tmp-index.json-${process.pid}-0badf00d`]);
  } finally {
    await t.cleanup();
  }
});
