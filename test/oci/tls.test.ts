import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { networkInterfaces } from 'node:os';
import { copyFile, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startRegistry, type TestRegistry } from '../harness/registry.js';
import { run, runOk, tempDir } from '../harness/proc.js';
import { makeLayoutImage } from '../harness/images.js';
import { PROJECT_ROOT } from '../../src/version.js';

const STRATA = join(PROJECT_ROOT, 'bin', 'strata');
// strata speaks plain HTTP to loopback registries, as Docker allows; HTTPS needs a non-loopback address.
const address = Object.values(networkInterfaces()).flat().find((i) => i && i.family === 'IPv4' && !i.internal)?.address;
const dir = await tempDir('strata-tls-');
let reg: TestRegistry | undefined;
const ca = join(dir.path, 'ca.pem');

if (address) {
  const p = (n: string) => join(dir.path, n);
  await runOk('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', p('ca.key'), '-out', ca, '-days', '2', '-subj', '/CN=strata-test-ca']);
  await runOk('openssl', ['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', p('srv.key'), '-out', p('srv.csr'), '-subj', `/CN=${address}`]);
  await writeFile(p('ext.cnf'), `subjectAltName=IP:${address}\nbasicConstraints=CA:FALSE\n`);
  await runOk('openssl', ['x509', '-req', '-in', p('srv.csr'), '-CA', ca, '-CAkey', p('ca.key'), '-CAcreateserial', '-out', p('srv.pem'), '-days', '2', '-extfile', p('ext.cnf')]);
  reg = await startRegistry({ tls: { certificate: p('srv.pem'), key: p('srv.key'), address } });
}
after(async () => {
  await reg?.stop();
  await dir.cleanup();
});

function env(extra: Record<string, string>): NodeJS.ProcessEnv {
  const e: NodeJS.ProcessEnv = { ...process.env, DOCKER_CONFIG: join(dir.path, 'docker'), ...extra };
  for (const k of ['SSL_CERT_FILE', 'SSL_CERT_DIR', 'NODE_EXTRA_CA_CERTS']) if (!(k in extra)) delete e[k];
  return e;
}

const skip = address ? false : 'this machine has no non-loopback IPv4 address to serve HTTPS on';

test('HTTPS registry: an unknown CA fails in one line; SSL_CERT_FILE, NODE_EXTRA_CA_CERTS or --insecure-registry make it work', { skip }, async () => {
  const host = reg!.host;
  await makeLayoutImage(join(dir.path, 'img'), 'v1', [{ 'a.txt': 'tls' }]);
  const src = `oci:${join(dir.path, 'img')}:v1`;
  const untrusted = await run(STRATA, ['image', 'copy', src, `${host}/tls/app:v1`], { env: env({}) });
  assert.notEqual(untrusted.code, 0);
  assert.equal(untrusted.stderr.trim().split('\n').length, 1);
  assert.match(untrusted.stderr, new RegExp(`cannot reach registry ${host.replace(/\./g, '\\.')} .*TLS problem`));

  await runOk(STRATA, ['image', 'copy', src, `${host}/tls/app:v1`], { env: env({ SSL_CERT_FILE: ca }) });
  assert.equal((await runOk(STRATA, ['image', 'tags', `${host}/tls/app`], { env: env({ NODE_EXTRA_CA_CERTS: ca }) })).trim(), 'v1');
  assert.equal((await runOk(STRATA, ['image', 'tags', '--insecure-registry', host, `${host}/tls/app`], { env: env({}) })).trim(), 'v1');
  // skopeo trusts the same CA through its cert dir and reads what strata pushed over HTTPS.
  const certDir = join(dir.path, 'skopeo-certs');
  await mkdir(certDir);
  await copyFile(ca, join(certDir, 'ca.crt'));
  await runOk('skopeo', ['inspect', '--cert-dir', certDir, '--raw', `docker://${host}/tls/app:v1`]);
});
