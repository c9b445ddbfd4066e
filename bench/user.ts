// What a user feels, as whole processes on the demo's own yarn app and builder, each against a reference tool run
// in the same bench: a no-op rebuild (vs a `buildah bud --layers` rebuild of an equivalent Dockerfile), a cold build
// (vs `buildah bud --no-cache`), builder unpack (vs `skopeo copy` + `umoci unpack`), extraction (vs `tar -xf`),
// `strata version` (vs `node -e 0`) and `rebase --publish` (vs `skopeo inspect` of the same image).

import { spawn, spawnSync } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { createReadStream, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { resolveImage } from '../src/oci/image.js';
import { extractLayer } from '../src/oci/extract.js';
import { treeEntries, writeLayerFile } from '../src/oci/layer.js';
import { appendLayers, writeImage } from '../src/oci/mutate.js';
import { RegistryClient } from '../src/oci/registry/client.js';
import { startRegistry } from '../src/devtools/registry.js';
import { assembleNodeBuildpacks, makeNodeMirror, nodeBuilderToml } from '../src/platform/nodejs.js';
import { strataHome } from '../src/oci/images.js';
import { unpackedRootfs } from '../src/platform/rootfs.js';
import { WHOLE_FILE_READ } from '../src/oci/fsutil.js';
import { DEMO_NODE, serveMirror, writeApp } from '../src/demo/demo.js';
import { PROJECT_ROOT } from '../src/version.js';

const STRATA = join(PROJECT_ROOT, 'bin', 'strata');

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

/**
 * Wall time of one process; its output is shown only when it fails. Not spawnSync: the dependency mirror is served
 * from this process and must keep answering while a build runs.
 */
function proc(cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env, cwd?: string, started?: (pid: number) => void): Promise<number> {
  const t0 = process.hrtime.bigint();
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env, cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    if (child.pid) started?.(child.pid);
    let out = '';
    const keep = (b: Buffer) => {
      out = (out + b.toString()).slice(-3000);
    };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      const s = Number(process.hrtime.bigint() - t0) / 1e9;
      if (code === 0) resolve(s);
      else reject(new Error(`${cmd} ${args.join(' ')} exited ${code ?? signal}:\n${out}`));
    });
  });
}

/**
 * A process's wall time and peak resident memory: its own (the kernel's high-water mark, VmHWM, read while it runs;
 * bin/strata execs Node.js, so the pid stays the same) and the largest of its process tree (GNU time's %M, which
 * counts every waited-for descendant: for a build, the buildpacks' own processes too, yarn's Node.js among them).
 */
async function procRss(cmd: string, args: string[], env: NodeJS.ProcessEnv): Promise<{ seconds: number; rssMB: number; treeMB: number }> {
  const out = join(tmpdir(), `strata-bench-rss-${process.pid}`);
  let own = 0;
  let watched: number | undefined;
  const watch = setInterval(() => {
    const timePid = watched;
    if (!timePid) return;
    try {
      const child = readFileSync(`/proc/${timePid}/task/${timePid}/children`, 'utf8').trim().split(' ')[0];
      const hwm = /VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${child}/status`, 'utf8'));
      if (hwm) own = Math.max(own, Number(hwm[1]) / 1024);
    } catch {
      // Not started yet, or gone.
    }
  }, 20);
  try {
    const seconds = await proc('/usr/bin/time', ['-f', '%M', '-o', out, cmd, ...args], env, undefined, (pid) => (watched = pid));
    const treeMB = Number((await readFile(out, 'utf8')).trim().split('\n').pop()) / 1024;
    return { seconds, rssMB: own || treeMB, treeMB };
  } finally {
    clearInterval(watch);
    await rm(out, { force: true });
  }
}

async function seconds(fn: () => Promise<unknown>): Promise<number> {
  const t0 = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

function report(what: string, strata: number[], refName: string, ref: number[], target?: string): void {
  const s = median(strata);
  const r = median(ref);
  const fmt = (x: number) => (x < 1 ? `${(x * 1000).toFixed(0)} ms` : `${x.toFixed(2)} s`);
  process.stdout.write(`  ${what.padEnd(34)} ${fmt(s).padStart(9)}   ${refName.padEnd(30)} ${fmt(r).padStart(9)}   ratio ${(s / r).toFixed(2)}x${target ? `  (target ${target})` : ''}\n`);
}

/** The demo's app built the Dockerfile way: the same Node.js and yarn from the mirror, yarn install, a run stage. */
function dockerfile(reg: string): string {
  const n = DEMO_NODE.new;
  const y = DEMO_NODE.yarn;
  return `FROM ${reg}/bench/build:bookworm AS build
USER root
ADD node-v${n}-linux-x64.tar.gz /opt/
ADD yarn-v${y}.tar.gz /opt/
COPY ca.crt /etc/strata-bench-ca.crt
ENV PATH=/opt/node-v${n}-linux-x64/bin:/opt/yarn-v${y}/bin:/usr/bin:/bin NODE_EXTRA_CA_CERTS=/etc/strata-bench-ca.crt
WORKDIR /app
COPY package.json yarn.lock /app/
RUN yarn install --frozen-lockfile --non-interactive
COPY server.js /app/
FROM ${reg}/bench/run:bookworm
COPY --from=build /opt/node-v${n}-linux-x64 /opt/node
COPY --from=build /app /app
ENV PATH=/opt/node/bin:/usr/bin:/bin
CMD ["node", "/app/server.js"]
`;
}

export async function userBench(base: string, runs: number): Promise<void> {
  const root = join(base, 'user');
  await rm(root, { recursive: true, force: true });
  await mkdir(root, { recursive: true });
  const home = join(root, 'home');
  const shared = strataHome();
  const env = { ...process.env, STRATA_HOME: home, STRATA_DEBOOTSTRAP_CACHE: process.env.STRATA_DEBOOTSTRAP_CACHE || join(shared, 'cache', 'debootstrap') };
  const registry = await startRegistry();
  const reg = registry.host;
  const log = (l: string) => process.stdout.write(`  ${l}\n`);
  let mirror: Awaited<ReturnType<typeof serveMirror>> | undefined;
  try {
    process.stdout.write(`\nwhat a user feels: the demo's yarn app (Express from the npm registry) on a Debian builder, median of ${runs}\n`);
    const hostCa = process.env.NODE_EXTRA_CA_CERTS || process.env.SSL_CERT_FILE || '/etc/ssl/certs/ca-certificates.crt';
    await proc(STRATA, ['config', 'ca-certificates', hostCa], env);
    const mirrorDir = join(shared, 'demo-mirror');
    const deps = (await makeNodeMirror(mirrorDir, { node: [DEMO_NODE.new], yarn: DEMO_NODE.yarn }, log)).filter((d) => d.id !== 'node' || d.version === DEMO_NODE.new);
    mirror = await serveMirror(mirrorDir);
    await proc(STRATA, ['base', 'create', '--build-image', `${reg}/bench/build:bookworm`, '--run-image', `${reg}/bench/run:bookworm`, '--publish'], env);
    const builderToml = join(root, 'builder.toml');
    await writeFile(builderToml, nodeBuilderToml(await assembleNodeBuildpacks(join(root, 'bp'), deps), `${reg}/bench/build:bookworm`, `${reg}/bench/run:bookworm`, 'bench builder'));
    await proc(STRATA, ['builder', 'create', `${reg}/bench/builder:v1`, '--config', builderToml, '--publish'], env);
    // v2 differs from v1 in its buildpacks only, as a builder update usually does: it shares the OS layers.
    const v2deps = (await makeNodeMirror(mirrorDir, { node: [DEMO_NODE.old, DEMO_NODE.new], yarn: DEMO_NODE.yarn }, log));
    const builder2Toml = join(root, 'builder2.toml');
    await writeFile(builder2Toml, nodeBuilderToml(await assembleNodeBuildpacks(join(root, 'bp2'), v2deps), `${reg}/bench/build:bookworm`, `${reg}/bench/run:bookworm`, 'bench builder v2'));
    await proc(STRATA, ['builder', 'create', `${reg}/bench/builder:v2`, '--config', builder2Toml, '--publish'], env);
    const app = join(root, 'app');
    await writeApp(app);
    const reports = join(root, 'reports');
    let reportNo = 0;
    const lastReport = () => join(reports, String(reportNo));
    const build = (image: string) => ['build', image, '--builder', `${reg}/bench/builder:v1`, '--path', app, '--publish', '--env', `BP_DEPENDENCY_MIRROR=${mirror!.url}`, '--report-output-dir', join(reports, String(++reportNo))];
    /** Each phase's time in the report of the build just run (report.toml's [[strata.steps]]). */
    const stepsOf = async (): Promise<Record<string, number>> => {
      const text = await readFile(join(lastReport(), 'report.toml'), 'utf8');
      return Object.fromEntries([...text.matchAll(/name = "([A-Z]+)"\s+ms = (\d+)/g)].map((m) => [m[1]!, Number(m[2])]));
    };

    // The same app for buildah: the mirror's tarballs and the CA in its context.
    const ctx = join(root, 'buildah-ctx');
    await writeApp(ctx);
    const dist = (uri: string) => join(mirrorDir, uri.replace(/^[a-z]+:\/\//, ''));
    for (const d of deps) await copyFile(dist(d.uri), join(ctx, d.uri.split('/').pop()!));
    await copyFile(hostCa, join(ctx, 'ca.crt'));
    await writeFile(join(ctx, 'Dockerfile'), dockerfile(reg));
    const buildah = (args: string[]) => proc('buildah', ['--root', join(root, 'buildah', 'root'), '--runroot', join(root, 'buildah', 'run'), ...args], process.env, ctx);
    const bud = (extra: string[]) => buildah(['bud', '--quiet', '--tls-verify=false', '--network', 'host', '--isolation', 'chroot', '-t', 'bench-app', ...extra, '.']);

    // Cold: nothing unpacked, no cache, no previous image.
    const cold: number[] = [];
    const coldRef: number[] = [];
    let coldRss = 0;
    let coldTree = 0;
    const coldSteps: Record<string, number>[] = [];
    const noopSteps: Record<string, number>[] = [];
    const unpacked = join(home, 'rootfs');
    for (let i = 0; i < Math.max(1, Math.min(runs, 3)); i++) {
      await rm(unpacked, { recursive: true, force: true });
      await rm(join(home, 'cache', 'stash'), { recursive: true, force: true });
      const c = await procRss(STRATA, build(`${reg}/bench/cold-${i}`), env);
      coldSteps.push(await stepsOf());
      cold.push(c.seconds);
      coldRss = Math.max(coldRss, c.rssMB);
      coldTree = Math.max(coldTree, c.treeMB);
      coldRef.push(await bud(['--no-cache']));
    }
    // No-op: the app as it was built last.
    await proc(STRATA, build(`${reg}/bench/app`), env);
    await bud(['--layers']);
    const noop: number[] = [];
    const noopRef: number[] = [];
    for (let i = 0; i < runs; i++) {
      noop.push(await proc(STRATA, build(`${reg}/bench/app`), env));
      noopSteps.push(await stepsOf());
      noopRef.push(await bud(['--layers']));
    }
    report('no-op rebuild (strata build)', noop, 'buildah bud --layers', noopRef, '<= 0.5 s, aim 0.3 s');
    process.stdout.write(`    no-op rebuild: ${median(noop).toFixed(2)} s wall\n`);
    report('cold build (strata build)', cold, 'buildah bud --no-cache', coldRef, '<= 0.8x');
    // Where the time goes, phase by phase (medians), so the next regression shows in one look.
    const phases = ['PREPARING', 'ANALYZING', 'DETECTING', 'RESTORING', 'BUILDING', 'EXPORTING'];
    const col = (runs: Record<string, number>[], p: string) => `${(median(runs.map((r) => r[p] ?? 0)) / 1000).toFixed(2)} s`.padStart(9);
    process.stdout.write(`    per phase       ${phases.map((p) => p.slice(0, 9).padStart(9)).join(' ')}\n`);
    process.stdout.write(`    cold build      ${phases.map((p) => col(coldSteps, p)).join(' ')}\n`);
    process.stdout.write(`    no-op rebuild   ${phases.map((p) => col(noopSteps, p)).join(' ')}\n`);

    // Builder unpack, from the registry, into nothing.
    const client = new RegistryClient(reg);
    const v1 = await resolveImage(client.repository('bench/builder'), 'v1');
    const v2 = await resolveImage(client.repository('bench/builder'), 'v2');
    const unpack: number[] = [];
    const unpackV2: number[] = [];
    const unpackRef: number[] = [];
    const scratch = join(root, 'unpack');
    for (let i = 0; i < runs; i++) {
      await rm(scratch, { recursive: true, force: true });
      unpack.push(await seconds(() => unpackedRootfs(v1, join(scratch, 'strata'))));
      unpackV2.push(await seconds(() => unpackedRootfs(v2, join(scratch, 'strata'))));
      unpackRef.push(await proc('skopeo', ['copy', '--quiet', '--src-tls-verify=false', `docker://${reg}/bench/builder:v1`, `oci:${join(scratch, 'layout')}:v1`]) + await proc('umoci', ['unpack', '--image', `${join(scratch, 'layout')}:v1`, join(scratch, 'bundle')]));
    }
    report('builder unpack', unpack, 'skopeo copy + umoci unpack', unpackRef, '<= 1.0x');
    report('builder v2 (shares its OS layers)', unpackV2, 'skopeo copy + umoci unpack', unpackRef);

    // Extraction of one tar, already on disk, into an empty dir: the builder's largest layer.
    const layers = join(scratch, 'strata', 'layers');
    let biggest = { dir: '', size: 0 };
    for (const d of await readdir(layers)) {
      if (d.endsWith('.lock')) continue;
      const size = Number(spawnSync('du', ['-sb', join(layers, d)], { encoding: 'utf8' }).stdout.split('\t')[0]);
      if (size > biggest.size) biggest = { dir: join(layers, d, 'tree'), size };
    }
    const tarFile = join(root, 'os.tar');
    await proc('tar', ['-C', biggest.dir, '-cf', tarFile, '.']);
    const ex: number[] = [];
    const exRef: number[] = [];
    for (let i = 0; i < runs; i++) {
      for (const d of ['x-strata', 'x-tar']) {
        await rm(join(root, d), { recursive: true, force: true });
        await mkdir(join(root, d));
      }
      await proc('sync', []);
      ex.push(await seconds(() => extractLayer(createReadStream(tarFile, WHOLE_FILE_READ), join(root, 'x-strata'))));
      await proc('sync', []);
      exRef.push(await proc('tar', ['-xf', tarFile, '-C', join(root, 'x-tar')]));
    }
    report(`extraction (${((await stat(tarFile)).size / 1e6).toFixed(0)} MB OS layer)`, ex, 'tar -xf', exRef, '<= 1.2x');

    // Push of the builder from a layout, each tool to a registry of its own so neither can skip or mount a blob;
    // strata's peak memory with it (it streams: the builder's size must not show).
    const layout = join(scratch, 'layout');
    const push: number[] = [];
    const pushRef: number[] = [];
    let pushRss = 0;
    for (let i = 0; i < runs; i++) {
      const a = await startRegistry();
      const b = await startRegistry();
      try {
        const r = await procRss(STRATA, ['image', 'copy', `oci:${layout}:v1`, `${a.host}/bench/builder:v1`], env);
        push.push(r.seconds);
        pushRss = Math.max(pushRss, r.rssMB);
        pushRef.push(await proc('skopeo', ['copy', '--quiet', '--dest-tls-verify=false', `oci:${layout}:v1`, `docker://${b.host}/bench/builder:v1`]));
      } finally {
        await a.stop();
        await b.stop();
      }
    }
    const layoutMB = Number(spawnSync('du', ['-sm', layout], { encoding: 'utf8' }).stdout.split('\t')[0]);
    report(`push of the builder (${layoutMB} MB)`, push, 'skopeo copy', pushRef, '<= 1.0x');
    process.stdout.write(`    peak RSS: push ${pushRss.toFixed(0)} MB, cold build ${coldRss.toFixed(0)} MB (targets < 200 MB, cold build <= 150 MB; strata's own process, the largest of 3; the largest process of the build, buildpacks' included: ${coldTree.toFixed(0)} MB)\n`);

    // Peak memory with a 1 GB layer, written and extracted each in a process of its own: both stream.
    const big = join(root, 'big');
    await mkdir(big, { recursive: true });
    for (let i = 0; i < 10; i++) await proc('sh', ['-c', `head -c 100000000 /dev/urandom > ${join(big, `f${i}`)}`]);
    const js = (code: string) => [process.execPath, ['--input-type=module', '-e', code]] as const;
    const layerMod = JSON.stringify(join(PROJECT_ROOT, 'dist', 'src', 'oci', 'layer.js'));
    const extractMod = JSON.stringify(join(PROJECT_ROOT, 'dist', 'src', 'oci', 'extract.js'));
    const bigTgz = join(root, 'big.tgz');
    const [wCmd, wArgs] = js(`const { treeEntries, writeLayerFile } = await import(${layerMod}); await writeLayerFile(treeEntries(${JSON.stringify(big)}), ${JSON.stringify(bigTgz)});`);
    const written = await procRss(wCmd, [...wArgs], process.env);
    await mkdir(join(root, 'big-x'));
    const [xCmd, xArgs] = js(`const { extractLayer } = await import(${extractMod}); const { createReadStream } = await import('node:fs'); await extractLayer(createReadStream(${JSON.stringify(bigTgz)}, { highWaterMark: 1 << 20 }), ${JSON.stringify(join(root, 'big-x'))});`);
    const extracted = await procRss(xCmd, [...xArgs], process.env);
    process.stdout.write(`    peak RSS with a 1 GB layer: write ${written.rssMB.toFixed(0)} MB (${written.seconds.toFixed(1)} s), extract ${extracted.rssMB.toFixed(0)} MB (${extracted.seconds.toFixed(1)} s) (target < 200 MB)\n`);
    await rm(big, { recursive: true, force: true });
    await rm(join(root, 'big-x'), { recursive: true, force: true });
    await rm(bigTgz, { force: true });

    // Startup.
    const version: number[] = [];
    const bare: number[] = [];
    for (let i = 0; i < runs * 3; i++) {
      version.push(await proc(STRATA, ['version'], env));
      bare.push(await proc(process.execPath, ['-e', '0']));
    }
    report('strata version', version, 'node -e 0', bare, '<= 1.5x');

    // Rebase as a whole process, back and forth between two run images.
    const runRepo = client.repository('bench/run');
    const run = await resolveImage(runRepo, 'bookworm');
    const patch = join(root, 'patch');
    await mkdir(join(patch, 'etc'), { recursive: true });
    await writeFile(join(patch, 'etc', 'patched'), 'yes\n');
    const info = await writeLayerFile(treeEntries(patch), join(root, 'patch.tgz'));
    const desc = { mediaType: info.mediaType, digest: info.digest, size: info.size };
    await runRepo.putBlob(desc, async (s, e) => createReadStream(join(root, 'patch.tgz'), { start: s, end: e - 1 }));
    const patched = appendLayers(run.config, run.manifest.manifest, [{ descriptor: desc, diffID: info.diffID }]);
    await writeImage(runRepo, patched.config, patched.manifest, 'patched');
    const rebase: number[] = [];
    const inspect: number[] = [];
    for (let i = 0; i < runs * 2; i++) {
      rebase.push(await proc(STRATA, ['rebase', `${reg}/bench/app`, '--publish', '--run-image', `${reg}/bench/run:${i % 2 ? 'bookworm' : 'patched'}`], env));
      inspect.push(await proc('skopeo', ['inspect', '--tls-verify=false', `docker://${reg}/bench/app`]));
    }
    report('rebase --publish (process)', rebase, 'skopeo inspect', inspect, '<= 0.1 s');
  } finally {
    await mirror?.close();
    await registry.stop();
    await rm(join(root, 'buildah'), { recursive: true, force: true }).catch(() => undefined);
  }
}

// Run alone: `scripts/node.sh dist/bench/user.js`.
if (import.meta.url === `file://${process.argv[1]}`) {
  const base = await mkdtemp('/tmp/strata-bench-user-');
  userBench(base, Number(process.env.BENCH_RUNS ?? 5))
    .catch((err: unknown) => {
      process.stderr.write(`bench failed: ${(err as Error).message}\n`);
      process.exitCode = 1;
    })
    .finally(() => rm(base, { recursive: true, force: true }));
}
