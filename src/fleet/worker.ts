import { spawn, spawnSync } from 'node:child_process';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { StrataError, errorMessage } from '../oci/errors.js';
import { openTarget, parseTarget, type StoreOptions } from '../oci/target.js';
import { RegistryRepository } from '../oci/registry/client.js';
import { openImage, type OpenedImage } from '../lifecycle/analyze.js';
import { rebase } from '../lifecycle/rebase.js';
import { LABEL } from '../lifecycle/labels.js';
import { parseToml } from '../spec/toml.js';
import { workDir } from '../platform/workdirs.js';
import { PROJECT_ROOT } from '../version.js';
import { buildDir, fetchBlob, fetchGit, fetchRegistrySource } from './sources.js';
import type { ImageSpec } from './resources.js';
import type { BuildpackRef } from './reasons.js';
import type { BuildRecord, BuildResult, FleetStore } from './store.js';

/**
 * Runs one build record: a rebase in this process (config and manifest only, milliseconds), or a build as a child
 * `strata build` (its own sandbox, cache and registry work) whose output becomes the record's log.
 */

export interface WorkerContext {
  store: FleetStore;
  storeOptions: StoreOptions;
  /** `$STRATA_HOME`: build sources and caches go under it. */
  home: string;
  /** This worker's name in build records (`host:pid`). */
  worker: string;
  /** Run images read once per digest across the rebases of one fleet push. */
  runImages?: Map<string, Promise<OpenedImage | undefined>>;
}

/** A build's log: lines buffered and written to the store in order, a batch at a time. */
export class BuildLog {
  private seq = 0;
  private pending = '';
  private timer: NodeJS.Timeout | undefined;
  private writing: Promise<void> = Promise.resolve();

  constructor(
    private readonly store: FleetStore,
    private readonly build: Pick<BuildRecord, 'namespace' | 'image' | 'number'>,
  ) {}

  write(text: string): void {
    this.pending += text;
    this.timer ??= setTimeout(() => void this.flush(), 200);
  }

  line(text: string): void {
    this.write(`${text}\n`);
  }

  flush(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    const text = this.pending;
    this.pending = '';
    if (text) {
      const seq = this.seq++;
      this.writing = this.writing.then(() => this.store.appendLog(this.build, seq, text)).catch(() => undefined);
    }
    return this.writing;
  }
}

let setpriv: boolean | undefined;

/** A child that dies with its parent (PR_SET_PDEATHSIG through util-linux's setpriv), so a killed fleet leaves none. */
function spawnTied(cmd: string, args: string[], env: NodeJS.ProcessEnv) {
  setpriv ??= spawnSync('setpriv', ['--version'], { stdio: 'ignore' }).status === 0;
  return setpriv ? spawn('setpriv', ['--pdeathsig', 'KILL', '--', cmd, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] }) : spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
}

/** The buildpacks that took part in a build, from the image's `io.buildpacks.build.metadata`. */
async function usedBuildpacks(image: OpenedImage): Promise<BuildpackRef[]> {
  const md = JSON.parse(image.image.config.config?.Labels?.[LABEL.build] ?? '{}') as { buildpacks?: BuildpackRef[] };
  return (md.buildpacks ?? []).map((b) => ({ id: b.id, version: b.version }));
}

/** Fails at once, with the reason, when the image's repository takes no pushes (kpack#1224: no hanging build). */
async function checkPush(tag: string, storeOptions: StoreOptions): Promise<void> {
  const t = await openTarget(parseTarget(tag), { ...storeOptions, create: true });
  if (!(t.store instanceof RegistryRepository)) return;
  try {
    await t.store.checkPushAccess();
  } catch (err) {
    throw new StrataError(`no write access to ${tag}: ${errorMessage(err)}`);
  }
}

async function runRebase(ctx: WorkerContext, b: BuildRecord, log: BuildLog): Promise<BuildResult> {
  const last = await ctx.store.lastSucceeded(b.namespace, b.image);
  if (!last?.result?.image) throw new StrataError(`nothing to rebase: ${b.namespace}/${b.image} has no succeeded build`);
  const app = await openImage(last.result.image, ctx.storeOptions);
  if (!app) throw new StrataError(`the image of build #${last.number} (${last.result.image}) is gone from its registry`);
  const cache = (ctx.runImages ??= new Map());
  let run = cache.get(b.inputs.runImage);
  if (!run) cache.set(b.inputs.runImage, (run = openImage(b.inputs.runImage, ctx.storeOptions)));
  const runImage = await run;
  if (!runImage) throw new StrataError(`run image ${b.inputs.runImage} not found`);
  const outputs = [];
  for (const tag of b.tags) {
    const t = await openTarget(parseTarget(tag), { ...ctx.storeOptions, create: true });
    outputs.push({ store: t.store, tag: t.tag ?? 'latest', name: tag });
  }
  const started = Date.now();
  const r = await rebase({ app: app.image, appName: last.result.image, newRun: runImage.image, newRunName: runImage.name, newRunReference: runImage.reference, outputs, force: false });
  log.line(`Rebased ${last.result.image} onto ${b.inputs.runImage} in ${Date.now() - started} ms: ${r.digest}`);
  const name = parseTarget(b.tags[0]!);
  return { image: `${name.kind === 'registry' ? name.ref.name : b.tags[0]}@${r.digest}`, digest: r.digest, ...(last.result.usedBuildpacks ? { usedBuildpacks: last.result.usedBuildpacks } : {}) };
}

async function runFullBuild(ctx: WorkerContext, b: BuildRecord, spec: ImageSpec, log: BuildLog, signal: AbortSignal): Promise<BuildResult> {
  await checkPush(b.tags[0]!, ctx.storeOptions);
  const work = await workDir(join(ctx.home, 'fleet', 'work'), 'build-');
  try {
    const src = join(work, 'source');
    const source = b.inputs.config.source;
    if (source.git) {
      log.line(`Fetching ${source.git.url} at ${b.inputs.commit}`);
      await fetchGit(source.git.url, b.inputs.commit!, src);
    } else if (source.registry) {
      log.line(`Fetching source image ${source.registry.image}`);
      await fetchRegistrySource(source.registry.image, src, ctx.storeOptions);
    } else if (source.blob) {
      log.line(`Fetching ${source.blob.url}`);
      await fetchBlob(source.blob.url, source.blob.stripComponents, src);
    }
    const path = buildDir(src, { ...(source.subPath ? { subPath: source.subPath } : {}) });
    const envFile = join(work, 'build.env');
    await writeFile(envFile, b.inputs.config.env.map((e) => `${e.name}=${e.value}`).join('\n'), { mode: 0o600 });
    const report = join(work, 'report');
    const args = ['build', b.tags[0]!, '--builder', b.inputs.builder, '--run-image', b.inputs.runImage, '--path', path, '--publish', '--env-file', envFile, '--report-output-dir', report];
    for (const t of b.tags.slice(1)) args.push('--tag', t);
    if (spec.cache?.registry) args.push('--cache-image', spec.cache.registry.tag);
    if (b.inputs.config.defaultProcess) args.push('--default-process', b.inputs.config.defaultProcess);
    if (b.inputs.config.projectDescriptorPath) args.push('--descriptor', join(path, b.inputs.config.projectDescriptorPath));
    log.line(`$ strata ${args.join(' ')}`);
    const code = await new Promise<number>((resolve, reject) => {
      const child = spawnTied(join(PROJECT_ROOT, 'bin', 'strata'), args, process.env);
      child.stdout.on('data', (c: Buffer) => log.write(c.toString('utf8')));
      child.stderr.on('data', (c: Buffer) => log.write(c.toString('utf8')));
      const stop = (): void => {
        child.kill('SIGTERM');
        setTimeout(() => child.kill('SIGKILL'), 10_000).unref();
      };
      signal.addEventListener('abort', stop, { once: true });
      child.on('error', reject);
      child.on('close', (c, sig) => {
        signal.removeEventListener('abort', stop);
        resolve(c ?? (sig ? 128 : 1));
      });
    });
    if (signal.aborted) throw new BuildAborted(String(signal.reason ?? 'stopped'));
    if (code !== 0) throw new StrataError(`strata build exited with ${code}; see the log`);
    const digest = (parseToml(await readFile(join(report, 'report.toml'), 'utf8'), 'report.toml') as { image?: { digest?: string } }).image?.digest;
    if (!digest) throw new StrataError('strata build wrote no digest to report.toml');
    const name = parseTarget(b.tags[0]!);
    const image = `${name.kind === 'registry' ? name.ref.name : b.tags[0]}@${digest}`;
    const built = await openImage(image, ctx.storeOptions);
    return { image, digest, usedBuildpacks: built ? await usedBuildpacks(built) : [] };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/** A build stopped from outside (the fleet stopping, a timeout): recorded as interrupted or failed by the caller. */
export class BuildAborted extends Error {}

/**
 * Runs a claimed build to its end and records the outcome: succeeded with the image and the buildpacks used, failed
 * with one line of why, or interrupted when `signal` stopped it. Never throws.
 */
export async function executeBuild(ctx: WorkerContext, b: BuildRecord, spec: ImageSpec, signal: AbortSignal): Promise<BuildRecord['status']> {
  const log = new BuildLog(ctx.store, b);
  const changes = b.changes.map((c) => `${c.reason} ${short(c.old)} → ${short(c.new)}`).join('; ');
  log.line(`===> ${b.kind === 'rebase' ? 'REBASE' : 'BUILD'} #${b.number} of ${b.namespace}/${b.image} (${b.reasons}): ${changes}`);
  const timeout = spec.buildTimeoutMinutes ? AbortSignal.timeout(spec.buildTimeoutMinutes * 60_000) : undefined;
  const both = timeout ? AbortSignal.any([signal, timeout]) : signal;
  let status: BuildRecord['status'];
  try {
    const result = b.kind === 'rebase' ? await runRebase(ctx, b, log) : await runFullBuild(ctx, b, spec, log, both);
    log.line(`===> SUCCEEDED: ${result.image}`);
    await log.flush();
    await ctx.store.finish(b, 'succeeded', { result });
    status = 'succeeded';
  } catch (err) {
    const timedOut = timeout?.aborted && !signal.aborted;
    const message = timedOut ? `timed out after ${spec.buildTimeoutMinutes} minute(s) (spec.build.buildTimeout)` : errorMessage(err);
    const interrupted = signal.aborted && !timedOut;
    log.line(`===> ${interrupted ? 'INTERRUPTED' : 'FAILED'}: ${message}`);
    await log.flush();
    status = interrupted ? 'interrupted' : 'failed';
    await ctx.store.finish(b, status, { message });
  }
  await ctx.store.pruneHistory(b.namespace, b.image, spec.successBuildHistoryLimit, spec.failedBuildHistoryLimit);
  return status;
}

function short(v: unknown): string {
  if (v === null || v === undefined || v === '') return '∅';
  if (typeof v === 'string') return v.length > 80 ? `${v.slice(0, 77)}...` : v;
  const s = JSON.stringify(v);
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
}

export async function ensureWorkDirs(home: string): Promise<void> {
  await mkdir(join(home, 'fleet', 'work'), { recursive: true });
}
