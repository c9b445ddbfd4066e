import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { startPodmanService, type PodmanService } from '../harness/podman.js';
import { run, runOk, tempDir } from '../harness/proc.js';
import { makeLayoutImage } from '../harness/images.js';
import { PROJECT_ROOT } from '../../src/version.js';
import { EngineClient } from '../../src/oci/engine/client.js';
import { OciLayout } from '../../src/oci/layout.js';
import { resolveImage } from '../../src/oci/image.js';

const STRATA = join(PROJECT_ROOT, 'bin', 'strata');
let svc: PodmanService;
let work: { path: string; cleanup: () => Promise<void> };
before(async () => {
  svc = await startPodmanService();
  work = await tempDir();
});
after(async () => {
  await svc?.stop();
  await work?.cleanup();
});

test('strata loads an image into Podman through the Docker API, podman lists it, and strata reads it back with the same layers', async () => {
  const env = { ...process.env, DOCKER_HOST: svc.dockerHost };
  const src = join(work.path, 'src');
  await makeLayoutImage(src, 'v1', [{ 'etc/hello': 'hello' }, { 'app/data.bin': Buffer.alloc(200_000, 7) }], { 'io.strata.test': 'yes' });
  const original = await resolveImage(await OciLayout.open(src), 'v1');

  const load = await run(STRATA, ['image', 'copy', `oci:${src}:v1`, 'docker-daemon:strata/engine-test:v1'], { env });
  assert.equal(load.code, 0, load.stderr);
  assert.match(load.stdout, /image ID (sha256:)?[0-9a-f]{64}/);

  const listed = await svc.podman(['images', '--format', '{{.Repository}}:{{.Tag}}']);
  assert.match(listed, /strata\/engine-test:v1/);
  const engine = EngineClient.fromEnv(env);
  assert.ok((await engine.list()).some((i) => i.RepoTags?.some((t) => t.endsWith('strata/engine-test:v1'))));
  const inspected = await engine.inspect('strata/engine-test:v1');
  assert.deepEqual(inspected?.RootFS?.Layers, original.config.rootfs.diff_ids);
  assert.equal(inspected?.Config?.Labels?.['io.strata.test'], 'yes');

  const back = join(work.path, 'back');
  const read = await run(STRATA, ['image', 'copy', 'docker-daemon:strata/engine-test:v1', `oci:${back}:v1`], { env });
  assert.equal(read.code, 0, read.stderr);
  const copied = await resolveImage(await OciLayout.open(back), 'v1');
  assert.deepEqual(copied.config.rootfs.diff_ids, original.config.rootfs.diff_ids);
  assert.equal(copied.config.config?.Labels?.['io.strata.test'], 'yes');
  // umoci, an independent reader, unpacks what came out of the engine.
  await runOk('umoci', ['unpack', '--rootless', '--image', `${back}:v1`, join(work.path, 'bundle')]);
});

test('engine errors are one line: no engine at DOCKER_HOST, an image the engine does not have', async () => {
  const none = await run(STRATA, ['image', 'copy', 'docker-daemon:strata/x:v1', `oci:${join(work.path, 'x')}:v1`], { env: { ...process.env, DOCKER_HOST: 'unix:///nonexistent/docker.sock' } });
  assert.notEqual(none.code, 0);
  assert.equal(none.stderr.trim().split('\n').length, 1);
  assert.match(none.stderr, /cannot reach the container engine at unix:\/\/\/nonexistent\/docker\.sock .*DOCKER_HOST/);
  const missing = await run(STRATA, ['image', 'copy', 'docker-daemon:strata/not-there:v9', `oci:${join(work.path, 'y')}:v1`], { env: { ...process.env, DOCKER_HOST: svc.dockerHost } });
  assert.notEqual(missing.code, 0);
  assert.match(missing.stderr, /no image strata\/not-there:v9/);
});

test('where a build goes: with an engine at DOCKER_HOST strata says how to load the image; `config docker true` loads every local build there', { timeout: 300_000 }, async () => {
  const { probeBuilder } = await import('../harness/probe.js');
  const p = await probeBuilder(join(work.path, 'where'), {});
  const env = { ...p.env, DOCKER_HOST: svc.dockerHost };
  const plain = await run(STRATA, ['build', 'where-app', '--builder', p.builder, '--path', p.app], { env });
  assert.equal(plain.code, 0, plain.stderr + plain.stdout);
  assert.match(plain.stdout, /Successfully built image where-app \(the local store\)/);
  assert.match(plain.stdout, /to run it with the engine at unix:\/\/.*: strata image copy where-app docker-daemon:where-app/);
  await runOk(STRATA, ['config', 'docker', 'true'], { env });
  const loaded = await run(STRATA, ['build', 'where-app2', '--builder', p.builder, '--path', p.app], { env });
  assert.equal(loaded.code, 0, loaded.stderr + loaded.stdout);
  assert.doesNotMatch(loaded.stdout, /to run it with the engine/);
  assert.match(await svc.podman(['images', '--format', '{{.Repository}}:{{.Tag}}']), /where-app2:latest/);
});
