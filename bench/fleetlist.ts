// What looking at a fleet costs: `strata fleet images` of a 1,000-image fleet (with build history) with and without a
// running `fleet serve`, what an idle `fleet serve` holds, and the dashboard's fleet page. Targets: ≤ 0.3 s and
// ≤ 150 MB for the listing either way, ≤ 150 MB for the idle server, ≤ 300 ms and ≤ 100 KB for the fleet page.
// References: `node -e 0`, the floor for any command on this Node.js; for the page, the same server's JSON listing of
// the images (`GET /v1/images`), which reads the same records and renders nothing.

import { spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { documentsOf } from '../src/fleet/manifests.js';
import { RemoteFleet } from '../src/fleet/client.js';
import { fleetPaths, LocalFleet } from '../src/fleet/service.js';
import type { BuildInputs } from '../src/fleet/reasons.js';
import { STRATA } from '../test/harness/probe.js';
import { freePort, tempDir } from '../test/harness/proc.js';

const N = Number(process.env.BENCH_FLEET_LIST ?? 1000);

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

/** Wall seconds and peak RSS (MB) of one command, from GNU time. */
function measure(cmd: string, args: string[], env: NodeJS.ProcessEnv): { s: number; mb: number } {
  const r = spawnSync('/usr/bin/time', ['-f', '%e %M', cmd, ...args], { env, stdio: ['ignore', 'ignore', 'pipe'] });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr.toString()}`);
  const out = r.stderr.toString().trim().split('\n').pop()!;
  const [s, kb] = out.split(' ').map(Number) as [number, number];
  return { s, mb: kb / 1024 };
}

function rssMb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

export async function fleetListBench(runs: number): Promise<void> {
  const t = await tempDir('strata-bench-list-');
  const home = join(t.path, 'home');
  const env = { ...process.env, STRATA_HOME: home };
  let serve: ReturnType<typeof spawn> | undefined;
  try {
    const fleet = await LocalFleet.open({ home, storeOptions: {}, buildConcurrency: 1, rebaseConcurrency: 1, pollIntervalMs: 0, leaseMs: 30_000, log: () => undefined });
    const head = `apiVersion: kpack.io/v1alpha2\nkind: ClusterStack\nmetadata: {name: base}\nspec: {id: s, buildImage: {image: r.example/b}, runImage: {image: r.example/r}}\n---\napiVersion: kpack.io/v1alpha2\nkind: ClusterStore\nmetadata: {name: store}\nspec: {sources: [{image: r.example/bp}]}\n---\napiVersion: kpack.io/v1alpha2\nkind: ClusterBuilder\nmetadata: {name: builder}\nspec: {tag: r.example/builder, stack: {kind: ClusterStack, name: base}, store: {kind: ClusterStore, name: store}, order: [{group: [{id: x}]}]}\n`;
    const images = Array.from({ length: N }, (_, i) => `---\napiVersion: kpack.io/v1alpha2\nkind: Image\nmetadata: {name: app-${i}}\nspec:\n  tag: r.example/apps/app-${i}\n  builder: {kind: ClusterBuilder, name: builder}\n  source: {git: {url: "https://git.example/app-${i}", revision: main}}\n`).join('');
    await fleet.apply(documentsOf(head + images, 'fleet.yaml'));
    const inputs: BuildInputs = { config: { env: [], source: { git: { url: 'https://git.example/app' } } }, builder: 'r.example/builder@sha256:1', buildpacks: [{ id: 'x', version: '1' }], runImage: 'r.example/r@sha256:1', lifecycle: '0.1.0' };
    // Three builds of history each, as a fleet that has lived a while has.
    for (let i = 0; i < N; i++) {
      for (let n = 0; n < 3; n++) {
        const b = (await fleet.store.createBuild({ namespace: 'default', image: `app-${i}`, kind: n ? 'rebase' : 'build', reasons: n ? 'STACK' : 'CONFIG', changes: [], inputs, priority: 1 }, () => [`r.example/apps/app-${i}`]))!;
        await fleet.store.claim('bench', ['build', 'rebase'], 60_000);
        await fleet.store.finish(b, 'bench', 'succeeded', { result: { image: `r.example/apps/app-${i}@sha256:${String(n).repeat(64)}`, digest: `sha256:${String(n).repeat(64)}` } });
      }
    }
    await fleet.close();

    const floor = median(Array.from({ length: runs }, () => measure(process.execPath, ['-e', '0'], env).s));
    const alone = Array.from({ length: runs }, () => measure(STRATA, ['fleet', 'images'], env));
    const aloneJson = Array.from({ length: runs }, () => measure(STRATA, ['fleet', 'images', '-o', 'json'], env));
    const port = await freePort();
    const token = 'bench-read-token-0123456789';
    await writeFile(join(t.path, 'tokens'), `read ${token}\n`);
    serve = spawn(STRATA, ['fleet', 'serve', '--poll-interval', '1h', '--listen', `127.0.0.1:${port}`, '--token-file', join(t.path, 'tokens')], { env, stdio: 'ignore' });
    let remote: RemoteFleet | undefined;
    for (let i = 0; i < 200 && !remote; i++) {
      await new Promise((r) => setTimeout(r, 100));
      remote = await RemoteFleet.connect(fleetPaths(home).socket);
    }
    if (!remote) throw new Error('fleet serve did not start');
    await new Promise((r) => setTimeout(r, 3000));
    const served = Array.from({ length: runs }, () => measure(STRATA, ['fleet', 'images'], env));
    const idle = rssMb(serve.pid!);
    const row = (what: string, xs: { s: number; mb: number }[]) => {
      const s = median(xs.map((x) => x.s));
      const mb = median(xs.map((x) => x.mb));
      return `${what.padEnd(44)} ${s.toFixed(2)} s  ${mb.toFixed(0)} MB  (${(s / floor).toFixed(1)}x node -e 0; targets 0.3 s, 150 MB)`;
    };
    process.stdout.write(`\nfleet listing, ${N} images with 3 builds each, median of ${runs}; node -e 0 takes ${floor.toFixed(2)} s\n`);
    process.stdout.write(`${row('strata fleet images, no server', alone)}\n${row('strata fleet images -o json, no server', aloneJson)}\n${row('strata fleet images, through fleet serve', served)}\n`);
    process.stdout.write(`idle fleet serve holds ${idle.toFixed(0)} MB (target 150 MB)\n`);
    await dashboardPage(`http://127.0.0.1:${port}`, token, runs);
  } finally {
    serve?.kill('SIGTERM');
    if (serve) await new Promise((r) => serve!.once('close', r));
    await t.cleanup();
  }
}

/** Milliseconds and bytes of one GET, the whole body read. */
async function timed(url: string, headers: Record<string, string> = {}): Promise<{ ms: number; bytes: number }> {
  const t0 = performance.now();
  const res = await fetch(url, { headers });
  const body = Buffer.from(await res.arrayBuffer());
  if (!res.ok) throw new Error(`${url}: ${res.status}`);
  return { ms: performance.now() - t0, bytes: body.length };
}

/** The dashboard's fleet page (first of its pages, a filtered one, the last one) against the JSON listing. */
async function dashboardPage(base: string, token: string, runs: number): Promise<void> {
  const n = Math.max(runs, 5);
  const measureUrl = async (url: string, headers: Record<string, string> = {}) => {
    await timed(url, headers);
    const xs: { ms: number; bytes: number }[] = [];
    for (let i = 0; i < n; i++) xs.push(await timed(url, headers));
    return { ms: median(xs.map((x) => x.ms)), bytes: xs[0]!.bytes };
  };
  const json = await measureUrl(`${base}/v1/images`, { authorization: `Bearer ${token}` });
  const rows: [string, string][] = [['fleet page', '/'], ['fleet page, filtered (app-99)', '/?q=app-99'], ['fleet page, sorted by time, last page', `/?sort=time&page=${Math.ceil(N / 100)}`]];
  process.stdout.write(`\ndashboard, ${N} images with 3 builds each, median of ${n}; GET /v1/images (JSON, no page) takes ${json.ms.toFixed(0)} ms for ${(json.bytes / 1024).toFixed(0)} KB\n`);
  for (const [what, path] of rows) {
    const r = await measureUrl(`${base}${path}`);
    process.stdout.write(`${what.padEnd(44)} ${r.ms.toFixed(0)} ms  ${(r.bytes / 1024).toFixed(1)} KB  (${(r.ms / json.ms).toFixed(2)}x the JSON listing; targets 300 ms, 100 KB)\n`);
  }
}
