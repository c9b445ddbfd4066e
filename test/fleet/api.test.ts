// The fleet's HTTP API tried as an attacker would: no token, the wrong role, a forged Host, a text/plain body,
// malformed JSON, hostile names and tags, an unknown kind, a wrongly typed stack, a spoofed registry event, a local
// source outside the allowed dirs; and as an operator would: env values passed literally, a delete that stops the
// build it interrupts.

import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { freePort, run, tempDir, until as waitFor } from '../harness/proc.js';
import { startRegistry, type TestRegistry } from '../harness/registry.js';
import { fleetWorld, type FleetWorld } from '../harness/fleet.js';
import { STRATA } from '../harness/probe.js';
import type { BuildRecord } from '../../src/fleet/store.js';

const ADMIN = 'admin-token-0123456789abcdef';
const READ = 'read-token-0123456789abcdef';
const WEBHOOK = 'webhook-token-0123456789abcdef';

const state = {} as { w: FleetWorld; reg: TestRegistry; port: number; serve: ChildProcess; log: string; allowed: string; cleanup: () => Promise<void> };
let setup: Promise<void> | undefined;
const ready = (): Promise<void> => (setup ??= prepare());

/** Prints what it is given, literally, and sleeps when the app asks for it (to be deleted mid-build). */
const BUILD = `printf 'MULTI has %s line(s)\\n' "$(printf '%s\\n' "\${MULTI:-}" | busybox wc -l)"
echo "B is \${B:-unset}"
echo "binding db holds: $(busybox ls /platform/bindings/db 2>/dev/null | busybox tr '\\n' ' ')"
if busybox grep -q SLOW /workspace/app.txt; then echo "slow build"; busybox sleep 20; fi
L="$1"
mkdir -p "$L/content"
cat /workspace/app.txt > "$L/content/app.txt"
printf '[types]\\nlaunch = true\\n' > "$L/content.toml"
printf '[[processes]]\\ntype = "web"\\ncommand = ["cat", "/layers/content/app.txt"]\\ndefault = true\\n' > "$L/launch.toml"`;

async function prepare(): Promise<void> {
  const t = await tempDir('strata-api-');
  state.port = await freePort();
  state.reg = await startRegistry();
  state.cleanup = async () => {
    await state.reg.stop();
    await t.cleanup();
  };
  const w = await fleetWorld(t.path, state.reg.host);
  await w.pushBuildpack('hello', 'test/hello', '1.0.0', '[ -f app.txt ]', BUILD);
  await w.pushBuildpack('other', 'test/other', '1.0.0', '[ -f other.txt ]', 'true');
  state.allowed = join(t.path, 'allowed');
  await mkdir(state.allowed, { recursive: true });
  await mkdir(join(t.path, 'git'), { recursive: true });
  await writeFile(join(t.path, 'tokens'), `# roles\nadmin ${ADMIN}\nread ${READ}\nwebhook ${WEBHOOK}\n`);
  state.w = w;
  state.log = '';
  const head = w.yaml([]);
  await writeFile(join(t.path, 'base.yaml'), head);
  assert.equal((await w.strata(['fleet', 'apply', '-f', join(t.path, 'base.yaml')])).code, 0);
  state.serve = spawn(STRATA, ['fleet', 'serve', '--listen', `127.0.0.1:${state.port}`, '--token-file', join(t.path, 'tokens'), '--allow-local-source', state.allowed, '--allow-local-source', join(t.path, 'git'), '--poll-interval', '1h'], { env: w.env, stdio: ['ignore', 'pipe', 'pipe'] });
  state.serve.stdout!.on('data', (c: Buffer) => (state.log += c.toString()));
  state.serve.stderr!.on('data', (c: Buffer) => (state.log += c.toString()));
  for (let i = 0; i < 300 && !state.log.includes('API on'); i++) await new Promise((r) => setTimeout(r, 100));
  assert.match(state.log, /API on/);
}

after(async () => {
  state.serve?.kill('SIGKILL');
  await state.cleanup?.();
});

interface Answer {
  status: number;
  body: string;
  headers?: Record<string, string | string[] | undefined>;
}

async function call(method: string, path: string, o: { token?: string; body?: unknown; raw?: string; type?: string; host?: string } = {}): Promise<Answer> {
  const headers: Record<string, string> = {};
  if (o.token) headers.authorization = `Bearer ${o.token}`;
  if (o.body !== undefined || o.raw !== undefined) headers['content-type'] = o.type ?? 'application/json';
  // fetch will not send a Host of our choosing; Node's http does.
  const http = await import('node:http');
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: state.port, method, path, headers: { ...headers, host: o.host ?? `127.0.0.1:${state.port}` } }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }));
    });
    req.on('error', reject);
    req.end(o.raw ?? (o.body === undefined ? undefined : JSON.stringify(o.body)));
  });
}

function image(name: string, source: Record<string, unknown>, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { apiVersion: 'kpack.io/v1alpha2', kind: 'Image', metadata: { name }, spec: { tag: `${state.reg.host}/apps/${name}`, builder: { kind: 'ClusterBuilder', name: 'builder' }, source, ...extra } };
}

const apply = (docs: unknown[], token = ADMIN) => call('POST', '/v1/apply', { token, body: { documents: docs } });

/** One line of JSON error, no JavaScript in it. */
function oneLine(a: Answer, status: number, pattern: RegExp): void {
  assert.equal(a.status, status, a.body);
  const { error } = JSON.parse(a.body) as { error: string };
  assert.match(error, pattern);
  assert.doesNotMatch(error, /\n|TypeError|ReferenceError|\bat .*\.js/);
}

test('every TCP route needs a bearer token of the right role; the Host must name the listener; JSON only', { timeout: 120_000 }, async () => {
  await ready();
  oneLine(await call('GET', '/v1/images'), 401, /bearer token is required/);
  oneLine(await call('GET', '/v1/images', { token: 'not-a-token' }), 401, /bearer token/);
  assert.equal((await call('GET', '/v1/images', { token: READ })).status, 200);
  assert.equal((await call('GET', '/v1/ping', { token: ADMIN })).status, 200);
  oneLine(await apply([image('x', { git: { url: 'https://git.example/x', revision: 'main' } })], READ), 403, /needs admin/);
  oneLine(await apply([image('x', { git: { url: 'https://git.example/x', revision: 'main' } })], WEBHOOK), 403, /needs admin/);
  oneLine(await call('POST', '/v1/apply', { body: { documents: [] } }), 401, /bearer/);
  oneLine(await call('GET', '/v1/images', { token: READ, host: 'attacker.example' }), 421, /is not this listener's name/);
  assert.equal((await call('GET', '/v1/images', { token: READ, host: `localhost:${state.port}` })).status, 200, 'a loopback listener answers to its loopback names');
  oneLine(await call('GET', '/v1/images', { token: READ, host: `127.0.0.1:${state.port + 1}` }), 421, /listener/);
  oneLine(await call('POST', '/v1/apply', { token: ADMIN, raw: 'kind: Image', type: 'text/plain' }), 415, /send JSON/);
  oneLine(await call('POST', '/v1/apply', { token: ADMIN, raw: '{"documents": [' }), 400, /not valid JSON/);
  oneLine(await call('POST', '/v1/apply', { token: ADMIN, body: { documents: 5 } }), 400, /expected \{"documents"/);
  oneLine(await call('POST', '/v1/apply', { token: ADMIN, body: { resources: [{ meta: {}, spec: {} }] } }), 400, /expected \{"documents"/);
  oneLine(await call('POST', '/v1/delete', { token: ADMIN, body: { metas: [{ kind: 'Image', name: 5 }] } }), 400, /expected kind, namespace and name/);
  oneLine(await call('GET', '/v1/nope', { token: READ }), 404, /no such route/);
  // Unix socket: the machine's own user, no token (the CLI).
  assert.equal((await state.w.strata(['fleet', 'images'])).code, 0);
  // The dashboard's pages are open on a loopback listener (its JSON and its action are not); a forged Host gets none.
  const page = await call('GET', '/');
  assert.equal(page.status, 200);
  assert.match(page.body, /<h1>Fleet<\/h1>/);
  assert.match(String(page.headers?.['content-security-policy']), /default-src 'none'; script-src 'self'/);
  assert.equal((await call('GET', '/', { host: 'attacker.example' })).status, 421);
  oneLine(await call('GET', '/api/images'), 401, /bearer token is required/);
  oneLine(await call('POST', '/api/images/x/trigger', { token: READ }), 403, /admin token/);
  assert.equal((await call('POST', '/signin', { raw: `token=${READ}`, type: 'application/x-www-form-urlencoded', host: 'attacker.example' })).status, 421);
  oneLine(await call('POST', '/v1/apply', { token: ADMIN, raw: 'documents=x', type: 'application/x-www-form-urlencoded' }), 415, /unsupported|JSON/);
});

test('what the CLI would refuse, the API refuses too: oci: tags, hostile names, unknown kinds, wrongly typed stacks, remote helpers', { timeout: 120_000 }, async () => {
  await ready();
  oneLine(await apply([{ ...image('evil', { git: { url: 'https://git.example/x', revision: 'main' } }), spec: { ...(image('evil', {}).spec as object), tag: 'oci:/etc/strata-owned', source: { git: { url: 'https://git.example/x', revision: 'main' } } } }]), 400, /spec\.tag: invalid image reference "oci:\/etc\/strata-owned"/);
  oneLine(await apply([image('../escape', { git: { url: 'https://git.example/x', revision: 'main' } })]), 400, /metadata\.name: "\.\.\/escape" must be lowercase/);
  oneLine(await apply([image('has space', { git: { url: 'https://git.example/x', revision: 'main' } })]), 400, /metadata\.name: "has space"/);
  oneLine(await apply([{ apiVersion: 'kpack.io/v1alpha2', kind: 'Pipeline', metadata: { name: 'p' }, spec: {} }]), 400, /unknown kind "Pipeline"/);
  oneLine(await apply([{ apiVersion: 'kpack.io/v1alpha2', kind: 'ClusterStack', metadata: { name: 'bad' }, spec: { id: 'x', buildImage: 5, runImage: { image: 'r/run' } } }]), 400, /spec\.buildImage: must be a mapping/);
  oneLine(await apply([image('helper', { git: { url: 'ext::sh -c touch% /tmp/pwned', revision: 'main' } })]), 400, /is not a git URL/);
  oneLine(await apply([image('flag', { git: { url: 'https://git.example/x', revision: '--upload-pack=touch /tmp/pwned' } })]), 400, /is not a branch, tag or commit/);
  oneLine(await call('POST', '/v1/images/default/..%2Fx/trigger', { token: ADMIN, body: {} }), 400, /must be lowercase/);
  oneLine(await call('GET', '/v1/builds/default/x/0/log', { token: READ }), 400, /not a whole number/);
  const kinds = (await call('GET', '/v1/resources?kind=Pipeline', { token: READ }));
  oneLine(kinds, 400, /unknown/);
  const names = (JSON.parse((await call('GET', '/v1/images', { token: READ })).body) as { name: string }[]).map((i) => i.name);
  assert.deepEqual(names, [], 'nothing was applied');
});

test('a spoofed registry event without the webhook token is refused; with it, an event only wakes a pass', { timeout: 60_000 }, async () => {
  await ready();
  const event = { events: [{ action: 'push', target: { repository: 'base', tag: 'run', mediaType: 'application/vnd.oci.image.manifest.v1+json' } }] };
  oneLine(await call('POST', '/v1/registry/events', { body: event, type: 'application/vnd.docker.distribution.events.v1+json' }), 401, /bearer/);
  oneLine(await call('POST', '/v1/registry/events', { token: READ, body: event, type: 'application/vnd.docker.distribution.events.v1+json' }), 403, /needs webhook/);
  const ok = await call('POST', '/v1/registry/events', { token: WEBHOOK, body: event, type: 'application/vnd.docker.distribution.events.v1+json' });
  assert.equal(ok.status, 200, ok.body);
  assert.deepEqual(JSON.parse(ok.body), { reconciling: true });
  oneLine(await call('GET', '/v1/images', { token: WEBHOOK }), 403, /needs read/);
});

test('over the network, local sources only in the allowed dirs; the CLI on the machine may name any', { timeout: 60_000 }, async () => {
  await ready();
  oneLine(await apply([image('blob', { blob: { url: 'file:///etc/shadow' } })]), 400, /names \/etc\/shadow on the fleet's machine.*--allow-local-source/);
  oneLine(await apply([image('gitpath', { git: { url: '/root/.ssh', revision: 'main' } })]), 400, /names \/root\/\.ssh/);
  oneLine(await apply([image('sneaky', { blob: { url: `file://${state.allowed}/../../../etc/shadow` } })]), 400, /--allow-local-source/);
  const inside = await apply([image('inside', { blob: { url: `file://${state.allowed}/app.tgz` } }, { imageTaggingStrategy: 'None' })]);
  assert.equal(inside.status, 200, inside.body);
  assert.equal((await call('POST', '/v1/delete', { token: ADMIN, body: { metas: [{ kind: 'Image', name: 'inside' }] } })).status, 200);
  const file = join(state.w.root, 'local.yaml');
  await writeFile(file, `apiVersion: kpack.io/v1alpha2\nkind: Image\nmetadata: {name: local}\nspec:\n  tag: ${state.reg.host}/apps/local\n  builder: {kind: ClusterBuilder, name: builder}\n  source: {blob: {url: "file:///opt/app.tgz"}}\n`);
  const local = await state.w.strata(['fleet', 'apply', '-f', file]);
  assert.equal(local.code, 0, local.stderr);
  assert.equal((await state.w.strata(['fleet', 'delete', 'Image', 'local'])).code, 0);
});

async function builds(name: string): Promise<BuildRecord[]> {
  return JSON.parse((await call('GET', `/v1/builds?image=${name}`, { token: READ })).body) as BuildRecord[];
}

const until = <T>(what: string, probe: () => Promise<T | undefined>, ms = 120_000): Promise<T> => waitFor(what, probe, ms, () => state.log);

test('env values reach the build exactly as declared (a newline is not a second variable); deleting an Image mid-build stops the build and removes its records and cache', { timeout: 300_000 }, async () => {
  await ready();
  const repo = await state.w.repo('multi', { 'app.txt': 'multi' });
  const db = { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'db' }, type: 'Opaque', stringData: { type: 'mysql', password: 'binding-pass-77' } };
  const applied = await apply([db, image('multi', { git: { url: repo, revision: 'main' } }, { build: { env: [{ name: 'MULTI', value: 'one\nB=evil' }], services: [{ kind: 'Secret', apiVersion: 'v1', name: 'db' }] } })]);
  assert.equal(applied.status, 200, applied.body);
  const done = await until('the build', async () => (await builds('multi')).find((b) => b.status === 'succeeded' || b.status === 'failed'));
  assert.equal(done.status, 'succeeded', done.message);
  const log = JSON.parse((await call('GET', '/v1/builds/default/multi/1/log', { token: READ })).body) as { chunks: { text: string }[] };
  const text = log.chunks.map((c) => c.text).join('');
  assert.match(text, /MULTI has 2 line\(s\)/);
  assert.match(text, /B is unset/);
  assert.match(text, /binding db holds: password type/, `kpack's services reach the buildpacks as a binding:\n${text}`);
  assert.ok(!text.includes('binding-pass-77'), 'a binding value is redacted from the log');

  const slow = await state.w.repo('slow', { 'app.txt': 'SLOW' });
  assert.equal((await apply([image('slow', { git: { url: slow, revision: 'main' } })])).status, 200);
  await until('the slow build to start', async () => {
    const l = JSON.parse((await call('GET', '/v1/builds/default/slow/1/log', { token: READ })).body) as { chunks?: { text: string }[] };
    return l.chunks?.some((c) => c.text.includes('slow build')) ? true : undefined;
  });
  const cache = join(state.w.env.STRATA_HOME!, 'fleet', 'caches', 'default', 'slow');
  const gone = await call('POST', '/v1/delete', { token: ADMIN, body: { metas: [{ kind: 'Image', name: 'slow' }] } });
  assert.equal(gone.status, 200, gone.body);
  await until('the build child to stop', async () => ((await run('pgrep', ['-f', `${state.w.root}/home/fleet/work`])).code === 1 ? true : undefined), 30_000);
  assert.deepEqual(await builds('slow'), []);
  assert.equal((await run('test', ['-e', cache])).code, 1, 'the cache went with the Image');
  const pushed = await run('skopeo', ['inspect', '--tls-verify=false', '--raw', `docker://${state.reg.host}/apps/slow:latest`]);
  assert.notEqual(pushed.code, 0, 'the deleted Image was never pushed');
  assert.match(state.log, /default\/slow#1: interrupted/);
});
