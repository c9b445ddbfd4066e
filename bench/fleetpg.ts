// The fleet on a PostgreSQL server with workers as separate processes (each its own STRATA_HOME, as machines):
// a run-image push rebasing 1,000 images with 1 worker and with 3 (goal: under 10 s with 3), build throughput for
// 30 small apps with 1, 2 and 3 workers, and a claim's round trip against an indexed read.

import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { openSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { freePort, startRegistry } from '../src/devtools/registry.js';
import { RemoteFleet } from '../src/fleet/client.js';
import { fleetPaths, LocalFleet } from '../src/fleet/service.js';
import type { BuildRecord } from '../src/fleet/store.js';
import { fleetWorld, layerBuild } from '../test/harness/fleet.js';
import { startPostgres } from '../test/harness/postgres.js';
import { STRATA } from '../test/harness/probe.js';
import { tempDir } from '../test/harness/proc.js';
import { addTwins } from './twins.js';

const N = Number(process.env.BENCH_FLEET_PG_IMAGES ?? 1000);
const APPS = 30;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

export async function fleetMachinesBench(): Promise<void> {
  const t = await tempDir('strata-bench-fleetpg-');
  const pg = await startPostgres(join(t.path, 'pg'));
  const url = pg.database('fleet');
  const port = await freePort();
  const webhook = `bench-webhook-${process.pid}-0123456789`;
  const reg = await startRegistry({ notify: [`http://127.0.0.1:${port}/v1/registry/events`], notifyToken: webhook });
  const procs: ChildProcess[] = [];
  const keyFile = join(t.path, 'fleet.key');
  await writeFile(keyFile, randomBytes(32).toString('base64'), { mode: 0o600 });
  const log = openSync(process.env.BENCH_FLEET_LOG ?? '/dev/null', 'w');
  const w = await fleetWorld(t.path, reg.host);
  const envFor = (machine: string) => ({ ...w.env, STRATA_HOME: join(t.path, 'machines', machine), STRATA_FLEET_DATABASE: url, STRATA_FLEET_KEY_FILE: keyFile });
  const start = (machine: string, args: string[]) => {
    const p = spawn(STRATA, args, { env: envFor(machine), stdio: ['ignore', log, log] });
    procs.push(p);
    return p;
  };
  const stop = async (p: ChildProcess) => {
    p.kill('SIGTERM');
    if (p.exitCode === null) await new Promise((r) => p.once('close', r));
  };
  const workers = (n: number, slots: string[]) => Array.from({ length: n }, (_, i) => start(`worker-${i}`, ['fleet', 'worker', ...slots]));
  process.env.STRATA_FLEET_KEY_FILE = keyFile;
  const fleet = await LocalFleet.open({ home: join(t.path, 'machines', 'bench'), database: url, storeOptions: {}, buildConcurrency: 1, rebaseConcurrency: 1, pollIntervalMs: 0, leaseMs: 30_000, log: () => undefined });
  const builds = (): Promise<BuildRecord[]> => fleet.store.builds({});
  const waitFor = async (what: string, done: (bs: BuildRecord[]) => boolean, limitS = 600): Promise<number> => {
    const t0 = process.hrtime.bigint();
    for (;;) {
      if (done(await builds())) return Number(process.hrtime.bigint() - t0) / 1e6;
      if (Number(process.hrtime.bigint() - t0) / 1e9 > limitS) throw new Error(`bench: ${what} did not finish in ${limitS} s`);
      // Not too often: listing thousands of records takes CPU from what is measured.
      await new Promise((r) => setTimeout(r, 500));
    }
  };
  try {
    await w.pushBuildpack('hello', 'test/hello', '1.0.0', '[ -f hello.txt ]', layerBuild('hello.txt'));
    await w.pushBuildpack('other', 'test/other', '1.0.0', '[ -f other.txt ]', layerBuild('other.txt'));
    await writeFile(join(t.path, 'tokens'), `webhook ${webhook}\n`);
    // The controller holds the role and the API and builds nothing; the workers do every build.
    const startController = () => start('controller', ['fleet', 'serve', '--listen', `127.0.0.1:${port}`, '--poll-interval', '1h', '--token-file', join(t.path, 'tokens'), '--builds', '0', '--rebases', '0']);
    let controllerProc = startController();

    // Build throughput: 30 small apps built with 1, 2 and 3 workers (one build at a time each), a commit to each between.
    const repos: { name: string; repo: string }[] = [];
    for (let i = 0; i < APPS; i++) repos.push({ name: `small-${i}`, repo: await w.repo(`small-${i}`, { 'hello.txt': `small ${i} v0` }) });
    await writeFile(join(t.path, 'small.yaml'), w.yaml(repos));
    const throughput: { workers: number; s: number }[] = [];
    for (const n of [1, 2, 3]) {
      const ws = workers(n, ['--builds', '1', '--rebases', '4']);
      const target = n;
      if (n === 1) execFileSync(STRATA, ['fleet', 'apply', '-f', join(t.path, 'small.yaml')], { env: envFor('cli'), stdio: 'ignore' });
      else {
        for (let i = 0; i < APPS; i++) await w.commit(`small-${i}`, { 'hello.txt': `small ${i} v${n}` });
        execFileSync(STRATA, ['fleet', 'reconcile'], { env: envFor('cli'), stdio: 'ignore' });
      }
      const ms = await waitFor(`${APPS} builds with ${n} worker(s)`, (bs) => bs.filter((b) => b.image.startsWith('small-') && b.number === target && b.status === 'succeeded').length === APPS);
      throughput.push({ workers: n, s: ms / 1000 });
      for (const p of ws) await stop(p);
    }
    process.stdout.write(`\nfleet on PostgreSQL, workers as separate processes\n`);
    for (const x of throughput) process.stdout.write(`${APPS} small apps built with ${x.workers} worker(s) (one build at a time each): ${x.s.toFixed(1)} s, ${((APPS / x.s) * 60).toFixed(0)} builds/min; speed-up ${(throughput[0]!.s / x.s).toFixed(2)}x (this machine has ${availableParallelism()} cores)\n`);

    // The twins' first builds are put on record by hand, with no controller to queue builds of its own meanwhile.
    await stop(controllerProc);

    // The rebase fleet: app twins of small-0, their first build on record, so the fleet starts fully built.
    const first = (await fleet.store.builds({ image: 'small-0' })).find((b) => b.status === 'succeeded')!;
    const twins = Array.from({ length: N }, (_, i) => `app-${i}`);
    await addTwins(fleet, reg.host, first, 'apps/small-0', twins, repos[0]!.repo);
    controllerProc = startController();
    // Measured from a settled fleet: the controller's first pass (every source looked up) is over before the push.
    let controller: RemoteFleet | undefined;
    for (let i = 0; i < 100 && !controller; i++) {
      await new Promise((r) => setTimeout(r, 200));
      controller = await RemoteFleet.connect(fleetPaths(join(t.path, 'machines', 'controller')).socket);
    }
    if (!controller) throw new Error('bench: the controller does not answer');
    for (let quietFor = 0; quietFor < 5; ) {
      await new Promise((r) => setTimeout(r, 200));
      quietFor = (await controller.busy()).reconciling ? 0 : quietFor + 1;
    }

    const wave = async (n: number, waveNo: number): Promise<number> => {
      const ws = workers(n, ['--builds', '1', '--rebases', '16']);
      await new Promise((r) => setTimeout(r, 1500));
      const pushed = process.hrtime.bigint();
      await w.pushRun({ 'etc/patched': `wave ${waveNo}` });
      await waitFor(`${N} rebases with ${n} worker(s)`, (bs) => bs.filter((b) => b.image.startsWith('app-') && b.kind === 'rebase' && b.status === 'succeeded' && b.number === waveNo + 1).length === N);
      const ms = Number(process.hrtime.bigint() - pushed) / 1e6;
      for (const p of ws) await stop(p);
      return ms;
    };
    const one = await wave(1, 1);
    const three = await wave(3, 2);
    // Reference: reading every app manifest once with skopeo, the least any tool touching each image does.
    const s0 = process.hrtime.bigint();
    let sampled = 0;
    for (let i = 0; i < N; i += 20, sampled++) execFileSync('skopeo', ['inspect', '--tls-verify=false', '--raw', `docker://${reg.host}/apps/app-${i}:latest`], { stdio: 'ignore' });
    const skopeoMs = ((Number(process.hrtime.bigint() - s0) / 1e6) * N) / sampled;
    process.stdout.write(`run-image push to ${N} images rebased: 1 worker ${(one / 1000).toFixed(2)} s, 3 workers ${(three / 1000).toFixed(2)} s (goal < 10 s with 3); speed-up ${(one / three).toFixed(2)}x\n`);
    process.stdout.write(`reference, skopeo inspect of ${N} manifests (estimated from a twentieth): ${(skopeoMs / 1000).toFixed(2)} s; ratio 3-worker rebase / skopeo inspect: ${(three / skopeoMs).toFixed(2)}x\n`);

    // A claim's round trip on the local server, against an indexed read through the same store.
    const claims: number[] = [];
    const pings: number[] = [];
    for (let i = 0; i < 200; i++) {
      await fleet.store.createBuild({ namespace: 'default', image: twins[i % N]!, kind: 'rebase', reasons: 'STACK', changes: [], inputs: first.inputs, priority: 1 }, () => []);
      const c0 = process.hrtime.bigint();
      const c = await fleet.store.claim('bench-claims', ['rebase'], 60_000);
      claims.push(Number(process.hrtime.bigint() - c0) / 1e6);
      if (c) await fleet.store.finish(c, 'bench-claims', 'succeeded', {});
      const p0 = process.hrtime.bigint();
      await fleet.store.hasPending();
      pings.push(Number(process.hrtime.bigint() - p0) / 1e6);
    }
    process.stdout.write(`claim round trip: median ${median(claims).toFixed(2)} ms (goal < 5 ms); an indexed read: ${median(pings).toFixed(2)} ms; ratio ${(median(claims) / median(pings)).toFixed(1)}x\n`);
  } finally {
    for (const p of procs) p.kill('SIGKILL');
    await fleet.close().catch(() => undefined);
    pg.stop();
    await reg.stop();
    await t.cleanup();
  }
}
