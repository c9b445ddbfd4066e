import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, mkdir, mkdtemp, readdir, readFile, readlink, rm, symlink, writeFile } from 'node:fs/promises';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkPathComponent, ConfinedDir, copyTreeOut } from './confined.js';

/** A root dir and a sibling "host" dir with a secret; links planted in root aim at host. */
async function arena(): Promise<{ root: string; host: string; done: () => Promise<void> }> {
  const base = await mkdtemp(join(tmpdir(), 'strata-confined-'));
  const root = join(base, 'root');
  const host = join(base, 'host');
  await mkdir(root);
  await mkdir(host);
  await writeFile(join(host, 'secret'), 'host secret', { mode: 0o600 });
  return { root, host, done: () => rm(base, { recursive: true, force: true }) };
}

async function hostUntouched(host: string): Promise<void> {
  assert.deepEqual(await readdir(host), ['secret']);
  assert.equal(await readFile(join(host, 'secret'), 'utf8'), 'host secret');
}

test('reads refuse a link at the leaf or on the way, and never return what it points at', async () => {
  const a = await arena();
  try {
    await mkdir(join(a.root, 'bp'));
    await symlink(join(a.host, 'secret'), join(a.root, 'bp', 'store.toml'));
    await symlink(a.host, join(a.root, 'linkdir'));
    await symlink('../../host/secret', join(a.root, 'bp', 'relative.toml'));
    const d = ConfinedDir.open(a.root);
    assert.throws(() => d.readFile('bp/store.toml'), /bp\/store.toml is a symbolic link.*refused/);
    assert.throws(() => d.readFile('bp/relative.toml'), /symbolic link/);
    assert.throws(() => d.readFile('linkdir/secret'), /linkdir is a symbolic link/);
    assert.throws(() => d.readdir('linkdir'), /symbolic link/);
    assert.equal(d.readFile('bp/missing.toml'), undefined);
    assert.throws(() => d.lstat('linkdir/secret'), /symbolic link/);
    assert.equal(d.lstat('nothing'), undefined);
    assert.equal(d.isDirectory('linkdir'), false);
    assert.throws(() => d.readFile('../host/secret'), /leaves its directory/);
    assert.throws(() => d.readFile('/etc/passwd'), /absolute path/);
    d.close();
    await hostUntouched(a.host);
  } finally {
    await a.done();
  }
});

test('writes replace a planted link instead of writing through it, and never create through one', async () => {
  const a = await arena();
  try {
    await mkdir(join(a.root, 'bp'));
    await symlink(join(a.host, 'secret'), join(a.root, 'bp', 'layer.toml'));
    await symlink(a.host, join(a.root, 'esc'));
    const d = ConfinedDir.open(a.root);
    d.writeFile('bp/layer.toml', 'ok');
    assert.equal(await readFile(join(a.root, 'bp', 'layer.toml'), 'utf8'), 'ok');
    assert.throws(() => d.writeFile('esc/new', 'x'), /esc is a symbolic link/);
    assert.throws(() => d.mkdirp('esc/sub'), /symbolic link/);
    d.mkdirp('fresh/a/b');
    assert.ok(d.isDirectory('fresh/a/b'));
    d.close();
    await hostUntouched(a.host);
  } finally {
    await a.done();
  }
});

test('a FIFO or a device in a file\'s place is refused without blocking', async () => {
  const a = await arena();
  try {
    execFileSync('mkfifo', [join(a.root, 'fifo')]);
    const d = ConfinedDir.open(a.root);
    assert.throws(() => d.readFile('fifo'), /not a regular file/);
    d.close();
  } finally {
    await a.done();
  }
});

test('remove and clear delete links, not what they point at', async () => {
  const a = await arena();
  try {
    await mkdir(join(a.root, 'tree', 'deep'), { recursive: true });
    await symlink(a.host, join(a.root, 'tree', 'deep', 'host'));
    await symlink(a.host, join(a.root, 'top'));
    await writeFile(join(a.root, 'keep'), 'k');
    const d = ConfinedDir.open(a.root);
    d.remove('tree');
    d.remove('top');
    d.remove('not-there');
    assert.deepEqual(await readdir(a.root), ['keep']);
    await symlink(a.host, join(a.root, 'again'));
    d.clear('', new Set(['keep']));
    assert.deepEqual(await readdir(a.root), ['keep']);
    d.close();
    await hostUntouched(a.host);
  } finally {
    await a.done();
  }
});

test('copyFileTo and copyTreeOut copy files and keep links as links (or drop them), never their targets', async () => {
  const a = await arena();
  try {
    await mkdir(join(a.root, 'sbom', 'launch'), { recursive: true });
    await writeFile(join(a.root, 'sbom', 'launch', 'sbom.cdx.json'), '{}');
    await symlink(join(a.host, 'secret'), join(a.root, 'sbom', 'launch', 'sbom.spdx.json'));
    await chmod(join(a.root, 'sbom'), 0o700);
    const d = ConfinedDir.open(a.root);
    assert.ok(d.copyFileTo('sbom/launch/sbom.cdx.json', d, 'copied/one.json'));
    assert.equal(await readFile(join(a.root, 'copied', 'one.json'), 'utf8'), '{}');
    assert.throws(() => d.copyFileTo('sbom/launch/sbom.spdx.json', d, 'copied/two.json'), /symbolic link/);
    const out = join(a.root, '..', 'out');
    copyTreeOut(d, 'sbom', out, { links: false });
    assert.deepEqual(await readdir(join(out, 'launch')), ['sbom.cdx.json']);
    const out2 = join(a.root, '..', 'out2');
    copyTreeOut(d, 'sbom', out2, { links: true });
    assert.equal(await readlink(join(out2, 'launch', 'sbom.spdx.json')), join(a.host, 'secret'));
    await symlink(a.host, join(a.root, 'hostlink'));
    assert.throws(() => copyTreeOut(d, 'hostlink', join(a.root, '..', 'out3'), { links: true }), /symbolic link/);
    d.close();
    await hostUntouched(a.host);
  } finally {
    await a.done();
  }
});

test('names that become one path component are checked', () => {
  for (const bad of ['', '.', '..', 'a/b', '../x', 'a\u0000b', 'new\nline']) assert.throws(() => checkPathComponent(bad, 'version'), /cannot be used as a file name/);
  for (const ok of ['1.0.0', 'v2', 'node_modules', 'my.bp', '0.0.1+build.7']) assert.equal(checkPathComponent(ok, 'version'), ok);
});
