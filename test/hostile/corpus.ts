/**
 * The hostile corpus: what a malicious buildpack, image, cache or builder can put in front of strata's trusted code.
 * Every phase that reads a tree untrusted code wrote, or a layer from elsewhere, must pass these (test/hostile/*).
 * Each attack aims at a "host" directory beside the one under attack; after it, the host must be untouched.
 */

import { Readable } from 'node:stream';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import assert from 'node:assert/strict';
import tar from 'tar-stream';
import { tempDir } from '../harness/proc.js';
import { sha256, type Digest } from '../../src/oci/digest.js';
import { resolveImage } from '../../src/oci/image.js';
import { MediaType } from '../../src/oci/mediatype.js';
import { writeImage } from '../../src/oci/mutate.js';
import type { ImageStore } from '../../src/oci/store.js';

export type Entry = { name: string; type?: 'file' | 'directory' | 'symlink' | 'link' | 'character-device' | 'block-device'; linkname?: string; body?: string; mode?: number };

/** A tar built in memory from raw headers: the point is to write entries no well-behaved tool would. */
export async function tarOf(entries: Entry[]): Promise<Readable> {
  return Readable.from([await tarBytes(entries)]);
}

export async function tarBytes(entries: Entry[]): Promise<Buffer> {
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  // Read while writing: a large entry would otherwise fill the pack's buffer and never call back.
  const collected = (async () => {
    for await (const c of pack as AsyncIterable<Buffer>) chunks.push(c);
  })();
  for (const e of entries) {
    await new Promise<void>((resolve, reject) => {
      const h = { name: e.name, type: e.type ?? 'file', mode: e.mode ?? (e.type === 'directory' ? 0o755 : 0o644), ...(e.linkname ? { linkname: e.linkname } : {}), ...(e.type === 'character-device' || e.type === 'block-device' ? { devmajor: 1, devminor: 3 } : {}) };
      const cb = (err?: Error | null) => (err ? reject(err) : resolve());
      if ((e.type ?? 'file') === 'file') pack.entry(h, e.body ?? 'x', cb);
      else pack.entry(h, cb);
    });
  }
  pack.finalize();
  await collected;
  return Buffer.concat(chunks);
}

/** A target dir with a sibling "outside" dir holding a victim file; after each attack, outside must be untouched. */
export async function arena(): Promise<{ root: string; target: string; outside: string; cleanup: () => Promise<void> }> {
  const t = await tempDir();
  const target = join(t.path, 'target');
  const outside = join(t.path, 'outside');
  await mkdir(target);
  await mkdir(outside);
  await writeFile(join(outside, 'victim'), 'original');
  return { root: t.path, target, outside, cleanup: t.cleanup };
}

export async function assertOutsideUntouched(a: { outside: string; root: string }, siblings = ['outside', 'target']): Promise<void> {
  assert.deepEqual((await readdir(a.outside)).sort(), ['victim']);
  assert.equal(await readFile(join(a.outside, 'victim'), 'utf8'), 'original');
  assert.deepEqual((await readdir(a.root)).sort(), siblings);
}

/** Image layers that try to leave the dir they are unpacked into, or to delete it. [what, entries, expected message] */
export const HOSTILE_LAYERS: [string, Entry[], RegExp][] = [
  ['dot-dot path', [{ name: '../outside/victim', body: 'pwned' }], /escapes the target/],
  ['nested dot-dot path', [{ name: 'a/b/../../../outside/new', body: 'pwned' }], /escapes the target/],
  ['absolute path', [{ name: '/tmp/strata-abs-pwned', body: 'pwned' }], /absolute path/],
  ['write through a symlink to a directory outside', [{ name: 'esc', type: 'symlink', linkname: '../outside' }, { name: 'esc/victim', body: 'pwned' }], /goes through the symlink/],
  ['write through an absolute symlink', [{ name: 'esc', type: 'symlink', linkname: '/' }, { name: 'esc/tmp/strata-pwned', body: 'pwned' }], /goes through the symlink/],
  ['hardlink to outside with dot-dot', [{ name: 'h', type: 'link', linkname: '../outside/victim' }], /escapes the target/],
  ['hardlink to an absolute path', [{ name: 'h', type: 'link', linkname: '/etc/passwd' }], /absolute path/],
  ['hardlink through a symlinked directory', [{ name: 'esc', type: 'symlink', linkname: '../outside' }, { name: 'h', type: 'link', linkname: 'esc/victim' }], /goes through the symlink/],
  ['character device', [{ name: 'null', type: 'character-device' }], /device node "null" refused/],
  ['block device', [{ name: 'sda', type: 'block-device' }], /device node "sda" refused/],
  ['whiteout through a symlink', [{ name: 'esc', type: 'symlink', linkname: '../outside' }, { name: 'esc/.wh.victim' }], /goes through the symlink/],
  // Whiteouts whose name is not an entry: ".wh..." removes "..", the parent of the target, as `rm -rf target/..`.
  ['whiteout of ".." (deletes the parent)', [{ name: '.wh...' }], /whiteout ".wh..." names "..".*refused/],
  ['whiteout of ".." in a subdir', [{ name: 'a', type: 'directory' }, { name: 'a/.wh...' }], /names "\.\.".*refused/],
  ['whiteout of "." (deletes the target)', [{ name: '.wh..' }], /names ".".*refused/],
  ['whiteout of nothing', [{ name: 'a', type: 'directory' }, { name: 'a/.wh.' }], /names "".*refused/],
  ['opaque whiteout of the root (empties the target)', [{ name: '.wh..wh..opq' }], /opaque whiteout of the whole root.*refused/],
  ['opaque whiteout of the root, spelled ./', [{ name: './.wh..wh..opq' }], /opaque whiteout of the whole root/],
];

/**
 * Entries a cache layer for `layers/bp/node` may not hold: it may fill only its own dir. Aimed at the app source,
 * the platform env, another buildpack's layer, the host.
 */
export const HOSTILE_CACHE_LAYERS: [string, Entry[], RegExp][] = [
  ['overwrite the app source', [{ name: 'workspace/hello.txt', body: 'pwned' }], /outside \/layers\/bp\/node.*refused/],
  ['inject a platform env var', [{ name: 'platform/env/INJECTED_ENV', body: 'pwned' }], /outside/],
  ["write another buildpack's layer", [{ name: 'layers/other/node/bin/tool', body: 'pwned' }], /outside/],
  ['write the layers dir root', [{ name: 'layers/group.toml', body: 'pwned' }], /outside/],
  ['a parent of the layer as a file', [{ name: 'layers', body: 'pwned' }], /outside/],
  ['a whiteout inside the layer', [{ name: 'layers/bp/node/.wh.x' }], /whiteout.*cannot have any/],
  ['an opaque whiteout inside the layer', [{ name: 'layers/bp/node/sub/.wh..wh..opq' }], /whiteout.*cannot have any/],
  ['dot-dot out of the layer', [{ name: 'layers/bp/node/../../../outside/victim', body: 'pwned' }], /escapes the target/],
  ['hardlink to a file outside the layer', [{ name: 'layers/bp/node/h', type: 'link', linkname: 'workspace/hello.txt' }], /outside/],
];

/** A gzip of `mb` MiB of zeros: a few KB that inflate a thousandfold. */
export async function gzipBomb(mb: number): Promise<Buffer> {
  const { gzipSync } = await import('node:zlib');
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  const collected = (async () => {
    for await (const c of pack as AsyncIterable<Buffer>) chunks.push(c);
  })();
  await new Promise<void>((resolve, reject) => pack.entry({ name: 'zeros', size: mb << 20 }, Buffer.alloc(mb << 20), (e) => (e ? reject(e) : resolve())));
  pack.finalize();
  await collected;
  return gzipSync(Buffer.concat(chunks), { level: 9 });
}

/** Names that reach a path when used as a buildpack id or version, a layer name or a process type. */
export const TRAVERSAL_NAMES = ['../../../../tmp/strata-traversal', '..', '.', 'a/../../b', ''];

/**
 * Rewrites an image in `store` under `tag`: the layer with diffID `oldDiffID` becomes `tarBytes` (gzipped), and
 * `editLabels` may change the config's labels (to point metadata at the new layer). Returns the new diffID.
 */
export async function replaceLayer(store: ImageStore, tag: string, oldDiffID: string, tarBytes: Buffer, editLabels?: (labels: Record<string, string>, newDiffID: string) => void): Promise<string> {
  const { gzipSync } = await import('node:zlib');
  const image = await resolveImage(store, tag);
  const blob = gzipSync(tarBytes);
  const diffID = sha256(tarBytes);
  const desc = { mediaType: MediaType.OciLayerGzip, digest: sha256(blob), size: blob.length };
  await store.putBlob(desc, async (start, end) => Readable.from([blob.subarray(start, end)]));
  const i = image.config.rootfs.diff_ids.indexOf(oldDiffID as Digest);
  assert.ok(i >= 0, `layer ${oldDiffID} is in ${tag}`);
  const diffIds = [...image.config.rootfs.diff_ids];
  diffIds[i] = diffID;
  const layers = [...image.manifest.manifest.layers];
  layers[i] = { ...desc, mediaType: layers[i]!.mediaType };
  const labels = { ...(image.config.config?.Labels ?? {}) };
  editLabels?.(labels, diffID);
  await writeImage(store, { ...image.config, rootfs: { type: 'layers', diff_ids: diffIds }, config: { ...image.config.config, Labels: labels } }, { ...image.manifest.manifest, layers }, tag);
  return diffID;
}
