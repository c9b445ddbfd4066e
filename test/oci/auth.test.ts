import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { registryFixture } from '../harness/registry.js';
import { run, runOk } from '../harness/proc.js';
import { makeLayoutImage } from '../harness/images.js';
import { PROJECT_ROOT } from '../../src/version.js';
import { parseChallenge } from '../../src/oci/registry/auth.js';

const STRATA = join(PROJECT_ROOT, 'bin', 'strata');
const htpasswd = (await runOk('htpasswd', ['-Bbn', 'alice', 's3cret'])).trim() + '\n';
const fx = registryFixture({ htpasswd });

async function dockerConfig(name: string, config: unknown): Promise<string> {
  const dir = join(fx.work, name);
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'config.json'), JSON.stringify(config));
  return dir;
}

function envWith(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env = { ...process.env, ...extra };
  delete env.CNB_REGISTRY_AUTH;
  return { ...env, ...extra };
}

test('WWW-Authenticate challenges parse, quoted commas included', () => {
  assert.deepEqual(parseChallenge('Bearer realm="https://auth.example/token",service="reg",scope="repository:a/b:pull,push"'), {
    scheme: 'bearer',
    params: { realm: 'https://auth.example/token', service: 'reg', scope: 'repository:a/b:pull,push' },
  });
  assert.deepEqual(parseChallenge('Basic realm="basic-realm"'), { scheme: 'basic', params: { realm: 'basic-realm' } });
});

test('basic auth: without credentials the push fails with a login hint; with config.json auths it works', async () => {
  await makeLayoutImage(join(fx.work, 'img'), 'v1', [{ 'a.txt': 'a' }]);
  const anon = await run(STRATA, ['image', 'copy', `oci:${join(fx.work, 'img')}:v1`, `${fx.reg.host}/auth/app:v1`], { env: envWith({ DOCKER_CONFIG: await dockerConfig('empty', {}) }) });
  assert.notEqual(anon.code, 0);
  assert.match(anon.stderr.trim(), new RegExp(`^strata: error: registry ${fx.reg.host.replace(/\./g, '\\.')}: authentication required .*run \`strata login ${fx.reg.host.replace(/\./g, '\\.')}\`$`));

  const auth = Buffer.from('alice:s3cret').toString('base64');
  const cfg = await dockerConfig('auths', { auths: { [fx.reg.host]: { auth } } });
  await runOk(STRATA, ['image', 'copy', `oci:${join(fx.work, 'img')}:v1`, `${fx.reg.host}/auth/app:v1`], { env: envWith({ DOCKER_CONFIG: cfg }) });
  const tags = await runOk(STRATA, ['image', 'tags', `${fx.reg.host}/auth/app`], { env: envWith({ DOCKER_CONFIG: cfg }) });
  assert.equal(tags.trim(), 'v1');
  // skopeo with the same credentials sees the image strata pushed.
  await runOk('skopeo', ['inspect', '--tls-verify=false', '--creds', 'alice:s3cret', '--raw', `docker://${fx.reg.host}/auth/app:v1`]);
});

test('a wrong password is refused with the registry named, and the secret is not printed', async () => {
  const cfg = await dockerConfig('wrong', { auths: { [`http://${fx.reg.host}/v2/`]: { username: 'alice', password: 'WRONG-PASSWORD' } } });
  const r = await run(STRATA, ['image', 'tags', `${fx.reg.host}/auth/app`], { env: envWith({ DOCKER_CONFIG: cfg }) });
  assert.notEqual(r.code, 0);
  assert.equal(r.stderr.trim().split('\n').length, 1);
  assert.match(r.stderr, new RegExp(`registry ${fx.reg.host.replace(/\./g, '\\.')}`));
  assert.doesNotMatch(r.stderr + r.stdout, /WRONG-PASSWORD/);
});

test('credentials from a credential helper named in credHelpers, and an unknown helper is a clear error', async () => {
  const bin = join(fx.work, 'bin');
  await mkdir(bin, { recursive: true });
  const helper = join(bin, 'docker-credential-testhelper');
  await writeFile(helper, `#!/bin/sh\nread server\n[ "$1" = get ] || exit 1\n[ "$server" = "${fx.reg.host}" ] || { echo "credentials not found in native keychain"; exit 1; }\necho '{"ServerURL":"${fx.reg.host}","Username":"alice","Secret":"s3cret"}'\n`);
  await chmod(helper, 0o755);
  const cfg = await dockerConfig('helper', { credHelpers: { [fx.reg.host]: 'testhelper' } });
  const env = envWith({ DOCKER_CONFIG: cfg, PATH: `${bin}:${process.env.PATH ?? ''}` });
  assert.equal((await runOk(STRATA, ['image', 'tags', `${fx.reg.host}/auth/app`], { env })).trim(), 'v1');

  const missing = await dockerConfig('nohelper', { credHelpers: { [fx.reg.host]: 'nosuchhelper' } });
  const r = await run(STRATA, ['image', 'tags', `${fx.reg.host}/auth/app`], { env: envWith({ DOCKER_CONFIG: missing }) });
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /credential helper docker-credential-nosuchhelper \(named in .*config\.json for 127\.0\.0\.1:\d+\) is not installed or not on PATH/);
});

test('CNB_REGISTRY_AUTH supplies the Authorization header directly', async () => {
  const header = `Basic ${Buffer.from('alice:s3cret').toString('base64')}`;
  const env = envWith({ DOCKER_CONFIG: await dockerConfig('cnb', {}) });
  env.CNB_REGISTRY_AUTH = JSON.stringify({ [fx.reg.host]: header });
  assert.equal((await runOk(STRATA, ['image', 'tags', `${fx.reg.host}/auth/app`], { env })).trim(), 'v1');
});

test('the analyzer checks push access up front: without credentials it fails with exit 32 and names the image', async () => {
  const run1 = join(fx.work, 'run-for-analyzer');
  await makeLayoutImage(run1, 'run', [{ 'etc/os-release': 'ID=debian\n' }]);
  const layers = join(fx.work, 'analyzer-layers');
  await mkdir(layers, { recursive: true });
  const env = { ...envWith({ DOCKER_CONFIG: await dockerConfig('analyzer-empty', {}) }), CNB_PLATFORM_API: '0.15' };
  const r = await run(join(PROJECT_ROOT, 'dist', 'lifecycle', 'analyzer'), ['-layers', layers, '-run-image', `oci:${run1}:run`, `${fx.reg.host}/auth/locked:v1`], { env });
  assert.equal(r.code, 32, r.stderr + r.stdout);
  assert.match(r.stderr, new RegExp(`no write access to ${fx.reg.host.replace(/\./g, '\\.')}/auth/locked:v1: .*strata login`));
  const ok = await run(join(PROJECT_ROOT, 'dist', 'lifecycle', 'analyzer'), ['-layers', layers, '-run-image', `oci:${run1}:run`, `${fx.reg.host}/auth/locked:v1`], {
    env: { ...env, DOCKER_CONFIG: await dockerConfig('analyzer-alice', { auths: { [fx.reg.host]: { auth: Buffer.from('alice:s3cret').toString('base64') } } }) },
  });
  assert.equal(ok.code, 0, ok.stderr);
});
