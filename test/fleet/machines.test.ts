// A fleet spread over machines that share a real PostgreSQL server: a controller and a standby (`fleet serve`, no
// build slots) and three workers (`fleet worker`), each with its own STRATA_HOME as a separate machine would have,
// keeping 30 images built. Workers are killed, stopped and resumed, the controller is killed, a run-image push
// rebases everything; every build completes exactly once, counted in build records and registry pushes.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { BuildRecord, WorkerRecord } from '../../src/fleet/store.js';
import { fleetWorld, layerBuild, type FleetWorld } from '../harness/fleet.js';
import { startPostgres, psql, type TestPostgres } from '../harness/postgres.js';
import { freePort, run, tempDir, until as waitFor } from '../harness/proc.js';
import { STRATA } from '../harness/probe.js';
import { startRegistry, type TestRegistry } from '../harness/registry.js';

const WEBHOOK = 'webhook-token-for-the-machines-test';
const N = 30;
const LEASE = '3s';

interface Proc {
  name: string;
  child: ChildProcess;
  log: string;
}

const s = {} as { root: string; w: FleetWorld; reg: TestRegistry; pg: TestPostgres; url: string; keyFile: string; ports: number[]; procs: Map<string, Proc>; cleanup: () => Promise<void> };
let setup: Promise<void> | undefined;
const ready = (): Promise<void> => (setup ??= prepare());

function envFor(machine: string, database = s.url): NodeJS.ProcessEnv {
  return { ...s.w.env, STRATA_HOME: join(s.root, 'machines', machine), STRATA_FLEET_KEY_FILE: s.keyFile, STRATA_FLEET_DATABASE: database };
}

function start(name: string, args: string[]): Proc {
  const p: Proc = { name, child: spawn(STRATA, args, { env: envFor(name), stdio: ['ignore', 'pipe', 'pipe'] }), log: '' };
  p.child.stdout!.on('data', (c: Buffer) => (p.log += c.toString()));
  p.child.stderr!.on('data', (c: Buffer) => (p.log += c.toString()));
  p.child.on('close', (code, signal) => (p.log += `[exited: ${code ?? signal}]\n`));
  s.procs.set(name, p);
  return p;
}

const serveArgs = (port: number) => ['fleet', 'serve', '--listen', `127.0.0.1:${port}`, '--token-file', join(s.root, 'tokens'), '--poll-interval', '1h', '--lease', LEASE, '--builds', '0', '--rebases', '0'];
const startWorker = (name: string) => start(name, ['fleet', 'worker', '--lease', LEASE, '--builds', '2', '--rebases', '4', '--grace', '1s']);

const logs = (): string => [...s.procs.values()].map((p) => `--- ${p.name}\n${p.log.slice(-3000)}`).join('\n');
const until = <T>(what: string, probe: () => Promise<T | undefined>, ms = 180_000): Promise<T> => waitFor(what, probe, ms, logs);

async function prepare(): Promise<void> {
  const t = await tempDir('strata-machines-');
  s.root = t.path;
  s.procs = new Map();
  s.ports = [await freePort(), await freePort()];
  s.pg = await startPostgres(join(t.path, 'pg'));
  s.url = s.pg.database('fleet');
  s.reg = await startRegistry({ notify: s.ports.map((p) => `http://127.0.0.1:${p}/v1/registry/events`), notifyToken: WEBHOOK });
  s.cleanup = async () => {
    for (const p of s.procs.values()) p.child.kill('SIGKILL');
    s.pg.stop();
    await s.reg.stop();
    await t.cleanup();
  };
  const w = await fleetWorld(t.path, s.reg.host);
  s.w = w;
  // SLOW in an app makes its build take a while, so a worker can be killed or stopped halfway.
  await w.pushBuildpack('hello', 'test/hello', '1.0.0', '[ -f hello.txt ]', `if busybox grep -q SLOW /workspace/hello.txt; then echo "slow build"; busybox sleep 10; fi\n${layerBuild('hello.txt')}`);
  await w.pushBuildpack('other', 'test/other', '1.0.0', '[ -f other.txt ]', layerBuild('other.txt'));
  const list = [];
  for (let i = 0; i < N; i++) list.push({ name: `app-${i}`, repo: await w.repo(`app-${i}`, { 'hello.txt': `app-${i} v1` }) });
  await writeFile(join(t.path, 'fleet.yaml'), w.yaml(list));
  await writeFile(join(t.path, 'tokens'), `webhook ${WEBHOOK}\n`);
  // The fleet's key, handed to every machine as an operator would (a mounted secret).
  s.keyFile = join(t.path, 'fleet.key');
  await writeFile(s.keyFile, randomBytes(32).toString('base64'), { mode: 0o600 });
}

after(async () => {
  await s.cleanup?.();
});

async function cli(args: string[], machine = 'laptop'): Promise<string> {
  const r = await run(STRATA, args, { env: envFor(machine) });
  assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

const builds = async (): Promise<BuildRecord[]> => JSON.parse(await cli(['fleet', 'builds', '-o', 'json'])) as BuildRecord[];
const buildOf = async (image: string, number: number) => (await builds()).find((b) => b.image === image && b.number === number);

/** Manifests pushed to an app's `latest` tag: one per build that reached the registry. */
async function pushes(app: string): Promise<number> {
  return (await s.reg.requests()).filter((r) => r === `PUT /v2/apps/${app}/manifests/latest`).length;
}

const procOf = (worker: string): Proc => {
  const pid = Number(worker.slice(worker.lastIndexOf(':') + 1));
  const p = [...s.procs.values()].find((x) => x.child.pid === pid && x.child.exitCode === null && x.child.signalCode === null);
  assert.ok(p, `no running process for worker ${worker}`);
  return p;
};

/** Commits SLOW to an app and has the fleet look; resolves with the running build once its slow step started. */
async function slowBuild(app: string): Promise<BuildRecord> {
  await s.w.commit(app, { 'hello.txt': `SLOW ${app} v2` });
  assert.match(await cli(['fleet', 'reconcile']), /Asked the fleet's controller \(strata [^)]+\) to reconcile now/);
  return until(`${app} #2 to run its slow step`, async () => {
    const b = await buildOf(app, 2);
    if (b?.status !== 'running') return undefined;
    return (await cli(['fleet', 'logs', app, '-b', '2'])).includes('slow build') ? b : undefined;
  });
}

test('a controller, a standby and three workers on one PostgreSQL server build 30 images, each exactly once, the work shared', { timeout: 600_000 }, async () => {
  await ready();
  const ctl = start('controller', serveArgs(s.ports[0]!));
  await until('the controller', async () => (ctl.log.includes("this process is the fleet's controller") ? true : undefined));
  const sby = start('standby', serveArgs(s.ports[1]!));
  await until('the standby', async () => (/standing by: strata \S+ is the fleet's controller/.test(sby.log) ? true : undefined));
  for (const name of ['worker-1', 'worker-2', 'worker-3']) startWorker(name);
  await until('the workers', async () => ([1, 2, 3].every((i) => s.procs.get(`worker-${i}`)!.log.includes('strata fleet worker')) ? true : undefined));

  assert.match(await cli(['fleet', 'apply', '-f', join(s.root, 'fleet.yaml')]), /Image default\/app-29 created/);
  const done = await until('30 first builds', async () => {
    const bs = await builds();
    return bs.filter((b) => b.number === 1 && b.status === 'succeeded').length === N ? bs : undefined;
  });
  assert.equal(done.length, N, 'one record per image');
  assert.ok(done.every((b) => b.attempts === 1));
  for (let i = 0; i < N; i++) assert.equal(await pushes(`app-${i}`), 1, `app-${i} pushed once`);
  const byWorker = new Set(done.map((b) => b.worker!.slice(0, b.worker!.lastIndexOf(':'))));
  assert.equal(byWorker.size, 3, `the three workers shared the builds: ${[...byWorker].join(', ')}`);

  const workers = JSON.parse(await cli(['fleet', 'workers', '-o', 'json'])) as WorkerRecord[];
  assert.equal(workers.length, 5);
  assert.equal(workers.filter((w) => w.controller).length, 1);
  // Rows are sorted by worker name, so the controller's row may come before or after the workers'.
  const table = await cli(['fleet', 'workers']);
  assert.match(table, /^WORKER +ROLE +SLOTS/);
  assert.match(table, / controller +0 builds, 0 rebases /);
  assert.equal(table.match(/ worker +2 builds, 4 rebases /g)?.length, 3, table);
});

test('a worker killed with SIGKILL mid-build: its build goes back to the queue after its lease and completes once, elsewhere', { timeout: 300_000 }, async () => {
  await ready();
  const b = await slowBuild('app-0');
  const victim = procOf(b.worker!);
  victim.child.kill('SIGKILL');
  const retried = await until('app-0 #2 to finish', async () => {
    const x = await buildOf('app-0', 2);
    return x && x.status !== 'running' && x.status !== 'pending' ? x : undefined;
  });
  assert.equal(retried.status, 'succeeded', retried.message);
  assert.equal(retried.attempts, 2);
  assert.notEqual(retried.worker, b.worker);
  assert.deepEqual((await builds()).filter((x) => x.image === 'app-0').map((x) => x.number).sort(), [1, 2], 'no build was added');
  assert.equal(await pushes('app-0'), 2, 'one push per build: the killed attempt never pushed');
  assert.match(logs(), /app-0#2: its worker \S+ lost its lease; back in the queue \(attempt 1 done\)/);
  // The machine comes back.
  startWorker(`${victim.name}-again`);
});

test('a worker stopped (SIGSTOP) past its lease and resumed: its build ran once elsewhere, and its late result is refused', { timeout: 300_000 }, async () => {
  await ready();
  const b = await slowBuild('app-2');
  const sleeper = procOf(b.worker!);
  sleeper.child.kill('SIGSTOP');
  const taken = await until('app-2 #2 taken by another worker', async () => {
    const x = await buildOf('app-2', 2);
    return x && x.attempts === 2 && x.worker !== b.worker ? x : undefined;
  });
  sleeper.child.kill('SIGCONT');
  const finished = await until('app-2 #2 to finish', async () => {
    const x = await buildOf('app-2', 2);
    return x && x.status !== 'running' && x.status !== 'pending' ? x : undefined;
  });
  assert.equal(finished.status, 'succeeded', finished.message);
  assert.equal(finished.worker, taken.worker, 'the record is the second worker\'s');
  await until('the resumed worker to notice', async () => (/default\/app-2#2: lost/.test(sleeper.log) ? true : undefined), 60_000);
  assert.equal(await pushes('app-2'), 2, 'the stopped worker\'s build child stopped itself before it could push');
  const log = await cli(['fleet', 'logs', 'app-2', '-b', '2']);
  assert.match(log, /attempt 2, on /);
  assert.doesNotMatch(log, /===> (FAILED|SUCCEEDED)[^]*===> (FAILED|SUCCEEDED)/, 'one outcome in the log');
});

test('the controller killed with SIGKILL: the standby takes over within one lease and reconciles', { timeout: 300_000 }, async () => {
  await ready();
  const ctl = s.procs.get('controller')!;
  const sby = s.procs.get('standby')!;
  const t0 = Date.now();
  ctl.child.kill('SIGKILL');
  await until('the standby to take over', async () => (sby.log.includes("this process is the fleet's controller") ? true : undefined), 30_000);
  const took = Date.now() - t0;
  assert.ok(took < 3000 + 1500, `took over in ${took} ms`);
  await s.w.commit('app-1', { 'hello.txt': 'app-1 v2' });
  assert.match(await cli(['fleet', 'reconcile']), /Asked the fleet's controller/);
  const b = await until('app-1 #2', async () => {
    const x = await buildOf('app-1', 2);
    return x?.status === 'succeeded' ? x : undefined;
  });
  assert.equal(b.reasons, 'COMMIT');
});

test('a run-image push rebases all 30 images, the three workers sharing the rebases', { timeout: 300_000 }, async () => {
  await ready();
  const before = new Map((await builds()).map((b) => [`${b.image}#${b.number}`, b]));
  const t0 = Date.now();
  await s.w.pushRun({ 'etc/patched': 'yes\n' });
  const rebased = await until('30 rebases', async () => {
    const bs = (await builds()).filter((b) => !before.has(`${b.image}#${b.number}`) && b.kind === 'rebase' && b.status === 'succeeded');
    return bs.length === N ? bs : undefined;
  });
  const took = Date.now() - t0;
  assert.ok(took < 30_000, `rebased ${took} ms after the push`);
  assert.ok(rebased.every((b) => b.reasons === 'STACK' && b.attempts === 1));
  const shared = new Set(rebased.map((b) => b.worker!.slice(0, b.worker!.lastIndexOf(':'))));
  assert.equal(shared.size, 3, `rebases by ${[...shared].join(', ')}\n${logs()}`);
  const all = await builds();
  for (let i = 0; i < N; i++) assert.equal(all.filter((b) => b.image === `app-${i}` && b.status === 'running').length, 0);
  assert.equal(psql(s.url, "select count(*) from builds where status in ('pending', 'running')"), '0');
});

test('fleet migrate copies a populated embedded fleet to a server whole (resources, sealed Secrets, builds, logs); fleet export --kpack round-trips it', { timeout: 300_000 }, async () => {
  await ready();
  const home = { ...s.w.env, STRATA_HOME: join(s.root, 'machines', 'old-laptop'), STRATA_FLEET_DATABASE: '' };
  const yaml = `${s.w.yaml([{ name: 'solo', repo: `file://${join(s.root, 'git', 'app-3')}` }])}---
apiVersion: v1
kind: Secret
metadata: {name: creds}
stringData: {token: planted-migrate-value-71}
`;
  await writeFile(join(s.root, 'solo.yaml'), yaml);
  for (const args of [['fleet', 'apply', '-f', join(s.root, 'solo.yaml')], ['fleet', 'reconcile', '--once']]) {
    const r = await run(STRATA, args, { env: home });
    assert.equal(r.code, 0, r.stderr);
  }
  const target = s.pg.database('migrated');
  const moved = await run(STRATA, ['fleet', 'migrate', '--to', target], { env: home });
  assert.equal(moved.code, 0, moved.stderr);
  assert.match(moved.stdout, /Copied \d+ resource\(s\), 1 build record\(s\) and \d+ log piece\(s\) to postgres:\/\/strata@127\.0\.0\.1:\d+\/migrated/);
  const there = { ...home, STRATA_FLEET_DATABASE: target };
  const show = async (env: NodeJS.ProcessEnv, args: string[]) => (await run(STRATA, args, { env })).stdout;
  for (const args of [['fleet', 'images'], ['fleet', 'builds', '-o', 'json'], ['fleet', 'logs', 'solo'], ['fleet', 'secrets']]) {
    assert.equal(await show(there, args), await show(home, args), `${args.join(' ')} is the same on the server`);
  }
  assert.ok(!psql(target, 'select coalesce(string_agg(sealed, \'\'), \'\') from resources').includes('planted-migrate-value-71'));
  const again = await run(STRATA, ['fleet', 'migrate', '--to', target], { env: home });
  assert.equal(again.code, 1);
  assert.match(again.stderr, /already holds a fleet; nothing was copied/);

  // And on to Kubernetes: the export applies to a fresh fleet (with its Secret from where it is kept) as the same fleet.
  const exported = await show(there, ['fleet', 'export', '--kpack']);
  assert.match(exported, /# +Secret default\/creds \(Opaque: token\)/);
  assert.ok(!exported.includes('planted-migrate-value-71'));
  await writeFile(join(s.root, 'export.yaml'), exported);
  await writeFile(join(s.root, 'creds.yaml'), 'apiVersion: v1\nkind: Secret\nmetadata: {name: creds}\nstringData: {token: planted-migrate-value-71}\n');
  const fresh = { ...home, STRATA_HOME: join(s.root, 'machines', 'fresh') };
  for (const f of ['creds.yaml', 'export.yaml']) {
    const r = await run(STRATA, ['fleet', 'apply', '-f', join(s.root, f)], { env: fresh });
    assert.equal(r.code, 0, r.stderr);
  }
  assert.equal(await show(fresh, ['fleet', 'export', '--kpack']), exported);
  assert.equal(await show(fresh, ['fleet', 'secrets']), await show(there, ['fleet', 'secrets']), 'the same Secret');
});
