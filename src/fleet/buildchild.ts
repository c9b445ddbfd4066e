import { createWriteStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { StrataError, errorMessage } from '../oci/errors.js';
import { createLogger } from '../lifecycle/log.js';
import { runBuild } from '../platform/build.js';
import { configuredBuild, readConfig } from '../platform/config.js';
import { sandboxExecutor } from '../platform/executor.js';
import { readProject } from '../spec/project.js';
import type { BuildJob, BuildJobResult } from './buildjob.js';

/**
 * The build child of a fleet worker: one `BuildJob` as JSON on stdin, the build's output on stdout and stderr, and
 * one `BuildJobResult` as JSON on fd 3. The child is there so a build can be stopped (a deleted Image, a timeout, the
 * fleet stopping) by killing one process, whatever it was doing; it runs the same `runBuild` as `strata build`.
 */

/**
 * The job is the first line on stdin; what follows are the worker's heartbeats. Silence for twice the heartbeat (or
 * stdin closing: the worker died) stops the build and everything it started, its process group, at once.
 */
function readJob(): Promise<BuildJob> {
  return new Promise((resolve, reject) => {
    let head = '';
    let job: BuildJob | undefined;
    let silence: NodeJS.Timeout | undefined;
    const giveUp = (why: string) => {
      process.stderr.write(`ERROR: ${why}; stopping the build before another worker takes it\n`);
      try {
        process.kill(-process.pid, 'SIGKILL');
      } finally {
        process.exit(1);
      }
    };
    const listen = () => {
      if (!job?.heartbeatMs) return;
      if (silence) clearTimeout(silence);
      silence = setTimeout(() => giveUp(`its worker went silent for ${Math.round((2 * job!.heartbeatMs!) / 1000)} s (stopped or hung)`), 2 * job.heartbeatMs);
      silence.unref();
    };
    process.stdin.on('data', (c: Buffer) => {
      if (job) return listen();
      head += c.toString('utf8');
      const nl = head.indexOf('\n');
      if (nl < 0) return;
      try {
        job = JSON.parse(head.slice(0, nl)) as BuildJob;
      } catch (err) {
        return reject(err);
      }
      listen();
      resolve(job);
    });
    process.stdin.on('end', () => (job ? job.heartbeatMs && giveUp('its worker is gone') : reject(new StrataError('the build child got no job'))));
  });
}

function created(text: string | undefined): Date | undefined {
  if (!text) return undefined;
  return text === 'now' ? new Date() : new Date(Number(text) * 1000);
}

export async function main(): Promise<void> {
  const job = await readJob();
  const { registryMirrors, ...configured } = configuredBuild(await readConfig());
  const log = createLogger('info', (l) => process.stdout.write(l));
  // kpack reads project.toml from the source unless projectDescriptorPath names another; so does strata build.
  const descriptorPath = job.descriptorPath ?? join(job.appPath, 'project.toml');
  const present = await stat(descriptorPath).then((s) => s.isFile(), () => false);
  if (job.descriptorPath && !present) throw new StrataError(`projectDescriptorPath: ${job.descriptorPath} is not a file in the source`);
  const descriptor = present ? await readProject(descriptorPath).catch((err: unknown) => Promise.reject(new StrataError(`project descriptor: ${errorMessage(err)}`))) : undefined;
  for (const w of descriptor?.warnings ?? []) process.stdout.write(`Warning: ${w}\n`);
  const logins = job.registries;
  const r = await runBuild({
    image: job.image,
    builder: job.builder,
    runImage: job.runImage,
    appPath: job.appPath,
    publish: true,
    env: job.env,
    bindings: job.bindings,
    tags: job.tags,
    clearCache: false,
    buildpacks: [],
    volumes: [],
    ...(descriptor ? { descriptor } : {}),
    ...(job.cacheImage ? { cacheImage: job.cacheImage } : {}),
    ...(job.cacheDir ? { cacheDir: job.cacheDir } : {}),
    ...(job.stashDir ? { stashDir: job.stashDir } : {}),
    ...(job.defaultProcess ? { defaultProcess: job.defaultProcess } : {}),
    ...(created(job.creationTime) ? { creationTime: created(job.creationTime)! } : {}),
    ...configured,
    network: 'host',
    executor: async (ctx) => sandboxExecutor(ctx.rootfs, ctx.stateDir),
    store: {
      insecureRegistries: job.insecureRegistries,
      registryMirrors,
      ...(logins ? { logins: { id: 'job', find: (registry: string) => logins.find((l) => l.registry === registry)?.credential } } : {}),
    },
    log,
    phase: (name) => process.stdout.write(`===> ${name}\n`),
  });
  const result: BuildJobResult = { digest: r.digest, buildpacks: r.buildpacks, runImage: r.runImage, steps: r.steps };
  await new Promise<void>((resolve, reject) => {
    const out = createWriteStream('', { fd: 3 });
    out.on('error', reject);
    out.end(JSON.stringify(result), resolve);
  });
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`ERROR: ${errorMessage(err)}\n`);
    process.exit(err instanceof StrataError && err.exitCode ? err.exitCode : 1);
  },
);
