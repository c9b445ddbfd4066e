// Images signed as kpack signs them: a cosign key pair in a Secret (cosign's own encrypted key format, made here as
// `cosign generate-key-pair` makes it) signs each built and each rebased image; openssl checks the signature over the
// payload with the public key, and the payload names the image's digest.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync, randomBytes, scryptSync } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import nacl from 'tweetnacl';
import { registryFixture } from '../harness/registry.js';
import { runOk } from '../harness/proc.js';
import { fleetWorld, layerBuild, type FleetWorld } from '../harness/fleet.js';
import type { BuildRecord } from '../../src/fleet/store.js';

const fx = registryFixture();
const PASSWORD = 'cosign-password-6b1f';

/** A key pair in cosign's format: the PKCS #8 key sealed with NaCl secretbox under a scrypt key of the password. */
function cosignKeyPair(): { key: string; pub: string } {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const der = privateKey.export({ format: 'der', type: 'pkcs8' });
  const salt = randomBytes(32);
  const params = { N: 16384, r: 8, p: 1 };
  const box = scryptSync(PASSWORD, salt, 32, { ...params, maxmem: 64 << 20 });
  const nonce = randomBytes(24);
  const ciphertext = nacl.secretbox(der, nonce, box);
  const json = JSON.stringify({ kdf: { name: 'scrypt', params, salt: salt.toString('base64') }, cipher: { name: 'nacl/secretbox', nonce: nonce.toString('base64') }, ciphertext: Buffer.from(ciphertext).toString('base64') });
  const body = Buffer.from(json).toString('base64').replace(/(.{64})/g, '$1\n');
  return { key: `-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n${body}\n-----END ENCRYPTED SIGSTORE PRIVATE KEY-----\n`, pub: publicKey.export({ format: 'pem', type: 'spki' }).toString() };
}

let setup: Promise<{ w: FleetWorld; pub: string }> | undefined;
const ready = () =>
  (setup ??= (async () => {
    const w = await fleetWorld(fx.work, fx.reg.host);
    await w.pushBuildpack('hello', 'test/hello', '1.0.0', '[ -f hello.txt ]', layerBuild('hello.txt'));
    await w.pushBuildpack('other', 'test/other', '1.0.0', '[ -f other.txt ]', layerBuild('other.txt'));
    const pair = cosignKeyPair();
    const repo = await w.repo('signed', { 'hello.txt': 'signed app' });
    const indent = (t: string) => t.trimEnd().split('\n').map((l) => `    ${l}`).join('\n');
    await writeFile(
      join(fx.work, 'fleet.yaml'),
      `${w.yaml([])}---
apiVersion: v1
kind: Secret
metadata:
  name: tutorial-cosign-key-pair
type: Opaque
stringData:
  cosign.key: |
${indent(pair.key)}
  cosign.password: ${PASSWORD}
  cosign.pub: |
${indent(pair.pub)}
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: tutorial-cosign-service-account
secrets:
- name: tutorial-cosign-key-pair
---
apiVersion: kpack.io/v1alpha2
kind: Image
metadata:
  name: signed
spec:
  tag: ${fx.reg.host}/apps/signed
  serviceAccountName: tutorial-cosign-service-account
  builder: {kind: ClusterBuilder, name: builder}
  source:
    git: {url: "${repo}", revision: main}
  cosign:
    annotations:
    - name: team
      value: blue
`,
    );
    await writeFile(join(fx.work, 'cosign.pub'), pair.pub);
    return { w, pub: pair.pub };
  })());

async function registryGet(path: string): Promise<Buffer> {
  const res = await fetch(`http://${fx.reg.host}${path}`, { headers: { accept: 'application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json' } });
  assert.equal(res.status, 200, path);
  return Buffer.from(await res.arrayBuffer());
}

/** Checks the cosign signature of `digest` with openssl; returns the payload. */
async function verify(digest: string): Promise<{ critical: { identity: Record<string, string>; image: Record<string, string>; type: string }; optional: Record<string, string> | null }> {
  const tag = `${digest.replace(':', '-')}.sig`;
  const manifest = JSON.parse((await registryGet(`/v2/apps/signed/manifests/${tag}`)).toString()) as { layers: { mediaType: string; digest: string; annotations: Record<string, string> }[] };
  const layer = manifest.layers.at(-1)!;
  assert.equal(layer.mediaType, 'application/vnd.dev.cosign.simplesigning.v1+json');
  const payload = await registryGet(`/v2/apps/signed/blobs/${layer.digest}`);
  const dir = join(fx.work, `verify-${digest.slice(7, 19)}`);
  await runOk('mkdir', ['-p', dir]);
  await writeFile(join(dir, 'payload'), payload);
  await writeFile(join(dir, 'sig'), Buffer.from(layer.annotations['dev.cosignproject.cosign/signature']!, 'base64'));
  const out = await runOk('openssl', ['dgst', '-sha256', '-verify', join(fx.work, 'cosign.pub'), '-signature', join(dir, 'sig'), join(dir, 'payload')]);
  assert.match(out, /Verified OK/);
  return JSON.parse(payload.toString());
}

test('a cosign key pair in the service account signs each built image in cosign\'s format; openssl verifies it with the public key', { timeout: 300_000 }, async () => {
  const { w } = await ready();
  const applied = await w.strata(['fleet', 'apply', '-f', join(fx.work, 'fleet.yaml')]);
  assert.equal(applied.code, 0, applied.stderr);
  const r = await w.strata(['fleet', 'reconcile', '--once']);
  const builds = JSON.parse((await w.strata(['fleet', 'builds', 'signed', '-o', 'json'])).stdout) as BuildRecord[];
  assert.equal(r.code, 0, r.stdout + builds.map((b) => b.message).join('\n'));
  const b = builds[0]!;
  assert.deepEqual(b.result?.signatures, [`${fx.reg.host}/apps/signed:${b.result!.digest!.replace(':', '-')}.sig`]);
  const payload = await verify(b.result!.digest!);
  assert.equal(payload.critical.image['docker-manifest-digest'], b.result!.digest);
  assert.equal(payload.critical.identity['docker-reference'], `${fx.reg.host}/apps/signed`);
  assert.equal(payload.critical.type, 'cosign container image signature');
  assert.deepEqual(payload.optional, { team: 'blue' });
  const log = (await w.strata(['fleet', 'logs', 'signed'])).stdout;
  assert.match(log, /Signed .* with Secret default\/tutorial-cosign-key-pair/);
  assert.ok(!log.includes(PASSWORD));
});

test('a rebased image is signed too, under its new digest', { timeout: 300_000 }, async () => {
  const { w } = await ready();
  await w.pushRun({ 'etc/patched': 'yes' });
  assert.equal((await w.strata(['fleet', 'reconcile', '--once'])).code, 0);
  const rebased = (JSON.parse((await w.strata(['fleet', 'builds', 'signed', '-o', 'json'])).stdout) as BuildRecord[]).find((x) => x.number === 2)!;
  assert.equal(`${rebased.kind} ${rebased.status}`, 'rebase succeeded');
  const payload = await verify(rebased.result!.digest!);
  assert.equal(payload.critical.image['docker-manifest-digest'], rebased.result!.digest);
});
