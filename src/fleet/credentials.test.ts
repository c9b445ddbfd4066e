import { test } from 'node:test';
import assert from 'node:assert/strict';
import { credentialsFrom, gitLoginFor, registryLogins, blobLoginFor, type SecretWithValues } from './credentials.js';
import { Redactor, SecretBox } from './secrets.js';

const secret = (name: string, type: string, annotations: Record<string, string>, values: Record<string, string>): SecretWithValues => ({ namespace: 'default', name, spec: { type, annotations, keys: Object.keys(values) }, values });

test("a service account's Secrets, read as kpack reads them: registries, git over https and ssh, blobs, a cosign key", () => {
  const c = credentialsFrom([
    secret('docker', 'kubernetes.io/basic-auth', { 'kpack.io/docker': 'https://index.docker.io/v1/' }, { username: 'hub', password: 'p1' }),
    secret('gcr', 'kubernetes.io/basic-auth', { 'kpack.io/docker': 'gcr.io' }, { username: '_json_key', password: 'p2' }),
    secret('cfg', 'kubernetes.io/dockerconfigjson', {}, { '.dockerconfigjson': JSON.stringify({ auths: { 'registry.example:5000': { auth: Buffer.from('u:p3').toString('base64') } } }) }),
    secret('github', 'kubernetes.io/basic-auth', { 'kpack.io/git': 'https://github.com' }, { username: 'me', password: 'token' }),
    secret('ssh', 'kubernetes.io/ssh-auth', { 'kpack.io/git': 'git@gitlab.example' }, { 'ssh-privatekey': 'KEY' }),
    secret('blob', 'Opaque', { 'kpack.io/blob': 'blobs.example' }, { bearer: 'b-token' }),
    secret('cosign', 'Opaque', { 'kpack.io/cosign.docker-media-types': '1' }, { 'cosign.key': 'K', 'cosign.password': 'pw' }),
  ]);
  const logins = registryLogins(c);
  assert.deepEqual(logins.find('docker.io'), { kind: 'basic', username: 'hub', password: 'p1' });
  assert.deepEqual(logins.find('gcr.io'), { kind: 'basic', username: '_json_key', password: 'p2' });
  assert.deepEqual(logins.find('registry.example:5000'), { kind: 'basic', username: 'u', password: 'p3' });
  assert.equal(logins.find('quay.io'), undefined);
  assert.equal(gitLoginFor('https://github.com/org/repo.git', c.git)?.secret, 'Secret default/github');
  assert.equal(gitLoginFor('https://gitlab.example/org/repo.git', c.git), undefined, 'an https URL never gets an ssh key');
  assert.equal(gitLoginFor('git@gitlab.example:org/repo.git', c.git)?.secret, 'Secret default/ssh');
  assert.equal(gitLoginFor('ssh://git@gitlab.example:2222/org/repo.git', c.git)?.secret, 'Secret default/ssh');
  assert.equal(gitLoginFor('git@github.com:org/repo.git', c.git), undefined, 'an ssh URL never gets a password');
  assert.equal(gitLoginFor('https://github.com.evil.example/org/repo.git', c.git), undefined);
  assert.equal(blobLoginFor('https://blobs.example/app.tgz', c.blobs)?.header, 'Bearer b-token');
  assert.equal(blobLoginFor('https://other.example/app.tgz', c.blobs), undefined);
  assert.equal(c.signing[0]?.dockerMediaTypes, true);
  assert.ok(['p1', 'p2', 'token', 'KEY', 'b-token', 'pw'].every((v) => c.values.includes(v)), 'every value is known, for redaction');
});

test('sealed values open only under the same key and the same name; digests tell a change without telling the value', () => {
  const box = new SecretBox(Buffer.alloc(32, 1));
  const sealed = box.seal({ password: 'hunter2' }, 'Secret/default/a');
  assert.ok(!sealed.includes('hunter2'));
  assert.notEqual(sealed, box.seal({ password: 'hunter2' }, 'Secret/default/a'), 'a fresh nonce each time');
  assert.deepEqual(box.open(sealed, 'Secret/default/a'), { password: 'hunter2' });
  assert.throws(() => box.open(sealed, 'Secret/default/b'), /cannot be opened with this fleet's key/);
  assert.throws(() => new SecretBox(Buffer.alloc(32, 2)).open(sealed, 'Secret/default/a'), /cannot be opened/);
  assert.equal(box.digest({ a: '1', b: '2' }), box.digest({ b: '2', a: '1' }));
  assert.notEqual(box.digest({ a: '1' }), box.digest({ a: '2' }));
  assert.notEqual(box.digest({ a: '1' }), new SecretBox(Buffer.alloc(32, 2)).digest({ a: '1' }));
});

test('the redactor replaces every value, longest first, and leaves short ones alone', () => {
  const r = new Redactor(['hunter2', 'hunter22', 'ab', 'line one\nline two']);
  assert.equal(r.redact('pw=hunter22 and hunter2, ab, line two'), 'pw=[redacted] and [redacted], ab, [redacted]');
  assert.equal(r.longest, 'line one\nline two'.length);
});
