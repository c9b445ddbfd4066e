import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { extractLayer } from '../oci/extract.js';
import { treeEntries, writeLayerFile, NORMALISED_MTIME } from '../oci/layer.js';
import { DirCache } from './cache.js';
import { silentLogger as log } from './log.js';

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'strata-cache-'));
  try {
    await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

test("a volume cache keeps the exporter's gzip blob as it is (linked, not gunzipped), carries it to the next cache and restores from it", () =>
  withDir(async (dir) => {
    await mkdir(join(dir, 'tree'));
    await writeFile(join(dir, 'tree', 'f'), 'cached bytes\n');
    const blob = join(dir, 'layer.tar.gz');
    const info = await writeLayerFile(treeEntries(join(dir, 'tree')), blob);
    const cache = await DirCache.open(join(dir, 'cache'), log);
    const first = await cache.stage();
    await first.addCompressed(info.diffID, blob);
    await first.commit({ buildpacks: [] });
    const held = await cache.layerPath(info.diffID);
    assert.ok(held && held.endsWith('.tar.gz'), `held as ${held}`);
    assert.equal((await stat(held)).ino, (await stat(blob)).ino, 'the blob is linked in, not copied');

    const second = await cache.stage();
    assert.equal(await second.keepLayer(info.diffID), true);
    await second.commit({ buildpacks: [] });
    assert.deepEqual((await readdir(join(dir, 'cache', 'committed'))).filter((n) => n.startsWith(info.diffID.slice(7))), [`${info.diffID.slice(7)}.tar.gz`]);

    await mkdir(join(dir, 'out'));
    await extractLayer(await cache.openLayer(info.diffID), join(dir, 'out'), { diffID: info.diffID, chown: false });
    assert.deepEqual(await readdir(join(dir, 'out')), ['f']);
    await assert.rejects(cache.openLayer(`sha256:${'0'.repeat(64)}`), /has no layer/);
  }));

test('a volume cache still reads and carries layers kept as plain tars (by addLayer, or by an older strata)', () =>
  withDir(async (dir) => {
    await mkdir(join(dir, 'tree'));
    await writeFile(join(dir, 'tree', 'g'), 'plain\n');
    const cache = await DirCache.open(join(dir, 'cache'), log);
    const stage = await cache.stage();
    const diffID = await stage.addLayer(treeEntries(join(dir, 'tree')), NORMALISED_MTIME);
    await stage.commit({ buildpacks: [] });
    assert.ok((await cache.layerPath(diffID))?.endsWith(`${diffID.slice(7)}.tar`));
    const next = await cache.stage();
    assert.equal(await next.keepLayer(diffID), true);
    await next.commit({ buildpacks: [] });
    await mkdir(join(dir, 'out'));
    await extractLayer(await cache.openLayer(diffID), join(dir, 'out'), { diffID: diffID as `sha256:${string}`, chown: false });
    assert.deepEqual(await readdir(join(dir, 'out')), ['g']);
  }));
