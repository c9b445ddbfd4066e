import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { mkdir, readdir, readFile, lstat, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import { extractLayer } from './extract.js';
import { tempDir } from '../../test/harness/proc.js';

import { arena, assertOutsideUntouched, tarOf } from '../../test/hostile/corpus.js';

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
