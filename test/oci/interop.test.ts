import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, stat, mkdir, chmod } from 'node:fs/promises';
import { join } from 'node:path';
import { registryFixture } from '../harness/registry.js';
import { runOk } from '../harness/proc.js';
import { makeLayoutImage, writeTree } from '../harness/images.js';
import { RegistryClient } from '../../src/oci/registry/client.js';
import { copyImage } from '../../src/oci/copy.js';
import { OciLayout } from '../../src/oci/layout.js';
import { sha256 } from '../../src/oci/digest.js';

const fx = registryFixture();

/** An image made by umoci alone, so strata is checked against another implementation. */
async function umociImage(dir: string, tag: string): Promise<void> {
  const rootfs = join(fx.work, `rootfs-${tag}`);
  await writeTree(rootfs, { 'etc/os-release': 'ID=test\n', 'bin/hello': '#!/bin/sh\necho hello\n', 'usr/share/doc/x': 'doc' });
  await chmod(join(rootfs, 'bin/hello'), 0o755);
  await runOk('umoci', ['init', '--layout', dir]);
  await runOk('umoci', ['new', '--image', `${dir}:${tag}`]);
  await runOk('umoci', ['insert', '--image', `${dir}:${tag}`, rootfs, '/']);
  await runOk('umoci', ['config', '--image', `${dir}:${tag}`, '--config.cmd', '/bin/hello', '--config.label', 'made.by=umoci']);
}

test('an umoci-made image copied by strata to the registry keeps its digest (skopeo inspect --raw)', async () => {
  const dir = join(fx.work, 'umoci-layout');
  await umociImage(dir, 'v1');
  const layout = await OciLayout.open(dir);
  const original = await layout.getManifest('v1');
  const repo = new RegistryClient(fx.reg.host).repository('interop/umoci');
  const r = await copyImage(layout, 'v1', repo, 'v1');
  assert.equal(r.digest, original.digest);
  const raw = await runOk('skopeo', ['inspect', '--tls-verify=false', '--raw', `docker://${fx.reg.host}/interop/umoci:v1`]);
  assert.equal(sha256(Buffer.from(raw)), original.digest);
  assert.deepEqual(Buffer.from(raw), original.bytes);
});

test('an image strata writes to a layout is unpacked by umoci and pushed by skopeo', async () => {
  const dir = join(fx.work, 'strata-layout');
  const { digest } = await makeLayoutImage(dir, 'app', [{ 'etc/greeting': 'hello from strata\n' }, { 'app/main.js': 'console.log(1)\n' }]);
  const bundle = join(fx.work, 'bundle');
  await runOk('umoci', ['unpack', '--image', `${dir}:app`, bundle]);
  assert.equal(await readFile(join(bundle, 'rootfs/etc/greeting'), 'utf8'), 'hello from strata\n');
  assert.ok((await stat(join(bundle, 'rootfs/app/main.js'))).isFile());
  await runOk('skopeo', ['copy', '--dest-tls-verify=false', `oci:${dir}:app`, `docker://${fx.reg.host}/interop/strata:app`]);
  const raw = await runOk('skopeo', ['inspect', '--tls-verify=false', '--raw', `docker://${fx.reg.host}/interop/strata:app`]);
  assert.equal(sha256(Buffer.from(raw)), digest);
});

test('strata pulls what skopeo pushed into a layout that umoci can read', async () => {
  const src = join(fx.work, 'umoci-src');
  await umociImage(src, 'base');
  await runOk('skopeo', ['copy', '--dest-tls-verify=false', `oci:${src}:base`, `docker://${fx.reg.host}/interop/pulled:base`]);
  const dest = join(fx.work, 'pulled-layout');
  await mkdir(dest);
  const layout = await OciLayout.open(dest, { create: true });
  await copyImage(new RegistryClient(fx.reg.host).repository('interop/pulled'), 'base', layout, 'base');
  const out = await runOk('umoci', ['ls', '--layout', dest]);
  assert.match(out, /^base$/m);
  await runOk('umoci', ['unpack', '--image', `${dest}:base`, join(fx.work, 'bundle2')]);
  assert.equal(await readFile(join(fx.work, 'bundle2/rootfs/etc/os-release'), 'utf8'), 'ID=test\n');
});

test('a Docker schema 2 image (skopeo --format v2s2) is copied by strata with its media types and digest', async () => {
  const src = join(fx.work, 'umoci-v2s2');
  await umociImage(src, 'd');
  await runOk('skopeo', ['copy', '--dest-tls-verify=false', '--format', 'v2s2', `oci:${src}:d`, `docker://${fx.reg.host}/interop/docker:d`]);
  const raw = await runOk('skopeo', ['inspect', '--tls-verify=false', '--raw', `docker://${fx.reg.host}/interop/docker:d`]);
  const repo = new RegistryClient(fx.reg.host).repository('interop/docker');
  const m = await repo.getManifest('d');
  assert.equal(m.mediaType, 'application/vnd.docker.distribution.manifest.v2+json');
  assert.equal(m.digest, sha256(Buffer.from(raw)));
  const dest = await OciLayout.open(join(fx.work, 'docker-layout'), { create: true });
  const r = await copyImage(repo, 'd', dest, 'd');
  assert.equal(r.digest, m.digest);
  assert.equal((await dest.getManifest('d')).mediaType, 'application/vnd.docker.distribution.manifest.v2+json');
});
