import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, chown, readFile, readlink, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { registryFixture } from '../harness/registry.js';
import { writeBuildpack, orderToml } from '../harness/buildpacks.js';
import { hostToolImageFiles, makeLayoutImage } from '../harness/images.js';
import { run, runOk } from '../harness/proc.js';
import { PROJECT_ROOT } from '../../src/version.js';
import { resolveImage } from '../../src/oci/image.js';
import { OciLayout } from '../../src/oci/layout.js';
import { lineProgress } from '../../src/oci/progress.js';
import { unpackedRootfs } from '../../src/platform/rootfs.js';
import { OwnLayers } from '../../src/platform/ownlayers.js';
import { LIFECYCLE_CREATED_BY } from '../../src/platform/lifecycle-layer.js';
import { strataHome } from '../../src/oci/images.js';

const STRATA = join(PROJECT_ROOT, 'bin', 'strata');
const fx = registryFixture();

test('builder create: build image + dirs + strata lifecycle + buildpacks + order/run/stack toml, pack labels; inspect; the detector runs inside it under runc', async () => {
  const w = fx.work;
  const build = join(w, 'images');
  await makeLayoutImage(build, 'build', [await hostToolImageFiles()], { 'io.buildpacks.base.id': 'test' }, ['CNB_USER_ID=1000', 'CNB_GROUP_ID=1000']);
  await makeLayoutImage(build, 'run', [{ 'bin/busybox': await readFile('/bin/busybox') }]);
  const src = join(w, 'src');
  const a = await writeBuildpack(src, { id: 'test/a', detect: 'exit 100' });
  const b = await writeBuildpack(src, { id: 'test/b', buildpackKeys: 'homepage = "https://b.example"', detect: '[ -f package.json ] && exit 0; exit 100' });
  const c = await writeBuildpack(src, { id: 'test/c', composite: true, toml: orderToml([['test/a'], ['test/b']]) });
  const config = join(w, 'builder.toml');
  await writeFile(
    config,
    `description = "test builder"\n[[buildpacks]]\nuri = "${a}"\n[[buildpacks]]\nuri = "${b}"\n[[buildpacks]]\nuri = "${c}"\n` +
      `[[order]]\n[[order.group]]\nid = "test/c"\n[[order]]\n[[order.group]]\nid = "test/a"\n` +
      `[build]\nimage = "oci:${build}:build"\n[[build.env]]\nname = "BP_LOG"\nvalue = "debug"\nsuffix = "default"\n[[run.images]]\nimage = "registry.example/run:1"\nmirrors = ["mirror.example/run:1"]\n`,
  );
  const out = join(w, 'builder');
  const made = await run(STRATA, ['builder', 'create', `oci:${out}:1`, '--config', config]);
  assert.equal(made.code, 0, made.stderr);
  await runOk('skopeo', ['inspect', `oci:${out}:1`]);

  const cfg = JSON.parse(await runOk('skopeo', ['inspect', '--config', `oci:${out}:1`])) as { config: { Labels: Record<string, string>; WorkingDir: string; Env: string[] } };
  const labels = cfg.config.Labels;
  assert.equal(cfg.config.WorkingDir, '/layers');
  assert.ok(cfg.config.Env.includes('CNB_USER_ID=1000'), 'the build image env is kept');
  const md = JSON.parse(labels['io.buildpacks.builder.metadata']!) as { description: string; stack: { runImage: { image: string; mirrors: string[] } }; images: unknown[]; lifecycle: { version: string; apis: { platform: { supported: string[] } } }; buildpacks: { id: string }[]; createdBy: { name: string } };
  assert.equal(md.description, 'test builder');
  assert.deepEqual(md.stack.runImage, { image: 'registry.example/run:1', mirrors: ['mirror.example/run:1'] });
  assert.ok(md.lifecycle.apis.platform.supported.includes('0.15'));
  assert.equal(md.createdBy.name, 'strata');
  assert.deepEqual(md.buildpacks.map((x) => x.id).sort(), ['test/a', 'test/b', 'test/c']);
  assert.deepEqual(JSON.parse(labels['io.buildpacks.buildpack.order']!), [{ group: [{ id: 'test/c', version: '1.0.0' }] }, { group: [{ id: 'test/a', version: '1.0.0' }] }]);
  assert.ok(JSON.parse(labels['io.buildpacks.lifecycle.apis']!).buildpack.supported.includes('0.12'));
  assert.equal(labels['io.buildpacks.base.id'], 'test', 'build image labels are kept');

  const bundle = join(w, 'bundle');
  await runOk('umoci', ['unpack', '--image', `${out}:1`, bundle]);
  // A build here does not download or gunzip the lifecycle layer: builder create remembered what it made, this
  // install makes the same tree, and the layer's diffID confirms it.
  const image = await resolveImage(await OciLayout.open(out), '1');
  const lifecycleDiffID = image.config.rootfs.diff_ids[(image.config.history ?? []).filter((h) => !h.empty_layer).findIndex((h) => h.created_by === LIFECYCLE_CREATED_BY)]!;
  const remembered = join(strataHome(), 'cache', 'own-layers.json');
  assert.ok(Object.values(JSON.parse(await readFile(remembered, 'utf8')) as Record<string, string>).includes(lifecycleDiffID));
  for (const [n, own] of [new OwnLayers(remembered), new OwnLayers(join(w, 'own-layers.json'))].entries()) {
    // The second has no record: the diffID of what this install makes is worked out once, then remembered.
    const lines: string[] = [];
    const unpacked = await unpackedRootfs(image, join(w, `rootfs-cache-${n}`), lineProgress((l) => lines.push(l)), own);
    assert.equal(lines.filter((l) => l.includes("strata's lifecycle, from this install")).length, 1, lines.join('\n'));
    assert.equal(lines.filter((l) => l.startsWith('Pulling')).length, lines.length - 1);
    for (const f of ['cnb/lifecycle/node', 'cnb/lifecycle/strata/package.json', 'cnb/lifecycle/strata/bin/lifecycle']) {
      assert.ok((await readFile(join(unpacked, f))).equals(await readFile(join(bundle, 'rootfs', f))), `${f} as umoci unpacks it`);
    }
  }
  assert.ok(Object.values(JSON.parse(await readFile(join(w, 'own-layers.json'), 'utf8')) as Record<string, string>).includes(lifecycleDiffID));

  const rootfs = join(bundle, 'rootfs');
  assert.match(await readFile(join(rootfs, 'cnb/order.toml'), 'utf8'), /id = "test\/c"/);
  assert.match(await readFile(join(rootfs, 'cnb/run.toml'), 'utf8'), /image = "registry\.example\/run:1"/);
  assert.match(await readFile(join(rootfs, 'cnb/stack.toml'), 'utf8'), /\[run-image\]/);
  assert.equal(await readFile(join(rootfs, 'cnb/build-config/env/BP_LOG.default'), 'utf8'), 'debug');
  assert.equal(await readlink(join(rootfs, 'cnb/lifecycle/detector')), 'strata/bin/lifecycle');
  assert.equal((await stat(join(rootfs, 'layers'))).uid, 1000);
  assert.equal((await stat(join(rootfs, 'workspace'))).uid, 1000);
  assert.equal((await stat(join(rootfs, 'cnb/buildpacks/test_b/1.0.0/bin/detect'))).mode & 0o777, 0o755);

  const human = await runOk(STRATA, ['builder', 'inspect', `oci:${out}:1`]);
  assert.match(human, /Description: test builder/);
  assert.match(human, /mirror\.example\/run:1 {4}\(mirror\)/);
  assert.match(human, /├ Group #1:\n {4}│ {2}└ test\/c@1\.0\.0\n └ Group #2:\n {7}└ test\/a@1\.0\.0/);
  const asJson = JSON.parse(await runOk(STRATA, ['builder', 'inspect', `oci:${out}:1`, '-o', 'json'])) as { builder_name: string; trusted: boolean; remote_info: unknown; local_info: { description: string; buildpacks: unknown[]; run_images: { name: string }[]; lifecycle: { platform_apis: { supported: string[] } }; detection_order: { buildpacks: { id: string }[] }[] } };
  assert.equal(asJson.builder_name, `oci:${out}:1`);
  assert.equal(asJson.remote_info, null);
  assert.equal(asJson.local_info.buildpacks.length, 3);
  assert.deepEqual(asJson.local_info.run_images, [{ name: 'registry.example/run:1' }, { name: 'mirror.example/run:1' }]);
  assert.ok(asJson.local_info.lifecycle.platform_apis.supported.includes('0.15'));
  assert.deepEqual(asJson.local_info.detection_order[0], { buildpacks: [{ id: 'test/c', version: '1.0.0' }] });
  assert.match(await runOk(STRATA, ['builder', 'inspect', `oci:${out}:1`, '-o', 'yaml']), /^ {2}description: test builder$/m);
  // A builder made with --publish is in its registry only: inspect finds it there (an empty local store).
  const home = { env: { ...process.env, STRATA_HOME: join(w, 'publish-home') } };
  await runOk(STRATA, ['builder', 'create', `${fx.reg.host}/builders/test:1`, '--config', config, '--publish'], home);
  assert.match(await runOk(STRATA, ['builder', 'inspect', `${fx.reg.host}/builders/test:1`], home), /Description: test builder/);
  const published = JSON.parse(await runOk(STRATA, ['builder', 'inspect', `${fx.reg.host}/builders/test:1`, '-o', 'json'], home)) as { remote_info: { description: string }; local_info: unknown };
  assert.equal(published.remote_info.description, 'test builder');
  assert.equal(published.local_info, null);
  const missing = await run(STRATA, ['builder', 'inspect', `${fx.reg.host}/builders/none:1`], home);
  assert.equal(missing.stderr.trim(), `strata: error: builder ${fx.reg.host}/builders/none:1 not found in the local store nor in its registry`);

  // Inside the builder's own rootfs, sandboxed by runc as the build user, strata's lifecycle detects.
  // (umoci leaves the rootfs dir itself 0700; a container's / is 0755.)
  await chmod(rootfs, 0o755);
  await writeFile(join(rootfs, 'workspace', 'package.json'), '{}');
  await chown(join(rootfs, 'workspace', 'package.json'), 1000, 1000);
  const spec = JSON.parse(await readFile(join(bundle, 'config.json'), 'utf8')) as { process: Record<string, unknown>; linux?: { namespaces?: { type: string }[] } };
  spec.process.terminal = false;
  spec.process.args = ['/cnb/lifecycle/detector', '-log-level', 'debug'];
  spec.process.user = { uid: 1000, gid: 1000 };
  // Node.js says where its compile cache reads from: the one baked into the lifecycle layer for this user.
  spec.process.env = ['CNB_PLATFORM_API=0.15', 'PATH=/usr/bin:/bin', 'HOME=/layers', 'NODE_DEBUG_NATIVE=COMPILE_CACHE'];
  spec.process.cwd = '/';
  await writeFile(join(bundle, 'config.json'), JSON.stringify(spec));
  const id = `strata-test-${process.pid}`;
  const detected = await run('runc', ['run', '--bundle', bundle, id]);
  await run('runc', ['delete', '--force', id]);
  const diag = detected.code === 0 ? '' : await runOk('sh', ['-c', `cd ${rootfs} && ls -ld . cnb cnb/lifecycle cnb/lifecycle/node cnb/lifecycle/strata cnb/lifecycle/strata/bin cnb/lifecycle/strata/bin/lifecycle lib64 lib64/* 2>&1; head -c 40 cnb/lifecycle/strata/bin/lifecycle`]);
  assert.equal(detected.code, 0, detected.stdout + detected.stderr + diag);
  assert.match(await readFile(join(rootfs, 'layers', 'group.toml'), 'utf8'), /id = "test\/b"/);
  // The lifecycle's compiled code comes from the layer, made when strata was built; the build user cannot write there.
  assert.match(detected.stderr, /reading cache from \/cnb\/lifecycle\/strata\/dist\/compile-cache\/v[^/]+-1000\/\w+ for ESM file:\/\/\/cnb\/lifecycle\/strata\/dist\/src\/lifecycle\/cli\.js\.\.\.\[[^\]]*\]\.\.\. success/);
  const cacheDir = await stat(join(rootfs, 'cnb', 'lifecycle', 'strata', 'dist', 'compile-cache'));
  assert.equal(cacheDir.uid, 0);
  assert.equal(cacheDir.mode & 0o022, 0);
});

test('builder.toml mistakes are one line naming the file; nothing is written', async () => {
  const bad = join(fx.work, 'bad-builder.toml');
  await writeFile(bad, `[[buildpacks]]\nuri = "/nonexistent"\n[[order]]\n[[order.group]]\nid = "x"\n[[run.images]]\nimage = "r"\n`);
  const r = await run(STRATA, ['builder', 'create', `oci:${join(fx.work, 'never')}:1`, '--config', bad]);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr.trim(), /^strata: error: .*bad-builder\.toml: \[build\] image is required/);
  await writeFile(bad, `[build]\nimage = "oci:${join(fx.work, 'images')}:run"\n[[order]]\n[[order.group]]\nid = "x"\n[[run.images]]\nimage = "r"\n`);
  const noUser = await run(STRATA, ['builder', 'create', `oci:${join(fx.work, 'never')}:1`, '--config', bad]);
  assert.match(noUser.stderr, /has no numeric CNB_USER_ID and CNB_GROUP_ID/);
  await assert.rejects(stat(join(fx.work, 'never', 'index.json')));
  // Build and run images must match: a run image labelled with another distro is refused.
  await makeLayoutImage(join(fx.work, 'images'), 'other-run', [{ 'etc/os-release': 'ID=alpine\n' }], { 'io.buildpacks.base.distro.name': 'alpine' });
  await makeLayoutImage(join(fx.work, 'images'), 'deb-build', [{ 'etc/os-release': 'ID=debian\n' }], { 'io.buildpacks.base.distro.name': 'debian' }, ['CNB_USER_ID=1000', 'CNB_GROUP_ID=1000']);
  await writeFile(bad, `[build]\nimage = "oci:${join(fx.work, 'images')}:deb-build"\n[[order]]\n[[order.group]]\nid = "x"\n[[run.images]]\nimage = "oci:${join(fx.work, 'images')}:other-run"\n`);
  const differ = await run(STRATA, ['builder', 'create', `oci:${join(fx.work, 'never')}:1`, '--config', bad]);
  assert.match(differ.stderr, /bad-builder\.toml: build image .* and run image .* differ: io\.buildpacks\.base\.distro\.name debian vs alpine/);
});

test('builder.toml: an http(s) buildpack uri is downloaded once, checked on reuse and fetched again when damaged; delim written beside append; [stack] and [build] must agree', async () => {
  const { createServer } = await import('node:http');
  const { readdir: ls } = await import('node:fs/promises');
  const w = join(fx.work, 'remote-bp');
  const images = join(w, 'images');
  await makeLayoutImage(images, 'build', [{ 'etc/os-release': 'ID=test\n' }], {}, ['CNB_USER_ID=1000', 'CNB_GROUP_ID=1000']);
  await makeLayoutImage(images, 'run', [{ 'etc/os-release': 'ID=test\n' }]);
  const bp = await writeBuildpack(join(w, 'src'), { id: 'test/remote' });
  await runOk('tar', ['-C', bp, '-czf', join(w, 'remote.tgz'), '.']);
  const body = await readFile(join(w, 'remote.tgz'));
  let hits = 0;
  const server = createServer((req, res) => {
    hits++;
    if (req.url === '/bp/remote.tgz') res.end(body);
    else res.writeHead(404).end();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  try {
    const config = join(w, 'builder.toml');
    const toml = (uri: string, extra = '') =>
      `[[buildpacks]]\nuri = "${uri}"\n${orderToml([['test/remote']])}\n[build]\nimage = "oci:${images}:build"\n[[build.env]]\nname = "BP_PATHS"\nvalue = "/x"\nsuffix = "append"\ndelim = ":"\n[[run.images]]\nimage = "oci:${images}:run"\n${extra}`;
    await writeFile(config, toml(`http://127.0.0.1:${port}/bp/remote.tgz`));
    const env = { env: { ...process.env, STRATA_HOME: join(w, 'home') } };
    for (const tag of ['1', '2']) await runOk(STRATA, ['builder', 'create', `oci:${w}/b:${tag}`, '--config', config], env);
    assert.equal(hits, 1, 'downloaded once, then used from the cache');
    const cached = join(w, 'home', 'cache', 'downloads');
    const [entry] = await ls(cached);
    await writeFile(join(cached, entry!, 'remote.tgz'), 'damaged');
    await runOk(STRATA, ['builder', 'create', `oci:${w}/b:3`, '--config', config], env);
    assert.equal(hits, 2, 'a damaged cache entry is fetched again');
    await runOk('umoci', ['unpack', '--image', `${w}/b:3`, join(w, 'bundle')]);
    assert.equal(await readFile(join(w, 'bundle', 'rootfs', 'cnb', 'build-config', 'env', 'BP_PATHS.delim'), 'utf8'), ':');
    assert.equal(await readFile(join(w, 'bundle', 'rootfs', 'cnb', 'build-config', 'env', 'BP_PATHS.append'), 'utf8'), '/x');
    await writeFile(config, toml(`http://127.0.0.1:${port}/bp/missing.tgz`));
    const missing = await run(STRATA, ['builder', 'create', `oci:${w}/b:4`, '--config', config], env);
    assert.match(missing.stderr.trim(), /^strata: error: buildpack uri http:\/\/127\.0\.0\.1:\d+\/bp\/missing\.tgz: HTTP 404/);
    await writeFile(config, toml(`http://127.0.0.1:${port}/bp/remote.tgz`, `[stack]\nid = "x"\nbuild-image = "other/build:1"\nrun-image = "other/run:1"\n`));
    const mismatch = await run(STRATA, ['builder', 'create', `oci:${w}/b:5`, '--config', config], env);
    assert.match(mismatch.stderr.trim(), /builder\.toml: \[build\] image .* and \[stack\] build-image other\/build:1 differ/);
  } finally {
    server.close();
  }
});
