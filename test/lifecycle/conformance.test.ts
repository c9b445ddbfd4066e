// Where real buildpacks and platforms rely on the reference lifecycle's behaviour, at the phase level (flags and env).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { lifecycleRoot, withWorkspace, writeBuildpack } from '../harness/buildpacks.js';
import { run } from '../harness/proc.js';

test('ids with "_" (as real buildpacks use them) detect and build', () =>
  withWorkspace(async (ws) => {
    await writeBuildpack(ws.buildpacks, { id: 'simple_buildpack', build: `mkdir -p "$1/l"; printf '[types]\\nlaunch = true\\n' > "$1/l.toml"` });
    await ws.order([['simple_buildpack']]);
    const d = await ws.phase('detector');
    assert.equal(d.code, 0, d.stderr + d.stdout);
    assert.match(await readFile(join(ws.layers, 'group.toml'), 'utf8'), /id = "simple_buildpack"/);
    const b = await ws.phase('builder');
    assert.equal(b.code, 0, b.stderr + b.stdout);
    assert.ok(await stat(join(ws.layers, 'simple_buildpack', 'l')));
  }));

test('a phase given an argument it does not take exits 3 (invalid arguments) and runs nothing', () =>
  withWorkspace(async (ws) => {
    const marker = join(ws.root, 'ran');
    await writeBuildpack(ws.buildpacks, { id: 'a', detect: `touch ${marker}` });
    await ws.order([['a']]);
    const results = [
      ['detector', await ws.phase('detector', ['some-arg'])],
      ['builder', await ws.phase('builder', ['extra-arg'])],
      ['restorer', await run(join(await lifecycleRoot(), 'dist', 'lifecycle', 'restorer'), ['-layers', ws.layers, 'extra-arg'], { env: { ...process.env, CNB_PLATFORM_API: '0.15' } })],
    ] as const;
    for (const [phase, r] of results) {
      assert.equal(r.code, 3, `${phase}: ${r.stderr}`);
      assert.match(r.stderr, new RegExp(`${phase}: unexpected argument "(some|extra)-arg": ${phase} takes flags only`));
    }
    await assert.rejects(stat(marker), 'bin/detect never ran');
  }));

test('group.toml with an unparsable or unsupported buildpack API: the builder exits 12 before running anything', () =>
  withWorkspace(async (ws) => {
    const marker = join(ws.root, 'built');
    await writeBuildpack(ws.buildpacks, { id: 'a', build: `touch ${marker}` });
    for (const api of ['0.2wrongapiblabla', '0.2']) {
      await writeFile(join(ws.layers, 'group.toml'), `[[group]]\nid = "a"\nversion = "1.0.0"\napi = "${api}"\n`);
      await writeFile(join(ws.layers, 'plan.toml'), '');
      const r = await ws.phase('builder');
      assert.equal(r.code, 12, `${api}: ${r.stderr}${r.stdout}`);
      assert.match(r.stderr, /group\.toml: buildpack a@1\.0\.0/);
    }
    await assert.rejects(stat(marker), 'bin/build never ran');
  }));

test('a <layer>.toml in the old format (top-level launch/build/cache) is warned about and the layer ignored; the build goes on', () =>
  withWorkspace(async (ws) => {
    await writeBuildpack(ws.buildpacks, {
      id: 'old/layers',
      build: `mkdir -p "$1/legacy" "$1/modern"; printf 'launch = true\\nbuild = true\\ncache = true\\n' > "$1/legacy.toml"; printf '[types]\\nlaunch = true\\n' > "$1/modern.toml"`,
    });
    await ws.order([['old/layers']]);
    assert.equal((await ws.phase('detector')).code, 0);
    const b = await ws.phase('builder');
    assert.equal(b.code, 0, b.stderr + b.stdout);
    assert.match(b.stdout, /Warning: .*legacy\.toml: "launch", "build", "cache" at the top level is the old format and is ignored/);
    assert.ok(await stat(join(ws.layers, 'old_layers', 'legacy.ignore')), 'the layer is set aside like any type-less layer');
    assert.ok(await stat(join(ws.layers, 'old_layers', 'modern')));
  }));

test('an analyzed.toml holding only [run-image.target] sets CNB_TARGET_* for detect, distro and variant included', () =>
  withWorkspace(async (ws) => {
    const out = join(ws.root, 'env.txt');
    await writeBuildpack(ws.buildpacks, { id: 'a', detect: `env | grep ^CNB_TARGET_ > ${out}` });
    await ws.order([['a']]);
    await writeFile(join(ws.layers, 'analyzed.toml'), '[run-image.target]\nos = "linux"\narch = "arm"\narch-variant = "v7"\n[run-image.target.distro]\nname = "ubuntu"\nversion = "24.04"\n');
    const r = await ws.phase('detector');
    assert.equal(r.code, 0, r.stderr + r.stdout);
    const env = Object.fromEntries((await readFile(out, 'utf8')).trim().split('\n').map((l) => l.split('=')));
    assert.deepEqual(
      { os: env.CNB_TARGET_OS, arch: env.CNB_TARGET_ARCH, variant: env.CNB_TARGET_ARCH_VARIANT, distro: env.CNB_TARGET_DISTRO_NAME, version: env.CNB_TARGET_DISTRO_VERSION },
      { os: 'linux', arch: 'arm', variant: 'v7', distro: 'ubuntu', version: '24.04' },
    );
  }));

test('when no group passes, each buildpack\'s detect output and its result are shown at the default log level', () =>
  withWorkspace(async (ws) => {
    await writeBuildpack(ws.buildpacks, { id: 'wants/node', detect: 'echo "no package.json in $PWD"; exit 100' });
    await writeBuildpack(ws.buildpacks, { id: 'wants/python', detect: 'echo "no requirements.txt"; exit 100' });
    await ws.order([['wants/node'], ['wants/python']]);
    // The workspace runs phases at debug level; a later flag wins.
    const r = await ws.phase('detector', ['-log-level', 'info']);
    assert.equal(r.code, 20, r.stderr);
    assert.match(r.stdout, /======== Output: wants\/node@1\.0\.0 ========\nno package\.json in /);
    assert.match(r.stdout, /======== Output: wants\/python@1\.0\.0 ========\nno requirements\.txt/);
    assert.match(r.stdout, /======== Results ========\nfail: wants\/node@1\.0\.0\ngroup failed: .*\nfail: wants\/python@1\.0\.0/);
    assert.match(r.stderr, /no buildpack group passed detection/);
  }));

