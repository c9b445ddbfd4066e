import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmod } from 'node:fs/promises';
import { join } from 'node:path';
import { registryFixture } from '../harness/registry.js';
import { run, runOk } from '../harness/proc.js';
import { writeTree } from '../harness/images.js';
import { PROJECT_ROOT } from '../../src/version.js';

const STRATA = join(PROJECT_ROOT, 'bin', 'strata');
const fx = registryFixture();

test('bin/strata --help and version', async () => {
  const help = await run(STRATA, ['--help']);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /image/);
  const v = await run(STRATA, ['version']);
  assert.equal(v.code, 0);
  assert.match(v.stdout.trim(), /^\d+\.\d+\.\d+$/);
});

test('image copy round-trips an umoci image between a layout and the registry with identical digests', async () => {
  const rootfs = join(fx.work, 'rootfs');
  await writeTree(rootfs, { 'bin/tool': '#!/bin/sh\n', 'etc/conf': 'x=1\n' });
  await chmod(join(rootfs, 'bin/tool'), 0o755);
  const src = join(fx.work, 'src');
  await runOk('umoci', ['init', '--layout', src]);
  await runOk('umoci', ['new', '--image', `${src}:v1`]);
  await runOk('umoci', ['insert', '--image', `${src}:v1`, rootfs, '/']);
  const original = (await runOk(STRATA, ['image', 'digest', `oci:${src}:v1`])).trim();
  assert.match(original, /^sha256:[a-f0-9]{64}$/);

  const pushed = await runOk(STRATA, ['image', 'copy', `oci:${src}:v1`, `${fx.reg.host}/cli/app:v1`]);
  assert.match(pushed, new RegExp(`digest ${original}`));
  assert.equal((await runOk(STRATA, ['image', 'digest', `${fx.reg.host}/cli/app:v1`])).trim(), original);

  const back = join(fx.work, 'back');
  await runOk(STRATA, ['image', 'copy', '-q', `${fx.reg.host}/cli/app:v1`, `oci:${back}:again`]);
  assert.equal((await runOk(STRATA, ['image', 'digest', `oci:${back}:again`])).trim(), original);

  const second = await runOk(STRATA, ['image', 'copy', `oci:${back}:again`, `${fx.reg.host}/cli/app:v2`]);
  assert.match(second, /0 sent \(0 bytes\)/, 'nothing re-sent');
  assert.deepEqual((await runOk(STRATA, ['image', 'tags', `${fx.reg.host}/cli/app`])).trim().split('\n').sort(), ['v1', 'v2']);

  const manifest = JSON.parse(await runOk(STRATA, ['image', 'manifest', `${fx.reg.host}/cli/app:v1`])) as { layers: unknown[] };
  assert.equal(manifest.layers.length, 1);
  const config = JSON.parse(await runOk(STRATA, ['image', 'config', `oci:${back}:again`])) as { rootfs: { diff_ids: string[] } };
  assert.equal(config.rootfs.diff_ids.length, 1);
});

test('bad input: one line naming the problem, non-zero exit, no stack', async () => {
  const cases: [string[], RegExp][] = [
    [['image', 'digest', 'Bad:Ref'], /^strata: error: invalid image reference "Bad:Ref": repository names must be lowercase$/],
    [['image', 'digest', '127.0.0.1:1/none/here:x'], /^strata: error: cannot reach registry 127\.0\.0\.1:1 \(ECONNREFUSED\)/],
    [['image', 'digest', `${fx.reg.host}/none/here:x`], /^strata: error: 127\.0\.0\.1:\d+\/none\/here:x: manifest not found$/],
    [['image', 'digest', `oci:${join(fx.work, 'nope')}`], /^strata: error: oci:.*nope: not an OCI image layout \(no oci-layout file\)$/],
    [['image', 'frobnicate'], /^strata: error: unknown command 'frobnicate'/],
  ];
  for (const [args, re] of cases) {
    const r = await run(STRATA, args);
    assert.notEqual(r.code, 0, args.join(' '));
    assert.equal(r.stderr.trim().split('\n').length, 1, `one line for ${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr.trim(), re);
    assert.doesNotMatch(r.stderr, /\n\s+at /);
  }
});
