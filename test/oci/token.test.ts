import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { registryFixture } from '../harness/registry.js';
import { startTokenServer, type TokenServer } from '../harness/tokenserver.js';
import { run, runOk, tempDir } from '../harness/proc.js';
import { makeLayoutImage } from '../harness/images.js';
import { PROJECT_ROOT } from '../../src/version.js';
import { RegistryClient } from '../../src/oci/registry/client.js';
import { CredentialAuthorizer } from '../../src/oci/registry/auth.js';
import { copyImage } from '../../src/oci/copy.js';

const STRATA = join(PROJECT_ROOT, 'bin', 'strata');
const tokenDir = await tempDir('strata-token-');
// Started at load time: the registry's config needs the token server's address before any hook runs.
const ts: TokenServer = await startTokenServer(tokenDir.path, {
  alice: { password: 'wonder-land-7', access: { 'tok/': ['pull', 'push'] } },
  bob: { password: 'builder-bob-9', access: { 'tok/': ['pull'] } },
});
after(async () => {
  await ts.stop();
  await tokenDir.cleanup();
});
const fx = registryFixture(() => ({ token: { realm: ts.realm, service: ts.service, issuer: ts.issuer, rootcertbundle: ts.certPath } }));

function env(dockerConfig: string, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const e: NodeJS.ProcessEnv = { ...process.env, DOCKER_CONFIG: dockerConfig, ...extra };
  delete e.CNB_REGISTRY_AUTH;
  return e;
}

function client(username: string, password: string): RegistryClient {
  const authorizer = new CredentialAuthorizer(fx.reg.host, async () => ({ kind: 'basic', username, password }));
  return new RegistryClient(fx.reg.host, { authorizer });
}

test('strata login saves a token-registry login in config.json; push and pull then go through the token service', async () => {
  const cfg = join(fx.work, 'login-cfg');
  const login = await run(STRATA, ['login', fx.reg.host, '-u', 'alice', '--password-stdin'], { env: env(cfg), input: 'wonder-land-7\n' });
  assert.equal(login.code, 0, login.stderr);
  assert.match(login.stdout, /Login Succeeded/);
  const saved = JSON.parse(await readFile(join(cfg, 'config.json'), 'utf8')) as { auths: Record<string, { auth: string }> };
  assert.equal(Buffer.from(saved.auths[fx.reg.host]!.auth, 'base64').toString(), 'alice:wonder-land-7');
  assert.equal((await stat(join(cfg, 'config.json'))).mode & 0o777, 0o600, 'config.json is private');

  await makeLayoutImage(join(fx.work, 'img'), 'v1', [{ 'a.txt': 'a' }, { 'b.txt': 'b' }]);
  await runOk(STRATA, ['image', 'copy', `oci:${join(fx.work, 'img')}:v1`, `${fx.reg.host}/tok/app:v1`], { env: env(cfg) });
  await runOk(STRATA, ['image', 'copy', `${fx.reg.host}/tok/app:v1`, `oci:${join(fx.work, 'back')}:v1`], { env: env(cfg) });
  assert.ok(ts.log.includes(`alice repository:tok/app:pull,push`), ts.log.join('\n'));
  // skopeo runs the same challenge → token → push flow and sees the image.
  await runOk('skopeo', ['inspect', '--tls-verify=false', '--creds', 'alice:wonder-land-7', '--raw', `docker://${fx.reg.host}/tok/app:v1`]);

  const out = await run(STRATA, ['logout', fx.reg.host], { env: env(cfg) });
  assert.equal(out.code, 0, out.stderr);
  const after = JSON.parse(await readFile(join(cfg, 'config.json'), 'utf8')) as { auths: Record<string, unknown> };
  assert.deepEqual(after.auths, {});
  const again = await run(STRATA, ['logout', fx.reg.host], { env: env(cfg) });
  assert.notEqual(again.code, 0);
  assert.match(again.stderr, /not logged in to 127\.0\.0\.1:\d+/);
});

test('a wrong password at login is one line, names the registry, leaks no secret and saves nothing', async () => {
  const cfg = join(fx.work, 'bad-cfg');
  const r = await run(STRATA, ['login', fx.reg.host, '-u', 'alice', '--password-stdin'], { env: env(cfg), input: 'NOT-THE-PASSWORD\n' });
  assert.notEqual(r.code, 0);
  assert.equal(r.stderr.trim().split('\n').length, 1);
  assert.match(r.stderr, new RegExp(`login to ${fx.reg.host.replace(/\./g, '\\.')} failed: wrong username or password`));
  assert.doesNotMatch(r.stdout + r.stderr, /NOT-THE-PASSWORD/);
  await assert.rejects(stat(join(cfg, 'config.json')));
  const noStdin = await run(STRATA, ['login', fx.reg.host, '-u', 'alice'], { env: env(cfg) });
  assert.match(noStdin.stderr, /--password-stdin/);
});

test('a credential helper supplies the login for a token registry, and login stores through it', async () => {
  const bin = join(fx.work, 'bin');
  const store = join(fx.work, 'helper-store.json');
  await mkdir(bin, { recursive: true });
  const helper = join(bin, 'docker-credential-tokhelper');
  // A helper that keeps one credential in a file: enough of the protocol for get, store and erase.
  await writeFile(
    helper,
    `#!/bin/sh\ncase "$1" in\n  store) cat > ${store} ;;\n  get) read server; [ -f ${store} ] && cat ${store} || { echo "credentials not found in native keychain"; exit 1; } ;;\n  erase) rm -f ${store} ;;\nesac\n`,
  );
  await chmod(helper, 0o755);
  const cfg = join(fx.work, 'helper-cfg');
  await mkdir(cfg, { recursive: true });
  await writeFile(join(cfg, 'config.json'), JSON.stringify({ credHelpers: { [fx.reg.host]: 'tokhelper' } }));
  const e = env(cfg, { PATH: `${bin}:${process.env.PATH ?? ''}` });
  const login = await run(STRATA, ['login', fx.reg.host, '-u', 'alice', '--password-stdin'], { env: e, input: 'wonder-land-7' });
  assert.equal(login.code, 0, login.stderr);
  assert.match(login.stdout, /docker-credential-tokhelper/);
  assert.equal((JSON.parse(await readFile(store, 'utf8')) as { Username: string }).Username, 'alice');
  assert.equal((await runOk(STRATA, ['image', 'tags', `${fx.reg.host}/tok/app`], { env: e })).trim(), 'v1');
  await runOk(STRATA, ['logout', fx.reg.host], { env: e });
  await assert.rejects(stat(store));
});

test('a cross-repository mount asks for push on the target and pull on the source in one token', async () => {
  const alice = client('alice', 'wonder-land-7');
  const r = await copyImage(alice.repository('tok/app'), 'v1', alice.repository('tok/mounted'), 'v1');
  assert.equal(r.uploaded, 0);
  assert.ok(r.mounted >= 1);
  assert.ok(ts.log.includes('alice repository:tok/mounted:pull,push repository:tok/app:pull'), ts.log.join('\n'));
});

test('a token short of scope gives a one-line access error that points at strata login', async () => {
  const bob = client('bob', 'builder-bob-9');
  assert.deepEqual(await bob.repository('tok/app').listTags(), ['v1']);
  const { layout } = await makeLayoutImage(join(fx.work, 'bobimg'), 'v1', [{ 'x': 'x' }]);
  await assert.rejects(copyImage(layout, 'v1', bob.repository('tok/bob'), 'v1'), (err: Error) => {
    assert.match(err.message, new RegExp(`registry ${fx.reg.host.replace(/\./g, '\\.')}: .*(denied|authentication required).*strata login`));
    assert.doesNotMatch(err.message, /builder-bob-9|\n/);
    return true;
  });
});

test('an expired token is refused by the registry and replaced without the caller noticing', async () => {
  const alice = client('alice', 'wonder-land-7');
  ts.issueExpired = 1;
  const before = ts.log.length;
  assert.deepEqual(await alice.repository('tok/app').listTags(), ['v1']);
  assert.equal(ts.issueExpired, 0, 'the expired token was issued');
  assert.equal(ts.log.length - before, 2, `one expired token, then a fresh one: ${ts.log.slice(before).join(' | ')}`);
});
