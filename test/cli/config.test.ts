// pack's config, read as the fallback for strata's, and `strata config` in pack's forms.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parse } from 'smol-toml';
import { probeBuilder, STRATA } from '../harness/probe.js';
import { run, runOk, tempDir } from '../harness/proc.js';
import { registryFixture } from '../harness/registry.js';

const fx = registryFixture();

const PACK_CONFIG = `default-builder-image = "paketobuildpacks/builder-jammy-base"
pull-policy = "if-not-present"
experimental = true
lifecycle-image = "buildpacksio/lifecycle:0.20"

[[run-images]]
  image = "cnbs/run:bionic"
  mirrors = ["gcr.io/cnbs/run:bionic"]

[[trusted-builders]]
  name = "heroku/builder:24"

[registry-mirrors]
  "index.docker.io" = "mirror.example"
`;

test("strata config: pack's config.toml is the fallback; pack's forms (add/list/remove, -m, --unset) change strata's file only", async () => {
  const t = await tempDir('strata-config-');
  try {
    const env = { ...process.env, STRATA_HOME: join(t.path, 'home'), STRATA_CONFIG_HOME: join(t.path, 'cfg'), PACK_HOME: join(t.path, 'pack') };
    await mkdir(join(t.path, 'pack'));
    await writeFile(join(t.path, 'pack', 'config.toml'), PACK_CONFIG);
    const cfg = (...args: string[]) => runOk(STRATA, ['config', ...args], { env });
    const all = JSON.parse(await cfg()) as Record<string, unknown>;
    assert.equal(all['default-builder'], 'paketobuildpacks/builder-jammy-base');
    assert.deepEqual(all['run-image-mirrors'], { 'cnbs/run:bionic': ['gcr.io/cnbs/run:bionic'] });
    assert.deepEqual(all['registry-mirrors'], { 'index.docker.io': 'mirror.example' });
    assert.equal(all.path, join(t.path, 'cfg', 'config.toml'));

    assert.match(await cfg('trusted-builders', 'add', 'my/builder:1'), /Set trusted-builders/);
    assert.equal(await cfg('trusted-builders', 'list'), 'heroku/builder:24\nmy/builder:1\n');
    await cfg('trust-builder', 'remove', 'heroku/builder:24');
    assert.equal(await cfg('trusted-builders'), 'my/builder:1\n');
    await cfg('run-image-mirrors', 'add', 'example.com/run:1', '--mirror', 'm1.example/run:1', '-m', 'm2.example/run:1,m3.example/run:1');
    assert.equal(await cfg('run-image-mirrors', 'list', 'example.com/run:1'), 'example.com/run:1:\n  m1.example/run:1\n  m2.example/run:1\n  m3.example/run:1\n');
    await cfg('run-image-mirrors', 'remove', 'example.com/run:1', '-m', 'm2.example/run:1');
    await cfg('registry-mirrors', 'add', '*', '-m', '10.0.0.1');
    await cfg('default-builder', 'strata/builder:nodejs');
    await cfg('pull-policy', 'never');
    await cfg('experimental', 'false');
    assert.match(await cfg('lifecycle-image', 'x/lifecycle:1'), /not used by strata/);
    await cfg('lifecycle-image', '--unset');
    const own = JSON.parse(JSON.stringify(parse(await readFile(join(t.path, 'cfg', 'config.toml'), 'utf8')))) as Record<string, unknown>;
    assert.deepEqual(own['trusted-builders'], ['my/builder:1']);
    assert.deepEqual((own['run-image-mirrors'] as Record<string, string[]>)['example.com/run:1'], ['m1.example/run:1', 'm3.example/run:1']);
    assert.deepEqual(own['registry-mirrors'], { 'index.docker.io': 'mirror.example', '*': '10.0.0.1' });
    assert.equal(own['default-builder'], 'strata/builder:nodejs');
    assert.equal(own['pull-policy'], 'never');
    assert.equal(own.experimental, false);
    assert.equal(own['lifecycle-image'], undefined);
    assert.equal(await readFile(join(t.path, 'pack', 'config.toml'), 'utf8'), PACK_CONFIG, "pack's file is never written");

    for (const [args, message] of [
      [['run-image-mirrors', 'add', 'img'], /name at least one mirror with -m\/--mirror/],
      [['pull-policy', 'sometimes'], /pull-policy "sometimes": use always, if-not-present or never/],
      [['experimental', 'yes'], /use true or false/],
      [['no-such-key', 'x'], /unknown config key "no-such-key"/],
      [['trusted-builders', 'frobnicate', 'x'], /use list, add or remove/],
    ] as const) {
      const r = await run(STRATA, ['config', ...args], { env });
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr.trim(), new RegExp(`^strata: error: .*${message.source}`));
      assert.equal(r.stderr.trim().split('\n').length, 1);
    }
  } finally {
    await t.cleanup();
  }
});

test('registry-mirrors are used: a builder named on an unreachable registry is read from its mirror', { timeout: 300_000 }, async () => {
  const t = await tempDir('strata-mirror-');
  try {
    const p = await probeBuilder(t.path, {});
    await runOk(STRATA, ['image', 'copy', p.builder, `${fx.reg.host}/builders/probe:1`], { env: p.env });
    await runOk(STRATA, ['config', 'registry-mirrors', 'add', 'registry.invalid', '-m', fx.reg.host], { env: p.env });
    const r = await run(STRATA, ['build', 'mirrored', '--builder', 'registry.invalid/builders/probe:1', '--path', p.app], { env: p.env });
    assert.equal(r.code, 0, r.stderr + r.stdout);
    await runOk(STRATA, ['config', 'registry-mirrors', 'remove', 'registry.invalid'], { env: p.env });
    const without = await run(STRATA, ['build', 'mirrored2', '--builder', 'registry.invalid/builders/probe:2', '--path', p.app], { env: p.env });
    assert.notEqual(without.code, 0, 'without the mirror the name does not resolve');
  } finally {
    await t.cleanup();
  }
});
