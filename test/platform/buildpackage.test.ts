import { test } from 'node:test';
import assert from 'node:assert/strict';
import { stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { registryFixture } from '../harness/registry.js';
import { writeBuildpack, orderToml } from '../harness/buildpacks.js';
import { run, runOk } from '../harness/proc.js';
import { PROJECT_ROOT } from '../../src/version.js';

const STRATA = join(PROJECT_ROOT, 'bin', 'strata');
const fx = registryFixture();

test('buildpackages: a .cnb file and an image (registry and layout) with one layer per buildpack and the spec labels', async () => {
  const src = join(fx.work, 'src');
  const a = await writeBuildpack(src, { id: 'test/a', detect: 'exit 0' });
  const b = await writeBuildpack(src, { id: 'test/b', api: '0.10', buildpackKeys: 'homepage = "https://b.example"' });
  const c = await writeBuildpack(src, { id: 'test/c', composite: true, toml: orderToml([['test/a'], ['test/b?']]) });
  await runOk('tar', ['-C', b, '-czf', join(fx.work, 'b.tgz'), '.']);
  await writeFile(join(fx.work, 'b.toml'), `[buildpack]\nuri = "b.tgz"\n`);
  const cnb = join(fx.work, 'b.cnb');
  const made = await run(STRATA, ['buildpack', 'package', cnb, '--config', join(fx.work, 'b.toml'), '--format', 'file']);
  assert.equal(made.code, 0, made.stderr);
  assert.ok((await stat(cnb)).size > 0);
  await writeFile(join(fx.work, 'c.toml'), `[buildpack]\nuri = "${c}"\n[[dependencies]]\nuri = "${a}"\n[[dependencies]]\nuri = "b.cnb"\n`);
  const pub = await run(STRATA, ['buildpack', 'package', `${fx.reg.host}/bp/c:1`, '--config', join(fx.work, 'c.toml'), '--publish']);
  assert.equal(pub.code, 0, pub.stderr);
  const layout = join(fx.work, 'c-layout');
  assert.equal((await run(STRATA, ['buildpack', 'package', `oci:${layout}:1`, '--config', join(fx.work, 'c.toml')])).code, 0);

  const inspect = JSON.parse(await runOk('skopeo', ['inspect', '--tls-verify=false', `docker://${fx.reg.host}/bp/c:1`])) as { Labels: Record<string, string>; Layers: string[] };
  const meta = JSON.parse(inspect.Labels['io.buildpacks.buildpackage.metadata']!) as { id: string; version: string };
  assert.deepEqual([meta.id, meta.version], ['test/c', '1.0.0']);
  const layers = JSON.parse(inspect.Labels['io.buildpacks.buildpack.layers']!) as Record<string, Record<string, { api: string; layerDiffID: string; order?: unknown; homepage?: string }>>;
  assert.deepEqual(Object.keys(layers).sort(), ['test/a', 'test/b', 'test/c']);
  assert.equal(layers['test/b']!['1.0.0']!.api, '0.10');
  assert.equal(layers['test/b']!['1.0.0']!.homepage, 'https://b.example');
  assert.deepEqual(layers['test/c']!['1.0.0']!.order, [{ group: [{ id: 'test/a', version: '1.0.0', optional: false }] }, { group: [{ id: 'test/b', version: '1.0.0', optional: true }] }]);
  assert.equal(inspect.Layers.length, 3, 'one layer per buildpack');
  const config = JSON.parse(await runOk('skopeo', ['inspect', '--tls-verify=false', '--config', `docker://${fx.reg.host}/bp/c:1`])) as { rootfs: { diff_ids: string[] } };
  for (const v of Object.values(layers)) for (const info of Object.values(v)) assert.ok(config.rootfs.diff_ids.includes(info.layerDiffID));

  const bundle = join(fx.work, 'bundle');
  await runOk('umoci', ['unpack', '--image', `${layout}:1`, bundle]);
  const detect = await stat(join(bundle, 'rootfs', 'cnb', 'buildpacks', 'test_a', '1.0.0', 'bin', 'detect'));
  assert.equal(detect.mode & 0o777, 0o755);
  assert.equal(detect.uid, 0);
  await stat(join(bundle, 'rootfs', 'cnb', 'buildpacks', 'test_c', '1.0.0', 'buildpack.toml'));

  const shown = await runOk(STRATA, ['buildpack', 'inspect', `oci:${layout}:1`]);
  assert.match(shown, /Buildpack: test\/c@1\.0\.0/);
  assert.match(shown, /└ Group #2:\n    └ test\/b@1\.0\.0    \(optional\)/);
  const fromFile = await runOk(STRATA, ['buildpack', 'inspect', cnb, '-o', 'json']);
  assert.equal((JSON.parse(fromFile) as { buildpackage: { id: string } }).buildpackage.id, 'test/b');
  assert.match(await runOk(STRATA, ['buildpack', 'inspect', `oci:${layout}:1`, '-o', 'yaml']), /^buildpackage:\n  id: test\/c\n/);
});

test('package.toml mistakes are one line naming the file: missing dependency, cycle, unknown key', async () => {
  const src = join(fx.work, 'bad');
  const c = await writeBuildpack(src, { id: 'test/needs', composite: true, toml: orderToml([['test/absent']]) });
  await writeFile(join(fx.work, 'bad.toml'), `[buildpack]\nuri = "${c}"\n`);
  const missing = await run(STRATA, ['buildpack', 'package', `oci:${join(fx.work, 'bad-out')}:1`, '--config', join(fx.work, 'bad.toml')]);
  assert.notEqual(missing.code, 0);
  assert.match(missing.stderr.trim(), /^strata: error: .*bad\.toml: buildpack test\/absent@1\.0\.0 \(in the order of test\/needs@1\.0\.0\) is not packaged; add it to \[\[dependencies\]\]$/);
  const loop = await writeBuildpack(join(fx.work, 'loop'), { id: 'test/loop', composite: true, toml: orderToml([['test/loop']]) });
  await writeFile(join(fx.work, 'loop.toml'), `[buildpack]\nuri = "${loop}"\n`);
  const cycle = await run(STRATA, ['buildpack', 'package', `oci:${join(fx.work, 'loop-out')}:1`, '--config', join(fx.work, 'loop.toml')]);
  assert.match(cycle.stderr, /composite order cycle test\/loop@1\.0\.0 → test\/loop@1\.0\.0/);
  await writeFile(join(fx.work, 'typo.toml'), `[buildpak]\nuri = "x"\n`);
  const typo = await run(STRATA, ['buildpack', 'package', `oci:${join(fx.work, 'typo-out')}:1`, '--config', join(fx.work, 'typo.toml')]);
  assert.match(typo.stderr, /typo\.toml: unknown key "buildpak"/);
  await assert.rejects(stat(join(fx.work, 'bad-out', 'index.json')), 'nothing was written');
});
