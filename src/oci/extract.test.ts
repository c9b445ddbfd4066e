import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { mkdir, readdir, readFile, writeFile, lstat, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import tar from 'tar-stream';
import { extractLayer } from './extract.js';
import { tempDir } from '../../test/harness/proc.js';

type E = { name: string; type?: 'file' | 'directory' | 'symlink' | 'link' | 'character-device' | 'block-device'; linkname?: string; body?: string };

/** Builds a tar in memory from raw headers: the point is to write entries no well-behaved tool would. */
async function tarOf(entries: E[]): Promise<Readable> {
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  // Read while writing: a large entry would otherwise fill the pack's buffer and never call back.
  const collected = (async () => {
    for await (const c of pack as AsyncIterable<Buffer>) chunks.push(c);
  })();
  for (const e of entries) {
    await new Promise<void>((resolve, reject) => {
      const h = { name: e.name, type: e.type ?? 'file', mode: e.type === 'directory' ? 0o755 : 0o644, ...(e.linkname ? { linkname: e.linkname } : {}), ...(e.type === 'character-device' ? { devmajor: 1, devminor: 3 } : {}) };
      const cb = (err?: Error | null) => (err ? reject(err) : resolve());
      if ((e.type ?? 'file') === 'file') pack.entry(h, e.body ?? 'x', cb);
      else pack.entry(h, cb);
    });
  }
  pack.finalize();
  await collected;
  return Readable.from([Buffer.concat(chunks)]);
}

/** A target dir with a sibling "outside" dir; after each attack, outside must be untouched. */
async function arena(): Promise<{ root: string; target: string; outside: string; cleanup: () => Promise<void> }> {
  const t = await tempDir();
  const target = join(t.path, 'target');
  const outside = join(t.path, 'outside');
  await mkdir(target);
  await mkdir(outside);
  await writeFile(join(outside, 'victim'), 'original');
  return { root: t.path, target, outside, cleanup: t.cleanup };
}

async function assertOutsideUntouched(a: { outside: string; root: string }): Promise<void> {
  assert.deepEqual((await readdir(a.outside)).sort(), ['victim']);
  assert.equal(await readFile(join(a.outside, 'victim'), 'utf8'), 'original');
  assert.deepEqual((await readdir(a.root)).sort(), ['outside', 'target']);
}

const attacks: [string, E[], RegExp][] = [
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
];

for (const [what, entries, message] of attacks) {
  test(`hostile tar refused: ${what}`, async () => {
    const a = await arena();
    try {
      await assert.rejects(extractLayer(await tarOf(entries), a.target, { label: 'evil-layer' }), (err: Error) => {
        assert.match(err.message, /^evil-layer: /);
        assert.match(err.message, message);
        return true;
      });
      await assertOutsideUntouched(a);
    } finally {
      await a.cleanup();
    }
  });
}

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
