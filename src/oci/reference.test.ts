import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Reference, isLoopbackRegistry, registryApiHost } from './reference.js';

const D = `sha256:${'a'.repeat(64)}`;

const cases: [string, string, string, string | undefined, string | undefined][] = [
  // input, registry, repository, tag, digest
  ['busybox', 'docker.io', 'library/busybox', 'latest', undefined],
  ['busybox:1.36', 'docker.io', 'library/busybox', '1.36', undefined],
  ['paketobuildpacks/builder', 'docker.io', 'paketobuildpacks/builder', 'latest', undefined],
  ['docker.io/busybox', 'docker.io', 'library/busybox', 'latest', undefined],
  ['index.docker.io/library/busybox', 'docker.io', 'library/busybox', 'latest', undefined],
  ['localhost/app', 'localhost', 'app', 'latest', undefined],
  ['localhost:5000/app:v1', 'localhost:5000', 'app', 'v1', undefined],
  ['127.0.0.1:5000/a/b/c:tag', '127.0.0.1:5000', 'a/b/c', 'tag', undefined],
  ['gcr.io/proj/img', 'gcr.io', 'proj/img', 'latest', undefined],
  [`busybox@${D}`, 'docker.io', 'library/busybox', undefined, D],
  [`reg.io:443/x/y:t@${D}`, 'reg.io:443', 'x/y', 't', D],
  ['Upper.host/app', 'Upper.host', 'app', 'latest', undefined],
  ['my-reg.example.com/team/app-name_x.y:1.0-rc1', 'my-reg.example.com', 'team/app-name_x.y', '1.0-rc1', undefined],
];

for (const [input, registry, repository, tag, digest] of cases) {
  test(`reference ${input}`, () => {
    const r = Reference.parse(input);
    assert.equal(r.registry, registry);
    assert.equal(r.repository, repository);
    assert.equal(r.tag, tag);
    assert.equal(r.digest, digest);
    // Normalised strings parse back to themselves.
    assert.equal(Reference.parse(r.toString()).toString(), r.toString());
  });
}

for (const bad of ['', 'app/UPPER', 'app:', 'app@sha256:123', 'a//b', 'app:bad tag', '-lead', `x/${'y'.repeat(260)}`, 'host:99999999999/app/../x']) {
  test(`reference rejects ${JSON.stringify(bad.slice(0, 30))}`, () => {
    assert.throws(() => Reference.parse(bad), /invalid image reference/);
  });
}

test('familiar names drop docker.io/library', () => {
  assert.equal(Reference.parse('busybox').familiar(), 'busybox:latest');
  assert.equal(Reference.parse('docker.io/foo/bar:1').familiar(), 'foo/bar:1');
  assert.equal(Reference.parse('localhost:5000/foo').familiar(), 'localhost:5000/foo:latest');
});

test('identifier prefers the digest; withTag and withDigest replace', () => {
  const r = Reference.parse(`reg.io/a:t@${D}`);
  assert.equal(r.identifier, D);
  assert.equal(r.withTag('v2').toString(), 'reg.io/a:v2');
  assert.equal(Reference.parse('reg.io/a:t').withDigest(D as `sha256:${string}`).toString(), `reg.io/a@${D}`);
});

test('loopback registries and the Docker Hub API host', () => {
  assert.ok(isLoopbackRegistry('localhost:5000'));
  assert.ok(isLoopbackRegistry('127.0.0.1:5000'));
  assert.ok(isLoopbackRegistry('[::1]:5000'));
  assert.ok(!isLoopbackRegistry('gcr.io'));
  assert.ok(!isLoopbackRegistry('127.example.com'));
  assert.equal(registryApiHost('docker.io'), 'registry-1.docker.io');
  assert.equal(registryApiHost('ghcr.io'), 'ghcr.io');
});
