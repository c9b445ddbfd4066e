import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { mkdir, readdir, readFile, readlink, lstat, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import { extractLayer } from '../../src/oci/extract.js';
import { fileWorkerRunning } from '../../src/oci/filewriter.js';
import { setTimeout as sleep } from 'node:timers/promises';
import { tempDir } from '../harness/proc.js';

import { arena, assertOutsideUntouched, tarOf } from '../hostile/corpus.js';

// The attacks themselves (traversal, links, devices, whiteout tricks, bombs) are in test/hostile/layers.test.ts.

test('a file entry replaces a symlink instead of writing through it', async () => {
  const a = await arena();
  try {
    await extractLayer(await tarOf([{ name: 'link', type: 'symlink', linkname: '../outside/victim' }, { name: 'link', body: 'replaced' }]), a.target);
    assert.ok((await lstat(join(a.target, 'link'))).isFile());
    assert.equal(await readFile(join(a.target, 'link'), 'utf8'), 'replaced');
    await assertOutsideUntouched(a);
  } finally {
    await a.cleanup();
  }
});

test('a pre-existing symlink in the target is not followed either', async () => {
  const a = await arena();
  try {
    await symlink('../outside', join(a.target, 'dir'));
    await assert.rejects(extractLayer(await tarOf([{ name: 'dir/victim', body: 'pwned' }]), a.target), /goes through the symlink/);
    await assertOutsideUntouched(a);
  } finally {
    await a.cleanup();
  }
});

test('whiteouts remove lower files; opaque whiteouts empty a directory but keep this layer\'s files', async () => {
  const a = await arena();
  try {
    await extractLayer(await tarOf([
      { name: 'etc', type: 'directory' }, { name: 'etc/keep', body: 'k' }, { name: 'etc/gone', body: 'g' },
      { name: 'var', type: 'directory' }, { name: 'var/old1', body: '1' }, { name: 'var/sub', type: 'directory' }, { name: 'var/sub/old2', body: '2' },
    ]), a.target);
    await extractLayer(await tarOf([
      { name: 'etc/.wh.gone' },
      { name: 'var', type: 'directory' }, { name: 'var/.wh..wh..opq' }, { name: 'var/new', body: 'n' },
    ]), a.target);
    assert.deepEqual((await readdir(join(a.target, 'etc'))).sort(), ['keep']);
    assert.deepEqual((await readdir(join(a.target, 'var'))).sort(), ['new']);
  } finally {
    await a.cleanup();
  }
});

test('hardlinks inside the layer work; a link to a missing file is a clear error', async () => {
  const a = await arena();
  try {
    await extractLayer(await tarOf([{ name: 'f', body: 'data' }, { name: 'g', type: 'link', linkname: 'f' }, { name: './h', type: 'link', linkname: './f' }]), a.target);
    assert.equal(await readFile(join(a.target, 'g'), 'utf8'), 'data');
    assert.equal((await lstat(join(a.target, 'h'))).nlink, 3);
    await assert.rejects(extractLayer(await tarOf([{ name: 'x', type: 'link', linkname: 'nope' }]), a.target), /points to "nope", which is not in the layer/);
  } finally {
    await a.cleanup();
  }
});

test('a truncated gzip layer fails with the layer named', async () => {
  const a = await arena();
  try {
    const { gzipSync } = await import('node:zlib');
    const chunks: Buffer[] = [];
    for await (const c of await tarOf([{ name: 'f', body: 'y'.repeat(100000) }]) as AsyncIterable<Buffer>) chunks.push(c);
    const gz = gzipSync(Buffer.concat(chunks));
    await assert.rejects(extractLayer(Readable.from([gz.subarray(0, gz.length / 2)]), a.target, { label: 'sha256:abc' }), /sha256:abc: cannot extract: unexpected end of file/);
  } finally {
    await a.cleanup();
  }
});

test('a directory replaced by a symlink later in the same layer is not trusted any more', async () => {
  const t = await tempDir();
  try {
    const outside = join(t.path, 'outside');
    await mkdir(outside);
    const target = join(t.path, 'root');
    await mkdir(target);
    const layer = await tarOf([
      { name: 'a/', type: 'directory' },
      { name: 'a/first', body: 'ok' },
      { name: 'a', type: 'symlink', linkname: outside },
      { name: 'a/escape', body: 'pwned' },
    ]);
    await assert.rejects(extractLayer(layer, target), /goes through the symlink "a"/);
    assert.deepEqual(await readdir(outside), [], 'nothing was written through the symlink');
  } finally {
    await t.cleanup();
  }
});

test('files of every size keep their content, mode and time', async () => {
  const t = await tempDir();
  try {
    const big = 'y'.repeat(600_000);
    await extractLayer(await tarOf([{ name: 'small', body: 'tiny' }, { name: 'empty', body: '' }, { name: 'big', body: big }]), t.path);
    assert.equal(await readFile(join(t.path, 'small'), 'utf8'), 'tiny');
    assert.equal(await readFile(join(t.path, 'empty'), 'utf8'), '');
    assert.equal((await readFile(join(t.path, 'big'), 'utf8')).length, big.length);
    assert.equal((await lstat(join(t.path, 'small'))).mode & 0o777, 0o644);
  } finally {
    await t.cleanup();
  }
});

/** A tree as comparable data: every path with its type, mode, and content or link target. */
async function snapshot(root: string, rel = ''): Promise<string[]> {
  const out: string[] = [];
  for (const name of (await readdir(join(root, rel))).sort()) {
    const p = rel ? `${rel}/${name}` : name;
    const st = await lstat(join(root, p));
    const mode = (st.mode & 0o7777).toString(8);
    if (st.isDirectory()) out.push(`${p}/ ${mode}`, ...(await snapshot(root, p)));
    else if (st.isSymbolicLink()) out.push(`${p} -> ${await readlink(join(root, p))}`);
    else out.push(`${p} ${mode} links=${st.nlink} ${await readFile(join(root, p), 'utf8')}`);
  }
  return out;
}

test('files through the worker land as written in order: replaced, linked, whited out, turned into a dir or a link', async () => {
  const t = await tempDir();
  try {
    const filler = Array.from({ length: 300 }, (_, i) => ({ name: `fill/${i % 7}/f${i}`, body: `body ${i}` }));
    const entries = [
      ...filler,
      { name: 'd/', type: 'directory' as const },
      { name: 'd/f1', body: 'one' },
      { name: 'd/f1', body: 'two', mode: 0o755 },
      { name: 'd/l', body: 'x' },
      { name: 'd/l', type: 'symlink' as const, linkname: 'f1' },
      { name: 'd/h', type: 'link' as const, linkname: 'd/f1' },
      { name: 'd/w', body: 'gone' },
      { name: 'd/.wh.w', body: '' },
      { name: 'd/x', body: 'file first' },
      { name: 'd/x/', type: 'directory' as const },
      { name: 'd/x/y', body: 'in the dir' },
    ];
    const trees: string[][] = [];
    for (const directFiles of [Infinity, 0]) {
      const dir = join(t.path, `root-${directFiles}`);
      await mkdir(dir);
      await extractLayer(await tarOf(entries), dir, { directFiles });
      trees.push(await snapshot(dir));
    }
    assert.deepEqual(trees[1], trees[0], 'the worker gives the tree writing in place gives');
    assert.ok(trees[0]!.includes('d/f1 755 links=2 two') && trees[0]!.includes('d/l -> f1') && trees[0]!.includes('d/x/y 644 links=1 in the dir'));
    assert.ok(!trees[0]!.some((l) => l.startsWith('d/w')));
    const parent = join(t.path, 'parent');
    await mkdir(parent);
    await assert.rejects(extractLayer(await tarOf([...filler, { name: 'p', body: 'file' }, { name: 'p/q', body: 'under a file' }]), parent, { directFiles: 0 }), /"p\/q" needs "p" to be a directory, but it is a file/);
  } finally {
    await t.cleanup();
  }
});

test('the file writer thread stops a moment after an extraction, and starts again for the next one', async () => {
  const a = await arena();
  try {
    const files = (dir: string) => Array.from({ length: 300 }, (_, i) => ({ name: `${dir}/f${i}`, body: `file ${i}` }));
    await extractLayer(await tarOf(files('one')), a.target);
    assert.equal(fileWorkerRunning(), true, 'the worker wrote the small files');
    await sleep(1500);
    assert.equal(fileWorkerRunning(), false, 'an idle worker does not hold its memory for the rest of the process');
    await extractLayer(await tarOf(files('two')), a.target);
    assert.deepEqual([(await readdir(join(a.target, 'one'))).length, (await readdir(join(a.target, 'two'))).length], [300, 300]);
  } finally {
    await a.cleanup();
  }
});
