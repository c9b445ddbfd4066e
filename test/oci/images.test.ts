// Images by name, against two real registries (one standing in for a mirror) and the local store: mirrors, pull
// policies, run-image resolution and its target, and names into outputs.

import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { copyImage } from '../../src/oci/copy.js';
import { findImage, localImages, openByPolicy, openImage, outputFor, outputsFor, readers, resolveRunImage } from '../../src/oci/images.js';
import { RegistryClient } from '../../src/oci/registry/client.js';
import { imageTargetOf } from '../../src/spec/target.js';
import { makeLayoutImage } from '../harness/images.js';
import { tempDir } from '../harness/proc.js';
import { startRegistry, type TestRegistry } from '../harness/registry.js';

const ctx = {} as { origin: TestRegistry; mirror: TestRegistry; work: string; cleanup: () => Promise<void>; oldHome?: string };

before(async () => {
  ctx.origin = await startRegistry();
  ctx.mirror = await startRegistry();
  const t = await tempDir('strata-images-');
  ctx.work = t.path;
  ctx.cleanup = t.cleanup;
  ctx.oldHome = process.env.STRATA_HOME;
  process.env.STRATA_HOME = join(t.path, 'home');
});

after(async () => {
  if (ctx.oldHome === undefined) delete process.env.STRATA_HOME;
  else process.env.STRATA_HOME = ctx.oldHome;
  await ctx.origin.stop();
  await ctx.mirror.stop();
  await ctx.cleanup();
});

const silent = { debug: () => undefined, warn: () => undefined };

async function push(registry: TestRegistry, repo: string, tag: string, marker: string, labels: Record<string, string> = {}) {
  const img = await makeLayoutImage(join(ctx.work, `${registry.port}-${repo.replace(/\//g, '_')}-${tag}`), tag, [{ 'marker.txt': marker }], labels);
  await copyImage(img.layout, tag, new RegistryClient(registry.host).repository(repo), tag);
  return img.digest;
}

test('a registry mirror is read first; the reference recorded names the image as asked; without it in the mirror, its registry', async () => {
  const origin = await push(ctx.origin, 'team/app', 'v1', 'origin');
  const viaMirror = await push(ctx.mirror, 'team/app', 'v1', 'mirror');
  const options = { insecureRegistries: [ctx.origin.host, ctx.mirror.host], registryMirrors: { [ctx.origin.host]: ctx.mirror.host } };
  const opened = await openImage(`${ctx.origin.host}/team/app:v1`, options, silent);
  assert.equal(opened?.image.manifest.digest, viaMirror, 'read through the mirror');
  assert.equal(opened?.reference, `${ctx.origin.host}/team/app@${viaMirror}`);
  await push(ctx.origin, 'team/only', 'v1', 'only here');
  const fallback = await openImage(`${ctx.origin.host}/team/only:v1`, options, silent);
  assert.ok(fallback && !fallback.local);
  assert.notEqual(origin, viaMirror);
  assert.equal(await openImage(`${ctx.origin.host}/team/none:v1`, options, silent), undefined, 'absent is undefined, not an error');
});

test('pull policies: never reads only the local store, if-not-present prefers it, always prefers the registry', async () => {
  const remote = await push(ctx.origin, 'team/policy', 'v1', 'remote');
  const name = `${ctx.origin.host}/team/policy:v1`;
  const options = { insecureRegistries: [ctx.origin.host] };
  assert.equal(await openByPolicy(name, options, 'never'), undefined);
  const local = await makeLayoutImage(join(ctx.work, 'local'), 'v1', [{ 'marker.txt': 'local' }]);
  await copyImage(local.layout, 'v1', await localImages(), name);
  assert.equal((await openByPolicy(name, options, 'never'))?.image.manifest.digest, local.digest);
  const ifNot = await openByPolicy(name, options, 'if-not-present');
  assert.equal(ifNot?.image.manifest.digest, local.digest);
  assert.equal(ifNot?.local, true);
  const always = await openByPolicy(name, options, 'always');
  assert.equal(always?.image.manifest.digest, remote);
  assert.equal(always?.local, false);
  assert.equal((await findImage(name, options, false))?.local, true);
  assert.equal((await readers.local(options)(name))?.image.manifest.digest, local.digest);
});

test("run images: the first readable candidate on the output's registry, unreadable ones passed over with a warning; the target from the config and labels", async () => {
  await push(ctx.origin, 'base/run', 'v1', 'origin run', { 'io.buildpacks.base.distro.name': 'debian', 'io.buildpacks.base.distro.version': '12', 'io.buildpacks.base.id': 'io.strata.bookworm' });
  await push(ctx.mirror, 'base/run', 'v1', 'mirror run');
  const options = { insecureRegistries: [ctx.origin.host, ctx.mirror.host] };
  const warnings: string[] = [];
  const log = { debug: () => undefined, warn: (l: string) => warnings.push(l) };
  const entry = { image: `${ctx.origin.host}/base/run:v1`, mirrors: [`${ctx.mirror.host}/base/run:v1`] };
  const onMirror = await resolveRunImage([entry], `${ctx.mirror.host}/apps/a`, readers.remote(options, log), log);
  assert.equal(onMirror.name, `${ctx.mirror.host}/base/run:v1`, "the mirror on the output's registry first");
  const onOrigin = await resolveRunImage([entry], `${ctx.origin.host}/apps/a`, readers.remote(options, log), log);
  assert.equal(onOrigin.name, entry.image);
  const unreadable = { image: 'oci:/nonexistent-dir/for-sure:v1', mirrors: [entry.image] };
  const fellBack = await resolveRunImage([unreadable], 'elsewhere.example/app', readers.remote(options, log), log);
  assert.equal(fellBack.name, entry.image);
  await assert.rejects(resolveRunImage([{ image: `${ctx.origin.host}/base/none:v1`, mirrors: [] }], 'x.example/a', readers.remote(options, log), log), /none of the run images can be read/);
  const target = imageTargetOf(onOrigin.image.config, onOrigin.name);
  assert.deepEqual({ id: target.id, distro: target.distro, os: target.os }, { id: 'io.strata.bookworm', distro: { name: 'debian', version: '12' }, os: 'linux' });
});

test('names into outputs: the registry when published, else the local store under the full name; a layout as given; a digest refused', async () => {
  const options = { insecureRegistries: [ctx.origin.host] };
  const published = await outputFor(`${ctx.origin.host}/apps/out:v2`, true, options);
  assert.equal(published.where, ctx.origin.host);
  assert.equal(published.tag, 'v2');
  const local = await outputFor('apps/out', false, options);
  assert.equal(local.where, 'the local store');
  assert.equal(local.tag, 'docker.io/apps/out:latest');
  const layout = await outputFor(`oci:${join(ctx.work, 'layout-out')}:t1`, false, options);
  assert.equal(layout.tag, 't1');
  await assert.rejects(outputsFor([`${ctx.origin.host}/apps/out@sha256:${'a'.repeat(64)}`], true, options), /needs a tag, not a digest/);
});
