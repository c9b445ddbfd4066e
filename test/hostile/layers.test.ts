// Hostile layers against every way strata unpacks one: image layers (rootfs), cache layers confined to their
// layer dir, SBOM layers (files only), and the limits that stop bombs.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { extractLayer } from '../../src/oci/extract.js';
import { extractLimits } from '../../src/oci/layerlimits.js';
import { sha256 } from '../../src/oci/digest.js';
import { arena, assertOutsideUntouched, gzipBomb, HOSTILE_CACHE_LAYERS, HOSTILE_LAYERS, tarBytes, tarOf } from './corpus.js';

// Each case twice: files written on the extracting thread, and every file through the file worker.
const MODES = [['', {}], [' (files through the worker)', { directFiles: 0 }]] as const;

for (const [what, entries, message] of HOSTILE_LAYERS) for (const [mode, direct] of MODES) {
  test(`image layer refused: ${what}${mode}`, async () => {
    const a = await arena();
    try {
      await writeFile(join(a.target, 'kept'), 'mine');
      await assert.rejects(extractLayer(await tarOf(entries), a.target, { label: 'evil-layer', ...direct }), (err: Error) => {
        assert.match(err.message, /^evil-layer: /);
        assert.match(err.message, message);
        return true;
      });
      await assertOutsideUntouched(a);
      assert.equal(await readFile(join(a.target, 'kept'), 'utf8'), 'mine', 'the target itself was not emptied or removed');
    } finally {
      await a.cleanup();
    }
  });
}

for (const [what, entries, message] of HOSTILE_CACHE_LAYERS) for (const [mode, direct] of MODES) {
  test(`cache layer refused: ${what}${mode}`, async () => {
    const a = await arena();
    try {
      // The build dir as a platform lays it out; the cached layer may fill only layers/bp/node.
      const work = a.target;
      for (const d of ['workspace', 'platform/env', 'layers/bp/node', 'layers/other/node/bin']) await mkdir(join(work, d), { recursive: true });
      await writeFile(join(work, 'workspace', 'hello.txt'), 'source');
      await assert.rejects(extractLayer(await tarOf(entries), join(work, 'layers', 'bp', 'node'), { label: 'cached layer bp:node', strip: 'layers/bp/node', whiteouts: false, ...direct }), message);
      assert.equal(await readFile(join(work, 'workspace', 'hello.txt'), 'utf8'), 'source');
      assert.deepEqual(await readdir(join(work, 'platform', 'env')), []);
      assert.deepEqual(await readdir(join(work, 'layers', 'other', 'node', 'bin')), []);
      assert.deepEqual((await readdir(join(work, 'layers'))).sort(), ['bp', 'other']);
      await assertOutsideUntouched(a);
    } finally {
      await a.cleanup();
    }
  });
}

test('a well-formed cache layer lands in its own dir, parents skipped', async () => {
  const a = await arena();
  try {
    await mkdir(join(a.target, 'node'));
    await extractLayer(await tarOf([{ name: 'layers', type: 'directory' }, { name: 'layers/bp', type: 'directory' }, { name: 'layers/bp/node', type: 'directory' }, { name: 'layers/bp/node/bin/node', body: 'elf' }, { name: 'layers/bp/node/lib', type: 'symlink', linkname: 'bin' }]), join(a.target, 'node'), { strip: '/layers/bp/node', whiteouts: false });
    assert.equal(await readFile(join(a.target, 'node', 'bin', 'node'), 'utf8'), 'elf');
    assert.deepEqual((await readdir(join(a.target, 'node'))).sort(), ['bin', 'lib']);
  } finally {
    await a.cleanup();
  }
});

test('SBOM layers hold only files: links of either kind are refused', async () => {
  for (const e of [{ name: 'layers/sbom/launch/bp/sbom.cdx.json', type: 'symlink' as const, linkname: '/etc/shadow' }, { name: 'layers/sbom/launch/bp/sbom.cdx.json', type: 'link' as const, linkname: 'layers/sbom/launch/x' }]) {
    const a = await arena();
    try {
      await assert.rejects(extractLayer(await tarOf([{ name: 'layers/sbom/launch/x', body: '{}' }, e]), a.target, { strip: 'layers/sbom/launch', whiteouts: false, links: false }), /in a layer that holds only files; refused/);
      await assertOutsideUntouched(a);
    } finally {
      await a.cleanup();
    }
  }
});

test('a layer whose content does not hash to its diffID is refused', async () => {
  const a = await arena();
  try {
    const good = await tarBytes([{ name: 'f', body: 'genuine' }]);
    const bad = await tarBytes([{ name: 'f', body: 'substituted' }]);
    await extractLayer(Readable.from([gzipSync(good)]), a.target, { diffID: sha256(good) });
    await assert.rejects(extractLayer(Readable.from([gzipSync(bad)]), a.target, { label: 'L', diffID: sha256(good) }), /L: content hashes to sha256:[0-9a-f]+, not its diffID/);
  } finally {
    await a.cleanup();
  }
});

test('a gzip bomb stops at the expansion cap, and the size and entry caps hold', async () => {
  const a = await arena();
  try {
    const bomb = await gzipBomb(48);
    assert.ok(bomb.length < 200_000, `the bomb is small (${bomb.length} bytes)`);
    const limits = { ...extractLimits({}), ratioFloor: 1 << 20 };
    await assert.rejects(extractLayer(Readable.from([bomb]), a.target, { label: 'bomb', limits }), /bomb: expands more than 100×.*compression bomb/);
    await assert.rejects(extractLayer(Readable.from([bomb]), a.target, { label: 'big', limits: { ...extractLimits({}), maxBytes: 4 << 20 } }), /big: expands to more than 4194304 bytes \(STRATA_MAX_LAYER_BYTES\)/);
    const many = await tarOf(Array.from({ length: 20 }, (_, i) => ({ name: `f${i}`, body: '' })));
    await assert.rejects(extractLayer(many, a.target, { label: 'many', limits: { ...extractLimits({}), maxEntries: 10 } }), /many: holds more than 10 entries \(STRATA_MAX_LAYER_ENTRIES\)/);
  } finally {
    await a.cleanup();
  }
});

test('limits come from the environment, with one-line errors for bad values', () => {
  assert.equal(extractLimits({ STRATA_MAX_LAYER_BYTES: '2g' }).maxBytes, 2 * 2 ** 30);
  assert.equal(extractLimits({ STRATA_MAX_LAYER_RATIO: '500' }).maxRatio, 500);
  assert.throws(() => extractLimits({ STRATA_MAX_LAYER_BYTES: 'lots' }), /STRATA_MAX_LAYER_BYTES="lots": expected a number of bytes/);
  assert.throws(() => extractLimits({ STRATA_MAX_LAYER_RATIO: '-1' }), /STRATA_MAX_LAYER_RATIO="-1": expected a positive whole number/);
});

test('an image whose layer is not the diffID its config names is not unpacked (builder or app rootfs)', async () => {
  const a = await arena();
  try {
    const { makeLayoutImage } = await import('../harness/images.js');
    const { resolveImage } = await import('../../src/oci/image.js');
    const { writeImage } = await import('../../src/oci/mutate.js');
    const { unpackedRootfs } = await import('../../src/platform/rootfs.js');
    const { layout } = await makeLayoutImage(join(a.target, 'img'), 'v1', [{ 'etc/os-release': 'ID=debian\n' }]);
    const image = await resolveImage(layout, 'v1');
    const forged = sha256('something else');
    await writeImage(layout, { ...image.config, rootfs: { type: 'layers', diff_ids: [forged] } }, image.manifest.manifest, 'forged');
    await assert.rejects(unpackedRootfs(await resolveImage(layout, 'forged'), join(a.target, 'rootfs')), /content hashes to sha256:[0-9a-f]+, not its diffID/);
    assert.deepEqual((await readdir(join(a.target, 'rootfs'))).filter((n) => !n.endsWith('.lock')), ['layers'], 'no rootfs was left for a later build to use');
    assert.deepEqual((await readdir(join(a.target, 'rootfs', 'layers'))).filter((n) => !n.endsWith('.lock')), [], 'nor an unpacked layer');
    await assertOutsideUntouched(a);
  } finally {
    await a.cleanup();
  }
});
