import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { layerDiffID, treeEntries, type LayerEntry } from '../../src/oci/layer.js';
import { entriesFingerprint, OwnLayers } from '../../src/platform/ownlayers.js';
import { tempDir } from '../harness/proc.js';

test('an entries fingerprint is the same for every walk of a tree and moves when a file is rewritten', async () => {
  const t = await tempDir();
  try {
    const src = join(t.path, 'src');
    await mkdir(join(src, 'd'), { recursive: true });
    await writeFile(join(src, 'd', 'f'), 'one');
    const first = await entriesFingerprint(treeEntries(src));
    assert.equal(await entriesFingerprint(treeEntries(src)), first);
    // Same size, same path: only the file's times say it changed.
    await writeFile(join(src, 'd', 'f'), 'two');
    assert.notEqual(await entriesFingerprint(treeEntries(src)), first);
  } finally {
    await t.cleanup();
  }
});

test('own layers: a diffID is worked out once, then read from the record; a damaged record is no record', async () => {
  const t = await tempDir();
  try {
    const src = join(t.path, 'src');
    await mkdir(src);
    await writeFile(join(src, 'f'), 'content');
    let walks = 0;
    const entries = (): AsyncIterable<LayerEntry> => {
      walks++;
      return treeEntries(src);
    };
    const file = join(t.path, 'own-layers.json');
    const own = new OwnLayers(file);
    const expected = await layerDiffID(treeEntries(src));
    assert.equal(await own.diffID(entries), expected);
    assert.equal(walks, 2, 'a fingerprint walk and a hashing one');
    assert.equal(await new OwnLayers(file).diffID(entries), expected);
    assert.equal(walks, 3, 'the fingerprint only');
    await writeFile(file, '{not json');
    assert.equal(await own.diffID(entries), expected);
    assert.match(await readFile(file, 'utf8'), new RegExp(expected.slice(7)));
  } finally {
    await t.cleanup();
  }
});

test('own layers: a record that cannot be written is no failure, only no record', async () => {
  const t = await tempDir();
  try {
    const src = join(t.path, 'src');
    await mkdir(src);
    await writeFile(join(src, 'f'), 'content');
    // Where the record's dir should be, a file: nothing can be written there, whoever runs this.
    await writeFile(join(t.path, 'cache'), 'not a dir');
    const own = OwnLayers.in(t.path);
    assert.equal(await own.diffID(() => treeEntries(src)), await layerDiffID(treeEntries(src)));
    await own.remember('x', await layerDiffID(treeEntries(src)));
    assert.equal(await readFile(join(t.path, 'cache'), 'utf8'), 'not a dir');
  } finally {
    await t.cleanup();
  }
});
