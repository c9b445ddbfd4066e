import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createReadStream } from 'node:fs';
import { chmod, chown, link, mkdir, symlink, utimes, writeFile, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import { extractLayer } from '../../src/oci/extract.js';
import { layerDiffID, layerTime, NORMALISED_MTIME, treeEntries, writeLayer, writeLayerFile, writeTarFile } from '../../src/oci/layer.js';
import { tempDir } from '../harness/proc.js';

async function makeTree(root: string, time: Date, owner: number): Promise<void> {
  await mkdir(join(root, 'b/nested'), { recursive: true });
  await mkdir(join(root, 'a-dir'), { recursive: true });
  await writeFile(join(root, 'b/nested/file.txt'), 'nested\n');
  await writeFile(join(root, 'run.sh'), '#!/bin/sh\necho hi\n');
  await chmod(join(root, 'run.sh'), 0o755);
  await writeFile(join(root, 'b/secret'), 'x');
  await chmod(join(root, 'b/secret'), 0o600);
  await symlink('b/nested/file.txt', join(root, 'link'));
  await link(join(root, 'b/nested/file.txt'), join(root, 'hard'));
  for (const p of ['b/nested/file.txt', 'run.sh', 'b/secret', 'b/nested', 'b', 'a-dir', '.']) {
    await utimes(join(root, p), time, time);
    if (process.getuid?.() === 0) await chown(join(root, p), owner, owner);
  }
}

function sha(path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const h = createHash('sha256');
    createReadStream(path).on('data', (c) => h.update(c)).on('end', () => resolve(`sha256:${h.digest('hex')}`)).on('error', reject);
  });
}

test('the same tree gives byte-identical layers whatever its mtimes and owners', async () => {
  const t = await tempDir();
  try {
    await makeTree(join(t.path, 'one'), new Date('2001-02-03T04:05:06Z'), 1234);
    await makeTree(join(t.path, 'two'), new Date('2024-06-07T08:09:10Z'), 4321);
    const a = await writeLayerFile(treeEntries(join(t.path, 'one'), { prefix: 'layers/bp/layer' }), join(t.path, 'a.tgz'), { uid: 1000, gid: 1000 });
    const b = await writeLayerFile(treeEntries(join(t.path, 'two'), { prefix: 'layers/bp/layer' }), join(t.path, 'b.tgz'), { uid: 1000, gid: 1000 });
    assert.equal(a.diffID, b.diffID);
    assert.equal(a.digest, b.digest);
    assert.equal(a.size, b.size);
    assert.deepEqual(await readFile(join(t.path, 'a.tgz')), await readFile(join(t.path, 'b.tgz')));
    // The reported numbers describe the file that was written.
    assert.equal(a.digest, await sha(join(t.path, 'a.tgz')));
    assert.equal(a.size, (await stat(join(t.path, 'a.tgz'))).size);
    const diff = `sha256:${execFileSync('sh', ['-c', `gunzip -c ${join(t.path, 'a.tgz')} | sha256sum`]).toString().split(' ')[0]}`;
    assert.equal(a.diffID, diff);
  } finally {
    await t.cleanup();
  }
});

test('layer entries: lexical order, parents, owners, modes, mtime, symlink and hardlink kept', async () => {
  const t = await tempDir();
  try {
    await makeTree(join(t.path, 'src'), new Date(), 0);
    await writeLayerFile(treeEntries(join(t.path, 'src'), { prefix: 'layers/bp/layer' }), join(t.path, 'l.tgz'), { uid: 1000, gid: 1001 });
    const listing = execFileSync('tar', ['--numeric-owner', '--full-time', '-tvzf', join(t.path, 'l.tgz')], { env: { ...process.env, TZ: 'UTC' } }).toString().trim().split('\n');
    const names = listing.map((l) => l.split(/\s+/).slice(5).join(' '));
    assert.deepEqual(names, [
      'layers/', 'layers/bp/', 'layers/bp/layer/', 'layers/bp/layer/a-dir/', 'layers/bp/layer/b/', 'layers/bp/layer/b/nested/',
      'layers/bp/layer/b/nested/file.txt', 'layers/bp/layer/b/secret', 'layers/bp/layer/hard link to layers/bp/layer/b/nested/file.txt',
      'layers/bp/layer/link -> b/nested/file.txt', 'layers/bp/layer/run.sh',
    ]);
    for (const line of listing) {
      assert.match(line, / 1000\/1001 /, line);
      assert.match(line, / 1980-01-01 00:00:01 /, line);
    }
    assert.match(listing.find((l) => l.endsWith('run.sh'))!, /^-rwxr-xr-x/);
    assert.match(listing.find((l) => l.endsWith('b/secret'))!, /^-rw-------/);
  } finally {
    await t.cleanup();
  }
});

test('SOURCE_DATE_EPOCH sets the layer time; a bad value is refused', () => {
  assert.equal(layerTime({}).getTime(), NORMALISED_MTIME.getTime());
  assert.equal(layerTime({ SOURCE_DATE_EPOCH: '1700000000' }).toISOString(), '2023-11-14T22:13:20.000Z');
  assert.throws(() => layerTime({ SOURCE_DATE_EPOCH: 'yesterday' }), /SOURCE_DATE_EPOCH/);
});

test('a layer extracts back to the same files, links and modes', async () => {
  const t = await tempDir();
  try {
    await makeTree(join(t.path, 'src'), new Date(), 0);
    await writeLayerFile(treeEntries(join(t.path, 'src')), join(t.path, 'l.tgz'));
    const out = join(t.path, 'out');
    await mkdir(out);
    await extractLayer(createReadStream(join(t.path, 'l.tgz')), out);
    assert.equal(await readFile(join(out, 'b/nested/file.txt'), 'utf8'), 'nested\n');
    assert.equal((await stat(join(out, 'run.sh'))).mode & 0o777, 0o755);
    assert.equal((await stat(join(out, 'hard'))).ino, (await stat(join(out, 'b/nested/file.txt'))).ino);
    assert.equal(await readFile(join(out, 'link'), 'utf8'), 'nested\n');
    assert.equal((await stat(join(out, 'run.sh'))).mtime.toISOString(), NORMALISED_MTIME.toISOString());
  } finally {
    await t.cleanup();
  }
});

test('files bigger than the read buffer, one after another, give the tar that GNU tar reads back, writeTarFile writes and layerDiffID hashes', async () => {
  const t = await tempDir();
  try {
    const src = join(t.path, 'src');
    await mkdir(src);
    // Each file spans several reads of the one buffer and several gzip blocks; a chunk overwritten before gzip took
    // it would change the content or the diffID.
    const files: Record<string, Buffer> = {};
    for (const [name, size] of [['a', 3 * 1024 * 1024 + 5], ['b', 1024 * 1024], ['c', 2 * 1024 * 1024 - 3], ['d', 0], ['e', 700 * 1024]] as const) {
      files[name] = Buffer.concat([randomBytes(Math.floor(size / 2)), Buffer.alloc(size - Math.floor(size / 2), name)]);
      await writeFile(join(src, name), files[name]);
    }
    const info = await writeLayerFile(treeEntries(src), join(t.path, 'l.tgz'));
    const tarDiffID = await writeTarFile(treeEntries(src), join(t.path, 'l.tar'));
    assert.equal(info.diffID, tarDiffID);
    assert.equal(info.diffID, await layerDiffID(treeEntries(src)));
    assert.equal(info.diffID, await sha(join(t.path, 'l.tar')));
    assert.equal(info.digest, await sha(join(t.path, 'l.tgz')));
    const out = join(t.path, 'out');
    await mkdir(out);
    execFileSync('tar', ['-xzf', join(t.path, 'l.tgz'), '-C', out]);
    for (const [name, content] of Object.entries(files)) assert.ok(content.equals(await readFile(join(out, name))), `${name} differs`);
  } finally {
    await t.cleanup();
  }
});

test('a layer whose destination fails mid-way is refused, not left waiting', async () => {
  const t = await tempDir();
  try {
    const src = join(t.path, 'src');
    await mkdir(src);
    await writeFile(join(src, 'big'), randomBytes(4 * 1024 * 1024));
    let n = 0;
    const out = new Writable({
      write(chunk: Buffer, _e, done) {
        n += chunk.length;
        done(n > 1024 * 1024 ? new Error('disk full') : null);
      },
    });
    await assert.rejects(writeLayer(treeEntries(src), out), /disk full/);
  } finally {
    await t.cleanup();
  }
});
