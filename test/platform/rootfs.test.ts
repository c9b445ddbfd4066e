import { test } from 'node:test';
import assert from 'node:assert/strict';
import { lstat, mkdir, readdir, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { resolveImage } from '../../src/oci/image.js';
import { unpackedRootfs } from '../../src/platform/rootfs.js';
import { LIFECYCLE_CREATED_BY, lifecycleHolds, ownLifecycleLayer } from '../../src/platform/lifecycle-layer.js';
import { entriesFingerprint, OwnLayers } from '../../src/platform/ownlayers.js';
import { lineProgress } from '../../src/oci/progress.js';
import { makeRawLayoutImage } from '../harness/images.js';
import { arena, assertOutsideUntouched, tarBytes } from '../hostile/corpus.js';

test('builders that share a layer unpack it once; each rootfs shares its files', async () => {
  const a = await arena();
  try {
    const os = await tarBytes([{ name: 'etc/os-release', body: 'ID=debian\n' }, { name: 'usr/bin/sh', body: 'elf', mode: 0o755 }, { name: 'opt/old', body: 'v0' }]);
    await makeRawLayoutImage(join(a.root, 'img'), 'v1', [os, await tarBytes([{ name: 'cnb/order.toml', body: 'v1' }])]);
    const { layout } = await makeRawLayoutImage(join(a.root, 'img'), 'v2', [os, await tarBytes([{ name: 'cnb/order.toml', body: 'v2' }, { name: 'opt/.wh.old' }])]);
    const dir = join(a.target, 'rootfs');
    const lines: string[] = [];
    const v1 = await unpackedRootfs(await resolveImage(layout, 'v1'), dir, lineProgress((l) => lines.push(l)));
    assert.equal(lines.length, 2);
    lines.length = 0;
    const v2 = await unpackedRootfs(await resolveImage(layout, 'v2'), dir, lineProgress((l) => lines.push(l)));
    assert.deepEqual(lines.map((l) => l.replace(/ \(.*/, '')), ['Pulling and unpacking layer 2/2'], 'the shared OS layer is not unpacked again');
    assert.equal(await readFile(join(v1, 'cnb/order.toml'), 'utf8'), 'v1');
    assert.equal(await readFile(join(v2, 'cnb/order.toml'), 'utf8'), 'v2');
    assert.equal(await readFile(join(v1, 'opt/old'), 'utf8'), 'v0');
    assert.deepEqual(await readdir(join(v2, 'opt')), [], 'the whiteout applies to v2 only');
    assert.equal((await stat(join(v1, 'usr/bin/sh'))).ino, (await stat(join(v2, 'usr/bin/sh'))).ino);
    assert.equal((await stat(join(v2, 'tmp'))).mode & 0o7777, 0o1777);
    assert.ok((await stat(join(v2, 'home/cnb'))).isDirectory());
    // A third call finds the assembled tree.
    lines.length = 0;
    assert.equal(await unpackedRootfs(await resolveImage(layout, 'v2'), dir, lineProgress((l) => lines.push(l))), v2);
    assert.deepEqual(lines, []);
  } finally {
    await a.cleanup();
  }
});

test('an image whose /tmp and /home are links out of the tree: neither moded nor written through', async () => {
  const a = await arena();
  try {
    const { layout } = await makeRawLayoutImage(join(a.root, 'img'), 'evil', [await tarBytes([{ name: 'tmp', type: 'symlink', linkname: a.outside }, { name: 'home', type: 'symlink', linkname: a.outside }, { name: 'proc', type: 'symlink', linkname: join(a.outside, 'proc') }])]);
    const before = (await stat(a.outside)).mode;
    const rootfs = await unpackedRootfs(await resolveImage(layout, 'evil'), join(a.target, 'rootfs'));
    assert.ok((await lstat(join(rootfs, 'tmp'))).isSymbolicLink());
    assert.equal((await stat(a.outside)).mode, before);
    await assertOutsideUntouched(a, ['img', 'outside', 'target']);
  } finally {
    await a.cleanup();
  }
});

test('a layer whose history claims to be this strata\'s lifecycle, but is not, is unpacked from its blob, even when a planted record says otherwise', async () => {
  const a = await arena();
  try {
    // The claim is only the image's word: this install's lifecycle hashes to another diffID, so its tree is not used.
    const fake = await tarBytes([{ name: 'cnb/lifecycle/node', body: 'not node', mode: 0o755 }, { name: 'cnb/lifecycle/planted', body: 'mine' }]);
    const { layout } = await makeRawLayoutImage(join(a.root, 'img'), 'claims', [await tarBytes([{ name: 'etc/os-release', body: 'ID=debian\n' }]), fake], ['os', LIFECYCLE_CREATED_BY]);
    const image = await resolveImage(layout, 'claims');
    const own = new OwnLayers(join(a.root, 'own-layers.json'));
    const lines: string[] = [];
    const rootfs = await unpackedRootfs(image, join(a.target, 'rootfs'), lineProgress((l) => lines.push(l)), own);
    assert.deepEqual(lines.map((l) => l.replace(/ \(.*/, '')).sort(), ['Pulling and unpacking layer 1/2', 'Pulling and unpacking layer 2/2']);
    assert.equal(await readFile(join(rootfs, 'cnb/lifecycle/node'), 'utf8'), 'not node');
    assert.equal(Object.keys(JSON.parse(await readFile(join(a.root, 'own-layers.json'), 'utf8'))).length, 1, 'what this install makes is remembered');

    // A record planted to say this install makes exactly the claimed layer: the unpack from the install is tried,
    // fails its diffID check, and leaves nothing behind; the blob is unpacked instead.
    await own.remember(await entriesFingerprint(ownLifecycleLayer(image, 1)!()), image.config.rootfs.diff_ids[1]!);
    lines.length = 0;
    const again = await unpackedRootfs(image, join(a.target, 'rootfs2'), lineProgress((l) => lines.push(l)), own);
    assert.deepEqual(lines.map((l) => l.replace(/ \(.*/, '')).sort(), ['Pulling and unpacking layer 1/2', 'Pulling and unpacking layer 2/2', 'Unpacking layer 2/2']);
    assert.equal(await readFile(join(again, 'cnb/lifecycle/planted'), 'utf8'), 'mine');
    assert.deepEqual((await readdir(join(again, 'cnb/lifecycle'))).sort(), ['node', 'planted'], 'nothing of the attempt is left in the tree');
    await assertOutsideUntouched(a, ['img', 'outside', 'own-layers.json', 'target']);
  } finally {
    await a.cleanup();
  }
});

test('whether a builder\'s lifecycle waits to be told to go is read from its own package.json only, never through a link', async () => {
  const a = await arena();
  try {
    const gate = JSON.stringify({ name: 'strata-lifecycle', features: ['gate'] });
    const strata = join(a.target, 'cnb/lifecycle/strata');
    await mkdir(strata, { recursive: true });
    assert.equal(lifecycleHolds(a.target, 'builder test'), false, 'no package.json: an ordinary lifecycle');
    await writeFile(join(strata, 'package.json'), gate);
    assert.equal(lifecycleHolds(a.target, 'builder test'), true);
    // A hostile builder points the file, or the dir above it, at one outside that says it waits.
    await writeFile(join(a.outside, 'package.json'), gate);
    await rm(join(strata, 'package.json'));
    await symlink(join(a.outside, 'package.json'), join(strata, 'package.json'));
    assert.equal(lifecycleHolds(a.target, 'builder test'), false, 'a link to a file outside is not followed');
    await rm(strata, { recursive: true });
    await symlink(a.outside, strata);
    assert.equal(lifecycleHolds(a.target, 'builder test'), false, 'a link for the dir is not followed');
    await rm(strata);
    await mkdir(strata);
    await writeFile(join(strata, 'package.json'), `${' '.repeat(1 << 17)}${gate}`);
    assert.equal(lifecycleHolds(a.target, 'builder test'), false, 'an oversized file is not read');
    await rm(join(a.outside, 'package.json'));
    await assertOutsideUntouched(a);
  } finally {
    await a.cleanup();
  }
});
