import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { registryFixture } from '../harness/registry.js';
import { run, runOk } from '../harness/proc.js';
import { makeLayoutImage } from '../harness/images.js';
import { PROJECT_ROOT } from '../../src/version.js';

const STRATA = join(PROJECT_ROOT, 'bin', 'strata');
const fx = registryFixture();

interface Index {
  mediaType: string;
  manifests: { digest: string; platform: { os: string; architecture: string; variant?: string }; annotations?: Record<string, string> }[];
}

test('manifest create, annotate, inspect, push, rm, remove and add: an index of an amd64 and an arm64 image that skopeo reads per platform', async () => {
  const home = join(fx.work, 'home');
  await mkdir(home, { recursive: true });
  const env = { env: { ...process.env, STRATA_HOME: home } };
  const strata = (args: string[]) => run(STRATA, args, env);
  const ok = (args: string[]) => runOk(STRATA, args, env);
  const reg = fx.reg.host;
  // amd64 in the index's own repository; arm64 in an OCI layout (copied in on push) and in another repository (mounted).
  const amd = await makeLayoutImage(join(fx.work, 'amd'), 'v1', [{ 'etc/arch': 'amd64\n' }], {}, [], { os: 'linux', architecture: 'amd64' });
  const arm = await makeLayoutImage(join(fx.work, 'arm'), 'v1', [{ 'etc/arch': 'arm64\n' }], {}, [], { os: 'linux', architecture: 'arm64' });
  await ok(['image', 'copy', `oci:${join(fx.work, 'amd')}:v1`, `${reg}/multi/app:amd64`]);
  await ok(['image', 'copy', `oci:${join(fx.work, 'arm')}:v1`, `${reg}/multi/other:arm64`]);
  const list = `${reg}/multi/app:latest`;

  const created = await ok(['manifest', 'create', list, `${reg}/multi/app:amd64`, `oci:${join(fx.work, 'arm')}:v1`]);
  assert.match(created, /linux\/amd64, linux\/arm64/);
  // Kept locally: nothing is in the registry until the push.
  assert.notEqual((await run('skopeo', ['inspect', '--tls-verify=false', '--raw', `docker://${list}`])).code, 0);
  const again = await strata(['manifest', 'create', list, `${reg}/multi/app:amd64`]);
  assert.notEqual(again.code, 0);
  assert.equal(again.stderr.trim().split('\n').length, 1, again.stderr);
  assert.match(again.stderr, /exists locally/);

  await ok(['manifest', 'annotate', list, arm.digest, '--variant', 'v8', '--annotations', 'org.example.note=arm']);
  const local = JSON.parse(await ok(['manifest', 'inspect', list])) as Index;
  assert.equal(local.mediaType, 'application/vnd.oci.image.index.v1+json');
  assert.deepEqual(local.manifests.map((m) => m.digest), [amd.digest, arm.digest]);
  assert.deepEqual(local.manifests[1]!.platform, { os: 'linux', architecture: 'arm64', variant: 'v8' });
  assert.equal(local.manifests[1]!.annotations?.['org.example.note'], 'arm');

  const pushed = await ok(['manifest', 'push', list]);
  assert.match(pushed, /1 image\(s\) copied/);
  const raw = JSON.parse(await runOk('skopeo', ['inspect', '--tls-verify=false', '--raw', `docker://${list}`])) as Index;
  assert.deepEqual(raw, local);
  for (const [arch, dir] of [['amd64', 'amd'], ['arm64', 'arm']] as const) {
    const one = JSON.parse(await runOk('skopeo', ['inspect', '--tls-verify=false', '--override-os', 'linux', '--override-arch', arch, `docker://${list}`])) as { Layers: string[]; Architecture: string };
    const own = JSON.parse(await ok(['image', 'manifest', `oci:${join(fx.work, dir)}:v1`])) as { layers: { digest: string }[] };
    assert.equal(one.Architecture, arch);
    assert.deepEqual(one.Layers, [own.layers[0]!.digest], `skopeo picks the ${arch} image`);
  }
  // Every image of the index is in its repository: a copy of all of it succeeds.
  await runOk('skopeo', ['copy', '--all', '--src-tls-verify=false', `docker://${list}`, `oci:${join(fx.work, 'copied')}:all`]);
  // The same list pushes to the same digest.
  const digest = (await ok(['image', 'digest', list])).trim();
  await ok(['manifest', 'push', list, '--purge']);
  assert.equal((await ok(['image', 'digest', list])).trim(), digest);
  assert.deepEqual(await readdir(join(home, 'manifests')), [], '--purge removes the local list');

  // A list only in its registry is brought here by add; rm takes an entry out; remove deletes the local list.
  await ok(['manifest', 'add', list, `${reg}/multi/other:arm64`]);
  assert.equal((JSON.parse(await ok(['manifest', 'inspect', list])) as Index).manifests.length, 2, 'the same arm64 image added again replaces its entry');
  await ok(['manifest', 'rm', list, amd.digest]);
  assert.deepEqual((JSON.parse(await ok(['manifest', 'inspect', list])) as Index).manifests.map((m) => m.digest), [arm.digest]);
  const missing = await strata(['manifest', 'rm', list, `sha256:${'0'.repeat(64)}`]);
  assert.notEqual(missing.code, 0);
  assert.match(missing.stderr, /has no entry sha256:0{64}/);
  await ok(['manifest', 'remove', list]);
  // Without a local list, inspect shows the index its registry has.
  assert.equal((JSON.parse(await ok(['manifest', 'inspect', list])) as Index).manifests.length, 2);

  // --format docker: a Docker manifest list, pushed straight away with --publish.
  const docker = `${reg}/multi/app:docker`;
  await ok(['manifest', 'create', docker, `${reg}/multi/app:amd64`, '--format', 'docker', '--publish']);
  assert.equal((JSON.parse(await runOk('skopeo', ['inspect', '--tls-verify=false', '--raw', `docker://${docker}`])) as Index).mediaType, 'application/vnd.docker.distribution.manifest.list.v2+json');
  assert.deepEqual(await readdir(join(home, 'manifests')), [], '--publish keeps no local copy');

  // Mistakes are one line naming the flag or the list.
  for (const [args, line] of [
    [['manifest', 'create', `${reg}/multi/x:1`, `${reg}/multi/app:amd64`, '--format', 'xml'], /--format "xml": expected oci or docker/],
    [['manifest', 'annotate', `${reg}/multi/x:1`, amd.digest, '--arch', 'arm64'], /no local manifest list .*multi\/x:1/],
    [['manifest', 'annotate', list, amd.digest], /nothing to change/],
    [['manifest', 'annotate', list, amd.digest, '--annotations', 'novalue'], /--annotations "novalue": expected KEY=VALUE/],
    [['manifest', 'remove', `${reg}/multi/x:1`], /no local manifest list/],
  ] as const) {
    const r = await strata([...args]);
    assert.notEqual(r.code, 0, args.join(' '));
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.match(r.stderr, line);
  }
});
