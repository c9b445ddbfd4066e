// kp's ways into the fleet, for people without YAML: `fleet import` of kp's dependency descriptor, `fleet image
// create|patch|save` (a local path uploaded as a source image), and the views kp has: builders, stacks, stores,
// secrets, build status. Plus what a new user runs into: empty and oversized files, a log piped into head.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { registryFixture } from '../harness/registry.js';
import { run } from '../harness/proc.js';
import { fleetWorld, layerBuild, type FleetWorld } from '../harness/fleet.js';
import { STRATA } from '../harness/probe.js';
import type { BuildRecord } from '../../src/fleet/store.js';

const fx = registryFixture();
let setup: Promise<FleetWorld> | undefined;
const ready = (): Promise<FleetWorld> =>
  (setup ??= (async () => {
    const w = await fleetWorld(fx.work, fx.reg.host);
    await w.pushBuildpack('hello', 'test/hello', '1.0.0', '[ -f hello.txt ]', `echo "A=\${A:-unset} B=\${B:-unset}"\nif busybox grep -q SLOW /workspace/hello.txt; then echo "slow build"; busybox sleep 8; fi\n${layerBuild('hello.txt')}`);
    await w.pushBuildpack('other', 'test/other', '1.0.0', '[ -f other.txt ]', layerBuild('other.txt'));
    return w;
  })());

async function ok(w: FleetWorld, args: string[]): Promise<string> {
  const r = await w.strata(args);
  assert.equal(r.code, 0, `strata ${args.join(' ')}: ${r.stdout}${r.stderr}`);
  return r.stdout;
}

async function builds(w: FleetWorld, image: string): Promise<BuildRecord[]> {
  return JSON.parse(await ok(w, ['fleet', 'builds', image, '-o', 'json'])) as BuildRecord[];
}

test("fleet import takes kp's dependency descriptor: stacks (id from the build image), stores, buildpacks and cluster builders, with kp's default names", { timeout: 300_000 }, async () => {
  const w = await ready();
  const file = join(fx.work, 'deps.yaml');
  await writeFile(
    file,
    `apiVersion: kp.kpack.io/v1
kind: DependencyDescriptor
defaultClusterBuilder: base
defaultClusterStack: bookworm
clusterBuildpacks:
- name: hello
  image: ${fx.reg.host}/bp/hello:1
clusterStores:
- name: store
  sources:
  - image: ${fx.reg.host}/bp/other:1
clusterStacks:
- name: bookworm
  buildImage:
    image: ${fx.reg.host}/base:build
  runImage:
    image: ${fx.reg.host}/base:run
clusterBuilders:
- name: base
  clusterStack: bookworm
  clusterStore: store
  order:
  - group:
    - id: test/other
  - group:
    - id: test/hello
`,
  );
  const missing = await w.strata(['fleet', 'import', '-f', file]);
  assert.equal(missing.stderr.trim(), 'strata: error: --default-repository is needed for cluster builders (kp pushes them to <repository>:clusterbuilder-<name>)');
  const out = await ok(w, ['fleet', 'import', '-f', file, '--default-repository', `${fx.reg.host}/kp`]);
  for (const line of ['ClusterBuildpack hello created', 'ClusterStore store created', 'ClusterStack bookworm created', 'ClusterStack default created', 'ClusterBuilder base created', 'ClusterBuilder default created']) assert.match(out, new RegExp(line));
  await ok(w, ['fleet', 'reconcile', '--once']);
  const stacks = await ok(w, ['fleet', 'stacks']);
  assert.match(stacks, /^NAME +READY +ID +RUN IMAGE\n/);
  assert.match(stacks, /bookworm +True +test\.stack +.*\/base@sha256:/);
  const builders = await ok(w, ['fleet', 'builders']);
  assert.match(builders, new RegExp(`ClusterBuilder default +True +bookworm +${fx.reg.host.replace(/\./g, '\\.')}/kp@sha256:`));
  const detail = await ok(w, ['fleet', 'builders', 'default']);
  assert.match(detail, /Status: +Ready/);
  assert.match(detail, /test\/hello +1\.0\.0/);
  assert.match(detail, /Group #2\n +test\/hello@1\.0\.0/);
  assert.match(await ok(w, ['fleet', 'stores', 'store']), /test\/other +1\.0\.0/);
  assert.match(await ok(w, ['fleet', 'buildpacks']), /ClusterBuildpack hello +True/);
});

test("fleet image create, patch and save as kp's: the resource is printed on --output, checked on --dry-run, a local path is uploaded; build status tells a build's story", { timeout: 300_000 }, async () => {
  const w = await ready();
  const repo = await w.repo('kpapp', { 'hello.txt': 'kp app' });
  const dry = await ok(w, ['fleet', 'image', 'create', 'kpapp', '--tag', `${fx.reg.host}/apps/kpapp`, '--git', repo, '--cluster-builder', 'default', '-e', 'A=1', '--output', 'yaml', '--dry-run']);
  assert.match(dry, /kind: Image\n/);
  assert.match(dry, /env:\n\s+- name: A\n\s+value: "1"/);
  assert.match(await ok(w, ['fleet', 'images']), /no images declared/, '--dry-run changed nothing');
  assert.match(await ok(w, ['fleet', 'image', 'create', 'kpapp', '--tag', `${fx.reg.host}/apps/kpapp`, '--git', repo, '-e', 'A=1']), /Image default\/kpapp created/);
  const again = await w.strata(['fleet', 'image', 'create', 'kpapp', '--tag', `${fx.reg.host}/apps/kpapp`, '--git', repo]);
  assert.equal(again.stderr.trim(), 'strata: error: Image default/kpapp exists; use strata fleet image patch (or save)');
  await ok(w, ['fleet', 'reconcile', '--once']);
  assert.match(await ok(w, ['fleet', 'logs', 'kpapp']), /A=1 B=unset/);
  assert.match(await ok(w, ['fleet', 'image', 'patch', 'kpapp', '-e', 'B=2', '-d', 'A']), /Image default\/kpapp configured/);
  await ok(w, ['fleet', 'reconcile', '--once']);
  const two = (await builds(w, 'kpapp')).find((b) => b.number === 2)!;
  assert.equal(`${two.reasons} ${two.status}`, 'CONFIG succeeded');
  assert.match(await ok(w, ['fleet', 'logs', 'kpapp', '-b', '2']), /A=unset B=2/);
  const status = await ok(w, ['fleet', 'build', 'status', 'kpapp']);
  assert.match(status, new RegExp(`Image: +${fx.reg.host.replace(/\./g, '\\.')}/apps/kpapp@sha256:[0-9a-f]{64}`));
  assert.match(status, /Status: +SUCCESS/);
  assert.match(status, /Reasons: +CONFIG\n +CONFIG: /);
  assert.match(status, /Run Image: +.*\/base@sha256:/);
  assert.match(status, /test\/hello +1\.0\.0/);
  for (const step of ['ANALYZING', 'DETECTING', 'RESTORING', 'BUILDING', 'EXPORTING']) assert.match(status, new RegExp(`${step} +\\d`));
  assert.match(await ok(w, ['fleet', 'build', 'status', 'kpapp', '-b', '1']), /Build: +#1 \(build\)/);
  const none = await w.strata(['fleet', 'build', 'status', 'kpapp', '-b', '9']);
  assert.equal(none.stderr.trim(), 'strata: error: Image default/kpapp has no build #9');
  const tag = await w.strata(['fleet', 'image', 'save', 'kpapp', '--tag', `${fx.reg.host}/apps/other`]);
  assert.match(tag.stderr, /an Image's tag cannot change, as in kpack/);

  const local = join(fx.work, 'local-app');
  await mkdir(local, { recursive: true });
  await writeFile(join(local, 'hello.txt'), 'from a local path');
  assert.match(await ok(w, ['fleet', 'image', 'save', 'localapp', '--tag', `${fx.reg.host}/apps/localapp`, '--local-path', local]), /Image default\/localapp created/);
  await ok(w, ['fleet', 'reconcile', '--once']);
  assert.match(await ok(w, ['fleet', 'logs', 'localapp']), /built from from a local path/);
  assert.match(await ok(w, ['fleet', 'image', 'save', 'localapp', '--success-build-history-limit', '3']), /configured/);
});

test('what a new user runs into: an empty file, a huge file, a log piped into head, secrets listed by their keys only', { timeout: 120_000 }, async () => {
  const w = await ready();
  const empty = join(fx.work, 'empty.yaml');
  await writeFile(empty, '# nothing yet\n---\n');
  const e = await w.strata(['fleet', 'apply', '-f', empty]);
  assert.equal(e.code, 1);
  assert.equal(e.stderr.trim(), `strata: error: -f ${empty}: no resources in it (an empty file, or only comments)`);
  const huge = join(fx.work, 'huge.yaml');
  await writeFile(huge, `# ${'x'.repeat(6 << 20)}\n`);
  const h = await w.strata(['fleet', 'apply', '-f', huge]);
  assert.equal(h.code, 1);
  assert.match(h.stderr.trim(), /^strata: error: -f .*huge\.yaml: 6\.0 MiB is more than the 4 MiB one fleet apply takes; split it/);
  const piped = await run('bash', ['-c', `set -o pipefail; "${STRATA}" fleet logs kpapp | head -1; echo "exit \${PIPESTATUS[0]}"`], { env: w.env });
  assert.equal(piped.stderr, '', 'no stack trace when the reader goes away');
  assert.match(piped.stdout, /^===> BUILD/);
  const secret = join(fx.work, 'secret.yaml');
  await writeFile(secret, 'apiVersion: v1\nkind: Secret\nmetadata:\n  name: reg\n  annotations: {kpack.io/docker: registry.example}\ntype: kubernetes.io/basic-auth\nstringData: {username: me, password: hunter2-planted}\n');
  await ok(w, ['fleet', 'apply', '-f', secret]);
  const listed = await ok(w, ['fleet', 'secrets']);
  assert.match(listed, /default\/reg +kubernetes\.io\/basic-auth +docker registry\.example +password, username/);
  const json = await ok(w, ['fleet', 'secrets', 'reg', '-o', 'json']);
  assert.ok(!json.includes('hunter2-planted') && !listed.includes('hunter2-planted'));
  const bp = join(fx.work, 'bp.yaml');
  for (const [image, why] of [[`${fx.reg.host}/bp/nope:1`, /not found|manifest unknown/i], [`${fx.reg.host}/base:run`, /not a buildpackage/]] as const) {
    await writeFile(bp, `apiVersion: kpack.io/v1alpha2\nkind: ClusterBuildpack\nmetadata: {name: broken}\nspec: {image: "${image}"}\n`);
    const r = await w.strata(['fleet', 'apply', '-f', bp]);
    assert.equal(r.code, 1);
    assert.match(r.stderr.trim(), new RegExp(`^strata: error: ${bp.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')} \\(ClusterBuildpack broken\\): spec\\.image: .* cannot be read as a buildpackage \\(.*\\); nothing was applied$`));
    assert.match(r.stderr, why);
  }
  const noAnnotation = join(fx.work, 'bare.yaml');
  await writeFile(noAnnotation, 'apiVersion: v1\nkind: Secret\nmetadata: {name: bare}\ntype: kubernetes.io/basic-auth\nstringData: {username: me, password: x}\n');
  const bare = await w.strata(['fleet', 'apply', '-f', noAnnotation]);
  assert.equal(bare.stderr.trim(), `strata: error: ${noAnnotation} (Secret default/bare): metadata.annotations: a kubernetes.io/basic-auth Secret is used by the fleet only with a kpack.io/git: URL or kpack.io/docker: REGISTRY annotation saying where`);
});

test("a ClusterLifecycle puts strata's lifecycle image into the builders; a new lifecycle rebuilds their images with reason LIFECYCLE", { timeout: 300_000 }, async () => {
  const w = await ready();
  const made = await ok(w, ['builder', 'lifecycle-image', `${fx.reg.host}/lifecycle:1`, '--publish']);
  assert.match(made, /Lifecycle image .* \(strata [\d.]+\) saved/);
  const file = join(fx.work, 'lifecycle.yaml');
  const apply = async (tag: string) => {
    await writeFile(file, `apiVersion: kpack.io/v1alpha2\nkind: ClusterLifecycle\nmetadata: {name: default-lifecycle}\nspec:\n  image: ${fx.reg.host}/lifecycle:${tag}\n`);
    await ok(w, ['fleet', 'apply', '-f', file]);
    await ok(w, ['fleet', 'reconcile', '--once']);
  };
  await apply('1');
  assert.match(await ok(w, ['fleet', 'lifecycles']), /default-lifecycle +True +[\d.]+ +.*\/lifecycle@sha256:/);
  assert.match(await ok(w, ['fleet', 'builders', 'default']), /Lifecycle: +[\d.]+ \(.*\/lifecycle@sha256:/);
  const first = (await builds(w, 'kpapp'))[0]!;
  assert.equal(`${first.reasons} ${first.status}`, 'LIFECYCLE succeeded');

  // The same lifecycle under a new version label: another lifecycle, as far as the fleet can tell.
  const { RegistryClient } = await import('../../src/oci/registry/client.js');
  const { resolveImage } = await import('../../src/oci/image.js');
  const { writeImage } = await import('../../src/oci/mutate.js');
  const repo = new RegistryClient(fx.reg.host).repository('lifecycle');
  const img = await resolveImage(repo, '1');
  const labels = { ...img.config.config!.Labels!, 'io.buildpacks.lifecycle.version': '9.9.9' };
  await writeImage(repo, { ...img.config, config: { ...img.config.config, Labels: labels } }, img.manifest.manifest, '2');
  await apply('2');
  const second = (await builds(w, 'kpapp'))[0]!;
  assert.equal(`${second.reasons} ${second.status}`, 'LIFECYCLE succeeded');
  const change = second.changes.find((c) => c.reason === 'LIFECYCLE')!;
  assert.match(String(change.new), /^9\.9\.9 /);
});

test('a reconcile --once that is building holds no other command off: listings answer and changes apply at once; a second reconcile says who runs the fleet', { timeout: 300_000 }, async () => {
  const w = await ready();
  const repo = await w.repo('slowpoke', { 'hello.txt': 'SLOW' });
  await ok(w, ['fleet', 'image', 'create', 'slowpoke', '--tag', `${fx.reg.host}/apps/slowpoke`, '--git', repo]);
  const { spawn } = await import('node:child_process');
  const pass = spawn(STRATA, ['fleet', 'reconcile', '--once'], { env: w.env, stdio: 'ignore' });
  const done = new Promise<number | null>((r) => pass.once('close', r));
  for (let i = 0; i < 300; i++) {
    if ((await w.strata(['fleet', 'logs', 'slowpoke'])).stdout.includes('slow build')) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  const t0 = Date.now();
  assert.match(await ok(w, ['fleet', 'images']), /default\/slowpoke +Unknown/);
  assert.match(await ok(w, ['fleet', 'image', 'patch', 'slowpoke', '-e', 'C=3']), /configured/);
  assert.ok(Date.now() - t0 < 5000, `listing and patching took ${Date.now() - t0} ms while a build ran`);
  const second = await w.strata(['fleet', 'reconcile', '--once']);
  assert.equal(second.code, 1);
  assert.match(second.stderr, /another strata fleet reconcile or serve \(process \d+\) is running the fleet in .*; it picks up changes itself/);
  assert.equal(await done, 0);
});
