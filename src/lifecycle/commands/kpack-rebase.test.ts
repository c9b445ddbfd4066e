import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { kpackLogins } from './kpack-rebase.js';

test("kpack's secret arguments become registry logins, read from the mounted Secrets; a name that is a path is refused", async () => {
  const root = await mkdtemp(join(tmpdir(), 'strata-kpack-secrets-'));
  try {
    const put = async (secret: string, file: string, text: string) => {
      await mkdir(join(root, secret), { recursive: true });
      await writeFile(join(root, secret, file), text);
    };
    await put('basic', 'username', 'alice');
    await put('basic', 'password', 'a-secret');
    await put('cfgjson', '.dockerconfigjson', JSON.stringify({ auths: { 'https://reg.two:5000/v1/': { auth: Buffer.from('bob:b-secret').toString('base64') } } }));
    await put('legacy', '.dockercfg', JSON.stringify({ 'reg.three': { username: 'carol', password: 'c-secret' } }));
    await put('pull', '.dockerconfigjson', JSON.stringify({ auths: { 'reg.four': { identitytoken: 't0k' } } }));
    const logins = await kpackLogins({ basicDocker: ['basic=reg.one'], dockerconfig: ['cfgjson'], dockercfg: ['legacy'], imagepull: ['pull'] }, root);
    assert.deepEqual(logins.find('reg.one'), { kind: 'basic', username: 'alice', password: 'a-secret' });
    assert.deepEqual(logins.find('reg.two:5000'), { kind: 'basic', username: 'bob', password: 'b-secret' });
    assert.deepEqual(logins.find('reg.three'), { kind: 'basic', username: 'carol', password: 'c-secret' });
    assert.deepEqual(logins.find('reg.four'), { kind: 'identity-token', token: 't0k' });
    assert.equal(logins.find('reg.five'), undefined);
    await assert.rejects(kpackLogins({ basicDocker: [], dockerconfig: ['../../etc'], dockercfg: [], imagepull: [] }, root), /secret "\.\.\/\.\.\/etc" is not a Kubernetes name/);
    await assert.rejects(kpackLogins({ basicDocker: ['missing=reg.one'], dockerconfig: [], dockercfg: [], imagepull: [] }, root), /secret missing: a basic-auth secret needs username and password files/);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});
