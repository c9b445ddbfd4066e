import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, mkdir, rename, rm, utimes, writeFile, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfinedDir } from '../oci/confined.js';
import { fingerprint, knownDiffID, rememberDiffID } from './fingerprint.js';

test('a layer fingerprint changes with any content, name or metadata change, and only then', async () => {
  const root = await mkdtemp(join(tmpdir(), 'strata-fp-'));
  try {
    const dir = join(root, 'layer');
    await mkdir(join(dir, 'bin'), { recursive: true });
    const layers = ConfinedDir.open(root);
    await writeFile(join(dir, 'bin', 'tool'), 'aaaa');
    const first = fingerprint(layers, 'layer');
    assert.equal(fingerprint(layers, 'layer'), first, 'stable when nothing changed');
    rememberDiffID(layers, 'layer', 'recipe', 'sha256:x');
    assert.equal(knownDiffID(layers, 'layer', 'recipe'), 'sha256:x');
    assert.equal(knownDiffID(layers, 'layer', 'other recipe'), undefined, 'a different tar recipe invalidates it');

    // Same size, and the mtime put back: the ctime still gives the rewrite away.
    const before = await stat(join(dir, 'bin', 'tool'));
    await new Promise((r) => setTimeout(r, 5));
    await writeFile(join(dir, 'bin', 'tool'), 'bbbb');
    await utimes(join(dir, 'bin', 'tool'), before.atime, before.mtime);
    assert.notEqual(fingerprint(layers, 'layer'), first);
    assert.equal(knownDiffID(layers, 'layer', 'recipe'), undefined);

    rememberDiffID(layers, 'layer', 'recipe', 'sha256:y');
    await rename(join(dir, 'bin', 'tool'), join(dir, 'bin', 'tool2'));
    assert.equal(knownDiffID(layers, 'layer', 'recipe'), undefined, 'a rename invalidates it');
    layers.close();
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});

test('fingerprints and their records never follow a link a buildpack left', async () => {
  const root = await mkdtemp(join(tmpdir(), 'strata-fp-'));
  const outside = await mkdtemp(join(tmpdir(), 'strata-fp-outside-'));
  try {
    await mkdir(join(root, 'bp'));
    await writeFile(join(outside, 'secret'), 'x');
    const { symlink, readdir } = await import('node:fs/promises');
    // The layer dir itself a link to a host dir: refused, not walked.
    await symlink(outside, join(root, 'bp', 'layer'));
    const layers = ConfinedDir.open(root);
    assert.throws(() => fingerprint(layers, 'bp/layer'), /symbolic link/);
    assert.equal(knownDiffID(layers, 'bp/layer', 'r'), undefined);
    assert.throws(() => rememberDiffID(layers, 'bp/layer', 'r', 'sha256:x'), /symbolic link/);
    // A record planted as a link to a host file is replaced, never written through.
    await rm(join(root, 'bp', 'layer'));
    await mkdir(join(root, 'bp', 'layer'));
    await symlink(join(outside, 'secret'), join(root, 'bp', 'layer.strata-fingerprint'));
    assert.equal(knownDiffID(layers, 'bp/layer', 'r'), undefined);
    rememberDiffID(layers, 'bp/layer', 'r', 'sha256:x');
    assert.equal(knownDiffID(layers, 'bp/layer', 'r'), 'sha256:x');
    assert.deepEqual(await readdir(outside), ['secret']);
    const { readFile } = await import('node:fs/promises');
    assert.equal(await readFile(join(outside, 'secret'), 'utf8'), 'x');
    layers.close();
  } finally {
    await rm(root, { recursive: true, force: true });
    await rm(outside, { recursive: true, force: true });
  }
});
