import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, readdir, readFile, readlink, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { withWorkspace, writeBuildpack, writeExtension, lifecycleRoot, type Workspace } from '../harness/buildpacks.js';
import { registryFixture } from '../harness/registry.js';
import { makeLayoutImage } from '../harness/images.js';
import { run, runOk } from '../harness/proc.js';
import { MediaType } from '../../src/oci/mediatype.js';
import { spawn } from 'node:child_process';
import { PROJECT_ROOT } from '../../src/version.js';
import { exportImage, type ExporterInputs } from '../../src/lifecycle/export.js';
import { OciLayout } from '../../src/oci/layout.js';
import { resolveImage } from '../../src/oci/image.js';
import { RegistryClient } from '../../src/oci/registry/client.js';
import { ApiVersion } from '../../src/spec/api.js';
import { readGroupFile } from '../../src/spec/group.js';
import { silentLogger } from '../../src/lifecycle/log.js';
import { LABEL, parseLifecycleMetadata } from '../../src/lifecycle/labels.js';
import { sha256 } from '../../src/oci/digest.js';
import { rebase } from '../../src/lifecycle/rebase.js';
import { DirCache } from '../../src/lifecycle/cache.js';
import { copyImage } from '../../src/oci/copy.js';

const fx = registryFixture();
const bin = (phase: string): string => join(PROJECT_ROOT, 'dist', 'lifecycle', phase);
// A fixed SOURCE_DATE_EPOCH makes every phase's output reproducible, so digests can be compared across runs.
const env = { ...process.env, CNB_PLATFORM_API: '0.15', SOURCE_DATE_EPOCH: '1700000000' };

async function built(ws: Workspace): Promise<void> {
  await writeBuildpack(ws.buildpacks, {
    id: 'test/runtime',
    api: '0.10',
    build: `L="$CNB_LAYERS_DIR"
mkdir -p "$L/runtime/bin" "$L/tools"
printf '#!/bin/sh\\necho runtime\\n' > "$L/runtime/bin/rt"; chmod +x "$L/runtime/bin/rt"
printf '[types]\\nlaunch = true\\ncache = true\\n[metadata]\\nversion = "1.2.3"\\n' > "$L/runtime.toml"
printf '[types]\\nbuild = true\\n' > "$L/tools.toml"
printf '[metadata]\\nlast = "build-1"\\n' > "$L/store.toml"
printf '[[processes]]\\ntype = "web"\\ncommand = ["rt", "serve"]\\ndefault = true\\n[[processes]]\\ntype = "task"\\ncommand = ["rt"]\\n[[slices]]\\npaths = ["static"]\\n[[labels]]\\nkey = "io.test.runtime"\\nvalue = "1.2.3"\\n' > "$L/launch.toml"`,
  });
  await runOk('mkdir', ['-p', join(ws.app, 'static', 'css'), join(ws.app, 'src')]);
  await runOk('sh', ['-c', `echo body > ${ws.app}/static/css/site.css; echo 'console.log(1)' > ${ws.app}/src/index.js; echo readme > ${ws.app}/README`]);
  await ws.order([['test/runtime']]);
  const d = await ws.phase('detector');
  assert.equal(d.code, 0, d.stderr);
  const b = await ws.phase('builder');
  assert.equal(b.code, 0, b.stderr);
}

async function inputs(ws: Workspace, runDir: string, outputs: ExporterInputs['outputs'], previous?: ExporterInputs['previous']): Promise<ExporterInputs> {
  const runImage = await resolveImage(await OciLayout.open(runDir), 'run');
  return {
    group: (await readGroupFile(join(ws.layers, 'group.toml'))).group,
    layersDir: ws.layers,
    appDir: ws.app,
    launcher: await readFile(join(await lifecycleRoot(), 'dist', 'lifecycle', 'launcher')),
    runImage,
    runImageName: 'example.com/base/run:bookworm',
    runImageReference: `example.com/base/run@${runImage.manifest.digest}`,
    runImageMirrors: ['mirror.example.com/base/run:bookworm'],
    outputs,
    uid: 1000,
    gid: 1000,
    platformApi: ApiVersion.parse('0.15'),
    projectMetadata: { source: { type: 'git', version: { commit: 'abc' } } },
    execEnv: 'production',
    created: new Date(Date.UTC(2024, 0, 1)),
    log: silentLogger,
    ...(previous ? { previous } : {}),
  };
}

test('the exporter stacks launch layers, SBOM, app slices, launcher, config and process types on the run image, with the lifecycle labels', () =>
  withWorkspace(async (ws) => {
    await built(ws);
    const runDir = join(ws.root, 'run-layout');
    // A small real run image: busybox-static (installed by scripts/setup.sh) as its userland.
    await makeLayoutImage(runDir, 'run', [{ 'etc/os-release': 'ID=debian\nVERSION_ID=12\n', 'bin/busybox': await readFile('/bin/busybox') }], { 'io.buildpacks.base.distro.name': 'debian', 'io.buildpacks.rebasable': 'true' });
    const repo = new RegistryClient(fx.reg.host).repository('export/app');
    const outLayout = await OciLayout.open(join(ws.root, 'out'), { create: true });
    const r = await exportImage(await inputs(ws, runDir, [{ store: repo, tag: 'v1', name: `${fx.reg.host}/export/app:v1` }, { store: outLayout, tag: 'v1', name: 'oci:out:v1' }]));

    const raw = await runOk('skopeo', ['inspect', '--tls-verify=false', '--raw', `docker://${fx.reg.host}/export/app:v1`]);
    assert.equal(sha256(Buffer.from(raw)), r.digest, 'registry and result agree');
    const img = await resolveImage(outLayout, 'v1');
    assert.equal(img.manifest.digest, r.digest, 'both outputs hold the same image');
    // run layer + runtime layer + sbom? (none) + 2 app layers (slice, rest) + launcher + config + process types
    assert.equal(img.config.rootfs.diff_ids.length, 1 + 1 + 2 + 3);
    const cfg = img.config.config!;
    assert.deepEqual(cfg.Entrypoint, ['/cnb/process/web']);
    assert.equal(cfg.WorkingDir, ws.app);
    assert.ok(cfg.Env!.includes(`CNB_LAYERS_DIR=${ws.layers}`) && cfg.Env!.includes('CNB_PLATFORM_API=0.15'));
    assert.match(cfg.Env!.find((e) => e.startsWith('PATH='))!, /^PATH=\/cnb\/process:\/cnb\/lifecycle:/);
    assert.equal(cfg.Labels!['io.test.runtime'], '1.2.3');
    assert.equal(cfg.Labels!['io.buildpacks.rebasable'], 'true', 'inherited from the run image');
    const md = parseLifecycleMetadata(cfg.Labels![LABEL.lifecycle])!;
    assert.equal(md.runImage.topLayer, img.config.rootfs.diff_ids[0]);
    assert.equal(md.runImage.image, 'example.com/base/run:bookworm');
    assert.deepEqual(md.runImage.mirrors, ['mirror.example.com/base/run:bookworm']);
    assert.deepEqual(Object.keys(md.buildpacks[0]!.layers!), ['runtime'], 'only launch layers are recorded');
    assert.deepEqual(md.buildpacks[0]!.layers!.runtime!.data, { version: '1.2.3' });
    assert.deepEqual(md.buildpacks[0]!.store, { metadata: { last: 'build-1' } });
    assert.equal(md.app.length, 2);
    const build = JSON.parse(cfg.Labels![LABEL.build]!) as { processes: { type: string }[]; buildpacks: { id: string; api: string }[] };
    assert.deepEqual(build.processes.map((p) => p.type), ['task', 'web']);
    assert.equal(build.buildpacks[0]!.api, '0.10');
    assert.deepEqual(JSON.parse(cfg.Labels![LABEL.project]!), { source: { type: 'git', version: { commit: 'abc' } } });
    assert.equal(img.config.created, '2024-01-01T00:00:00Z', 'as the reference lifecycle writes it: no .000');
    assert.equal(img.config.history?.at(-1)?.created_by, 'Buildpacks Process Types');

    // umoci, an independent reader, unpacks it: the layout on disk is what the spec describes.
    const bundle = join(ws.root, 'bundle');
    await runOk('umoci', ['unpack', '--image', `${join(ws.root, 'out')}:v1`, bundle]);
    const rootfs = join(bundle, 'rootfs');
    assert.equal(await readlink(join(rootfs, 'cnb/process/web')), '/cnb/lifecycle/launcher');
    assert.ok((await stat(join(rootfs, 'bin/busybox'))).size > 100_000, 'the run image is underneath');
    const launcher = await stat(join(rootfs, 'cnb/lifecycle/launcher'));
    assert.equal(launcher.uid, 0);
    assert.equal(launcher.mode & 0o777, 0o755);
    const rt = await stat(join(rootfs, ws.layers, 'test_runtime/runtime/bin/rt'));
    assert.equal(rt.uid, 1000, 'launch layers belong to the build user');
    assert.equal(rt.mtime.getTime(), Date.UTC(2024, 0, 1), 'mtimes are the build time');
    assert.equal((await readFile(join(rootfs, ws.app, 'static/css/site.css'), 'utf8')).trim(), 'body');
    assert.equal((await stat(join(rootfs, ws.app, 'README'))).uid, 1000);
    assert.match(await readFile(join(rootfs, ws.layers, 'config/metadata.toml'), 'utf8'), /buildpack-default-process-type = "web"/);
    await assert.rejects(stat(join(rootfs, ws.layers, 'test_runtime/tools')), 'build-only layers stay out');
  }));

test('a second export of unchanged layers reuses them from the previous image and gives the same digest; a launch layer with no dir is taken from it', () =>
  withWorkspace(async (ws) => {
    await built(ws);
    const runDir = join(ws.root, 'run-layout');
    await makeLayoutImage(runDir, 'run', [{ 'etc/os-release': 'ID=debian\n' }]);
    const repo = new RegistryClient(fx.reg.host).repository('export/again');
    const first = await exportImage(await inputs(ws, runDir, [{ store: repo, tag: 'v1', name: 'v1' }]));
    const previous = await resolveImage(repo, 'v1');
    const prevMd = parseLifecycleMetadata(previous.config.config!.Labels![LABEL.lifecycle])!;
    const before = (await fx.reg.requests()).filter((l) => l.startsWith('PUT /v2/export/again/blobs/') || l.startsWith('PATCH /v2/export/again/blobs/')).length;
    const keep = { dir: join(ws.root, 'kept'), files: new Map() };
    await mkdir(keep.dir);
    const second = await exportImage({ ...(await inputs(ws, runDir, [{ store: repo, tag: 'v2', name: 'v2' }], { image: previous, metadata: prevMd })), keep });
    assert.equal(second.digest, first.digest, 'reproducible: same inputs, same digest');
    // The SBOM, app, launcher, config and process-types layers were hashed, not compressed: no blob was made.
    assert.deepEqual([keep.files.size, await readdir(keep.dir)], [0, []], 'nothing was compressed for layers the previous image has');
    assert.ok(second.reused.includes(prevMd.buildpacks[0]!.layers!.runtime!.sha), 'the runtime layer was reused');
    const after = (await fx.reg.requests()).filter((l) => l.startsWith('PUT /v2/export/again/blobs/') || l.startsWith('PATCH /v2/export/again/blobs/')).length;
    assert.equal(after - before, 0, 'no layer was uploaded again');

    // One layer changed: that layer and the new config are the only uploads.
    await runOk('sh', ['-c', `echo changed >> ${join(ws.layers, 'test_runtime', 'runtime', 'bin', 'rt')}`]);
    const mark = (await fx.reg.requests()).length;
    const changed = await exportImage(await inputs(ws, runDir, [{ store: repo, tag: 'v2b', name: 'v2b' }], { image: previous, metadata: prevMd }));
    assert.notEqual(changed.digest, first.digest);
    const uploads = (await fx.reg.requests()).slice(mark).filter((l) => l.startsWith('POST /v2/export/again/blobs/uploads/') && !l.includes('mount='));
    assert.equal(uploads.length, 2, `only the changed layer and the config are uploaded: ${uploads.join(', ')}`);
    await runOk('sh', ['-c', `sed -i '$ d' ${join(ws.layers, 'test_runtime', 'runtime', 'bin', 'rt')}`]);

    // The buildpack kept its layer's metadata but not its contents: the previous image's layer is used.
    await rm(join(ws.layers, 'test_runtime', 'runtime'), { recursive: true });
    await runOk('sh', ['-c', `printf '[types]\\nlaunch = true\\n[metadata]\\nversion = "1.2.3"\\n' > ${join(ws.layers, 'test_runtime', 'runtime.toml')}`]);
    const lines: string[] = [];
    const third = await exportImage({ ...(await inputs(ws, runDir, [{ store: repo, tag: 'v3', name: 'v3' }], { image: previous, metadata: prevMd })), log: { ...silentLogger, info: (l: string) => lines.push(l) } });
    const md3 = third.metadata.buildpacks[0]!.layers!.runtime!;
    assert.equal(md3.sha, prevMd.buildpacks[0]!.layers!.runtime!.sha);
    assert.ok(lines.some((l) => l.startsWith(`Reusing layer 'test/runtime:runtime' (${md3.sha.slice(7, 19)})`)), `the reuse is logged as every other: ${lines.join(' | ')}`);
    // Without a previous image that is an error naming the buildpack.
    await assert.rejects(exportImage(await inputs(ws, runDir, [{ store: repo, tag: 'v4', name: 'v4' }])), /test\/runtime: launch layer "runtime" has no directory and no previous image layer/);
  }));

test('rebase swaps the run layers by writing only a config and a manifest; same repository with another tag needs no -force', () =>
  withWorkspace(async (ws) => {
    await built(ws);
    const client = new RegistryClient(fx.reg.host);
    const runRepo = client.repository('base/run');
    const v1 = await makeLayoutImage(join(ws.root, 'run1'), 'run', [{ 'etc/os-release': 'ID=debian\nVERSION_ID=12\n' }, { 'usr/lib/libssl.so': 'vulnerable' }], { 'io.buildpacks.base.distro.name': 'debian', 'io.buildpacks.base.id': 'v1' });
    const v2 = await makeLayoutImage(join(ws.root, 'run2'), 'run', [{ 'etc/os-release': 'ID=debian\nVERSION_ID=12\n' }, { 'usr/lib/libssl.so': 'patched' }], { 'io.buildpacks.base.distro.name': 'debian', 'io.buildpacks.base.id': 'v2' });
    await copyImage(v1.layout, 'run', runRepo, 'v1');
    await copyImage(v2.layout, 'run', runRepo, 'v2');
    const appRepo = client.repository('rebase/app');
    const runV1 = await resolveImage(runRepo, 'v1');
    const exported = await exportImage({ ...(await inputs(ws, join(ws.root, 'run1'), [{ store: appRepo, tag: 'v1', name: 'app:v1' }])), runImage: runV1, runImageName: `${fx.reg.host}/base/run:v1`, runImageReference: `${fx.reg.host}/base/run@${runV1.manifest.digest}`, runImageMirrors: [] });
    const app = await resolveImage(appRepo, 'v1');
    const runV2 = await resolveImage(runRepo, 'v2');
    const layerDigests = new Set([...app.manifest.manifest.layers, ...runV2.manifest.manifest.layers].map((l) => l.digest));
    const mark = (await fx.reg.requests()).length;

    const r = await rebase({ app, appName: 'app:v1', newRun: runV2, newRunName: `${fx.reg.host}/base/run:v2`, newRunReference: `${fx.reg.host}/base/run@${runV2.manifest.digest}`, outputs: [{ store: appRepo, tag: 'v1', name: 'app:v1' }], force: false });
    const during = (await fx.reg.requests()).slice(mark);
    assert.ok(!during.some((l) => l.startsWith('GET') && [...layerDigests].some((d) => l.includes(d))), `no layer was downloaded: ${during.join('\n')}`);
    const uploads = during.filter((l) => l.startsWith('POST /v2/rebase/app/blobs/uploads/') && !l.includes('mount='));
    assert.equal(uploads.length, 1, `only the new config is uploaded: ${uploads.join(', ')}`);
    const shared = runV2.manifest.manifest.layers.filter((d) => app.manifest.manifest.layers.some((a) => a.digest === d.digest));
    assert.equal(shared.length, 1, 'the two run images share their os-release layer');
    assert.ok(!during.some((l) => l.includes(shared[0]!.digest.slice(7))), `a run layer the app's manifest names is neither checked nor mounted: ${during.join('\n')}`);
    assert.ok(during.some((l) => l.includes(runV2.manifest.manifest.layers[1]!.digest.slice(7))), 'the patched layer is mounted');
    const rebased = await resolveImage(appRepo, 'v1');
    assert.equal(rebased.manifest.digest, r.digest);
    assert.notEqual(r.digest, exported.digest);
    const ids = rebased.config.rootfs.diff_ids;
    assert.deepEqual(ids.slice(0, 2), runV2.config.rootfs.diff_ids, 'new base layers at the bottom');
    assert.deepEqual(ids.slice(2), app.config.rootfs.diff_ids.slice(2), 'app layers untouched on top');
    const md = parseLifecycleMetadata(rebased.config.config!.Labels![LABEL.lifecycle])!;
    assert.equal(md.runImage.topLayer, runV2.config.rootfs.diff_ids[1]);
    assert.equal(md.runImage.reference, `${fx.reg.host}/base/run@${runV2.manifest.digest}`);
    assert.equal(rebased.config.config!.Labels!['io.buildpacks.base.id'], 'v2', 'base labels follow the new run image');
    const raw = await runOk('skopeo', ['inspect', '--tls-verify=false', '--raw', `docker://${fx.reg.host}/rebase/app:v1`]);
    assert.equal(sha256(Buffer.from(raw)), r.digest);

    // Refusals: another repository without -force, rebasable=false, another architecture.
    const other = client.repository('other/run');
    await copyImage(v2.layout, 'run', other, 'v2');
    const otherRun = await resolveImage(other, 'v2');
    const base = { app: rebased, appName: 'app:v1', newRunReference: 'x', outputs: [{ store: appRepo, tag: 'refused', name: 'refused' }] };
    await assert.rejects(rebase({ ...base, newRun: otherRun, newRunName: `${fx.reg.host}/other/run:v2`, force: false }), /not the run image .* use --force/);
    const forced = await rebase({ ...base, newRun: otherRun, newRunName: `${fx.reg.host}/other/run:v2`, force: true });
    assert.equal(forced.metadata.runImage.image, `${fx.reg.host}/other/run:v2`);
    const locked = { ...rebased, config: { ...rebased.config, config: { ...rebased.config.config, Labels: { ...rebased.config.config!.Labels, 'io.buildpacks.rebasable': 'false' } } } };
    await assert.rejects(rebase({ ...base, app: locked, newRun: runV2, newRunName: `${fx.reg.host}/base/run:v2`, force: false }), /rebasable=false; use -force/);
    const armRun = { ...runV2, config: { ...runV2.config, architecture: runV2.config.architecture === 'arm64' ? 'amd64' : 'arm64' } };
    await assert.rejects(rebase({ ...base, newRun: armRun, newRunName: `${fx.reg.host}/base/run:v2`, force: false }), (e: Error & { exitCode?: number }) => /but app:v1 is linux\//.test(e.message) && e.exitCode === 72);
    assert.equal((await appRepo.headManifest('refused'))?.digest, forced.digest, 'refusals wrote nothing');
  }));

test('rebase across media-type families (OCI app on a Docker run image and back) writes one family throughout, which skopeo copies', () =>
  withWorkspace(async (ws) => {
    await built(ws);
    const client = new RegistryClient(fx.reg.host);
    const v1 = await makeLayoutImage(join(ws.root, 'run1'), 'run', [{ 'etc/os-release': 'ID=debian\n' }, { 'usr/lib/libssl.so': 'vulnerable' }], {});
    const v2 = await makeLayoutImage(join(ws.root, 'run2'), 'run', [{ 'etc/os-release': 'ID=debian\n' }, { 'usr/lib/libssl.so': 'patched' }], {});
    const runRepo = client.repository('family/run');
    await copyImage(v1.layout, 'run', runRepo, 'oci-v1');
    await copyImage(v2.layout, 'run', runRepo, 'oci-v2');
    // The same run images as Docker schema 2, converted by skopeo.
    for (const [dir, tag] of [['run1', 'docker-v1'], ['run2', 'docker-v2']] as const) {
      await runOk('skopeo', ['copy', '--quiet', '--dest-tls-verify=false', '--format', 'v2s2', `oci:${join(ws.root, dir)}:run`, `docker://${fx.reg.host}/family/run:${tag}`]);
    }
    const appRepo = client.repository('family/app');
    const cases = [
      { app: 'oci', from: 'oci-v1', onto: 'docker-v2', manifest: MediaType.OciManifest, layer: MediaType.OciLayerGzip },
      { app: 'docker', from: 'docker-v1', onto: 'oci-v2', manifest: MediaType.DockerManifest, layer: MediaType.DockerLayerGzip },
    ];
    for (const c of cases) {
      const run = await resolveImage(runRepo, c.from);
      await exportImage({ ...(await inputs(ws, join(ws.root, 'run1'), [{ store: appRepo, tag: c.app, name: `app:${c.app}` }])), runImage: run, runImageName: `${fx.reg.host}/family/run:${c.from}`, runImageReference: `${fx.reg.host}/family/run@${run.manifest.digest}`, runImageMirrors: [] });
      const app = await resolveImage(appRepo, c.app);
      assert.equal(app.manifest.mediaType, c.manifest);
      const onto = await resolveImage(runRepo, c.onto);
      assert.notEqual(onto.manifest.mediaType, c.manifest, 'the new run image is of the other family');
      await rebase({ app, appName: `app:${c.app}`, newRun: onto, newRunName: `${fx.reg.host}/family/run:${c.onto}`, newRunReference: `${fx.reg.host}/family/run@${onto.manifest.digest}`, outputs: [{ store: appRepo, tag: c.app, name: `app:${c.app}` }], force: false });
      const rebased = await resolveImage(appRepo, c.app);
      assert.equal(rebased.manifest.mediaType, c.manifest, `${c.app}: the app keeps its family`);
      assert.deepEqual(new Set(rebased.manifest.manifest.layers.map((l) => l.mediaType)), new Set([c.layer]), `${c.app}: every layer named in that family`);
      await runOk('skopeo', ['copy', '--quiet', '--src-tls-verify=false', `docker://${fx.reg.host}/family/app:${c.app}`, `oci:${join(ws.root, `copied-${c.app}`)}:x`]);
    }
  }));

test('the Platform-API phases end to end: analyzer → detector → builder → exporter → rebaser against a registry, with report.toml', () =>
  withWorkspace(async (ws) => {
    const client = new RegistryClient(fx.reg.host);
    const v1 = await makeLayoutImage(join(ws.root, 'run1'), 'run', [{ 'etc/os-release': 'ID=debian\n' }], { 'io.buildpacks.base.distro.name': 'debian', 'io.buildpacks.base.distro.version': '12' });
    const v2 = await makeLayoutImage(join(ws.root, 'run2'), 'run', [{ 'etc/os-release': 'ID=debian\nPATCHED=1\n' }], { 'io.buildpacks.base.distro.name': 'debian', 'io.buildpacks.base.distro.version': '12' });
    await copyImage(v1.layout, 'run', client.repository('cli/run'), 'v1');
    await copyImage(v2.layout, 'run', client.repository('cli/run'), 'v2');
    const runToml = join(ws.root, 'run.toml');
    await runOk('sh', ['-c', `printf '[[images]]\\nimage = "${fx.reg.host}/cli/run:v1"\\n' > ${runToml}`]);
    const app = `${fx.reg.host}/cli/app:v1`;

    const analyzed = await run(bin('analyzer'), ['-layers', ws.layers, '-run', runToml, app], { env });
    assert.equal(analyzed.code, 0, analyzed.stderr);
    const a = await readFile(join(ws.layers, 'analyzed.toml'), 'utf8');
    assert.match(a, new RegExp(`reference = "${fx.reg.host.replace(/\./g, '\\.')}/cli/run@sha256:`));
    assert.match(a, /name = "debian"/);
    await built(ws);
    const exported = await run(bin('exporter'), ['-layers', ws.layers, '-app', ws.app, '-launcher', join(PROJECT_ROOT, 'dist', 'lifecycle', 'launcher'), '-run', runToml, '-uid', '1000', '-gid', '1000', '-log-level', 'debug', app, `${fx.reg.host}/cli/app:latest`], { env });
    assert.equal(exported.code, 0, exported.stderr + exported.stdout);
    const report = await readFile(join(ws.layers, 'report.toml'), 'utf8');
    const digest = /digest = "(sha256:[0-9a-f]+)"/.exec(report)?.[1];
    assert.ok(digest, report);
    assert.match(report, /tags = \[.*cli\/app:v1.*cli\/app:latest/);
    assert.equal(sha256(Buffer.from(await runOk('skopeo', ['inspect', '--tls-verify=false', '--raw', `docker://${app}`]))), digest);
    const img = await resolveImage(client.repository('cli/app'), 'v1');
    assert.equal(img.config.created, '2023-11-14T22:13:20Z', 'SOURCE_DATE_EPOCH sets the creation time');

    const rebased = await run(bin('rebaser'), ['-run-image', `${fx.reg.host}/cli/run:v2`, '-report', join(ws.root, 'rebase-report.toml'), app], { env });
    assert.equal(rebased.code, 0, rebased.stderr + rebased.stdout);
    assert.match(rebased.stdout, /Rebased .*cli\/app:v1 onto .*cli\/run@sha256:[0-9a-f]+ in \d+ ms/);
    const after = await resolveImage(client.repository('cli/app'), 'v1');
    assert.equal(after.config.rootfs.diff_ids[0], (await resolveImage(client.repository('cli/run'), 'v2')).config.rootfs.diff_ids[0]);
    assert.match(await readFile(join(ws.root, 'rebase-report.toml'), 'utf8'), new RegExp(after.manifest.digest));

    // A refused export leaves none of its temporary files behind.
    const tmp = join(ws.root, 'tmp');
    await mkdir(tmp);
    const multi = await run(bin('exporter'), ['-layers', ws.layers, '-app', ws.app, app, 'other.example.com/x:1'], { env: { ...env, TMPDIR: tmp } });
    assert.equal(multi.code, 3);
    assert.match(multi.stderr, /writing to multiple registries/);
    const failed = await run(bin('exporter'), ['-layers', ws.layers, '-app', ws.app, '-launcher', join(ws.root, 'no-launcher'), '-run', runToml, app], { env: { ...env, TMPDIR: tmp } });
    assert.notEqual(failed.code, 0);
    assert.match(failed.stderr, /no-launcher/);
    assert.deepEqual(await readdir(tmp), []);
  }));

/** A buildpack with a launch+cache layer and a cache-only layer, built through every phase with the given cache flags. */
async function cachedBuilds(ws: Workspace, name: string, cacheArgs: string[]): Promise<() => Promise<{ build: string; exp: string }>> {
  const client = new RegistryClient(fx.reg.host);
  const base = await makeLayoutImage(join(ws.root, 'run1'), 'run', [{ 'etc/os-release': 'ID=debian\n' }]);
  await copyImage(base.layout, 'run', client.repository(`${name}/run`), 'v1');
  await writeBuildpack(ws.buildpacks, {
    id: 'test/deps',
    build: `L="$CNB_LAYERS_DIR"
if [ -f "$L/modules/marker" ]; then echo "modules restored: $(cat "$L/modules/marker")"; else mkdir -p "$L/modules"; echo built-1 > "$L/modules/marker"; fi
printf '[types]\\nlaunch = true\\ncache = true\\n[metadata]\\nlock = "abc"\\n' > "$L/modules.toml"
if [ -f "$L/dl/pkg" ]; then echo "downloads restored"; else mkdir -p "$L/dl"; echo pkg > "$L/dl/pkg"; fi
printf '[types]\\ncache = true\\n' > "$L/dl.toml"
printf '[[processes]]\\ntype = "web"\\ncommand = ["true"]\\ndefault = true\\n' > "$L/launch.toml"`,
  });
  await ws.order([['test/deps']]);
  const app = `${fx.reg.host}/${name}/app:v1`;
  const common = ['-layers', ws.layers, '-log-level', 'debug'];
  return async () => {
    const a = await run(bin('analyzer'), [...common, '-run-image', `${fx.reg.host}/${name}/run:v1`, app], { env });
    assert.equal(a.code, 0, a.stderr);
    const d = await ws.phase('detector');
    assert.equal(d.code, 0, d.stderr);
    const r = await run(bin('restorer'), [...common, ...cacheArgs], { env });
    assert.equal(r.code, 0, r.stderr + r.stdout);
    const b = await ws.phase('builder');
    assert.equal(b.code, 0, b.stderr);
    const e = await run(bin('exporter'), [...common, '-app', ws.app, '-launcher', join(PROJECT_ROOT, 'dist', 'lifecycle', 'launcher'), ...cacheArgs, '-uid', '1000', '-gid', '1000', app], { env });
    assert.equal(e.code, 0, e.stderr + e.stdout);
    return { build: b.stdout, exp: e.stdout };
  };
}

test('cache round trip: cache=true layers saved by the exporter come back through the restorer; the rebuild reuses the launch layer', () =>
  withWorkspace(async (ws) => {
    const cacheDir = join(ws.root, 'cache');
    const app = `${fx.reg.host}/cache/app:v1`;
    const common = ['-layers', ws.layers, '-log-level', 'debug'];
    const buildOnce = await cachedBuilds(ws, 'cache', ['-cache-dir', cacheDir]);
    const first = await buildOnce();
    assert.doesNotMatch(first.build, /restored/);
    assert.match(first.exp, /Cache saved: 2 layer\(s\)/);
    assert.match(first.exp, /cache: test\/deps:modules taken from the exported layer, not tarred again/);

    await runOk('sh', ['-c', `rm -rf ${ws.layers}/*`]);
    const tmpMode = (await stat(ws.root)).mode;
    const before = (await fx.reg.requests()).length;
    const firstLayers = (await resolveImage(new RegistryClient(fx.reg.host, { insecure: true }).repository('cache/app'), 'v1')).manifest.manifest.layers.map((l) => l.digest);
    const second = await buildOnce();
    const asked = (await fx.reg.requests()).slice(before).filter((l) => /^HEAD \/v2\/cache\/app\/blobs\//.test(l));
    assert.deepEqual(asked.filter((l) => firstLayers.some((d) => l.endsWith(d))), [], 'the layers the previous image names in this repository (reused ones, the run image\'s) are not asked for again');
    assert.equal((await stat(ws.root)).mode, tmpMode, 'restoring does not re-mode the directories above the layers dir');
    assert.match(second.build, /modules restored: built-1/);
    assert.match(second.build, /downloads restored/);
    assert.match(second.exp, /Reused 5 layer\(s\) from the previous image/, "modules, app, launcher, config and process types are all unchanged");
    assert.match(second.exp, /Layer test\/deps:modules is unchanged \(same fingerprint\): reused without reading it/);
    assert.match(await readFile(join(ws.layers, 'test_deps', 'modules.toml'), 'utf8'), /lock = "abc"/);

    // A cache whose record disagrees with the image is not trusted: the layer is removed, not half-restored.
    const mdPath = join(cacheDir, 'committed', 'io.buildpacks.lifecycle.cache.metadata');
    const md = JSON.parse(await readFile(mdPath, 'utf8')) as { buildpacks: { layers: Record<string, { sha: string }> }[] };
    md.buildpacks[0]!.layers.modules!.sha = `sha256:${'0'.repeat(64)}`;
    await runOk('sh', ['-c', `cat > ${mdPath} <<'EOF2'\n${JSON.stringify(md)}\nEOF2`]);
    await runOk('sh', ['-c', `rm -rf ${ws.layers}/*`]);
    await run(bin('analyzer'), [...common, '-run-image', `${fx.reg.host}/cache/run:v1`, app], { env });
    await ws.phase('detector');
    const r = await run(bin('restorer'), [...common, '-cache-dir', cacheDir], { env });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /Removed layer test\/deps:modules/);
    await assert.rejects(stat(join(ws.layers, 'test_deps', 'modules')));

    // A truncated cached tar and then unreadable metadata only warn: the build goes on from scratch.
    const rebuild = await cachedBuilds(ws, 'cache', ['-cache-dir', cacheDir]);
    await runOk('sh', ['-c', `rm -rf ${ws.layers}/*`]);
    await rebuild();
    await runOk('sh', ['-c', `for f in ${join(cacheDir, 'committed')}/*.tar ${join(cacheDir, 'committed')}/*.tar.gz; do [ -f "$f" ] || continue; head -c $(( $(stat -c %s "$f") / 2 )) "$f" > "$f.cut" && mv "$f.cut" "$f"; done`]);
    await runOk('sh', ['-c', `rm -rf ${ws.layers}/*`]);
    const afterCut = await rebuild();
    assert.doesNotMatch(afterCut.build, /modules restored/, 'a truncated cache layer is rebuilt, not half-restored');
    await runOk('sh', ['-c', `echo '{not json' > ${mdPath}`]);
    await runOk('sh', ['-c', `rm -rf ${ws.layers}/*`]);
    const afterBadMd = await rebuild();
    assert.doesNotMatch(afterBadMd.build, /restored/);
    assert.match(afterBadMd.exp, /Cache saved: 2 layer\(s\)/, 'and a good cache is written again');

    // Killed between the two renames of a commit: the next open finds the old cache under its backup name.
    await runOk('mv', [join(cacheDir, 'committed'), join(cacheDir, 'committed-backup')]);
    const reopened = await DirCache.open(cacheDir, silentLogger);
    assert.equal((await reopened.metadata()).buildpacks.length, 1);
  }));

test('the creator gives the same image as the five phases run one by one', () =>
  withWorkspace(async (ws) => {
    const client = new RegistryClient(fx.reg.host);
    const base = await makeLayoutImage(join(ws.root, 'run1'), 'run', [{ 'etc/os-release': 'ID=debian\n' }]);
    await copyImage(base.layout, 'run', client.repository('creator/run'), 'v1');
    await writeBuildpack(ws.buildpacks, {
      id: 'test/simple',
      build: `mkdir -p "$CNB_LAYERS_DIR/rt"; echo hi > "$CNB_LAYERS_DIR/rt/file"; printf '[types]\\nlaunch = true\\n' > "$CNB_LAYERS_DIR/rt.toml"
printf '[[processes]]\\ntype = "web"\\ncommand = ["true"]\\ndefault = true\\n' > "$CNB_LAYERS_DIR/launch.toml"`,
    });
    await ws.order([['test/simple']]);
    await runOk('sh', ['-c', `echo app > ${ws.app}/index.txt`]);
    const launcher = join(PROJECT_ROOT, 'dist', 'lifecycle', 'launcher');
    const runImage = `${fx.reg.host}/creator/run:v1`;
    const common = ['-layers', ws.layers];

    const steps: [string, string[]][] = [['analyzer', ['-run-image', runImage, `${fx.reg.host}/creator/app:five`]]];
    for (const [phase, args] of steps) assert.equal((await run(bin(phase), [...common, ...args], { env })).code, 0);
    assert.equal((await ws.phase('detector')).code, 0);
    assert.equal((await ws.phase('builder')).code, 0);
    const five = await run(bin('exporter'), [...common, '-app', ws.app, '-launcher', launcher, '-uid', '1000', '-gid', '1000', `${fx.reg.host}/creator/app:five`], { env });
    assert.equal(five.code, 0, five.stderr);
    const fiveDigest = /\*\*\* Digest: (sha256:[0-9a-f]+)/.exec(five.stdout)?.[1];

    await runOk('sh', ['-c', `rm -rf ${ws.layers}/*`]);
    const order = join(ws.root, 'order.toml');
    const created = await run(
      bin('creator'),
      [...common, '-app', ws.app, '-buildpacks', ws.buildpacks, '-platform', ws.platform, '-build-config', ws.buildConfig, '-order', order, '-run-image', runImage, '-launcher', launcher, '-uid', '1000', '-gid', '1000', '-cache-dir', join(ws.root, 'cache'), `${fx.reg.host}/creator/app:made`],
      { env },
    );
    assert.equal(created.code, 0, created.stderr + created.stdout);
    const madeDigest = /\*\*\* Digest: (sha256:[0-9a-f]+)/.exec(created.stdout)?.[1];
    assert.ok(fiveDigest && madeDigest);
    assert.equal(madeDigest, fiveDigest);

    // A detection failure keeps its exit code through the creator.
    await writeBuildpack(ws.buildpacks, { id: 'test/never', detect: 'exit 100' });
    await ws.order([['test/never']]);
    const failed = await run(bin('creator'), [...common, '-app', ws.app, '-buildpacks', ws.buildpacks, '-platform', ws.platform, '-build-config', ws.buildConfig, '-order', order, '-run-image', runImage, '-launcher', launcher, '-uid', '1000', '-gid', '1000', `${fx.reg.host}/creator/app:made`], { env });
    assert.equal(failed.code, 20);
  }));

test('an image cache in the registry round-trips the same layers', () =>
  withWorkspace(async (ws) => {
    const cacheImage = `${fx.reg.host}/imgcache/cache:latest`;
    const buildOnce = await cachedBuilds(ws, 'imgcache', ['-cache-image', cacheImage]);
    const first = await buildOnce();
    assert.match(first.exp, /Cache saved: 2 layer\(s\)/);
    const cache = await resolveImage(new RegistryClient(fx.reg.host).repository('imgcache/cache'), 'latest');
    assert.equal(cache.config.rootfs.diff_ids.length, 2);
    assert.match(cache.config.config!.Labels!['io.buildpacks.lifecycle.cache.metadata']!, /"modules"/);
    await runOk('sh', ['-c', `rm -rf ${ws.layers}/*`]);
    const second = await buildOnce();
    assert.match(second.build, /modules restored: built-1/);
    assert.match(second.build, /downloads restored/);
  }));

test('SIGKILL at any moment of an export with a cache leaves a cache the next build can use', () =>
  withWorkspace(async (ws) => {
    const cacheDir = join(ws.root, 'cache');
    const buildOnce = await cachedBuilds(ws, 'killed', ['-cache-dir', cacheDir]);
    await buildOnce();
    const app = `${fx.reg.host}/killed/app:v1`;
    const args = ['-layers', ws.layers, '-app', ws.app, '-launcher', join(PROJECT_ROOT, 'dist', 'lifecycle', 'launcher'), '-cache-dir', cacheDir, '-uid', '1000', '-gid', '1000', app];
    for (const delay of [30, 80, 150, 250, 400]) {
      // New content each round, so the cache really is rewritten while the process dies.
      await runOk('sh', ['-c', `echo ${delay} >> ${join(ws.layers, 'test_deps', 'dl', 'pkg')}`]);
      // A killed export cannot remove its staging dir: it goes in the workspace, not the machine's /tmp.
      const child = spawn(bin('exporter'), args, { env: { ...env, TMPDIR: ws.root }, stdio: 'ignore' });
      const closed = new Promise((r) => child.once('close', r));
      await new Promise((r) => setTimeout(r, delay));
      child.kill('SIGKILL');
      await closed;
      const cache = await DirCache.open(cacheDir, silentLogger);
      const md = await cache.metadata();
      for (const bp of md.buildpacks) for (const l of Object.values(bp.layers)) assert.ok(await cache.layerPath(l.sha), `the cache lists ${l.sha} and holds it`);
    }
    await runOk('sh', ['-c', `rm -rf ${ws.layers}/*`]);
    const after = await buildOnce();
    assert.match(after.build, /downloads restored/);
  }));

test('-layout (experimental) maps image names into OCI layouts under -layout-dir; -parallel writes the cache alongside', () =>
  withWorkspace(async (ws) => {
    const layoutDir = join(ws.root, 'layouts');
    const runRef = 'example.com/base/run:v1';
    const runLayout = join(layoutDir, 'example.com', 'base', 'run', 'v1');
    const base = await makeLayoutImage(join(ws.root, 'run1'), 'run', [{ 'etc/os-release': 'ID=debian\n' }]);
    await copyImage(base.layout, 'run', await OciLayout.open(runLayout, { create: true }), 'v1');
    await writeBuildpack(ws.buildpacks, { id: 'test/simple', build: `mkdir -p "$CNB_LAYERS_DIR/c"; echo x > "$CNB_LAYERS_DIR/c/x"; printf '[types]\\ncache = true\\nlaunch = true\\n' > "$CNB_LAYERS_DIR/c.toml"` });
    await ws.order([['test/simple']]);
    const app = 'example.com/team/app:v1';
    const layoutEnv = { ...env, CNB_EXPERIMENTAL_MODE: 'warn' };
    const flags = ['-layers', ws.layers, '-layout', '-layout-dir', layoutDir];
    const refused = await run(bin('analyzer'), [...flags, '-run-image', runRef, app], { env });
    assert.equal(refused.code, 3);
    assert.match(refused.stderr, /-layout is experimental; set CNB_EXPERIMENTAL_MODE/);
    const a = await run(bin('analyzer'), [...flags, '-run-image', runRef, app], { env: layoutEnv });
    assert.equal(a.code, 0, a.stderr);
    // As the reference lifecycle writes it in layout mode: the layout's path and the digest, no `oci:`.
    assert.match(await readFile(join(ws.layers, 'analyzed.toml'), 'utf8'), new RegExp(`reference = "${runLayout.replace(/\//g, '\\/')}@sha256:`));
    assert.equal((await ws.phase('detector')).code, 0);
    assert.equal((await ws.phase('builder')).code, 0);
    const e = await run(bin('exporter'), [...flags, '-app', ws.app, '-launcher', join(PROJECT_ROOT, 'dist', 'lifecycle', 'launcher'), '-uid', '1000', '-gid', '1000', '-parallel', '-cache-dir', join(ws.root, 'cache'), app], { env: layoutEnv });
    assert.equal(e.code, 0, e.stderr + e.stdout);
    assert.match(e.stdout, /Cache saved: 1 layer\(s\)/);
    const out = join(layoutDir, 'example.com', 'team', 'app', 'v1');
    await runOk('umoci', ['unpack', '--image', `${out}:v1`, join(ws.root, 'bundle')]);
    assert.equal((await readFile(join(ws.root, 'bundle', 'rootfs', ws.layers, 'test_simple', 'c', 'x'), 'utf8')).trim(), 'x');
  }));

test('-layout through the creator: Docker Hub names under index.docker.io, a one-image layout without a ref.name read, no network', () =>
  withWorkspace(async (ws) => {
    const layoutDir = join(ws.root, 'layouts');
    await makeLayoutImage(join(ws.root, 'run1'), 'run', [{ 'etc/os-release': 'ID=debian\n' }]);
    // skopeo writes no ref.name when the destination names no tag: the layout holds one unnamed image.
    const busybox = join(layoutDir, 'index.docker.io', 'library', 'busybox', 'latest');
    await mkdir(busybox, { recursive: true });
    await runOk('skopeo', ['copy', '--quiet', `oci:${join(ws.root, 'run1')}:run`, `oci:${busybox}`]);
    assert.doesNotMatch(await readFile(join(busybox, 'index.json'), 'utf8'), /ref\.name/);
    await writeBuildpack(ws.buildpacks, { id: 'test/simple', build: `mkdir -p "$CNB_LAYERS_DIR/l"; echo x > "$CNB_LAYERS_DIR/l/x"; printf '[types]\\nlaunch = true\\n' > "$CNB_LAYERS_DIR/l.toml"` });
    await ws.order([['test/simple']]);
    const launcher = join(PROJECT_ROOT, 'dist', 'lifecycle', 'launcher');
    // The build user reads the order and buildpacks.
    await runOk('chown', ['-R', '1000:1000', ws.root]);
    // No registry would answer for these names: a phase that went to the network would fail.
    const created = await run(
      bin('creator'),
      ['-layers', ws.layers, '-app', ws.app, '-buildpacks', ws.buildpacks, '-platform', ws.platform, '-build-config', ws.buildConfig, '-order', join(ws.root, 'order.toml'), '-run-image', 'busybox', '-launcher', launcher, '-uid', '1000', '-gid', '1000', '-layout', '-layout-dir', layoutDir, 'team/app:v1'],
      { env: { ...env, CNB_EXPERIMENTAL_MODE: 'quiet', HTTPS_PROXY: 'http://127.0.0.1:9', HTTP_PROXY: 'http://127.0.0.1:9' } },
    );
    assert.equal(created.code, 0, created.stderr + created.stdout);
    const out = join(layoutDir, 'index.docker.io', 'team', 'app', 'v1');
    await runOk('umoci', ['unpack', '--image', `${out}:v1`, join(ws.root, 'bundle')]);
    assert.equal((await readFile(join(ws.root, 'bundle', 'rootfs', 'etc', 'os-release'), 'utf8')).trim(), 'ID=debian');
  }));

test('the creator runs [[order-extensions]]: a run.Dockerfile FROM <image> alone switches the run image; one that needs applying is refused with the extender\'s exit code', () =>
  withWorkspace(async (ws) => {
    const layoutDir = join(ws.root, 'layouts');
    for (const [tag, release] of [['v1', 'ID=debian'], ['slim', 'ID=slim']] as const) {
      const base = await makeLayoutImage(join(ws.root, `run-${tag}`), 'run', [{ 'etc/os-release': `${release}\n` }]);
      await copyImage(base.layout, 'run', await OciLayout.open(join(layoutDir, 'index.docker.io', 'library', 'base', tag), { create: true }), tag);
    }
    await writeBuildpack(ws.buildpacks, { id: 'test/simple', build: `mkdir -p "$CNB_LAYERS_DIR/l"; echo x > "$CNB_LAYERS_DIR/l/x"; printf '[types]\\nlaunch = true\\n' > "$CNB_LAYERS_DIR/l.toml"` });
    await writeExtension(ws.extensions, { id: 'test/slim', files: { 'generate/run.Dockerfile': 'FROM base:slim\n' } });
    await writeExtension(ws.extensions, { id: 'test/apt', files: { 'generate/build.Dockerfile': 'ARG base_image\nFROM ${base_image}\nRUN apt-get install -y curl\n' } });
    const launcher = join(PROJECT_ROOT, 'dist', 'lifecycle', 'launcher');
    await runOk('chown', ['-R', '1000:1000', ws.root]);
    const create = async (extension: string) => {
      await ws.order([['test/simple']], [[extension]]);
      await runOk('chown', ['-R', '1000:1000', ws.root]);
      return run(
        bin('creator'),
        ['-layers', ws.layers, '-app', ws.app, '-buildpacks', ws.buildpacks, '-platform', ws.platform, '-build-config', ws.buildConfig, '-order', join(ws.root, 'order.toml'), '-run-image', 'base:v1', '-launcher', launcher, '-uid', '1000', '-gid', '1000', '-layout', '-layout-dir', layoutDir, 'team/app:v1'],
        { env: { ...env, CNB_EXPERIMENTAL_MODE: 'quiet', CNB_EXTENSIONS_DIR: ws.extensions } },
      );
    };
    const switched = await create('test/slim');
    assert.equal(switched.code, 0, switched.stderr + switched.stdout);
    assert.match(switched.stdout, /Run image .*base\/slim@sha256:\S+ \(chosen by an extension\)/);
    await runOk('umoci', ['unpack', '--image', `${join(layoutDir, 'index.docker.io', 'team', 'app', 'v1')}:v1`, join(ws.root, 'bundle')]);
    assert.equal((await readFile(join(ws.root, 'bundle', 'rootfs', 'etc', 'os-release'), 'utf8')).trim(), 'ID=slim', 'the app image sits on the run image the extension chose');
    const refused = await create('test/apt');
    assert.equal(refused.code, 102, refused.stderr + refused.stdout);
    assert.match(refused.stderr, /extension test\/apt: its build\.Dockerfile changes the build image, and this platform cannot apply Dockerfiles \(strata build can\)/);
  }));

test('registry phases run as a uid with no passwd entry and no HOME: no stored logins, no failure', () =>
  withWorkspace(async (ws) => {
    const base = await makeLayoutImage(join(ws.root, 'run1'), 'run', [{ 'etc/os-release': 'ID=debian\n' }]);
    await copyImage(base.layout, 'run', new RegistryClient(fx.reg.host).repository('nohome/run'), 'v1');
    const uid = 4321;
    await assert.rejects(runOk('getent', ['passwd', String(uid)]), 'the uid has no passwd entry');
    await runOk('chmod', ['755', ws.root]);
    await runOk('chown', ['-R', `${uid}:${uid}`, ws.layers]);
    const r = await run(join(await lifecycleRoot(), 'dist', 'lifecycle', 'analyzer'), ['-layers', ws.layers, '-run-image', `${fx.reg.host}/nohome/run:v1`, '-uid', String(uid), '-gid', String(uid), `${fx.reg.host}/nohome/app:v1`], {
      uid,
      gid: uid,
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', CNB_PLATFORM_API: '0.15' },
    });
    assert.equal(r.code, 0, r.stderr + r.stdout);
    assert.match(await readFile(join(ws.layers, 'analyzed.toml'), 'utf8'), /nohome\/run@sha256:/);
  }));

test('the same build under umask 077 and 022 gives the same image: every layer, the config and SBOM layers included', () =>
  withWorkspace(async (ws) => {
    const client = new RegistryClient(fx.reg.host);
    const base = await makeLayoutImage(join(ws.root, 'run1'), 'run', [{ 'etc/os-release': 'ID=debian\n' }]);
    await copyImage(base.layout, 'run', client.repository('umask/run'), 'v1');
    await writeBuildpack(ws.buildpacks, {
      id: 'test/umask',
      build: `mkdir -p "$CNB_LAYERS_DIR/rt/bin"; echo hi > "$CNB_LAYERS_DIR/rt/file"; printf '#!/bin/sh\\n' > "$CNB_LAYERS_DIR/rt/bin/x"; chmod +x "$CNB_LAYERS_DIR/rt/bin/x"
printf '[types]\\nlaunch = true\\n' > "$CNB_LAYERS_DIR/rt.toml"; echo '{"bomFormat":"CycloneDX"}' > "$CNB_LAYERS_DIR/rt.sbom.cdx.json"
printf '[[processes]]\\ntype = "web"\\ncommand = ["true"]\\ndefault = true\\n' > "$CNB_LAYERS_DIR/launch.toml"`,
      buildpackKeys: 'sbom-formats = ["application/vnd.cyclonedx+json"]',
    });
    await ws.order([['test/umask']]);
    await runOk('sh', ['-c', `echo app > ${ws.app}/index.txt`]);
    await runOk('chown', ['-R', '1000:1000', ws.root]);
    const launcher = join(PROJECT_ROOT, 'dist', 'lifecycle', 'launcher');
    const digests: string[] = [];
    for (const mask of ['077', '022']) {
      await runOk('sh', ['-c', `rm -rf ${ws.layers}/*`]);
      const argv = ['-layers', ws.layers, '-app', ws.app, '-buildpacks', ws.buildpacks, '-platform', ws.platform, '-build-config', ws.buildConfig, '-order', join(ws.root, 'order.toml'), '-run-image', `${fx.reg.host}/umask/run:v1`, '-launcher', launcher, '-uid', '1000', '-gid', '1000', `${fx.reg.host}/umask/app:${mask}`];
      const r = await run('sh', ['-c', `umask ${mask}; exec "$0" "$@"`, bin('creator'), ...argv], { env });
      assert.equal(r.code, 0, r.stderr + r.stdout);
      digests.push(/\*\*\* Digest: (sha256:[0-9a-f]+)/.exec(r.stdout)![1]!);
    }
    const [a, b] = await Promise.all(['077', '022'].map((t) => resolveImage(client.repository('umask/app'), t)));
    assert.deepEqual(a!.config.rootfs.diff_ids, b!.config.rootfs.diff_ids, 'every layer the same');
    assert.equal(digests[0], digests[1]);
  }));

test('SBOMs survive a rebuild that reuses a launch layer: the analyzer brings back the previous SBOM layer and the restorer puts it in place', () =>
  withWorkspace(async (ws) => {
    const base = await makeLayoutImage(join(ws.root, 'run1'), 'run', [{ 'etc/os-release': 'ID=debian\n' }]);
    await copyImage(base.layout, 'run', new RegistryClient(fx.reg.host).repository('sbom/run'), 'v1');
    await writeBuildpack(ws.buildpacks, {
      id: 'test/sbom',
      buildpackKeys: 'sbom-formats = ["application/vnd.cyclonedx+json"]',
      build: `L="$CNB_LAYERS_DIR"
if [ -f "$L/lib.toml" ]; then echo "lib kept from the previous image"; else mkdir -p "$L/lib"; echo so > "$L/lib/libx.so"; echo '{"bomFormat":"CycloneDX","components":[{"name":"libx"}]}' > "$L/lib.sbom.cdx.json"; fi
printf '[types]\\nlaunch = true\\n[metadata]\\nv = "1"\\n' > "$L/lib.toml"`,
    });
    await ws.order([['test/sbom']]);
    const app = `${fx.reg.host}/sbom/app:v1`;
    const common = ['-layers', ws.layers];
    const once = async (): Promise<string> => {
      assert.equal((await run(bin('analyzer'), [...common, '-run-image', `${fx.reg.host}/sbom/run:v1`, app], { env })).code, 0);
      assert.equal((await ws.phase('detector')).code, 0);
      const r = await run(bin('restorer'), common, { env });
      assert.equal(r.code, 0, r.stderr);
      const b = await ws.phase('builder');
      assert.equal(b.code, 0, b.stderr);
      const e = await run(bin('exporter'), [...common, '-app', ws.app, '-launcher', join(PROJECT_ROOT, 'dist', 'lifecycle', 'launcher'), '-uid', '1000', '-gid', '1000', app], { env });
      assert.equal(e.code, 0, e.stderr + e.stdout);
      return b.stdout;
    };
    await once();
    await runOk('sh', ['-c', `rm -rf ${ws.layers}/*`]);
    assert.match(await once(), /lib kept from the previous image/);
    const out = join(ws.root, 'out');
    await copyImage(new RegistryClient(fx.reg.host).repository('sbom/app'), 'v1', await OciLayout.open(out, { create: true }), 'v1');
    await runOk('umoci', ['unpack', '--image', `${out}:v1`, join(ws.root, 'bundle')]);
    const sbom = await readFile(join(ws.root, 'bundle', 'rootfs', ws.layers, 'sbom', 'launch', 'test_sbom', 'lib', 'sbom.cdx.json'), 'utf8');
    assert.match(sbom, /"libx"/);
  }));

test('rebase of an index: each platform\'s image onto the run image of its platform, one new index; a platform the run image lacks refuses all', () =>
  withWorkspace(async (ws) => {
    await built(ws);
    const STRATA = join(PROJECT_ROOT, 'bin', 'strata');
    const cli = { env: { ...process.env, STRATA_HOME: join(ws.root, 'home') } };
    const reg = fx.reg.host;
    const client = new RegistryClient(reg);
    const runRepo = client.repository('mrun/run');
    const appRepo = client.repository('mapp/app');
    const platforms = [{ os: 'linux', architecture: 'amd64' }, { os: 'linux', architecture: 'arm64' }];
    // Run images v1 and v2, each an index of an amd64 and an arm64 image.
    for (const v of ['v1', 'v2']) {
      for (const p of platforms) {
        const img = await makeLayoutImage(join(ws.root, `run-${v}-${p.architecture}`), 'run', [{ 'etc/os-release': `ID=debian\nARCH=${p.architecture}\n` }, { 'usr/lib/libssl.so': `${v}-${p.architecture}` }], {}, [], p);
        await copyImage(img.layout, 'run', runRepo, `${v}-${p.architecture}`);
      }
      await runOk(STRATA, ['manifest', 'create', `${reg}/mrun/run:${v}`, `${reg}/mrun/run:${v}-amd64`, `${reg}/mrun/run:${v}-arm64`, '--publish'], cli);
    }
    // The app built on v1 for each platform, then put in one index.
    for (const p of platforms) {
      const runImage = await resolveImage(runRepo, 'v1', p);
      await exportImage({ ...(await inputs(ws, join(ws.root, `run-v1-${p.architecture}`), [{ store: appRepo, tag: p.architecture, name: `app:${p.architecture}` }])), runImage, runImageName: `${reg}/mrun/run:v1`, runImageReference: `${reg}/mrun/run@${runImage.manifest.digest}`, runImageMirrors: [] });
    }
    await runOk(STRATA, ['manifest', 'create', `${reg}/mapp/app:v1`, `${reg}/mapp/app:amd64`, `${reg}/mapp/app:arm64`, '--publish'], cli);

    const out = await runOk(STRATA, ['rebase', `${reg}/mapp/app:v1`, '--publish', '--run-image', `${reg}/mrun/run:v2`], cli);
    assert.match(out, /\(2 platforms\)/);
    const index = JSON.parse(await runOk('skopeo', ['inspect', '--tls-verify=false', '--raw', `docker://${reg}/mapp/app:v1`])) as { manifests: { digest: string; platform: { architecture: string } }[] };
    assert.deepEqual(index.manifests.map((m) => m.platform.architecture), ['amd64', 'arm64']);
    for (const p of platforms) {
      const rebased = await resolveImage(appRepo, 'v1', p);
      const runV2 = await resolveImage(runRepo, 'v2', p);
      const before = await resolveImage(appRepo, p.architecture);
      assert.equal(rebased.config.architecture, p.architecture);
      assert.deepEqual(rebased.config.rootfs.diff_ids.slice(0, 2), runV2.config.rootfs.diff_ids, `${p.architecture}: its own platform's new base`);
      assert.deepEqual(rebased.config.rootfs.diff_ids.slice(2), before.config.rootfs.diff_ids.slice(2), `${p.architecture}: app layers kept`);
      assert.match(out, new RegExp(`linux/${p.architecture} onto .*mrun/run@${runV2.manifest.digest}`));
    }

    // A run image with no arm64 image: the arm64 entry cannot move, so the index stays as it was.
    const amdOnly = await makeLayoutImage(join(ws.root, 'run-v3'), 'run', [{ 'etc/os-release': 'ID=debian\n' }, { 'usr/lib/libssl.so': 'v3' }], {}, [], platforms[0]);
    await copyImage(amdOnly.layout, 'run', runRepo, 'v3');
    const digestBefore = (await runOk(STRATA, ['image', 'digest', `${reg}/mapp/app:v1`], cli)).trim();
    const refused = await run(STRATA, ['rebase', `${reg}/mapp/app:v1`, '--publish', '--run-image', `${reg}/mrun/run:v3`], cli);
    assert.notEqual(refused.code, 0);
    assert.equal(refused.stderr.trim().split('\n').length, 1, refused.stderr);
    assert.match(refused.stderr, /linux\/amd64, but .*\(linux\/arm64\) is linux\/arm64/);
    assert.equal((await runOk(STRATA, ['image', 'digest', `${reg}/mapp/app:v1`], cli)).trim(), digestBefore);
  }));
