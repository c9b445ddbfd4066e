// The fleet's speed: a run-image push rebasing 100 images, timed from the push to the last rebase (target < 5 s;
// kpack publishes 50 images in 61–99 s), and what a no-change pass over 100 images costs (manifest HEADs only).

import { execFileSync, spawn } from 'node:child_process';
import { openSync, readFileSync, statSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { freePort, startRegistry } from '../src/devtools/registry.js';
import { RemoteFleet } from '../src/fleet/client.js';
import { reconcile } from '../src/fleet/reconciler.js';
import { fleetPaths, LocalFleet } from '../src/fleet/service.js';
import { fleetWorld, layerBuild } from '../test/harness/fleet.js';
import { STRATA } from '../test/harness/probe.js';
import { tempDir } from '../test/harness/proc.js';
import { addTwins } from './twins.js';
import { PROJECT_ROOT } from '../src/version.js';

const N = Number(process.env.BENCH_FLEET_IMAGES ?? 100);

export async function fleetBench(): Promise<void> {
  const t = await tempDir('strata-bench-fleet-');
  const port = await freePort();
  const webhook = `bench-webhook-${process.pid}-0123456789`;
  const reg = await startRegistry({ notify: [`http://127.0.0.1:${port}/v1/registry/events`], notifyToken: webhook });
  let serve: ReturnType<typeof spawn> | undefined;
  try {
    const w = await fleetWorld(t.path, reg.host);
    await w.pushBuildpack('hello', 'test/hello', '1.0.0', '[ -f hello.txt ]', layerBuild('hello.txt'));
    await w.pushBuildpack('other', 'test/other', '1.0.0', '[ -f other.txt ]', layerBuild('other.txt'));
    const repo = await w.repo('app', { 'hello.txt': 'hello' });
    await writeFile(join(t.path, 'fleet.yaml'), w.yaml([{ name: 'app-0', repo }]));
    execFileSync(STRATA, ['fleet', 'apply', '-f', join(t.path, 'fleet.yaml')], { env: w.env, stdio: 'ignore' });
    execFileSync(STRATA, ['fleet', 'reconcile', '--once'], { env: w.env, stdio: 'ignore', timeout: 300_000 });

    // The other images are app-0's twins: same source, same inputs, their image mounted into their own repository
    // and their first build on record, so the fleet starts as one whose images have all been built.
    const fleet = await LocalFleet.open({ home: join(t.path, 'home'), storeOptions: {}, buildConcurrency: 2, rebaseConcurrency: 16, pollIntervalMs: 0, leaseMs: 30_000, log: () => undefined });
    const first = (await fleet.store.builds({ image: 'app-0' }))[0]!;
    const twins = Array.from({ length: N - 1 }, (_, i) => `app-${i + 1}`);
    await addTwins(fleet, reg.host, first, 'apps/app-0', twins, repo);

    // A no-change pass, as the poller runs it: every source looked up again, nothing built.
    await reconcile(fleet.store, { storeOptions: {}, home: join(t.path, 'home'), log: () => undefined });
    const mark = (await reg.requests()).length;
    const t0 = process.hrtime.bigint();
    const quiet = await reconcile(fleet.store, { storeOptions: {}, home: join(t.path, 'home'), log: () => undefined });
    const quietMs = Number(process.hrtime.bigint() - t0) / 1e6;
    const requests = (await reg.requests()).slice(mark);
    const byMethod = new Map<string, number>();
    for (const r of requests) byMethod.set(r.split(' ')[0]!, (byMethod.get(r.split(' ')[0]!) ?? 0) + 1);
    await fleet.close();
    process.stdout.write(`\nfleet of ${N} images\n`);
    process.stdout.write(`no-change pass: ${quietMs.toFixed(0)} ms, ${quiet.created.length} builds, registry requests: ${[...byMethod].map(([m, n]) => `${n} ${m}`).join(', ') || 'none'} (git ls-remote for each source besides)\n`);

    const serveLog = openSync(process.env.BENCH_FLEET_LOG ?? '/dev/null', 'w');
    await writeFile(join(t.path, 'tokens'), `webhook ${webhook}\n`);
    const args = ['fleet', 'serve', '--listen', `127.0.0.1:${port}`, '--poll-interval', '1h', '--token-file', join(t.path, 'tokens')];
    // BENCH_FLEET_PROFILE=<dir>: a CPU profile of the fleet server, for finding where a rebase wave spends its time.
    const prof = process.env.BENCH_FLEET_PROFILE;
    serve = prof
      ? spawn(process.execPath, [...(process.env.BENCH_FLEET_HEAP ? ['--heapsnapshot-signal=SIGUSR2', `--diagnostic-dir=${prof}`] : ['--cpu-prof', '--cpu-prof-dir', prof]), join(PROJECT_ROOT, 'bin', 'strata.mjs'), '--', ...args], { env: w.env, stdio: ['ignore', serveLog, serveLog] })
      : spawn(STRATA, args, { env: w.env, stdio: ['ignore', serveLog, serveLog] });
    let remote: RemoteFleet | undefined;
    for (let i = 0; i < 200 && !remote; i++) {
      await new Promise((r) => setTimeout(r, 100));
      remote = await RemoteFleet.connect(fleetPaths(join(t.path, 'home')).socket);
    }
    if (!remote) throw new Error('fleet serve did not start');
    // Measured from a settled fleet: its first pass (every source looked up) is over before the push.
    for (let quietFor = 0; quietFor < 5; ) {
      await new Promise((r) => setTimeout(r, 100));
      const b = await remote.busy();
      quietFor = b.reconciling || b.running ? 0 : quietFor + 1;
    }

    // Reference: reading every app manifest once with skopeo, the least any tool touching each image does.
    const s0 = process.hrtime.bigint();
    let sampled = 0;
    for (let i = 0; i < N; i += 10, sampled++) execFileSync('skopeo', ['inspect', '--tls-verify=false', '--raw', `docker://${reg.host}/apps/app-${i}:latest`], { stdio: 'ignore' });
    const skopeoMs = ((Number(process.hrtime.bigint() - s0) / 1e6) * N) / sampled;

    const pushed = process.hrtime.bigint();
    await w.pushRun({ 'etc/patched': 'yes' });
    let rebased = 0;
    for (;;) {
      const bs = await remote.builds({});
      rebased = bs.filter((b) => b.kind === 'rebase' && b.status === 'succeeded').length;
      const failed = bs.filter((b) => b.kind === 'rebase' && b.status === 'failed').length;
      if (rebased + failed >= N) break;
      if (Number(process.hrtime.bigint() - pushed) / 1e9 > 120) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    const fleetMs = Number(process.hrtime.bigint() - pushed) / 1e6;
    process.stdout.write(`run-image push to ${rebased}/${N} images rebased: ${(fleetMs / 1000).toFixed(2)} s (target < 5 s; kpack: 50 images in 61-99 s)\n`);
    process.stdout.write(`reference, skopeo inspect of ${N} manifests (estimated from a tenth): ${(skopeoMs / 1000).toFixed(2)} s; ratio fleet rebase / skopeo inspect: ${(fleetMs / skopeoMs).toFixed(2)}x\n`);

    // Memory over a long life: more waves of rebases (history limits prune them), the server's RSS sampled.
    const waves = Number(process.env.BENCH_FLEET_WAVES ?? 100);
    const rss = (): number => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${serve!.pid}/status`, 'utf8'))?.[1] ?? NaN) / 1024;
    const samples: { builds: number; mb: number }[] = [];
    let done = rebased;
    for (let wave = 2; wave <= waves + 1; wave++) {
      await w.pushRun({ 'etc/patched': `wave ${wave}` });
      const target = N * wave;
      for (let i = 0; i < 2400; i++) {
        const bs = await remote.builds({});
        // Pruned history leaves the newest builds; count what the waves have finished by their numbers.
        const finished = bs.filter((b) => b.kind === 'rebase' && (b.status === 'succeeded' || b.status === 'failed') && b.number >= wave + 1).length;
        if (finished >= N) break;
        await new Promise((r) => setTimeout(r, 50));
      }
      done = target;
      if (wave === 11 || wave === waves + 1) {
        samples.push({ builds: done, mb: rss() });
        if (process.env.BENCH_FLEET_HEAP) process.stdout.write(`after ${done}: ${JSON.stringify(((await remote.busy()) as unknown as { memory: unknown }).memory)}\n`);
        // BENCH_FLEET_HEAP with BENCH_FLEET_PROFILE=<dir>: a heap snapshot of the server at each sample.
        if (process.env.BENCH_FLEET_HEAP && prof) {
          serve!.kill('SIGUSR2');
          await new Promise((r) => setTimeout(r, 8000));
        }
      }
    }
    const db = statSync(fleetPaths(join(t.path, 'home')).db).size / 1e6;
    if (samples.length === 2) process.stdout.write(`fleet serve RSS after ${samples[0]!.builds} rebases: ${samples[0]!.mb.toFixed(0)} MB; after ${samples[1]!.builds}: ${samples[1]!.mb.toFixed(0)} MB (flat: ratio ${(samples[1]!.mb / samples[0]!.mb).toFixed(2)}x); database ${db.toFixed(1)} MB\n`);
  } finally {
    serve?.kill('SIGTERM');
    if (serve) await new Promise((r) => serve!.once('close', r));
    await reg.stop();
    await t.cleanup();
  }
}
