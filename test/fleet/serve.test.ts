// `strata fleet serve`: the long-running controller, woken by the registry's own push notifications, killed with
// SIGKILL mid-build and started again, stopped with SIGTERM.

import { after, test } from 'node:test';
import type { BuildRecord } from '../../src/fleet/store.js';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { freePort, run, runOk, tempDir, until as waitFor } from '../harness/proc.js';
import { startRegistry, type TestRegistry } from '../harness/registry.js';
import { fleetWorld, layerBuild, type FleetWorld } from '../harness/fleet.js';
import { STRATA } from '../harness/probe.js';

type BuildRow = BuildRecord;

/** The registry's notifications carry this token, as its config's endpoint headers say. */
const WEBHOOK = 'webhook-token-for-the-test-registry';

const state = {} as { w: FleetWorld; reg: TestRegistry; port: number; serve?: ChildProcess; serveLog: string; cleanup: () => Promise<void> };
let setup: Promise<void> | undefined;
const ready = (): Promise<void> => (setup ??= prepare());

async function prepare(): Promise<void> {
  const t = await tempDir('strata-serve-');
  state.port = await freePort();
  state.reg = await startRegistry({ notify: [`http://127.0.0.1:${state.port}/v1/registry/events`], notifyToken: WEBHOOK });
  state.cleanup = async () => {
    await state.reg.stop();
    await t.cleanup();
  };
  const w = await fleetWorld(t.path, state.reg.host);
  // SLOW in the app makes the build take a while, so it can be killed halfway.
  await w.pushBuildpack('hello', 'test/hello', '1.0.0', '[ -f hello.txt ]', `if busybox grep -q SLOW /workspace/hello.txt; then echo "slow build"; busybox sleep 8; fi\n${layerBuild('hello.txt')}`);
  await w.pushBuildpack('other', 'test/other', '1.0.0', '[ -f other.txt ]', layerBuild('other.txt'));
  const list = [];
  for (const name of ['s1', 's2']) list.push({ name, repo: await w.repo(name, { 'hello.txt': `${name} v1` }) });
  await writeFile(join(t.path, 'fleet.yaml'), w.yaml(list));
  await writeFile(join(t.path, 'tokens'), `webhook ${WEBHOOK}\n`);
  state.w = w;
  state.serveLog = '';
}

after(async () => {
  state.serve?.kill('SIGKILL');
  await state.cleanup?.();
});

function startServe(): ChildProcess {
  const child = spawn(STRATA, ['fleet', 'serve', '--listen', `127.0.0.1:${state.port}`, '--token-file', join(state.w.root, 'tokens'), '--poll-interval', '1h', '--grace', '30s'], { env: state.w.env, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout!.on('data', (c: Buffer) => (state.serveLog += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (state.serveLog += c.toString()));
  child.on('close', (code, signal) => (state.serveLog += `[serve exited: ${code ?? signal}]\n`));
  state.serve = child;
  return child;
}

async function builds(): Promise<BuildRow[]> {
  const r = await state.w.strata(['fleet', 'builds', '-o', 'json']);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as BuildRow[];
}

const until = <T>(what: string, probe: () => Promise<T | undefined>, ms = 120_000): Promise<T> => waitFor(what, probe, ms, () => state.serveLog);

const settled = (bs: BuildRow[], image: string, number: number) => bs.find((b) => b.image === image && b.number === number && b.status !== 'pending' && b.status !== 'running');

test('fleet serve: apply through it builds every image; a run-image push notification rebases them all within seconds, with no polling', { timeout: 300_000 }, async () => {
  await ready();
  startServe();
  await until('the API', async () => (state.serveLog.includes('API on') ? true : undefined));
  const applied = await state.w.strata(['fleet', 'apply', '-f', join(state.w.root, 'fleet.yaml')]);
  assert.equal(applied.code, 0, applied.stderr);
  await until('first builds', async () => {
    const bs = await builds();
    return settled(bs, 's1', 1) && settled(bs, 's2', 1) ? bs : undefined;
  });
  for (const b of await builds()) assert.equal(b.status, 'succeeded', `${b.image}#${b.number}: ${b.message}`);

  const pushed = Date.now();
  await state.w.pushRun({ 'etc/patched': 'yes' });
  const rebased = await until('rebases', async () => {
    const bs = await builds();
    return settled(bs, 's1', 2) && settled(bs, 's2', 2) ? bs : undefined;
  }, 30_000);
  const took = Date.now() - pushed;
  for (const name of ['s1', 's2']) {
    const b = rebased.find((x) => x.image === name && x.number === 2)!;
    assert.equal(`${b.kind} ${b.reasons} ${b.status}`, 'rebase STACK succeeded');
  }
  assert.ok(took < 20_000, `rebased ${took} ms after the push`);
  assert.match(state.serveLog, /registry push to base: reconciling/);
});

test('fleet serve killed with SIGKILL mid-build: restarted, the build goes back to the queue and runs again under the same record; nothing lost or doubled', { timeout: 300_000 }, async () => {
  await ready();
  await state.w.commit('s1', { 'hello.txt': 'SLOW s1 v2' });
  const asked = await state.w.strata(['fleet', 'reconcile']);
  assert.match(asked.stdout, /Asked the running strata fleet serve/);
  await until('the slow build to start', async () => ((await state.w.strata(['fleet', 'logs', 's1', '-b', '3'])).stdout.includes('slow build') ? true : undefined));
  state.serve!.kill('SIGKILL');
  await new Promise((r) => state.serve!.once('close', r));
  // The strata build child died with it (it is tied to its parent).
  await until('the build child to go', async () => ((await run('pgrep', ['-f', `${state.w.root}/home/fleet/work`])).code === 1 ? true : undefined), 15_000);
  startServe();
  await until('the API', async () => (state.serveLog.includes('API on') ? true : undefined));
  const after = await until('the retried build', async () => {
    const bs = await builds();
    return settled(bs, 's1', 3) ? bs : undefined;
  });
  const s1 = after.filter((b) => b.image === 's1').sort((x, y) => x.number - y.number);
  assert.deepEqual(
    s1.map((b) => `${b.number} ${b.kind} ${b.reasons} ${b.status}`),
    ['1 build CONFIG succeeded', '2 rebase STACK succeeded', '3 build COMMIT succeeded'],
  );
  assert.match(state.serveLog, /1 build\(s\) left running by a stopped worker of this machine went back to the queue/);
  assert.deepEqual(after.filter((b) => b.image === 's2').map((b) => b.number).sort(), [1, 2], 's2 was not built again');
  const images = JSON.parse((await state.w.strata(['fleet', 'images', '-o', 'json'])).stdout) as { name: string }[];
  assert.deepEqual(images.map((i) => i.name), ['s1', 's2'], 'every declared resource survived');
  const followed = await state.w.strata(['fleet', 'logs', 's1', '-b', '3', '--follow']);
  assert.equal(followed.code, 0);
  assert.match(followed.stdout, /slow build[^]*===> BUILD #3 of default\/s1 \(COMMIT\) \(attempt 2, on [^)]+\)[^]*built from SLOW s1 v2/, 'the log keeps the first attempt and goes on with the second');
  assert.match(followed.stdout, /===> SUCCEEDED/);
});

test('fleet serve stops gracefully on SIGTERM: it exits 0 and the socket is gone', { timeout: 120_000 }, async () => {
  await ready();
  const child = state.serve!;
  const code = await new Promise<number | null>((resolve) => {
    child.once('close', (c) => resolve(c));
    child.kill('SIGTERM');
  });
  assert.equal(code, 0, state.serveLog);
  assert.match(state.serveLog, /stopped/);
  state.serve = undefined;
  const r = await state.w.strata(['fleet', 'images']);
  assert.equal(r.code, 0, 'the CLI opens the database itself again');
});

test('a build that cannot push fails at once with the reason, instead of hanging (kpack#1224)', { timeout: 120_000 }, async () => {
  await ready();
  const locked = await startRegistry({ htpasswd: 'user:$2y$05$LrTXcqwqW2Qe0NRl7uuSBOBjNJHrBf9fBwlNodvUkvgbaoT5N6qn6\n' });
  try {
    const file = join(state.w.root, 'locked.yaml');
    const repo = await state.w.repo('locked', { 'hello.txt': 'L' });
    await writeFile(file, `apiVersion: kpack.io/v1alpha2\nkind: Image\nmetadata: {name: locked}\nspec:\n  tag: ${locked.host}/apps/locked\n  builder: {kind: ClusterBuilder, name: builder}\n  source:\n    git: {url: "${repo}", revision: main}\n`);
    assert.equal((await state.w.strata(['fleet', 'apply', '-f', file])).code, 0);
    const started = Date.now();
    const r = await state.w.strata(['fleet', 'reconcile', '--once']);
    assert.equal(r.code, 1);
    assert.match(r.stdout, /default\/locked #1 build \(CONFIG\): failed/);
    assert.ok(Date.now() - started < 60_000);
    const b = (await builds()).find((x) => x.image === 'locked')!;
    assert.match(b.message ?? '', /^no write access to .*\/apps\/locked: .*strata login/);
    // Not retried for the same inputs on the next pass.
    const again = await state.w.strata(['fleet', 'reconcile', '--once']);
    assert.match(again.stdout, /Nothing to build/);
    assert.equal(await runOk('sh', ['-c', 'echo ok']), 'ok\n');
  } finally {
    await locked.stop();
  }
});
