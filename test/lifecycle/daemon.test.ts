import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startPodmanService, type PodmanService } from '../harness/podman.js';
import { registryFixture } from '../harness/registry.js';
import { hostToolImageFiles, makeLayoutImage } from '../harness/images.js';
import { withWorkspace, writeBuildpack } from '../harness/buildpacks.js';
import { run, runOk } from '../harness/proc.js';
import { PROJECT_ROOT } from '../../src/version.js';
import { RegistryClient } from '../../src/oci/registry/client.js';
import { copyImage } from '../../src/oci/copy.js';
import { EngineClient } from '../../src/oci/engine/client.js';
import { LABEL, parseLifecycleMetadata } from '../../src/lifecycle/labels.js';

const fx = registryFixture();
let svc: PodmanService;
before(async () => {
  svc = await startPodmanService();
});
after(async () => {
  await svc?.stop();
});

test('-daemon: the analyzer reads the previous image from the engine, the exporter loads the app image into it (Podman), reusing layers', () =>
  withWorkspace(async (ws) => {
    const base = await makeLayoutImage(join(ws.root, 'run1'), 'run', [{ 'etc/os-release': 'ID=debian\n' }]);
    await copyImage(base.layout, 'run', new RegistryClient(fx.reg.host).repository('daemon/run'), 'v1');
    await writeBuildpack(ws.buildpacks, {
      id: 'test/simple',
      build: `mkdir -p "$CNB_LAYERS_DIR/rt"; echo hi > "$CNB_LAYERS_DIR/rt/file"; printf '[types]\\nlaunch = true\\n' > "$CNB_LAYERS_DIR/rt.toml"
printf '[[processes]]\\ntype = "web"\\ncommand = ["true"]\\ndefault = true\\n' > "$CNB_LAYERS_DIR/launch.toml"`,
    });
    await ws.order([['test/simple']]);
    const env = { ...process.env, CNB_PLATFORM_API: '0.15', DOCKER_HOST: svc.dockerHost, SOURCE_DATE_EPOCH: '1700000000' };
    const bin = (phase: string): string => join(PROJECT_ROOT, 'dist', 'lifecycle', phase);
    const name = 'strata/daemon-app:v1';
    const buildOnce = async (): Promise<string> => {
      const a = await run(bin('analyzer'), ['-layers', ws.layers, '-daemon', '-run-image', `${fx.reg.host}/daemon/run:v1`, name], { env });
      assert.equal(a.code, 0, a.stderr);
      assert.equal((await ws.phase('detector')).code, 0);
      assert.equal((await ws.phase('builder')).code, 0);
      const e = await run(bin('exporter'), ['-layers', ws.layers, '-app', ws.app, '-daemon', '-launcher', join(PROJECT_ROOT, 'dist', 'lifecycle', 'launcher'), '-uid', '1000', '-gid', '1000', name], { env });
      assert.equal(e.code, 0, e.stderr + e.stdout);
      return e.stdout;
    };
    const first = await buildOnce();
    assert.match(first, /Loaded strata\/daemon-app:v1 into unix:/);
    const report = await readFile(join(ws.layers, 'report.toml'), 'utf8');
    assert.match(report, /image-id = "(sha256:)?[0-9a-f]{64}"/);
    assert.match(await svc.podman(['images', '--format', '{{.Repository}}:{{.Tag}}']), /strata\/daemon-app:v1/);
    const inspected = await EngineClient.fromEnv(env).inspect(name);
    assert.ok(parseLifecycleMetadata(inspected?.Config?.Labels?.[LABEL.lifecycle] ?? undefined)?.buildpacks.length);
    assert.deepEqual(inspected?.Config?.Entrypoint, ['/cnb/process/web']);

    const analyzed1 = await readFile(join(ws.layers, 'analyzed.toml'), 'utf8');
    assert.doesNotMatch(analyzed1, /\[image\]/, 'no previous image the first time');
    await runOk('sh', ['-c', `rm -rf ${ws.layers}/*`]);
    const second = await buildOnce();
    assert.match(await readFile(join(ws.layers, 'analyzed.toml'), 'utf8'), /\[image\]\nreference = "/, 'the previous image found in the engine');
    assert.match(second, /Reused \d+ layer\(s\) from the previous image/);
  }));

test('strata build --docker loads the built image into the engine (Podman) as well', { timeout: 300_000 }, () =>
  withWorkspace(async (ws) => {
    const tools = await hostToolImageFiles();
    const images = join(ws.root, 'images');
    await makeLayoutImage(images, 'build', [tools], {}, ['CNB_USER_ID=1000', 'CNB_GROUP_ID=1000']);
    await makeLayoutImage(images, 'run', [tools]);
    const bp = await writeBuildpack(join(ws.root, 'bps'), { id: 'test/simple', build: `mkdir -p "$CNB_LAYERS_DIR/rt"; printf '[types]\\nlaunch = true\\n' > "$CNB_LAYERS_DIR/rt.toml"` });
    await writeFile(join(ws.root, 'builder.toml'), `[[buildpacks]]\nuri = "${bp}"\n[[order]]\n[[order.group]]\nid = "test/simple"\n[build]\nimage = "oci:${images}:build"\n[[run.images]]\nimage = "oci:${images}:run"\n`);
    const STRATA = join(PROJECT_ROOT, 'bin', 'strata');
    const env = { ...process.env, STRATA_HOME: join(ws.root, 'home'), DOCKER_HOST: svc.dockerHost };
    await runOk(STRATA, ['builder', 'create', `oci:${ws.root}/builder:1`, '--config', join(ws.root, 'builder.toml')], { env });
    const r = await run(STRATA, ['build', 'strata/docker-out:v1', '--builder', `oci:${ws.root}/builder:1`, '--path', ws.app, '--docker'], { env });
    assert.equal(r.code, 0, r.stderr + r.stdout);
    assert.match(r.stdout, /Loaded strata\/docker-out:v1 into unix:/);
    assert.match(await svc.podman(['images', '--format', '{{.Repository}}:{{.Tag}}']), /strata\/docker-out:v1/);

    // The docker executor: detect and build run as containers of the builder image in the engine.
    const viaEngine = await run(STRATA, ['build', 'strata/engine-built:v1', '--builder', `oci:${ws.root}/builder:1`, '--path', ws.app, '--executor', 'docker'], { env });
    assert.equal(viaEngine.code, 0, viaEngine.stderr + viaEngine.stdout);
    assert.match(viaEngine.stdout, /===> BUILDING[\s\S]*Running build for buildpack test\/simple@1\.0\.0/);
    assert.match(await svc.podman(['images', '--format', '{{.Repository}}:{{.Tag}}']), /strata-builder:[0-9a-f]{12}/, 'the builder was loaded into the engine');
  }));
