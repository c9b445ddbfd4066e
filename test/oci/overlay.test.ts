import { test } from 'node:test';
import assert from 'node:assert/strict';
import { lstatSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { mkdir, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { extractLayer } from '../../src/oci/extract.js';
import { overlayLayers, type LayerTree } from '../../src/oci/overlay.js';
import { arena, assertOutsideUntouched, tarBytes, type Entry } from '../hostile/corpus.js';

/** Every entry under `root`: type, mode, owner and content or link target, for comparing two trees. */
function snapshot(root: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (rel: string): void => {
    for (const name of readdirSync(join(root, rel)).sort()) {
      const r = rel ? `${rel}/${name}` : name;
      const p = join(root, r);
      const st = lstatSync(p);
      const meta = `${(st.mode & 0o7777).toString(8)} ${st.uid}:${st.gid}`;
      if (st.isDirectory()) {
        out[r] = `dir ${meta}`;
        walk(r);
      } else if (st.isSymbolicLink()) out[r] = `link -> ${readlinkSync(p)}`;
      else out[r] = `file ${meta} ${readFileSync(p, 'utf8')}`;
    }
  };
  walk('');
  return out;
}

async function unpackEach(root: string, layers: Entry[][]): Promise<LayerTree[]> {
  const trees: LayerTree[] = [];
  for (const [i, entries] of layers.entries()) {
    const dir = join(root, `layer${i}`);
    await mkdir(dir);
    const { implicitDirs } = await extractLayer(Readable.from([await tarBytes(entries)]), dir, { whiteoutMarkers: true });
    trees.push({ dir, implicitDirs: new Set(implicitDirs) });
  }
  return trees;
}

const LAYERS: Entry[][] = [
  [
    { name: 'etc', type: 'directory', mode: 0o751 },
    { name: 'etc/a', body: 'a1' },
    { name: 'etc/b', body: 'b1' },
    { name: 'usr/bin', type: 'directory', mode: 0o700 },
    { name: 'usr/bin/tool', body: 'tool', mode: 0o4755 },
    { name: 'var/lib/x', body: 'x' },
    { name: 'lnk', type: 'symlink', linkname: 'etc/a' },
    { name: 'opt', type: 'directory' },
    { name: 'opt/one', body: '1' },
    { name: 'opt/sub/two', body: '2' },
  ],
  [
    { name: 'etc/.wh.a' },
    { name: 'etc/c', body: 'c2' },
    { name: 'opt/.wh..wh..opq' },
    { name: 'opt/three', body: '3' },
    { name: 'var/lib', body: 'now a file' },
    { name: 'lnk', body: 'now a file too' },
    { name: 'usr/bin', type: 'directory', mode: 0o755 },
    { name: 'etc/b', body: 'b2' },
  ],
  [
    { name: 'var/.wh.lib' },
    { name: 'var/lib/y', body: 'y' },
    { name: 'h1', body: 'shared' },
    { name: 'h2', type: 'link', linkname: 'h1' },
    { name: 'etc/.wh.c' },
    { name: 'etc/a', type: 'symlink', linkname: 'b' },
  ],
];

test('layers laid over one another give the tree extracting them in order gives: whiteouts, opaque dirs, replacements, modes', async () => {
  const a = await arena();
  try {
    const sequential = join(a.root, 'sequential');
    await mkdir(sequential);
    for (const entries of LAYERS) await extractLayer(Readable.from([await tarBytes(entries)]), sequential);
    const trees = await unpackEach(a.root, LAYERS);
    const merged = join(a.root, 'merged');
    await mkdir(merged);
    overlayLayers(trees, merged);
    const got = snapshot(merged);
    assert.deepEqual(got, snapshot(sequential));
    // Spot checks, so the comparison above cannot pass on two equally wrong trees.
    assert.equal(got['etc'], `dir 751 0:0`, 'an implicit dir in an upper layer keeps the lower mode');
    assert.equal(got['usr/bin'], `dir 755 0:0`, 'an explicit one takes its own');
    assert.equal(got['etc/a'], 'link -> b');
    assert.equal(got['etc/c'], undefined);
    assert.deepEqual(readdirSync(join(merged, 'opt')), ['three']);
    assert.match(got['usr/bin/tool']!, /^file 4755 /);
    assert.equal(got['var/lib/y'], 'file 644 0:0 y');
    // Files are shared with the unpacked layers, not copied.
    assert.equal((await stat(join(merged, 'h2'))).ino, (await stat(join(trees[2]!.dir, 'h1'))).ino);
    assert.equal((await stat(join(merged, 'usr/bin/tool'))).ino, (await stat(join(trees[0]!.dir, 'usr/bin/tool'))).ino);
    // The layer trees themselves still hold their own content and markers.
    assert.deepEqual((await readdir(join(trees[1]!.dir, 'opt'))).sort(), ['.wh..wh..opq', 'three']);
  } finally {
    await a.cleanup();
  }
});

test('a link a lower layer planted is replaced by an upper layer\'s dir, never walked through', async () => {
  const a = await arena();
  try {
    const trees = await unpackEach(a.root, [
      [{ name: 'etc', type: 'symlink', linkname: '../outside' }, { name: 'abs', type: 'symlink', linkname: a.outside }],
      [{ name: 'etc/victim', body: 'overwritten' }, { name: 'abs/.wh.victim' }, { name: 'abs/new', body: 'planted' }],
    ]);
    const merged = join(a.root, 'merged');
    await mkdir(merged);
    overlayLayers(trees, merged);
    assert.equal(readFileSync(join(merged, 'etc/victim'), 'utf8'), 'overwritten');
    assert.ok(lstatSync(join(merged, 'etc')).isDirectory());
    assert.ok(lstatSync(join(merged, 'abs')).isDirectory());
    await assertOutsideUntouched(a, ['layer0', 'layer1', 'merged', 'outside', 'target']);
  } finally {
    await a.cleanup();
  }
});
