import { spawn } from 'node:child_process';
import { rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { StrataError, errorMessage } from '../oci/errors.js';
import { Reference } from '../oci/reference.js';
import type { StoreOptions } from '../oci/target.js';
import { checkWriteAccess, openImage, outputFor, outputsFor, type OpenedImage } from '../oci/images.js';
import { rebase } from '../lifecycle/rebase.js';
import { workDir } from '../platform/workdirs.js';
import type { BuildJob, BuildJobResult } from './buildjob.js';
import { accountCredentials, registryLogins, type Credentials } from './credentials.js';
import { fleetPaths } from './paths.js';
import type { BuildInputs } from './reasons.js';
import type { Binding, EnvVar } from './resources.js';
import { Redactor } from './secrets.js';
import { tiedToUs } from '../platform/executor.js';
import { buildDir, fetchBlob, fetchGit, fetchRegistrySource, type SourceAccess } from './sources.js';
import type { BuildKey, BuildRecord, RecordResult, FleetStore } from './store.js';

/**
 * Runs one build record: a rebase in this process (config and manifest only, milliseconds), or a build in a child
 * process (buildchild.ts: its own sandbox, cache and registry work) whose output becomes the record's log. Everything
 * a build is made from comes from its record (its inputs were snapshotted when it was queued); only Secrets and
 * ConfigMaps are read now, so a value never rests in a build record.
 */

export interface WorkerContext {
  store: FleetStore;
  storeOptions: StoreOptions;
  /** `$STRATA_HOME`: build sources and caches go under it. */
  home: string;
  /** This worker's name in build records (`host-id:pid`); every write of a build's outcome and log is fenced on it. */
  worker: string;
  /** Run images read once per digest across the rebases of one fleet push. */
  runImages?: Map<string, Promise<OpenedImage | undefined>>;
  /** The most log text one build keeps (the rest is cut, with a note). */
  maxLogBytes?: number;
  /** Build records pruned since the database last gave their space back. */
  pruned?: number;
  /** The worker's lease: its build children stop by themselves when the worker goes silent for most of one. */
  leaseMs?: number;
}

export const DEFAULT_MAX_LOG_BYTES = 8 << 20;

/**
 * A build's log: written to the store in order, a batch at a time, with every secret value the build could see
 * replaced by `[redacted]`, and cut off at a size limit. Text is held back to the last newline (or to the longest
 * secret) so a value split across two writes is still found.
 */
export class BuildLog {
  private pending = '';
  private timer: NodeJS.Timeout | undefined;
  private writing: Promise<void> = Promise.resolve();
  private written = 0;
  private cut = false;
  redactor = new Redactor([]);

  /** `seq` goes on after what earlier attempts wrote; writes stop once `worker` no longer holds the build. */
  constructor(
    private readonly store: FleetStore,
    private readonly build: BuildKey,
    private readonly worker: string,
    private seq: number,
    private readonly maxBytes = DEFAULT_MAX_LOG_BYTES,
  ) {}

  write(text: string): void {
    this.pending += text;
    this.timer ??= setTimeout(() => void this.flush(false), 200);
  }

  line(text: string): void {
    this.write(`${text}\n`);
  }

  flush(all = true): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    let upto = this.pending.length;
    if (!all) {
      const nl = this.pending.lastIndexOf('\n') + 1;
      upto = Math.max(nl, this.pending.length - this.redactor.longest);
      if (upto < this.pending.length) this.timer = setTimeout(() => void this.flush(true), 1000);
    }
    let text = this.redactor.redact(this.pending.slice(0, upto));
    this.pending = this.pending.slice(upto);
    if (this.cut) return this.writing;
    if (this.written + text.length > this.maxBytes) {
      text = `${text.slice(0, Math.max(0, this.maxBytes - this.written))}\n[log cut at ${this.maxBytes} bytes; the build went on]\n`;
      this.cut = true;
    }
    if (text) {
      this.written += text.length;
      const seq = this.seq++;
      this.writing = this.writing
        .then(async () => {
          if (!(await this.store.appendLog(this.build, this.worker, seq, text))) this.cut = true;
        })
        .catch(() => undefined);
    }
    return this.writing;
  }
}

/** A child that dies with its parent, so a killed fleet leaves none. */
function spawnTied(cmd: string, args: string[]) {
  return spawn(...tiedToUs(cmd, args), { stdio: ['pipe', 'pipe', 'pipe', 'pipe'], detached: true });
}

/** The store reads credentials need. */
export function credentialReader(store: FleetStore) {
  return {
    async account(namespace: string, name: string) {
      return (await store.get({ kind: 'ServiceAccount', namespace, name }))?.resource.spec;
    },
    async secret(namespace: string, name: string) {
      const r = await store.get({ kind: 'Secret', namespace, name });
      const values = r ? await store.secretValues(namespace, name) : undefined;
      return r && values ? { spec: r.resource.spec, values } : undefined;
    },
  };
}

/** The credentials of a build's service account, with the source image's own pull secrets. */
export async function buildCredentials(store: FleetStore, namespace: string, inputs: BuildInputs): Promise<Credentials> {
  const s = inputs.settings;
  return accountCredentials({ namespace, name: s?.serviceAccountName ?? 'default' }, credentialReader(store), s?.pullSecrets ?? []);
}

/** Store options that reach registries with a declared service account's logins (else the machine's own). */
export function withLogins(base: StoreOptions, c: Credentials): StoreOptions {
  return c.account ? { ...base, logins: registryLogins(c) } : base;
}

const nameOf = (tag: string): string => Reference.parse(tag).name;

async function runRebase(ctx: WorkerContext, b: BuildRecord, store: StoreOptions, log: BuildLog): Promise<RecordResult> {
  const last = await ctx.store.lastSucceeded(b);
  if (!last?.result?.image) throw new StrataError(`nothing to rebase: ${b.namespace}/${b.image} has no succeeded build`);
  const app = await openImage(last.result.image, store);
  if (!app) throw new StrataError(`the image of build #${last.number} (${last.result.image}) is gone from its registry`);
  const cache = (ctx.runImages ??= new Map());
  const key = `${b.inputs.runImage}|${store.logins?.id ?? ''}`;
  let run = cache.get(key);
  if (!run) cache.set(key, (run = openImage(b.inputs.runImage, store)));
  const runImage = await run;
  if (!runImage) throw new StrataError(`run image ${b.inputs.runImage} not found`);
  const outputs = await outputsFor(b.tags, true, store);
  const started = Date.now();
  const r = await rebase({ app: app.image, appName: last.result.image, newRun: runImage.image, newRunName: runImage.name, newRunReference: runImage.reference, outputs, force: false });
  log.line(`Rebased ${last.result.image} onto ${b.inputs.runImage} in ${Date.now() - started} ms: ${r.digest}`);
  return {
    image: `${nameOf(b.tags[0]!)}@${r.digest}`,
    digest: r.digest,
    runImage: b.inputs.runImage,
    steps: [{ name: 'REBASING', ms: Date.now() - started }],
    ...(last.result.usedBuildpacks ? { usedBuildpacks: last.result.usedBuildpacks } : {}),
  };
}

/** The env a build gets: literal values as declared, `valueFrom` read from its Secret or ConfigMap now. */
async function resolveEnv(store: FleetStore, namespace: string, env: EnvVar[]): Promise<{ env: Record<string, string>; secrets: string[] }> {
  const out: Record<string, string> = {};
  const secrets: string[] = [];
  for (const e of env) {
    if ('value' in e) {
      out[e.name] = e.value;
      continue;
    }
    const fromSecret = 'secretKeyRef' in e.valueFrom;
    const ref = 'secretKeyRef' in e.valueFrom ? e.valueFrom.secretKeyRef : e.valueFrom.configMapKeyRef;
    const values = fromSecret ? await store.secretValues(namespace, ref.name) : (await store.get({ kind: 'ConfigMap', namespace, name: ref.name }))?.resource.spec.data;
    const value = values?.[ref.key];
    if (value === undefined) {
      if (ref.optional) continue;
      throw new StrataError(`env ${e.name}: ${fromSecret ? 'Secret' : 'ConfigMap'} ${namespace}/${ref.name} has no key "${ref.key}" now`);
    }
    out[e.name] = value;
    if (fromSecret) secrets.push(value);
  }
  return { env: out, secrets };
}

/** Bindings as files: kpack's `services` (a Secret's keys) or the older layout (metadata/ and secret/). */
async function resolveBindings(store: FleetStore, namespace: string, bindings: Binding[]): Promise<{ name: string; files: Record<string, string> }[]> {
  const out = [];
  for (const b of bindings) {
    const secret = b.secret ? await store.secretValues(namespace, b.secret) : undefined;
    if (b.secret && !secret) throw new StrataError(`binding ${b.name}: Secret ${namespace}/${b.secret} is not declared now`);
    if (!b.metadata) {
      out.push({ name: b.name, files: { ...secret } });
      continue;
    }
    const md = (await store.get({ kind: 'ConfigMap', namespace, name: b.metadata }))?.resource.spec.data;
    if (!md) throw new StrataError(`binding ${b.name}: ConfigMap ${namespace}/${b.metadata} is not declared now`);
    const files: Record<string, string> = {};
    for (const [k, v] of Object.entries(md)) files[`metadata/${k}`] = v;
    for (const [k, v] of Object.entries(secret ?? {})) files[`secret/${k}`] = v;
    out.push({ name: b.name, files });
  }
  return out;
}

const CHILD = join(dirname(fileURLToPath(import.meta.url)), 'buildchild.js');

/** Runs a build job in the build child; its output goes to `log`; `signal` kills it (and its sandboxes). */
function runChild(job: BuildJob, work: string, log: BuildLog, signal: AbortSignal): Promise<BuildJobResult> {
  return new Promise((resolve, reject) => {
    // The work dir as an argument the child does not read: what a process listing shows of it.
    const child = spawnTied(process.execPath, [CHILD, work]);
    let result = '';
    child.stdout!.on('data', (c: Buffer) => log.write(c.toString('utf8')));
    child.stderr!.on('data', (c: Buffer) => log.write(c.toString('utf8')));
    (child.stdio[3] as NodeJS.ReadableStream).on('data', (c: Buffer) => (result += c.toString('utf8')));
    child.stdin!.on('error', () => undefined);
    child.stdin!.write(`${JSON.stringify(job)}\n`);
    // Heartbeats: a worker that is stopped (SIGSTOP) or hung sends none, and its child stops itself.
    const beat = job.heartbeatMs ? setInterval(() => child.stdin!.write('\n'), job.heartbeatMs) : undefined;
    beat?.unref();
    // The child leads its own process group: stopping it stops what it started (a sandbox runtime) as well.
    const kill = (sig: NodeJS.Signals) => {
      try {
        process.kill(-child.pid!, sig);
      } catch {
        child.kill(sig);
      }
    };
    const stop = (): void => {
      kill('SIGTERM');
      setTimeout(() => kill('SIGKILL'), 10_000).unref();
    };
    if (signal.aborted) stop();
    signal.addEventListener('abort', stop, { once: true });
    child.on('error', reject);
    child.on('close', (code, sig) => {
      if (beat) clearInterval(beat);
      child.stdin!.destroy();
      signal.removeEventListener('abort', stop);
      if (signal.aborted) return reject(new StrataError(`stopped: ${String(signal.reason ?? 'stopped')}`));
      if (code !== 0) return reject(new StrataError(`the build failed (exit ${code ?? sig}); see the log`));
      try {
        resolve(JSON.parse(result) as BuildJobResult);
      } catch {
        reject(new StrataError('the build child gave no result'));
      }
    });
  });
}

/** Per-Image cache and stash, removed with the Image (kpack's cache.volume). */
export function imageCacheDir(home: string, namespace: string, image: string): string {
  return join(fleetPaths(home).dir, 'caches', namespace, image);
}

async function runFullBuild(ctx: WorkerContext, b: BuildRecord, creds: Credentials, store: StoreOptions, log: BuildLog, signal: AbortSignal): Promise<RecordResult> {
  // Fails at once, with the reason, when the image's repository takes no pushes (kpack#1224: no hanging build).
  await checkWriteAccess(await outputsFor([b.tags[0]!], true, store));
  const paths = fleetPaths(ctx.home);
  const work = await workDir(join(paths.dir, 'work'), 'build-');
  try {
    const src = join(work, 'source');
    const source = b.inputs.config.source;
    const access: SourceAccess = { credentials: creds, knownHosts: join(paths.dir, 'known_hosts'), scratch: join(work, 'credentials') };
    if (source.git) {
      log.line(`Fetching ${source.git.url} at ${b.inputs.commit}`);
      await fetchGit(source.git.url, b.inputs.commit!, src, access, b.inputs.settings?.initializeSubmodules ?? false);
    } else if (source.registry) {
      log.line(`Fetching source image ${source.registry.image}`);
      await fetchRegistrySource(source.registry.image, src, store);
    } else if (source.blob) {
      log.line(`Fetching ${source.blob.url}`);
      await fetchBlob(source.blob.url, source.blob.stripComponents, src, creds);
    }
    const path = buildDir(src, { ...(source.subPath ? { subPath: source.subPath } : {}) });
    const settings = b.inputs.settings;
    const { env, secrets } = await resolveEnv(ctx.store, b.namespace, b.inputs.config.env);
    const bindings = await resolveBindings(ctx.store, b.namespace, b.inputs.config.bindings ?? []);
    log.redactor = new Redactor([...creds.values, ...secrets, ...bindings.flatMap((x) => Object.values(x.files))]);
    const cache = imageCacheDir(ctx.home, b.namespace, b.image);
    const job: BuildJob = {
      image: b.tags[0]!,
      tags: b.tags.slice(1),
      builder: b.inputs.builder,
      runImage: b.inputs.runImage,
      appPath: path,
      env,
      bindings,
      ...(settings?.cacheTag ? { cacheImage: settings.cacheTag } : { cacheDir: join(cache, 'cache') }),
      stashDir: join(cache, 'stash'),
      ...(b.inputs.config.defaultProcess ? { defaultProcess: b.inputs.config.defaultProcess } : {}),
      ...(b.inputs.config.projectDescriptorPath ? { descriptorPath: join(path, b.inputs.config.projectDescriptorPath) } : {}),
      ...(settings?.creationTime ? { creationTime: settings.creationTime } : {}),
      // A declared service account's logins, and only those; without one, the machine's own (its operator's).
      ...(creds.account ? { registries: creds.registries.map((r) => ({ registry: r.registry, credential: r.credential })) } : {}),
      insecureRegistries: store.insecureRegistries ?? [],
      ...(ctx.leaseMs ? { heartbeatMs: Math.max(100, Math.floor(ctx.leaseMs / 3)) } : {}),
    };
    log.line(`Building ${b.tags[0]} with ${b.inputs.builder} on ${b.inputs.runImage}`);
    const r = await runChild(job, work, log, signal);
    return { image: `${nameOf(b.tags[0]!)}@${r.digest}`, digest: r.digest, usedBuildpacks: r.buildpacks, runImage: r.runImage, steps: r.steps };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/** Signs what a build or rebase pushed with every cosign key of the service account (kpack's signing). */
async function signResult(result: RecordResult, creds: Credentials, store: StoreOptions, annotations: Record<string, string> | undefined, log: BuildLog): Promise<string[]> {
  const { openSigningKey, signatureRepository, signImage } = await import('./signing.js');
  const out: string[] = [];
  for (const key of creds.signing) {
    const repository = signatureRepository(result.image!, key);
    const t = await outputFor(repository, true, store);
    try {
      out.push(await signImage({ store: t.store, storeName: repository, repository: Reference.parse(result.image!).name, digest: result.digest! as `sha256:${string}`, key: openSigningKey(key), ...(annotations ? { annotations } : {}), dockerMediaTypes: key.dockerMediaTypes }));
    } catch (err) {
      throw new StrataError(`signing with ${key.secret}: ${errorMessage(err)}`);
    }
    log.line(`Signed ${result.image} with ${key.secret}: ${out[out.length - 1]}`);
  }
  return out;
}

/**
 * Why a running build is stopped from outside, as its abort reason: `release` gives it back to the queue (its worker
 * is stopping; another takes it), `interrupt` records it interrupted (its Image was deleted), `lost` writes nothing
 * (its lease lapsed, so the record is no longer this worker's to write).
 */
export class StopBuild {
  constructor(
    readonly how: 'release' | 'interrupt' | 'lost',
    readonly why: string,
  ) {}

  toString(): string {
    return this.why;
  }
}

/** How a build ended for the worker that ran it: its record's status, or `released`/`lost` when the record is not its to finish. */
export type Outcome = 'succeeded' | 'failed' | 'interrupted' | 'released' | 'lost';

/**
 * Runs a claimed build to its end and records the outcome: succeeded with the image and the buildpacks used, failed
 * with one line of why, interrupted, or given back to the queue, as `signal`'s StopBuild says. A rebase that fails
 * falls back to a full build, so a run image the old app cannot sit on still reaches the image. Every write is fenced
 * on this worker still holding the build: a worker that lost it (a lapsed lease) cannot overwrite the record another
 * worker now keeps. Never throws.
 */
export async function executeBuild(ctx: WorkerContext, b: BuildRecord, signal: AbortSignal): Promise<Outcome> {
  const log = new BuildLog(ctx.store, b, ctx.worker, await ctx.store.nextLogSeq(b).catch(() => 0), ctx.maxLogBytes);
  const changes = b.changes.map((c) => `${c.reason} ${short(c.old)} → ${short(c.new)}`).join('; ');
  const attempt = b.attempts > 1 ? ` (attempt ${b.attempts}, on ${ctx.worker})` : '';
  log.line(`===> ${b.kind === 'rebase' ? 'REBASE' : 'BUILD'} #${b.number} of ${b.namespace}/${b.image} (${b.reasons})${attempt}: ${changes}`);
  const minutes = b.inputs.settings?.timeoutMinutes;
  const timeout = minutes ? AbortSignal.timeout(minutes * 60_000) : undefined;
  const both = timeout ? AbortSignal.any([signal, timeout]) : signal;
  let outcome: Outcome;
  let kind = b.kind;
  try {
    const creds = await buildCredentials(ctx.store, b.namespace, b.inputs);
    log.redactor = new Redactor(creds.values);
    const store = withLogins(ctx.storeOptions, creds);
    let result: RecordResult;
    if (b.kind === 'rebase') {
      try {
        result = await runRebase(ctx, b, store, log);
      } catch (err) {
        log.line(`Rebase failed (${errorMessage(err)}); building instead`);
        kind = 'build';
        result = await runFullBuild(ctx, b, creds, store, log, both);
      }
    } else result = await runFullBuild(ctx, b, creds, store, log, both);
    if (creds.signing.length) result = { ...result, signatures: await signResult(result, creds, store, b.inputs.settings?.cosignAnnotations, log) };
    log.line(`===> SUCCEEDED: ${result.image}`);
    await log.flush();
    outcome = (await ctx.store.finish(b, ctx.worker, 'succeeded', { result, kind })) ? 'succeeded' : 'lost';
  } catch (err) {
    const timedOut = timeout?.aborted && !signal.aborted;
    const stop = signal.aborted && !timedOut ? (signal.reason instanceof StopBuild ? signal.reason : new StopBuild('interrupt', String(signal.reason ?? errorMessage(err)))) : undefined;
    const message = timedOut ? `timed out after ${minutes} minute(s) (spec.build.buildTimeout)` : log.redactor.redact(stop ? stop.why : errorMessage(err));
    if (stop?.how === 'lost') {
      outcome = 'lost';
    } else if (stop?.how === 'release') {
      log.line(`===> RELEASED: ${message}; another worker takes it`);
      await log.flush();
      outcome = (await ctx.store.release(b, ctx.worker)) ? 'released' : 'lost';
    } else {
      log.line(`===> ${stop ? 'INTERRUPTED' : 'FAILED'}: ${message}`);
      await log.flush();
      const status = stop ? 'interrupted' : 'failed';
      const kept = await ctx.store.finish(b, ctx.worker, status, { message, kind });
      // A deleted Image's record is gone with it: still an interruption, as far as its worker goes.
      outcome = kept || stop ? status : 'lost';
    }
  }
  if (outcome !== 'lost' && outcome !== 'released') {
    const s = b.inputs.settings;
    ctx.pruned = (ctx.pruned ?? 0) + (await ctx.store.pruneHistory(b, s?.successBuildHistoryLimit ?? 10, s?.failedBuildHistoryLimit ?? 10));
  }
  return outcome;
}

function short(v: unknown): string {
  if (v === null || v === undefined || v === '') return '∅';
  if (typeof v === 'string') return v.length > 80 ? `${v.slice(0, 77)}...` : v;
  const s = JSON.stringify(v);
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
}

