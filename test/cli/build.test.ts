import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, readFile, writeFile, mkdir, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { registryFixture } from '../harness/registry.js';
import { hostToolImageFiles, makeLayoutImage } from '../harness/images.js';
import { writeBuildpack, orderToml } from '../harness/buildpacks.js';
import { run, runOk, tempDir } from '../harness/proc.js';
import { CNB_UID, lifecycleRoot } from '../harness/buildpacks.js';
import { PROJECT_ROOT } from '../../src/version.js';
import { sha256 } from '../../src/oci/digest.js';

const STRATA = join(PROJECT_ROOT, 'bin', 'strata');
const fx = registryFixture();

test('strata build/images/inspect/run/rebase/sbom/rmi: a daemonless build in the runc sandbox, to the local store and to a registry', { timeout: 300_000 }, async () => {
  const w = fx.work;
  const env = { ...process.env, STRATA_HOME: join(w, 'home') };
  const images = join(w, 'images');
  const tools = await hostToolImageFiles();
  await makeLayoutImage(images, 'build', [tools], {}, ['CNB_USER_ID=1000', 'CNB_GROUP_ID=1000']);
  await makeLayoutImage(images, 'run', [tools], { 'io.buildpacks.rebasable': 'true' });
  await makeLayoutImage(images, 'run2', [tools, { 'etc/patched': 'yes' }], { 'io.buildpacks.rebasable': 'true' });
  const bp = await writeBuildpack(join(w, 'bps'), {
    id: 'test/hello',
    api: '0.10',
    buildpackKeys: 'sbom-formats = ["application/vnd.cyclonedx+json"]',
    detect: '[ -f hello.txt ] || exit 100',
    build: `L="$1"
echo "---> hello buildpack, as uid $(id -u 2>/dev/null || echo ?) in $PWD"
if [ -f "$L/tools.toml" ] && [ -x "$L/tools/bin/hello" ]; then echo "tools restored from cache"; fi
mkdir -p "$L/tools/bin" "$L/tools/env.launch"
printf '#!/bin/bash\\necho "hello from $(cat /workspace/hello.txt) $GREETING $*"\\n' > "$L/tools/bin/hello"
chmod +x "$L/tools/bin/hello"
printf bonjour > "$L/tools/env.launch/GREETING"
printf '[types]\\nlaunch = true\\ncache = true\\n' > "$L/tools.toml"
echo '{"bomFormat":"CycloneDX","components":[{"name":"hello-tools"}]}' > "$L/tools.sbom.cdx.json"
printf '[[processes]]\\ntype = "web"\\ncommand = ["hello"]\\nargs = ["default-arg"]\\ndefault = true\\n' > "$L/launch.toml"`,
  });
  await writeFile(join(w, 'builder.toml'), `[[buildpacks]]\nuri = "${bp}"\n${orderToml([['test/hello']])}\n[build]\nimage = "oci:${images}:build"\n[[run.images]]\nimage = "oci:${images}:run"\n`);
  await runOk(STRATA, ['builder', 'create', `oci:${w}/builder:1`, '--config', join(w, 'builder.toml')], { env });
  const app = join(w, 'app');
  await mkdir(app);
  await writeFile(join(app, 'hello.txt'), 'world');
  const builder = `oci:${w}/builder:1`;

  const first = await run(STRATA, ['build', 'myapp', '--builder', builder, '--path', app], { env });
  assert.equal(first.code, 0, first.stderr + first.stdout);
  for (const phase of ['ANALYZING', 'DETECTING', 'RESTORING', 'BUILDING', 'EXPORTING']) assert.match(first.stdout, new RegExp(`===> ${phase}`));
  assert.match(first.stdout, /---> hello buildpack, as uid 1000 in \/workspace/, 'buildpack output streams live, from inside the sandbox');
  assert.match(await runOk(STRATA, ['images'], { env }), /docker\.io\/library\/myapp:latest/);
  const shown = await runOk(STRATA, ['inspect', 'myapp'], { env });
  assert.match(shown, /test\/hello +0\.1\.0|test\/hello +1\.0\.0/);
  assert.match(shown, /web \(default\) +hello +default-arg/);
  // pack's field names, in every structured format; an unknown format is an error.
  const asJson = JSON.parse(await runOk(STRATA, ['inspect', 'myapp', '-o', 'json'], { env })) as { image_name: string; remote_info: unknown; local_info: { base_image: { top_layer: string }; buildpacks: { id: string }[]; processes: { type: string; command: string; args: string[]; default: boolean }[]; rebasable: boolean } };
  assert.equal(asJson.image_name, 'myapp');
  assert.equal(asJson.remote_info, null);
  assert.match(asJson.local_info.base_image.top_layer, /^sha256:/);
  assert.deepEqual(asJson.local_info.processes[0], { type: 'web', shell: '', command: 'hello', default: true, args: ['default-arg'], 'working-dir': '' });
  assert.match(await runOk(STRATA, ['inspect', 'myapp', '-o', 'yaml'], { env }), /^image_name: myapp\nremote_info: null\nlocal_info:\n  stack: /);
  assert.match(await runOk(STRATA, ['inspect', 'myapp', '-o', 'toml'], { env }), /^image_name = "myapp"\n/);
  const badFormat = await run(STRATA, ['inspect', 'myapp', '-o', 'xml'], { env });
  assert.equal(badFormat.stderr.trim(), 'strata: error: -o/--output "xml": use human, json, yaml, toml');
  const ran = await run(STRATA, ['run', 'myapp'], { env });
  assert.equal(ran.code, 0, ran.stderr);
  assert.match(ran.stdout, /^hello from world bonjour default-arg$/m);
  assert.match((await run(STRATA, ['run', 'myapp', 'given'], { env })).stdout, /^hello from world bonjour given$/m, 'user args replace the default args');

  const second = await run(STRATA, ['build', 'myapp', '--builder', builder, '--path', app], { env });
  assert.equal(second.code, 0, second.stderr);
  assert.match(second.stdout, /tools restored from cache/);
  assert.match(second.stdout, /Reused \d+ layer\(s\) from the previous image/);
  const digest = (out: string) => /digest (sha256:[0-9a-f]+)/.exec(out)?.[1];
  assert.equal(digest(second.stdout), digest(first.stdout), 'an unchanged rebuild gives the same image');

  const sbomDir = join(w, 'sbom');
  await runOk(STRATA, ['sbom', 'download', 'myapp', '-o', sbomDir], { env });
  assert.match(await readFile(join(sbomDir, 'layers', 'sbom', 'launch', 'test_hello', 'tools', 'sbom.cdx.json'), 'utf8'), /hello-tools/, "pack's layout");
  assert.match(await runOk(STRATA, ['inspect', 'myapp', '--bom'], { env }), /hello-tools/);

  const rebased = await run(STRATA, ['rebase', 'myapp', '--run-image', `oci:${images}:run2`, '--force'], { env });
  assert.equal(rebased.code, 0, rebased.stderr);
  assert.match(rebased.stdout, /Rebased myapp onto .* in [\d.]+ ms/);
  assert.match((await run(STRATA, ['run', 'myapp'], { env })).stdout, /hello from world bonjour/);

  const published = await run(STRATA, ['build', `${fx.reg.host}/apps/myapp:1`, '--builder', builder, '--path', app, '--publish'], { env });
  assert.equal(published.code, 0, published.stderr);
  assert.equal(sha256(Buffer.from(await runOk('skopeo', ['inspect', '--tls-verify=false', '--raw', `docker://${fx.reg.host}/apps/myapp:1`]))), digest(published.stdout));
  // A published image's SBOMs: with --remote, into the current dir by default; without, a hint.
  const here = join(w, 'sbom-here');
  await mkdir(here);
  await runOk(STRATA, ['sbom', 'download', `${fx.reg.host}/apps/myapp:1`, '--remote'], { env, cwd: here });
  assert.match(await readFile(join(here, 'layers', 'sbom', 'launch', 'test_hello', 'tools', 'sbom.cdx.json'), 'utf8'), /hello-tools/);
  const notLocal = await run(STRATA, ['sbom', 'download', `${fx.reg.host}/apps/myapp:1`], { env, cwd: here });
  assert.match(notLocal.stderr.trim(), /not found in the local store; for an image in a registry, add --remote$/);

  assert.match(await runOk(STRATA, ['rmi', 'myapp'], { env }), /Untagged docker\.io\/library\/myapp:latest/);
  assert.doesNotMatch(await runOk(STRATA, ['images'], { env }), /myapp/);
  assert.deepEqual(await readdir(join(w, 'home', 'builds')), [], 'build dirs are cleaned up');
});

test('project.toml (exclude, build env), --buildpack from a dir, --volume, the default builder from strata config, --sbom-output-dir', { timeout: 300_000 }, async () => {
  const w = fx.work;
  const env = { ...process.env, STRATA_HOME: join(w, 'home3') };
  const extra = await writeBuildpack(join(w, 'extra-bps'), {
    id: 'test/extra',
    build: 'echo "extra sees FROM_PROJECT=$FROM_PROJECT volume=$(cat /mnt/data/v.txt)"; for f in /workspace/*; do echo "ws: ${f##*/}"; done',
  });
  const app = join(w, 'app3');
  await mkdir(app);
  await writeFile(join(app, 'hello.txt'), 'world');
  await writeFile(join(app, 'db.secret'), 'hush');
  await writeFile(join(app, 'project.toml'), '[_]\nschema-version = "0.2"\n[io.buildpacks]\nexclude = ["*.secret"]\n[[io.buildpacks.build.env]]\nname = "FROM_PROJECT"\nvalue = "yes"\n');
  const vol = join(w, 'vol');
  await mkdir(vol);
  await writeFile(join(vol, 'v.txt'), 'vol-data');
  assert.match(await runOk(STRATA, ['config', 'default-builder', `oci:${w}/builder:1`], { env }), /Set default-builder/);
  assert.equal(JSON.parse(await runOk(STRATA, ['config', 'default-builder'], { env })), `oci:${w}/builder:1`);
  const r = await run(STRATA, ['build', 'app3', '--path', app, '--buildpack', 'test/hello', '--buildpack', extra, '--volume', `${vol}:/mnt/data`, '--sbom-output-dir', join(w, 'sbom3')], { env });
  assert.equal(r.code, 0, r.stderr + r.stdout);
  assert.match(r.stdout, /extra sees FROM_PROJECT=yes volume=vol-data/);
  assert.match(r.stdout, /ws: hello\.txt/);
  assert.doesNotMatch(r.stdout, /ws: db\.secret/, 'excluded files never reach the build');
  assert.match(await readFile(join(w, 'sbom3', 'launch', 'test_hello', 'tools', 'sbom.cdx.json'), 'utf8'), /hello-tools/);
  const bad = await run(STRATA, ['build', 'app3', '--path', app, '--buildpack', 'test/nowhere@9'], { env });
  assert.match(bad.stderr.trim(), /^strata: error: --buildpack test\/nowhere@9: not in the builder/);
  const badVol = await run(STRATA, ['build', 'app3', '--path', app, '--volume', 'relative'], { env });
  assert.match(badVol.stderr, /--volume "relative": expected/);
});

test('rootless: as an ordinary user, strata builds with bubblewrap mapping that user onto the build user, and runs the image', { timeout: 300_000 }, async () => {
  const t = await tempDir('strata-rootless-');
  try {
    await runOk('cp', ['-r', join(fx.work, 'builder'), join(t.path, 'builder')]);
    await runOk('cp', ['-r', join(fx.work, 'images'), join(t.path, 'images')]);
    await mkdir(join(t.path, 'app'));
    await writeFile(join(t.path, 'app', 'hello.txt'), 'rootless');
    await runOk('chown', ['-R', `${CNB_UID}:${CNB_UID}`, t.path]);
    await chmod(t.path, 0o755);
    const strata = join(await lifecycleRoot(), 'bin', 'strata');
    const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: t.path, STRATA_HOME: join(t.path, 'home') };
    const asUser = { env, uid: CNB_UID, gid: CNB_UID };
    const built = await run(strata, ['build', 'rootless-app', '--builder', `oci:${t.path}/builder:1`, '--run-image', `oci:${t.path}/images:run`, '--path', join(t.path, 'app')], asUser);
    assert.equal(built.code, 0, built.stderr + built.stdout);
    assert.match(built.stdout, /---> hello buildpack, as uid 1000 in \/workspace/);
    const ran = await run(strata, ['run', 'rootless-app'], asUser);
    assert.equal(ran.code, 0, ran.stderr);
    assert.match(ran.stdout, /^hello from rootless bonjour default-arg$/m);
  } finally {
    await t.cleanup();
  }
});

test('strata build failures are one line: missing builder, missing path, nothing detects', async () => {
  const env = { ...process.env, STRATA_HOME: join(fx.work, 'home2') };
  const noBuilder = await run(STRATA, ['build', 'x', '--builder', `oci:${fx.work}/nope:1`, '--path', fx.work], { env });
  assert.notEqual(noBuilder.code, 0);
  assert.match(noBuilder.stderr.trim(), /^strata: error: .*(not found|no image)/);
  const noPath = await run(STRATA, ['build', 'x', '--builder', 'b', '--path', join(fx.work, 'missing')], { env });
  assert.match(noPath.stderr.trim(), /^strata: error: --path .*missing: not a directory, .zip or .jar$/);
  const empty = join(fx.work, 'empty-app');
  await mkdir(empty, { recursive: true });
  const nothing = await run(STRATA, ['build', 'x', '--builder', `oci:${fx.work}/builder:1`, '--path', empty], { env });
  assert.equal(nothing.code, 20, nothing.stderr);
  assert.match(nothing.stderr, /no buildpack in .* detected this app/);
});
