// The fleet end to end on one machine, with `strata fleet reconcile --once` as cron would run it: a real registry,
// real git repositories, real builds. Steps build on each other, in order.

import type { BuildRecord } from '../../src/fleet/store.js';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { registryFixture } from '../harness/registry.js';
import { runOk } from '../harness/proc.js';
import { fleetWorld, layerBuild, type FleetWorld } from '../harness/fleet.js';
import { sha256 } from '../../src/oci/digest.js';
import { RegistryClient } from '../../src/oci/registry/client.js';
import { copyImage } from '../../src/oci/copy.js';

const fx = registryFixture();
const ctx = {} as { w: FleetWorld; yaml: string };
let setup: Promise<void> | undefined;
const ready = (): Promise<void> => (setup ??= prepare());

async function prepare(): Promise<void> {
  const w = await fleetWorld(fx.work, fx.reg.host);
  await w.pushBuildpack('hello', 'test/hello', '1.0.0', '[ -f hello.txt ]', layerBuild('hello.txt'));
  await w.pushBuildpack('other', 'test/other', '1.0.0', '[ -f other.txt ]', layerBuild('other.txt'));
  const repos = { a: await w.repo('a', { 'hello.txt': 'A1' }), b: await w.repo('b', { 'hello.txt': 'B1' }), c: await w.repo('c', { 'other.txt': 'C1' }) };
  ctx.yaml = join(fx.work, 'fleet.yaml');
  await writeFile(ctx.yaml, w.yaml(Object.entries(repos).map(([name, repo]) => ({ name, repo }))));
  ctx.w = w;
}

type BuildRow = BuildRecord;

async function builds(): Promise<BuildRow[]> {
  return JSON.parse((await ctx.w.strata(['fleet', 'builds', '-o', 'json'])).stdout) as BuildRow[];
}

/** Runs one pass and returns the builds it made: `image#number kind reasons status`, sorted. */
async function reconcile(): Promise<string[]> {
  const before = new Set((await builds()).map((b) => `${b.image}#${b.number}`));
  const r = await ctx.w.strata(['fleet', 'reconcile', '--once']);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  return (await builds())
    .filter((b) => !before.has(`${b.image}#${b.number}`))
    .map((b) => `${b.image}#${b.number} ${b.kind} ${b.reasons} ${b.status}`)
    .sort();
}

test('fleet apply then reconcile: every image builds, with reason CONFIG, and its tags are in the registry', { timeout: 300_000 }, async () => {
  await ready();
  const applied = await ctx.w.strata(['fleet', 'apply', '-f', ctx.yaml]);
  assert.equal(applied.code, 0, applied.stderr);
  assert.match(applied.stdout, /Image default\/a created/);
  assert.deepEqual(await reconcile(), ['a#1 build CONFIG succeeded', 'b#1 build CONFIG succeeded', 'c#1 build CONFIG succeeded']);
  const images = JSON.parse((await ctx.w.strata(['fleet', 'images', '-o', 'json'])).stdout) as { name: string; ready: string; latestImage: string; latestReason: string }[];
  const records = await builds();
  for (const i of images) {
    assert.equal(i.ready, 'True', i.name);
    assert.equal(i.latestReason, 'CONFIG');
    const digest = i.latestImage.split('@')[1]!;
    const numbered = records.find((b) => b.image === i.name)!.tags[1]!;
    assert.match(numbered, new RegExp(`/apps/${i.name}:b1\\.\\d{8}\\.\\d{6}$`), "kpack's BuildNumber tag shape");
    const raw = await runOk('skopeo', ['inspect', '--tls-verify=false', '--raw', `docker://${numbered}`]);
    assert.equal(sha256(Buffer.from(raw)), digest, 'BuildNumber tagging pushed tag:b1.<date>.<time>');
  }
  const c = (await builds()).find((b) => b.image === 'c')!;
  assert.deepEqual(c.result?.usedBuildpacks, [{ id: 'test/other', version: '1.0.0' }], 'the buildpacks each build used are on record');
  assert.match((await ctx.w.strata(['fleet', 'logs', 'a'])).stdout, /built from A1/);
  assert.deepEqual(await reconcile(), [], 'a second pass with no change builds nothing');
});

test('a commit rebuilds only its image, with reason COMMIT and the old and new commits', { timeout: 300_000 }, async () => {
  await ready();
  const before = (await builds()).find((b) => b.image === 'a')!;
  const commit = await ctx.w.commit('a', { 'hello.txt': 'A2' });
  assert.deepEqual(await reconcile(), ['a#2 build COMMIT succeeded']);
  const a2 = (await builds()).find((b) => b.image === 'a' && b.number === 2)!;
  assert.equal(a2.changes[0]!.new, commit);
  assert.notEqual(a2.changes[0]!.old, commit);
  assert.match((await ctx.w.strata(['fleet', 'logs', 'a', '-b', '2'])).stdout, /built from A2/);
  assert.notEqual(a2.result?.digest, before.result?.digest);
});

test('a patched run image rebases every image: STACK, only a config and manifests uploaded, no layer', { timeout: 300_000 }, async () => {
  await ready();
  const mark = (await fx.reg.requests()).length;
  await ctx.w.pushRun({ 'etc/patched': 'yes' });
  const pushed = (await fx.reg.requests()).length;
  assert.deepEqual(await reconcile(), ['a#3 rebase STACK succeeded', 'b#2 rebase STACK succeeded', 'c#2 rebase STACK succeeded']);
  const log = (await fx.reg.requests()).slice(pushed);
  assert.ok(mark < pushed);
  for (const app of ['a', 'b', 'c']) {
    const uploads = log.filter((l) => l.startsWith(`PUT /v2/apps/${app}/blobs/uploads/`));
    assert.equal(uploads.length, 1, `${app}: one blob uploaded, the config (${uploads.join(', ')})`);
    assert.equal(log.filter((l) => l.startsWith(`PATCH /v2/apps/${app}/`)).length, 0);
    assert.ok(log.some((l) => l.startsWith(`PUT /v2/apps/${app}/manifests/`)), `${app}: manifests written`);
  }
  const stack = (await builds()).find((b) => b.image === 'b' && b.number === 2)!;
  assert.equal(stack.changes[0]!.reason, 'STACK');
  assert.match(String(stack.changes[0]!.new), /\/base@sha256:/);
  const ran = await runOk('skopeo', ['inspect', '--tls-verify=false', `docker://${fx.reg.host}/apps/b:latest`]);
  assert.match(ran, /io\.buildpacks\.lifecycle\.metadata/);
});

test('the same run image digest pushed again under its tag builds nothing (kpack#642)', { timeout: 120_000 }, async () => {
  await ready();
  const client = new RegistryClient(fx.reg.host);
  await copyImage(client.repository('base'), 'run', client.repository('base'), 'run');
  assert.deepEqual(await reconcile(), []);
});

test('a buildpack bump in the store rebuilds only the images that use that buildpack, with reason BUILDPACK', { timeout: 300_000 }, async () => {
  await ready();
  await ctx.w.pushBuildpack('other', 'test/other', '1.1.0', '[ -f other.txt ]', layerBuild('other.txt'));
  assert.deepEqual(await reconcile(), ['c#3 build BUILDPACK succeeded']);
  const c3 = (await builds()).find((b) => b.image === 'c' && b.number === 3)!;
  assert.deepEqual(c3.changes, [{ reason: 'BUILDPACK', old: [{ id: 'test/other', version: '1.0.0' }], new: [{ id: 'test/other', version: '1.1.0' }] }]);
  assert.deepEqual(c3.result?.usedBuildpacks, [{ id: 'test/other', version: '1.1.0' }]);
});

test('fleet trigger builds an image again with reason TRIGGER; fleet status tells its story', { timeout: 300_000 }, async () => {
  await ready();
  const t = await ctx.w.strata(['fleet', 'trigger', 'b']);
  assert.equal(t.code, 0, t.stderr);
  assert.deepEqual(await reconcile(), ['b#3 build TRIGGER succeeded']);
  const status = await ctx.w.strata(['fleet', 'status', 'b']);
  assert.match(status.stdout, /Status: +Ready/);
  assert.match(status.stdout, /Build Reason: +TRIGGER/);
  assert.match(status.stdout, new RegExp(`LatestImage: +${fx.reg.host.replace(/\./g, '\\.')}/apps/b@sha256:`));
  const unknown = await ctx.w.strata(['fleet', 'trigger', 'nope']);
  assert.equal(unknown.stderr.trim(), 'strata: error: no Image default/nope (see strata fleet images)');
});

test('bad YAML and broken references are one line naming the file and nothing is applied; a resource not declared yet is waited for, as on Kubernetes', { timeout: 60_000 }, async () => {
  await ready();
  const bad = join(fx.work, 'bad.yaml');
  await writeFile(bad, `apiVersion: kpack.io/v1alpha2\nkind: Image\nmetadata: {name: d}\nspec:\n  tag: ${fx.reg.host}/apps/d\n  builder: {kind: ClusterBuilder, name: builder}\n  source: {git: {url: /srv/x, revision: main}}\n---\napiVersion: kpack.io/v1alpha2\nkind: Image\nmetadata: {name: e}\nspec:\n  tagg: x\n`);
  const r = await ctx.w.strata(['fleet', 'apply', '-f', bad]);
  assert.equal(r.code, 1);
  assert.equal(r.stderr.trim(), `strata: error: ${bad} (document 2) (Image default/e): spec.tagg: unknown field (expected tag, builder, serviceAccountName, source, build, cache, successBuildHistoryLimit, failedBuildHistoryLimit, imageTaggingStrategy, additionalTags, defaultProcess, projectDescriptorPath, cosign)`);
  await writeFile(bad, `apiVersion: kpack.io/v1alpha2\nkind: Image\nmetadata: {name: d}\nspec:\n  tag: ${fx.reg.host}/apps/d\n  builder: {kind: ClusterBuilder, name: builder}\n  source: {git: {url: /srv/x, revision: main}}\n  build:\n    env:\n    - name: TOKEN\n      valueFrom: {secretKeyRef: {name: app-secrets, key: token}}\n`);
  const broken = await ctx.w.strata(['fleet', 'apply', '-f', bad]);
  assert.equal(broken.code, 1);
  assert.equal(broken.stderr.trim(), `strata: error: ${bad} (Image default/d): spec.build.env[0].valueFrom.secretKeyRef: Secret default/app-secrets is not declared (or mark it optional: true); nothing was applied`);
  const names = (JSON.parse((await ctx.w.strata(['fleet', 'images', '-o', 'json'])).stdout) as { name: string }[]).map((i) => i.name);
  assert.deepEqual(names, ['a', 'b', 'c']);
  await writeFile(bad, `apiVersion: kpack.io/v1alpha2\nkind: Image\nmetadata: {name: d}\nspec:\n  tag: ${fx.reg.host}/apps/d\n  builder: {kind: ClusterBuilder, name: missing}\n  source: {git: {url: /srv/x, revision: main}}\n`);
  const waiting = await ctx.w.strata(['fleet', 'apply', '-f', bad]);
  assert.equal(waiting.code, 0, waiting.stderr);
  assert.equal(waiting.stderr.trim(), `Warning: ${bad} (Image default/d): spec.builder names ClusterBuilder missing, which is not declared; it waits for it`);
  assert.equal((await ctx.w.strata(['fleet', 'delete', 'image', 'd'])).code, 0);
});

test('a rebase that cannot be done falls back to a full build: the app image gone from the registry is built again', { timeout: 300_000 }, async () => {
  await ready();
  const b = (await builds()).find((x) => x.image === 'b' && x.status === 'succeeded')!;
  const res = await fetch(`http://${fx.reg.host}/v2/apps/b/manifests/${b.result!.digest}`, { method: 'DELETE' });
  assert.equal(res.status, 202);
  await ctx.w.pushRun({ 'etc/patched': 'again' });
  const made = await reconcile();
  assert.deepEqual(made, ['a#4 rebase STACK succeeded', 'b#4 build STACK succeeded', 'c#4 rebase STACK succeeded']);
  assert.match((await ctx.w.strata(['fleet', 'logs', 'b', '-b', '4'])).stdout, /Rebase failed \(the image of build #\d+ .* is gone from its registry\); building instead/);
});
