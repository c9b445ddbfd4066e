// A platform team's fleet as kpack declares it: Secrets (basic-auth for a registry and for git over smart HTTP, an ssh
// key for git over ssh, an Opaque Secret read by valueFrom), a ServiceAccount, a ClusterBuildpack and a Build, against
// real private servers (docker-registry with htpasswd, git http-backend with basic auth, sshd with a key). Then the
// planted secret values are looked for in every output, the build logs, the database files and all of $STRATA_HOME.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { registryFixture, startRegistry, type TestRegistry } from '../harness/registry.js';
import { run, runOk, type RunResult } from '../harness/proc.js';
import { fleetWorld, type FleetWorld } from '../harness/fleet.js';
import { bareRepo, startGitHttp, startSshd, type GitHttpServer, type SshServer } from '../harness/gitservers.js';
import type { BuildRecord } from '../../src/fleet/store.js';

const fx = registryFixture();
const PW_REG = 'registry-pass-3f9a1c77';
const PW_GIT = 'git-pass-8d21e0b4';
const PW_ENV = 'env-token-5c3e9f12';

interface World {
  w: FleetWorld;
  priv: TestRegistry;
  git: GitHttpServer;
  ssh: SshServer;
  outputs: string[];
  strata(args: string[]): Promise<RunResult>;
}

let setup: Promise<World> | undefined;
const stops: (() => Promise<void>)[] = [];
after(async () => {
  for (const s of stops) await s().catch(() => undefined);
});

/** A buildpack that prints the secret variable (the log must show it redacted) and makes a launch layer. */
const BUILD = `echo "token is ${"$"}{SECRET_TOKEN:-unset}"
L="$1"
mkdir -p "$L/content"
cat /workspace/app.txt > "$L/content/app.txt"
printf '[types]\\nlaunch = true\\n' > "$L/content.toml"
printf '[[processes]]\\ntype = "web"\\ncommand = ["cat", "/layers/content/app.txt"]\\ndefault = true\\n' > "$L/launch.toml"
echo "built from $(cat /workspace/app.txt)"`;

const ready = (): Promise<World> =>
  (setup ??= (async () => {
    const htpasswd = (await runOk('htpasswd', ['-Bbn', 'fleet', PW_REG])).trim();
    const priv = await startRegistry({ htpasswd: `${htpasswd}\n` });
    stops.push(() => priv.stop());
    const w = await fleetWorld(fx.work, fx.reg.host);
    await w.pushBuildpack('app', 'test/app', '1.0.0', '[ -f app.txt ]', BUILD);
    await w.pushBuildpack('other', 'test/other', '1.0.0', '[ -f other.txt ]', 'true');
    const repos = join(fx.work, 'private-git');
    await bareRepo(repos, 'http-app', { 'app.txt': 'private over http' });
    await bareRepo(repos, 'ssh-app', { 'app.txt': 'private over ssh' });
    const git = await startGitHttp(repos, 'git', PW_GIT);
    stops.push(() => git.stop());
    const ssh = await startSshd(join(fx.work, 'sshd'));
    stops.push(() => ssh.stop());
    const outputs: string[] = [];
    const world: World = {
      w,
      priv,
      git,
      ssh,
      outputs,
      async strata(args) {
        const r = await w.strata(args);
        outputs.push(`$ strata ${args.join(' ')}\n${r.stdout}${r.stderr}`);
        return r;
      },
    };
    return world;
  })());

function fleetYaml(x: World): string {
  const reg = fx.reg.host;
  const priv = x.priv.host;
  const indent = (text: string) => text.trimEnd().split('\n').map((l) => `    ${l}`).join('\n');
  return `# Secrets in the shapes of kpack's docs/secrets.md
apiVersion: v1
kind: Secret
metadata:
  name: basic-docker-user-pass
  annotations:
    kpack.io/docker: ${priv}
type: kubernetes.io/basic-auth
stringData:
  username: fleet
  password: ${PW_REG}
---
apiVersion: v1
kind: Secret
metadata:
  name: basic-git-user-pass
  annotations:
    kpack.io/git: http://127.0.0.1:${new URL(x.git.url('x')).port}
type: kubernetes.io/basic-auth
stringData:
  username: git
  password: ${PW_GIT}
---
apiVersion: v1
kind: Secret
metadata:
  name: git-ssh-auth
  annotations:
    kpack.io/git: ${x.ssh.url('')}
type: kubernetes.io/ssh-auth
stringData:
  known_hosts: "${x.ssh.knownHosts.trim()}"
  ssh-privatekey: |
${indent(x.ssh.privateKey)}
---
apiVersion: v1
kind: Secret
metadata:
  name: app-secrets
type: Opaque
stringData:
  token: ${PW_ENV}
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: service-account
secrets:
  - name: basic-docker-user-pass
  - name: basic-git-user-pass
  - name: git-ssh-auth
imagePullSecrets:
  - name: basic-docker-user-pass
---
apiVersion: kpack.io/v1alpha2
kind: ClusterStack
metadata:
  name: base
spec:
  id: test.stack
  buildImage:
    image: ${reg}/base:build
  runImage:
    image: ${reg}/base:run
---
apiVersion: kpack.io/v1alpha2
kind: ClusterStore
metadata:
  name: default
spec:
  sources:
  - image: ${reg}/bp/other:1
---
apiVersion: kpack.io/v1alpha2
kind: ClusterBuildpack
metadata:
  name: app-buildpack
spec:
  image: ${reg}/bp/app:1
---
apiVersion: kpack.io/v1alpha2
kind: ClusterBuilder
metadata:
  name: builder
spec:
  tag: ${reg}/builders/private
  stack:
    name: base
    kind: ClusterStack
  store:
    name: default
    kind: ClusterStore
  order:
  - group:
    - name: app-buildpack
      kind: ClusterBuildpack
---
apiVersion: kpack.io/v1alpha2
kind: Image
metadata:
  name: over-http
spec:
  tag: ${priv}/apps/over-http
  serviceAccountName: service-account
  builder:
    kind: ClusterBuilder
    name: builder
  source:
    git:
      url: ${x.git.url('http-app.git')}
      revision: main
  build:
    env:
    - name: SECRET_TOKEN
      valueFrom:
        secretKeyRef:
          name: app-secrets
          key: token
---
apiVersion: kpack.io/v1alpha2
kind: Image
metadata:
  name: over-ssh
spec:
  tag: ${priv}/apps/over-ssh
  serviceAccountName: service-account
  builder:
    kind: ClusterBuilder
    name: builder
  source:
    git:
      url: ${x.ssh.url(join(fx.work, 'private-git', 'ssh-app.git'))}
      revision: main
---
# A Build applied by itself, as kpack's samples/build.yaml
apiVersion: kpack.io/v1alpha2
kind: Build
metadata:
  name: one-off
spec:
  tags:
  - ${priv}/apps/one-off
  serviceAccountName: service-account
  builder:
    image: ${reg}/builders/private
  source:
    git:
      url: ${x.git.url('http-app.git')}
      revision: main
`;
}

async function builds(x: World): Promise<BuildRecord[]> {
  const r = await x.strata(['fleet', 'builds', '-o', 'json']);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as BuildRecord[];
}

test('Secrets and a ServiceAccount as kpack declares them build private git sources (http and ssh) into a private registry; valueFrom reaches the build', { timeout: 300_000 }, async () => {
  const x = await ready();
  const file = join(fx.work, 'fleet.yaml');
  await writeFile(file, fleetYaml(x));
  const applied = await x.strata(['fleet', 'apply', '-f', file]);
  assert.equal(applied.code, 0, applied.stderr);
  assert.match(applied.stdout, /Secret default\/basic-docker-user-pass created/);
  const pass = await x.strata(['fleet', 'reconcile', '--once']);
  const done = await builds(x);
  assert.equal(pass.code, 0, pass.stdout + pass.stderr + done.map((b) => `${b.image}: ${b.message ?? ''}`).join('\n'));
  assert.deepEqual(done.map((b) => `${b.ownerKind} ${b.image}#${b.number} ${b.status}`).sort(), ['Build one-off#1 succeeded', 'Image over-http#1 succeeded', 'Image over-ssh#1 succeeded']);
  for (const name of ['over-http', 'over-ssh', 'one-off']) {
    const b = done.find((d) => d.image === name)!;
    const raw = await runOk('skopeo', ['inspect', '--tls-verify=false', '--creds', `fleet:${PW_REG}`, '--raw', `docker://${x.priv.host}/apps/${name}:latest`]);
    assert.ok(raw.includes('"layers"'));
    assert.match(b.result?.image ?? '', new RegExp(`^${x.priv.host.replace(/\./g, '\\.')}/apps/${name}@sha256:`));
  }
  const log = (await x.strata(['fleet', 'logs', 'over-http'])).stdout;
  assert.match(log, /built from private over http/);
  assert.match(log, /token is \[redacted\]/, 'the Secret value reached the build and was redacted from its log');
  assert.match((await x.strata(['fleet', 'logs', 'over-ssh'])).stdout, /built from private over ssh/);
  // Without credentials, the anonymous attempts were refused by the git server and the registry.
  const anon = await run('skopeo', ['inspect', '--tls-verify=false', '--raw', `docker://${x.priv.host}/apps/over-http:latest`]);
  assert.notEqual(anon.code, 0);
});

test('a run-image push rebases the private images with the service account\'s registry login', { timeout: 300_000 }, async () => {
  const x = await ready();
  await x.w.pushRun({ 'etc/patched': 'yes' });
  const pass = await x.strata(['fleet', 'reconcile', '--once']);
  assert.equal(pass.code, 0, pass.stdout + pass.stderr);
  const all = await builds(x);
  assert.equal(all.filter((b) => b.image === 'one-off').length, 1, 'a Build runs once');
  const rebased = all.filter((b) => b.number === 2);
  assert.deepEqual(rebased.map((b) => `${b.image} ${b.kind} ${b.reasons} ${b.status}`).sort(), ['over-http rebase STACK succeeded', 'over-ssh rebase STACK succeeded']);
});

test('an Image without the service account fails at its source with git\'s reason, and the status says so', { timeout: 120_000 }, async () => {
  const x = await ready();
  const file = join(fx.work, 'anon.yaml');
  await writeFile(file, `apiVersion: kpack.io/v1alpha2\nkind: Image\nmetadata: {name: anonymous}\nspec:\n  tag: ${x.priv.host}/apps/anonymous\n  builder: {kind: ClusterBuilder, name: builder}\n  source:\n    git: {url: "${x.git.url('http-app.git')}", revision: main}\n`);
  assert.equal((await x.strata(['fleet', 'apply', '-f', file])).code, 0);
  const refusedBefore = x.git.refused;
  const pass = await x.strata(['fleet', 'reconcile', '--once']);
  assert.equal(pass.code, 1);
  assert.match(pass.stdout, /Image default\/anonymous: source: git ls-remote: .*(Authentication failed|could not read Username)/);
  assert.ok(x.git.refused > refusedBefore);
  const status = await x.strata(['fleet', 'status', 'anonymous']);
  assert.match(status.stdout, /UpToDate: +False \(ReconcileFailed\)/);
  assert.equal((await x.strata(['fleet', 'delete', 'Image', 'anonymous'])).code, 0);
});

/** Every file under dir, with its contents, for the planted-value search (binary files too: SQLite pages). */
async function* files(dir: string): AsyncGenerator<{ path: string; data: Buffer }> {
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) yield* files(p);
    else if (e.isFile()) yield { path: p, data: await readFile(p) };
  }
}

test('no planted secret value appears in any output, listing, log, the database files or anywhere under $STRATA_HOME', { timeout: 120_000 }, async () => {
  const x = await ready();
  for (const args of [['fleet', 'images', '-o', 'json'], ['fleet', 'builds', '-o', 'json'], ['fleet', 'status', 'over-http', '-o', 'json'], ['fleet', 'status', 'over-http'], ['fleet', 'logs', 'over-http'], ['fleet', 'logs', 'over-ssh'], ['fleet', 'images']]) {
    const r = await x.strata(args);
    assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
  }
  const keyLine = x.ssh.privateKey.split('\n').find((l) => l.length > 40 && !l.startsWith('-----'))!;
  const planted = [PW_REG, PW_GIT, PW_ENV, keyLine];
  const all = x.outputs.join('\n');
  for (const p of planted) assert.ok(!all.includes(p), `a planted value is in the CLI output`);
  let searched = 0;
  for await (const f of files(x.w.env.STRATA_HOME!)) {
    searched++;
    for (const p of planted) assert.ok(!f.data.includes(p), `a planted value is in ${f.path}`);
  }
  assert.ok(searched > 0);
  const db = await readdir(join(x.w.env.STRATA_HOME!, 'fleet'));
  assert.ok(db.includes('fleet.sqlite'), db.join(', '));
});
