// pack's build, rebase, builder create and buildpack package flags, through the CLI.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { probeBuilder, STRATA } from '../harness/probe.js';
import { run, runOk, tempDir } from '../harness/proc.js';
import { writeBuildpack } from '../harness/buildpacks.js';
import { makeLayoutImage } from '../harness/images.js';

test('build: --pre/--post-buildpack around the builder order, --exec-env, repeated --env-file, -t comma lists, --uid/--gid, --disable-system-buildpacks; rebase --report-output-dir and --pull-policy', { timeout: 300_000 }, async () => {
  const t = await tempDir('strata-packflags-');
  try {
    const p = await probeBuilder(t.path, { build: 'echo "probe ran"; mkdir -p "$1/l"; printf \'[types]\\nlaunch = true\\n\' > "$1/l.toml"' });
    const pre = await writeBuildpack(join(t.path, 'extra'), { id: 'test/pre', build: 'echo "pre ran exec-env=$CNB_EXEC_ENV uid=$(id -u):$(id -g) A=$A B=$B"' });
    const post = await writeBuildpack(join(t.path, 'extra'), { id: 'test/post', build: 'echo "post ran"' });
    await writeFile(join(t.path, 'one.env'), 'A=from-one\nB=from-one\n');
    await writeFile(join(t.path, 'two.env'), 'B=from-two\n');
    const r = await run(STRATA, ['build', 'flags', '--builder', p.builder, '--path', p.app, '--pre-buildpack', pre, '--post-buildpack', post, '--exec-env', 'test', '--env-file', join(t.path, 'one.env'), '--env-file', join(t.path, 'two.env'), '-t', 'flags:x,flags:y', '--uid', '2000', '--gid', '2001', '--disable-system-buildpacks', '--lifecycle-image', 'buildpacksio/lifecycle'], { env: p.env });
    assert.equal(r.code, 0, r.stderr + r.stdout);
    assert.match(r.stdout, /pre ran exec-env=test uid=2000:2001 A=from-one B=from-two[\s\S]*probe ran[\s\S]*post ran/);
    assert.match(r.stderr, /--lifecycle-image buildpacksio\/lifecycle: strata runs the lifecycle the builder carries/);
    const images = await runOk(STRATA, ['images'], { env: p.env });
    for (const tag of ['flags:latest', 'flags:x', 'flags:y']) assert.match(images, new RegExp(`library/${tag}`));

    const reports = join(t.path, 'reports');
    const rebased = await run(STRATA, ['rebase', 'flags', '--run-image', `oci:${p.images}:run`, '--report-output-dir', reports, '--pull-policy', 'if-not-present'], { env: p.env });
    assert.equal(rebased.code, 0, rebased.stderr);
    assert.match(await readFile(join(reports, 'report.toml'), 'utf8'), /\[image\]\ntags = \[ "flags" \]\ndigest = "sha256:[0-9a-f]{64}"\nmanifest-size = \d+/);
    const never = await run(STRATA, ['rebase', 'flags', '--run-image', 'registry.invalid/run:1', '--pull-policy', 'never'], { env: p.env });
    assert.equal(never.stderr.trim(), 'strata: error: run image registry.invalid/run:1 not found in the local store (--pull-policy never)');
    const bad = await run(STRATA, ['build', 'flags', '--builder', p.builder, '--path', p.app, '--uid', 'root'], { env: p.env });
    assert.equal(bad.stderr.trim(), 'strata: error: --uid "root": a numeric id');
  } finally {
    await t.cleanup();
  }
});

test('builder create and buildpack package: -l/--label, --tag, --target, -p without package.toml', { timeout: 300_000 }, async () => {
  const t = await tempDir('strata-packflags2-');
  try {
    const p = await probeBuilder(t.path, {});
    await runOk(STRATA, ['builder', 'create', `oci:${t.path}/b2:1`, '--config', join(t.path, 'builder.toml'), '-l', 'org.example.team=web', '--tag', `oci:${t.path}/b2:also`, '--target', `linux/${process.arch === 'arm64' ? 'arm64' : 'amd64'}`, '--pull-policy', 'never'], { env: p.env });
    for (const tag of ['1', 'also']) {
      const labels = (JSON.parse(await runOk('skopeo', ['inspect', `oci:${t.path}/b2:${tag}`])) as { Labels: Record<string, string> }).Labels;
      assert.equal(labels['org.example.team'], 'web');
      assert.ok(labels['io.buildpacks.builder.metadata']);
    }
    const bp = await writeBuildpack(join(t.path, 'solo'), { id: 'test/solo' });
    await mkdir(join(t.path, 'pkgs'));
    await runOk(STRATA, ['buildpack', 'package', `oci:${t.path}/pkgs:1`, '-p', bp, '--label', 'a=b', '--tag', `oci:${t.path}/pkgs:2`], { env: p.env });
    const meta = (JSON.parse(await runOk('skopeo', ['inspect', `oci:${t.path}/pkgs:2`])) as { Labels: Record<string, string> }).Labels;
    assert.equal(meta.a, 'b');
    assert.match(meta['io.buildpacks.buildpackage.metadata'] ?? '', /"id":"test\/solo"/);
    // --target for several platforms: an index of one image each, the buildpack's layer shared.
    await runOk(STRATA, ['buildpack', 'package', `oci:${t.path}/pkgs:multi`, '-p', bp, '--target', 'linux/amd64,linux/arm64/v8'], { env: p.env });
    const index = JSON.parse(await runOk('skopeo', ['inspect', '--raw', `oci:${t.path}/pkgs:multi`])) as { manifests: { platform: { architecture: string; variant?: string } }[] };
    assert.deepEqual(index.manifests.map((m) => m.platform), [{ os: 'linux', architecture: 'amd64' }, { os: 'linux', architecture: 'arm64', variant: 'v8' }]);
    const layersOf = async (arch: string) => (JSON.parse(await runOk('skopeo', ['inspect', '--override-arch', arch, `oci:${t.path}/pkgs:multi`])) as { Layers: string[]; Architecture: string });
    const [amd, arm] = [await layersOf('amd64'), await layersOf('arm64')];
    assert.equal(arm.Architecture, 'arm64');
    assert.deepEqual(arm.Layers, amd.Layers);
    // package.toml's [[targets]] are the default: the same index without --target.
    await writeFile(join(t.path, 'package.toml'), `[buildpack]\nuri = "${bp}"\n[[targets]]\nos = "linux"\narch = "amd64"\n[[targets]]\nos = "linux"\narch = "arm64"\nvariant = "v8"\n`);
    await runOk(STRATA, ['buildpack', 'package', `oci:${t.path}/pkgs:from-toml`, '--config', join(t.path, 'package.toml')], { env: p.env });
    assert.equal((await runOk(STRATA, ['image', 'digest', `oci:${t.path}/pkgs:from-toml`])).trim(), (await runOk(STRATA, ['image', 'digest', `oci:${t.path}/pkgs:multi`])).trim());
    await writeFile(join(t.path, 'bad-package.toml'), `[buildpack]\nuri = "${bp}"\n[[targets]]\nos = "linux"\n`);
    const noArch = await run(STRATA, ['buildpack', 'package', `oci:${t.path}/pkgs:bad`, '--config', join(t.path, 'bad-package.toml')], { env: p.env });
    assert.match(noArch.stderr.trim(), /^strata: error: .*bad-package\.toml.*targets.*: a target needs an arch \(amd64, arm64, …\)$/);
    // A buildpack that declares amd64 only is not packaged for arm64: one line naming it and its targets.
    const amdOnly = await writeBuildpack(join(t.path, 'amd-only'), { id: 'test/amd-only', toml: '[[targets]]\nos = "linux"\narch = "amd64"\n' });
    const refused = await run(STRATA, ['buildpack', 'package', `oci:${t.path}/pkgs:amd`, '-p', amdOnly, '--target', 'linux/arm64'], { env: p.env });
    assert.equal(refused.code, 1);
    assert.equal(refused.stderr.trim(), 'strata: error: test/amd-only@1.0.0 is for linux/amd64 only, not linux/arm64: add that target to [[targets]] in its buildpack.toml, or leave out --target linux/arm64');
    const foreign = await run(STRATA, ['builder', 'create', `oci:${t.path}/b3:1`, '--config', join(t.path, 'builder.toml'), '--target', 'windows/amd64'], { env: p.env });
    assert.match(foreign.stderr.trim(), /^strata: error: .*builder\.toml: build image oci:.*:build has no windows\/amd64 image \(it is linux\/amd64\); for --target windows\/amd64 it must be an index holding one$/);

    // --target for two platforms from build and run images that are indexes: one builder image each, in an index;
    // the arm64 one carries strata's lifecycle for arm64.
    const arm64 = { os: 'linux', architecture: 'arm64' };
    await makeLayoutImage(p.images, 'build-arm64', [{ 'etc/os-release': 'ID=debian\n' }], {}, ['CNB_USER_ID=1000', 'CNB_GROUP_ID=1000'], arm64);
    await makeLayoutImage(p.images, 'run-arm64', [{ 'etc/os-release': 'ID=debian\n' }], { 'io.buildpacks.rebasable': 'true' }, [], arm64);
    for (const kind of ['build', 'run']) await runOk(STRATA, ['manifest', 'create', `oci:${p.images}:${kind}-multi`, `oci:${p.images}:${kind}`, `oci:${p.images}:${kind}-arm64`, '--publish'], { env: p.env });
    const multiToml = join(t.path, 'builder-multi.toml');
    await writeFile(multiToml, (await readFile(join(t.path, 'builder.toml'), 'utf8')).replace(`${p.images}:build"`, `${p.images}:build-multi"`).replace(`${p.images}:run"`, `${p.images}:run-multi"`));
    await runOk(STRATA, ['builder', 'create', `oci:${t.path}/bm:1`, '--config', multiToml, '--target', 'linux/amd64,linux/arm64'], { env: p.env });
    const builders = JSON.parse(await runOk('skopeo', ['inspect', '--raw', `oci:${t.path}/bm:1`])) as { manifests: { digest: string; platform: { architecture: string } }[] };
    assert.deepEqual(builders.manifests.map((m) => m.platform.architecture), ['amd64', 'arm64']);
    await runOk(STRATA, ['builder', 'create', `oci:${t.path}/bs:1`, '--config', multiToml], { env: p.env });
    assert.equal((await runOk(STRATA, ['image', 'digest', `oci:${t.path}/bs:1`])).trim(), builders.manifests[0]!.digest, 'the amd64 one is the builder made for this machine');
    // builder.toml's [[targets]] are the default: the same index without --target.
    const targetsToml = join(t.path, 'builder-targets.toml');
    await writeFile(targetsToml, `${await readFile(multiToml, 'utf8')}\n[[targets]]\nos = "linux"\narch = "amd64"\n\n[[targets]]\nos = "linux"\narch = "arm64"\n`);
    await runOk(STRATA, ['builder', 'create', `oci:${t.path}/bt:1`, '--config', targetsToml], { env: p.env });
    assert.equal((await runOk(STRATA, ['image', 'digest', `oci:${t.path}/bt:1`])).trim(), (await runOk(STRATA, ['image', 'digest', `oci:${t.path}/bm:1`])).trim());
    await runOk('skopeo', ['copy', '--override-arch', 'arm64', `oci:${t.path}/bm:1`, `oci:${t.path}/bm-arm:1`]);
    await runOk('umoci', ['unpack', '--image', `${t.path}/bm-arm:1`, join(t.path, 'bm-arm-bundle')]);
    assert.match(await runOk('file', ['-b', join(t.path, 'bm-arm-bundle', 'rootfs', 'cnb', 'lifecycle', 'launcher')]), /ARM aarch64/);
    assert.match(await runOk('file', ['-b', join(t.path, 'bm-arm-bundle', 'rootfs', 'cnb', 'lifecycle', 'node')]), /ARM aarch64/);
  } finally {
    await t.cleanup();
  }
});

test('build -p app.zip (and .jar): the archive is the app source; --cache with a launch clause is accepted with a note', { timeout: 300_000 }, async () => {
  const t = await tempDir('strata-zip-');
  try {
    const p = await probeBuilder(t.path, { build: 'for f in /workspace/*; do echo "ws: ${f##*/}"; done; mkdir -p "$1/l"; printf \'[types]\\nlaunch = true\\n\' > "$1/l.toml"' });
    await writeFile(join(p.app, 'from-zip.txt'), 'zipped');
    await runOk('zip', ['-q', '-r', join(t.path, 'app.jar'), '.'], { cwd: p.app });
    const r = await run(STRATA, ['build', 'zipped', '--builder', p.builder, '--path', join(t.path, 'app.jar'), '--cache', 'type=build;format=volume,type=launch;format=volume'], { env: p.env });
    assert.equal(r.code, 0, r.stderr + r.stdout);
    assert.match(r.stdout, /^ws: from-zip\.txt$/m);
    assert.match(r.stderr, /strata keeps no launch cache/);
    await writeFile(join(t.path, 'broken.zip'), 'not a zip');
    const bad = await run(STRATA, ['build', 'zipped', '--builder', p.builder, '--path', join(t.path, 'broken.zip')], { env: p.env });
    assert.match(bad.stderr.trim(), /^strata: error: --path .*broken\.zip: cannot unzip it: /);
    assert.equal(bad.stderr.trim().split('\n').length, 1);
  } finally {
    await t.cleanup();
  }
});

test('build --workspace /app: the app is at /app in the build and in the image', { timeout: 300_000 }, async () => {
  const t = await tempDir('strata-ws-');
  try {
    const p = await probeBuilder(t.path, { build: 'echo "cwd=$PWD"; mkdir -p "$1/l"; printf \'[types]\\nlaunch = true\\n\' > "$1/l.toml"' });
    const r = await run(STRATA, ['build', 'ws-app', '--builder', p.builder, '--path', p.app, '--workspace', '/app'], { env: p.env });
    assert.equal(r.code, 0, r.stderr + r.stdout);
    assert.match(r.stdout, /^cwd=\/app/m);
    const { OciLayout } = await import('../../src/oci/layout.js');
    const { resolveImage } = await import('../../src/oci/image.js');
    const image = await resolveImage(await OciLayout.open(join(t.path, 'home', 'images')), 'docker.io/library/ws-app:latest');
    assert.equal(image.config.config?.WorkingDir, '/app');
    assert.ok(image.config.config?.Env?.includes('CNB_APP_DIR=/app'));
    const bad = await run(STRATA, ['build', 'ws-app', '--builder', p.builder, '--path', p.app, '--workspace', 'relative'], { env: p.env });
    assert.match(bad.stderr.trim(), /^strata: error: --workspace "relative": an absolute dir/);
  } finally {
    await t.cleanup();
  }
});

test('--flatten: builder create puts the named buildpacks into one layer (both recorded with it) and builds still find them; buildpack package --flatten with --flatten-exclude', { timeout: 300_000 }, async () => {
  const t = await tempDir('strata-flatten-');
  try {
    const p = await probeBuilder(t.path, {});
    const a = await writeBuildpack(join(t.path, 'fl'), { id: 'test/fa', build: 'echo "fa ran"' });
    const b = await writeBuildpack(join(t.path, 'fl'), { id: 'test/fb', build: 'echo "fb ran"; mkdir -p "$1/l"; printf \'[types]\\nlaunch = true\\n\' > "$1/l.toml"' });
    const c = await writeBuildpack(join(t.path, 'fl'), { id: 'test/fc' });
    const toml = join(t.path, 'flat.toml');
    await writeFile(toml, `[[buildpacks]]\nuri = "${a}"\n[[buildpacks]]\nuri = "${b}"\n[[buildpacks]]\nuri = "${c}"\n[[order]]\n[[order.group]]\nid = "test/fa"\n[[order.group]]\nid = "test/fb"\n[build]\nimage = "oci:${p.images}:build"\n[[run.images]]\nimage = "oci:${p.images}:run"\n`);
    const layersOf = async (ref: string) => (JSON.parse(await runOk('skopeo', ['inspect', ref])) as { Layers: string[]; Labels: Record<string, string> });
    await runOk(STRATA, ['builder', 'create', `oci:${t.path}/flat:plain`, '--config', toml], { env: p.env });
    await runOk(STRATA, ['builder', 'create', `oci:${t.path}/flat:flat`, '--config', toml, '--flatten', 'test/fa@1.0.0,test/fb@1.0.0'], { env: p.env });
    const plain = await layersOf(`oci:${t.path}/flat:plain`);
    const flat = await layersOf(`oci:${t.path}/flat:flat`);
    assert.equal(flat.Layers.length, plain.Layers.length - 1, 'two buildpack layers became one');
    const recorded = JSON.parse(flat.Labels['io.buildpacks.buildpack.layers']!) as Record<string, Record<string, { layerDiffID: string }>>;
    assert.equal(recorded['test/fa']!['1.0.0']!.layerDiffID, recorded['test/fb']!['1.0.0']!.layerDiffID);
    assert.notEqual(recorded['test/fc']!['1.0.0']!.layerDiffID, recorded['test/fa']!['1.0.0']!.layerDiffID);
    const r = await run(STRATA, ['build', 'flat-app', '--builder', `oci:${t.path}/flat:flat`, '--path', p.app], { env: p.env });
    assert.equal(r.code, 0, r.stderr + r.stdout);
    assert.match(r.stdout, /fa ran[\s\S]*fb ran/);
    const bad = await run(STRATA, ['builder', 'create', `oci:${t.path}/flat:bad`, '--config', toml, '--flatten', 'test/nope@1'], { env: p.env });
    assert.match(bad.stderr.trim(), /--flatten test\/nope@1: test\/nope@1 is not one of the buildpacks/);

    const composite = await writeBuildpack(join(t.path, 'fl'), { id: 'test/meta', composite: true, toml: '[[order]]\n[[order.group]]\nid = "test/fa"\nversion = "1.0.0"\n[[order.group]]\nid = "test/fb"\nversion = "1.0.0"\n' });
    await writeFile(join(t.path, 'package.toml'), `[buildpack]\nuri = "${composite}"\n[[dependencies]]\nuri = "${a}"\n[[dependencies]]\nuri = "${b}"\n`);
    await runOk(STRATA, ['buildpack', 'package', `oci:${t.path}/pkg:flat`, '--config', join(t.path, 'package.toml'), '--flatten', '-e', 'test/fb@1.0.0'], { env: p.env });
    assert.equal((await layersOf(`oci:${t.path}/pkg:flat`)).Layers.length, 2, 'meta and fa together, fb on its own');
  } finally {
    await t.cleanup();
  }
});
