// A kernel overlay over an unpacked tree (as image extensions' Dockerfiles are applied): what changed becomes layer
// entries, with whiteouts for what went away, and the lower tree is left as it was.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { changedEntries, withOverlay } from '../../src/oci/overlaymount.js';
import type { LayerEntry } from '../../src/oci/layer.js';
import { tempDir } from '../harness/proc.js';

test('the upper dir as layer entries: new and changed files, and whiteouts for deleted files and for a directory made again', async () => {
  const t = await tempDir('strata-overlay-');
  try {
    const lower = join(t.path, 'lower');
    await mkdir(join(lower, 'etc', 'apt'), { recursive: true });
    await mkdir(join(lower, 'var', 'cache', 'old'), { recursive: true });
    await writeFile(join(lower, 'etc', 'keep'), 'keep');
    await writeFile(join(lower, 'etc', 'gone'), 'gone');
    await writeFile(join(lower, 'etc', 'apt', 'sources'), 'lower');
    await writeFile(join(lower, 'var', 'cache', 'old', 'a'), 'a');
    await writeFile(join(lower, 'var', 'cache', 'old', 'b'), 'b');
    const entries: LayerEntry[] = [];
    await withOverlay(lower, join(t.path, 'ov'), async (o) => {
      await rm(join(o.merged, 'etc', 'gone'));
      await writeFile(join(o.merged, 'etc', 'apt', 'sources'), 'changed');
      await writeFile(join(o.merged, 'etc', 'new'), 'new');
      await symlink('/etc/new', join(o.merged, 'etc', 'link'));
      await rm(join(o.merged, 'var', 'cache', 'old'), { recursive: true });
      await mkdir(join(o.merged, 'var', 'cache', 'old'));
      await writeFile(join(o.merged, 'var', 'cache', 'old', 'c'), 'c');
      await writeFile(join(o.merged, 'etc', 'hosts'), 'a sandbox bind');
      for await (const e of changedEntries(o, new Set(['etc/hosts']))) entries.push(e);
    });
    const shown = entries.map((e) => `${e.type} ${e.path}`).sort();
    assert.deepEqual(shown, [
      'directory etc',
      'directory etc/apt',
      'directory var',
      'directory var/cache',
      'directory var/cache/old',
      'file etc/.wh.gone',
      'file etc/apt/sources',
      'file etc/new',
      'file var/cache/old/.wh.a',
      'file var/cache/old/.wh.b',
      'file var/cache/old/c',
      'symlink etc/link',
    ]);
    assert.equal(await readFile(join(lower, 'etc', 'apt', 'sources'), 'utf8'), 'lower', 'the lower tree is untouched');
    assert.equal(await readFile(join(lower, 'etc', 'gone'), 'utf8'), 'gone');
  } finally {
    await t.cleanup();
  }
});
