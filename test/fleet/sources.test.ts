// Image sources besides a git branch (a source image, a blob, a subPath), history limits and deletion.

import type { BuildRecord } from '../../src/fleet/store.js';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { registryFixture } from '../harness/registry.js';
import { runOk } from '../harness/proc.js';
import { makeLayoutImage } from '../harness/images.js';
import { fleetWorld, layerBuild, type FleetWorld } from '../harness/fleet.js';
import { copyImage } from '../../src/oci/copy.js';
import { RegistryClient } from '../../src/oci/registry/client.js';

const fx = registryFixture();
let setup: Promise<FleetWorld> | undefined;
const ready = (): Promise<FleetWorld> =>
  (setup ??= (async () => {
    const w = await fleetWorld(fx.work, fx.reg.host);
    await w.pushBuildpack('hello', 'test/hello', '1.0.0', '[ -f hello.txt ]', layerBuild('hello.txt'));
    await w.pushBuildpack('other', 'test/other', '1.0.0', '[ -f other.txt ]', layerBuild('other.txt'));
    return w;
  })());

type Row = BuildRecord;

async function reconcile(w: FleetWorld): Promise<Row[]> {
  const r = await w.strata(['fleet', 'reconcile', '--once']);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  return JSON.parse((await w.strata(['fleet', 'builds', '-o', 'json'])).stdout) as Row[];
}

function image(name: string, source: string, extra = ''): string {
  return `---\napiVersion: kpack.io/v1alpha2\nkind: Image\nmetadata: {name: ${name}}\nspec:\n  tag: ${fx.reg.host}/apps/${name}\n  builder: {kind: ClusterBuilder, name: builder}\n  source:\n${source}${extra}`;
}

test('a source image (registry), a blob with stripComponents and a git subPath all build; a new source image digest is CONFIG', { timeout: 300_000 }, async () => {
  const w = await ready();
  const src = await makeLayoutImage(join(fx.work, 'srcimg'), 'v1', [{ 'hello.txt': 'from an image' }]);
  const client = new RegistryClient(fx.reg.host);
  await copyImage(src.layout, 'v1', client.repository('sources/app'), 'latest');
  const blobDir = join(fx.work, 'blob', 'top');
  await mkdir(blobDir, { recursive: true });
  await writeFile(join(blobDir, 'hello.txt'), 'from a blob');
  await runOk('tar', ['-C', join(fx.work, 'blob'), '-czf', join(fx.work, 'app.tgz'), 'top']);
  const repo = await w.repo('mono', { 'README': 'monorepo' });
  await mkdir(join(fx.work, 'git', 'mono', 'web'), { recursive: true });
  await w.commit('mono', { 'web/hello.txt': 'from a subPath' });
  const yaml = join(fx.work, 'sources.yaml');
  await writeFile(
    yaml,
    w.yaml([]) +
      image('fromimage', `    registry: {image: ${fx.reg.host}/sources/app:latest}\n`) +
      image('fromblob', `    blob: {url: "file://${join(fx.work, 'app.tgz')}", stripComponents: 1}\n`) +
      image('fromsub', `    git: {url: "${repo}", revision: main}\n    subPath: web\n`, '  successBuildHistoryLimit: 1\n  imageTaggingStrategy: None\n'),
  );
  assert.equal((await w.strata(['fleet', 'apply', '-f', yaml])).code, 0);
  const first = await reconcile(w);
  assert.deepEqual(first.map((b) => `${b.image}#${b.number} ${b.reasons} ${b.status}`).sort(), ['fromblob#1 CONFIG succeeded', 'fromimage#1 CONFIG succeeded', 'fromsub#1 CONFIG succeeded']);
  assert.match((await w.strata(['fleet', 'logs', 'fromimage'])).stdout, /built from from an image/);
  assert.match((await w.strata(['fleet', 'logs', 'fromblob'])).stdout, /built from from a blob/);
  assert.match((await w.strata(['fleet', 'logs', 'fromsub'])).stdout, /built from from a subPath/);

  const src2 = await makeLayoutImage(join(fx.work, 'srcimg'), 'v2', [{ 'hello.txt': 'from an image, v2' }]);
  await copyImage(src2.layout, 'v2', client.repository('sources/app'), 'latest');
  const second = await reconcile(w);
  const rebuilt = second.find((b) => b.image === 'fromimage' && b.number === 2);
  assert.equal(`${rebuilt?.reasons} ${rebuilt?.status}`, 'CONFIG succeeded');
  assert.equal(second.filter((b) => b.image !== 'fromimage' && b.number > 1).length, 0);

  // successBuildHistoryLimit: 1 keeps only the newest succeeded build of fromsub.
  for (const text of ['v2', 'v3']) {
    await w.commit('mono', { 'web/hello.txt': text });
    await reconcile(w);
  }
  const kept = (JSON.parse((await w.strata(['fleet', 'builds', 'fromsub', '-o', 'json'])).stdout) as Row[]).map((b) => `${b.number} ${b.reasons}`);
  assert.deepEqual(kept, ['3 COMMIT']);
});

test('fleet delete removes an image and its build records; deleting what others use is refused', { timeout: 120_000 }, async () => {
  const w = await ready();
  const refused = await w.strata(['fleet', 'delete', 'ClusterBuilder', 'builder']);
  assert.equal(refused.code, 1);
  assert.match(refused.stderr.trim(), /^strata: error: Image default\/\w+ uses ClusterBuilder builder; delete what uses it first \(nothing was deleted\)$/);
  const gone = await w.strata(['fleet', 'delete', 'image', 'fromblob']);
  assert.equal(gone.stdout.trim(), 'Image default/fromblob deleted');
  assert.deepEqual((JSON.parse((await w.strata(['fleet', 'builds', 'fromblob', '-o', 'json'])).stdout) as Row[]), []);
  assert.equal((await w.strata(['fleet', 'delete', 'image', 'fromblob'])).stdout.trim(), 'Image default/fromblob not found');
});
