import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { registryFixture } from '../harness/registry.js';
import { startFaultProxy, type Fault } from '../harness/faultproxy.js';
import { runOk } from '../harness/proc.js';
import { makeLayoutImage } from '../harness/images.js';
import { RegistryClient } from '../../src/oci/registry/client.js';
import { copyImage } from '../../src/oci/copy.js';
import { OciLayout } from '../../src/oci/layout.js';
import { sha256 } from '../../src/oci/digest.js';

const fx = registryFixture();

// Small chunks and short timeouts make every layer a multi-request upload and a stall cost a second, not minutes.
const flaky = { monolithicMax: 300_000, chunkSize: 250_000, timeoutMs: 1000, retryBaseMs: 20 } as const;

test('a 3-layer push survives 10 injected faults (resets, 500, 429, stalls, cut uploads) and arrives intact', async () => {
  const { layout, digest } = await makeLayoutImage(join(fx.work, 'faults'), 'v1', [{ 'a.bin': randomBytes(900_000) }, { 'b.bin': randomBytes(700_000) }, { 'c.txt': 'small layer' }]);
  // Uploads run concurrently, so faults are planned per kind of request rather than by global request number:
  // two PATCH chunks are cut halfway and one is reset; every second other request gets one of the rest.
  const others: Fault[] = ['reset', '500', '429', 'stall', '503', '429', 'reset'];
  let patches = 0;
  let rest = 0;
  const proxy = await startFaultProxy(fx.reg.host, (_n, req) => {
    if (req.method === 'PATCH') {
      patches++;
      return patches === 2 || patches === 5 ? 'cut' : patches === 7 ? 'reset' : undefined;
    }
    return ++rest % 2 === 0 ? others.shift() : undefined;
  });
  try {
    const repo = new RegistryClient(proxy.host, flaky).repository('flaky/app');
    const r = await copyImage(layout, 'v1', repo, 'v1', { concurrency: 3 });
    assert.equal(r.digest, digest);
    assert.equal(proxy.injected.length, 10, `all faults injected: ${proxy.injected.join(', ')}`);
    assert.ok(proxy.injected.some((f) => f.startsWith('cut PATCH')), `a chunked upload was cut: ${proxy.injected.join(', ')}`);
    // The cut upload was resumed: strata asked the registry for the upload's offset instead of starting over.
    assert.ok((await fx.reg.requests()).some((l) => /^GET \/v2\/flaky\/app\/blobs\/uploads\/[\w-]+/.test(l)), 'upload status was read');
  } finally {
    await proxy.stop();
  }
  // skopeo reads the result straight from the registry and checks every blob's digest as it copies.
  const raw = await runOk('skopeo', ['inspect', '--tls-verify=false', '--raw', `docker://${fx.reg.host}/flaky/app:v1`]);
  assert.equal(sha256(Buffer.from(raw)), digest);
  await runOk('skopeo', ['copy', '--src-tls-verify=false', `docker://${fx.reg.host}/flaky/app:v1`, `oci:${join(fx.work, 'skopeo-out')}:v1`]);
});

test('a pull through faults (cut downloads, resets) gives the same image', async () => {
  const { layout, digest } = await makeLayoutImage(join(fx.work, 'pullsrc'), 'v1', [{ 'a.bin': randomBytes(400_000) }, { 'b.bin': randomBytes(300_000) }]);
  await copyImage(layout, 'v1', new RegistryClient(fx.reg.host).repository('flaky/pull'), 'v1');
  const kinds: Fault[] = ['cut', 'reset', 'cut', '503', 'cut'];
  const proxy = await startFaultProxy(fx.reg.host, (_n, req) => (req.method === 'GET' && req.url?.includes('/blobs/') ? kinds.shift() : undefined));
  try {
    const src = new RegistryClient(proxy.host, flaky).repository('flaky/pull');
    const out = await OciLayout.open(join(fx.work, 'pulled'), { create: true });
    const r = await copyImage(src, 'v1', out, 'v1');
    assert.equal(r.digest, digest);
    assert.ok(proxy.injected.filter((f) => f.startsWith('cut GET')).length >= 2, proxy.injected.join(', '));
  } finally {
    await proxy.stop();
  }
  await runOk('umoci', ['unpack', '--rootless', '--image', `${join(fx.work, 'pulled')}:v1`, join(fx.work, 'pulled-bundle')]);
});

test('when the registry keeps failing, the push fails in one line and the old tag keeps its digest', async () => {
  const direct = new RegistryClient(fx.reg.host).repository('flaky/keep');
  const old = await makeLayoutImage(join(fx.work, 'old'), 'v1', [{ 'v': 'one' }]);
  await copyImage(old.layout, 'v1', direct, 'stable');
  const next = await makeLayoutImage(join(fx.work, 'new'), 'v1', [{ 'v': 'two' }]);
  const proxy = await startFaultProxy(fx.reg.host, (_n, req) => (req.method === 'PUT' && req.url?.includes('/manifests/') ? '500' : undefined));
  try {
    const repo = new RegistryClient(proxy.host, { ...flaky, retries: 3 }).repository('flaky/keep');
    await assert.rejects(copyImage(next.layout, 'v1', repo, 'stable'), (err: Error) => {
      assert.match(err.message, /writing manifest .*flaky\/keep:stable.*gave up/);
      assert.doesNotMatch(err.message, /\n/);
      return true;
    });
    assert.equal(proxy.injected.length, 4, 'first try and 3 retries');
  } finally {
    await proxy.stop();
  }
  assert.equal((await direct.headManifest('stable'))?.digest, old.digest);
});

test('a manifest or config whose answer is cut short is read again; one that is always cut fails in one line naming it', async () => {
  const { layout, digest } = await makeLayoutImage(join(fx.work, 'cutmf'), 'v1', [{ 'f': 'x' }]);
  await copyImage(layout, 'v1', new RegistryClient(fx.reg.host).repository('flaky/cutmf'), 'v1');
  let cuts = 2;
  const proxy = await startFaultProxy(fx.reg.host, (_n, req) => (req.method === 'GET' && /\/manifests\/|\/blobs\//.test(req.url ?? '') && cuts-- > 0 ? 'cut' : undefined));
  try {
    const src = new RegistryClient(proxy.host, flaky).repository('flaky/cutmf');
    const r = await copyImage(src, 'v1', await OciLayout.open(join(fx.work, 'cutmf-out'), { create: true }), 'v1');
    assert.equal(r.digest, digest);
    assert.equal(proxy.injected.length, 2, proxy.injected.join(', '));
  } finally {
    await proxy.stop();
  }
  const always = await startFaultProxy(fx.reg.host, (_n, req) => (req.method === 'GET' && req.url?.includes('/manifests/') ? 'cut' : undefined));
  try {
    const src = new RegistryClient(always.host, { ...flaky, retries: 2 }).repository('flaky/cutmf');
    await assert.rejects(src.getManifest('v1'), (err: Error) => {
      // Cut before or after the headers: either way the message names the manifest and says it gave up.
      assert.match(err.message, /(reading manifest .*flaky\/cutmf:v1: the answer was cut short|\(ECONNRESET\) during GET \/v2\/flaky\/cutmf\/manifests\/v1).*; gave up after 3 attempts$/);
      return true;
    });
  } finally {
    await always.stop();
  }
});

test('a layout blob shorter than its descriptor fails the push at once, and the tag does not move', async () => {
  const direct = new RegistryClient(fx.reg.host).repository('flaky/short');
  const old = await makeLayoutImage(join(fx.work, 'short-old'), 'v1', [{ 'v': 'one' }]);
  await copyImage(old.layout, 'v1', direct, 'stable');
  const next = await makeLayoutImage(join(fx.work, 'short'), 'v1', [{ 'big.bin': randomBytes(200_000) }]);
  const m = await next.layout.getManifest('v1');
  const layer = m.kind === 'manifest' ? m.manifest.layers[0]! : undefined;
  const { truncate } = await import('node:fs/promises');
  await truncate(next.layout.blobPath(layer!.digest), 1000);
  const started = Date.now();
  await assert.rejects(copyImage(next.layout, 'v1', direct, 'stable'), /blob sha256:[0-9a-f]+ is 1000 bytes, shorter than the \d+ its descriptor says \(truncated\)/);
  assert.ok(Date.now() - started < 10_000, 'it failed at once, not at a timeout');
  assert.equal((await direct.headManifest('stable'))?.digest, old.digest);
});
