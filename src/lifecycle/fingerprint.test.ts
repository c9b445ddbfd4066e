import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, mkdir, rename, rm, utimes, writeFile, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fingerprint, knownDiffID, rememberDiffID } from './fingerprint.js';

test('a layer fingerprint changes with any content, name or metadata change, and only then', async () => {
  const root = await mkdtemp(join(tmpdir(), 'strata-fp-'));
  try {
    const dir = join(root, 'layer');
    await mkdir(join(dir, 'bin'), { recursive: true });
    await writeFile(join(dir, 'bin', 'tool'), 'aaaa');
    const first = fingerprint(dir);
    assert.equal(fingerprint(dir), first, 'stable when nothing changed');
    await rememberDiffID(dir, 'recipe', 'sha256:x');
    assert.equal(await knownDiffID(dir, 'recipe'), 'sha256:x');
    assert.equal(await knownDiffID(dir, 'other recipe'), undefined, 'a different tar recipe invalidates it');

    // Same size, and the mtime put back: the ctime still gives the rewrite away.
    const before = await stat(join(dir, 'bin', 'tool'));
    await new Promise((r) => setTimeout(r, 5));
    await writeFile(join(dir, 'bin', 'tool'), 'bbbb');
    await utimes(join(dir, 'bin', 'tool'), before.atime, before.mtime);
    assert.notEqual(fingerprint(dir), first);
    assert.equal(await knownDiffID(dir, 'recipe'), undefined);

    await rememberDiffID(dir, 'recipe', 'sha256:y');
    await rename(join(dir, 'bin', 'tool'), join(dir, 'bin', 'tool2'));
    assert.equal(await knownDiffID(dir, 'recipe'), undefined, 'a rename invalidates it');
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});
