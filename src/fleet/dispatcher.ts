import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { errorMessage } from '../oci/errors.js';
import { createOnce } from '../oci/fsutil.js';
import type { StoreOptions } from '../oci/target.js';
import { fleetPaths } from './paths.js';
import type { BuildRecord, FleetStore } from './store.js';
import { executeBuild, imageCacheDir, StopBuild, type Outcome, type WorkerContext } from './worker.js';

export interface DispatcherOptions {
  storeOptions: StoreOptions;
  home: string;
  /** Full builds at once (each a build child with its own sandbox). */
  buildConcurrency: number;
  /** Rebases at once (config and manifest writes only). */
  rebaseConcurrency: number;
  /** How long a claim holds without a heartbeat; renewed every third of it. */
  leaseMs: number;
  /** How often the queue is looked at without an event (an embedded fleet's other processes send none). */
  pollMs: number;
  log: (line: string) => void;
  /** The most log text one build keeps. */
  maxLogBytes?: number;
  /** Told of every build this worker finishes. */
  onFinished?: (f: Finished) => void;
  /** Told when this worker ran builds and has none left: a change that came meanwhile waited for them. */
  onDrained?: () => void;
  /** Whether this process holds the controller's role, for listings. */
  isController?: () => boolean;
}

/** One finished build, for summaries. */
export interface Finished {
  image: string;
  number: number;
  kind: BuildRecord['kind'];
  reasons: string;
  status: Outcome;
}

/**
 * This machine's name among the fleet's workers: the host and an id made once per `$STRATA_HOME`, so two homes on
 * one host (or two containers with one host name) never take each other's builds for their own.
 */
export function machineName(home: string): string {
  const file = `${fleetPaths(home).dir}/machine-id`;
  let id: string;
  try {
    id = readFileSync(file, 'utf8').trim();
  } catch {
    createOnce(file, randomBytes(4).toString('hex'));
    id = readFileSync(file, 'utf8').trim();
  }
  return `${hostname()}-${id}`;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * A worker: claims queued builds into bounded slots (rebases apart from full builds, so a run-image push is never
 * stuck behind a long build), holds each claim with a lease it renews, and hands builds whose lease lapsed anywhere
 * back to the queue. It wakes on the fleet's events and polls now and then; stopping lets running builds finish
 * for a grace period, then gives them back to the queue for another worker.
 */
export class Dispatcher {
  readonly name: string;
  private readonly running = new Map<string, { b: BuildRecord; abort: AbortController; done: Promise<void> }>();
  private stopping = false;
  private dispatching = false;
  private redispatch = false;
  private ranBuilds = false;
  /** Whether the last dispatch took anything: only then is a queue that still holds builds worth another look now. */
  private tookSome = false;
  private timers: NodeJS.Timeout[] = [];
  private idleWaiters: (() => void)[] = [];
  private stopListening: (() => Promise<void>) | undefined;
  private readonly ctx: WorkerContext;

  constructor(
    readonly store: FleetStore,
    private readonly o: DispatcherOptions,
  ) {
    this.name = `${machineName(o.home)}:${process.pid}`;
    this.ctx = { store, storeOptions: o.storeOptions, home: o.home, worker: this.name, leaseMs: o.leaseMs, ...(o.maxLogBytes ? { maxLogBytes: o.maxLogBytes } : {}) };
  }

  /** Gives back the builds earlier processes of this machine left running, then starts taking work. */
  async start(): Promise<void> {
    const machine = this.name.slice(0, this.name.lastIndexOf(':') + 1);
    const legacy = `${hostname()}:`;
    const n = await this.store.requeueLeftBy((w) => {
      const pid = Number(w.slice(w.lastIndexOf(':') + 1));
      // Before workers had a machine id, an embedded fleet's names were host:pid; an embedded fleet has one machine.
      const ours = w.startsWith(machine) || (this.store.engine === 'sqlite' && w.startsWith(legacy));
      return ours && pid !== process.pid && Number.isInteger(pid) && !alive(pid);
    });
    if (n) this.o.log(`${n} build(s) left running by a stopped worker of this machine went back to the queue`);
    this.stopListening = await this.store.events((e) => {
      if (e.type === 'builds') this.dispatch();
      else if (e.type === 'abort') this.abortBuildsOf(e.namespace, e.name, `the ${e.ownerKind} was deleted`, true);
    });
    await this.heartbeat();
    this.every(Math.max(200, Math.floor(this.o.leaseMs / 3)), () => this.heartbeat());
    this.every(this.o.pollMs, async () => this.dispatch());
    this.dispatch();
  }

  private every(ms: number, fn: () => Promise<void>): void {
    let busy = false;
    const t = setInterval(() => {
      if (busy || this.stopping) return;
      busy = true;
      void fn().finally(() => (busy = false));
    }, ms);
    t.unref();
    this.timers.push(t);
  }

  /** Renews this worker's leases (a build it no longer holds is stopped), records it alive, and requeues lapsed builds. */
  private async heartbeat(): Promise<void> {
    try {
      const held = new Set((await this.store.renewLeases(this.name, this.o.leaseMs)).map((k) => `${k.namespace}/${k.image}#${k.number}`));
      for (const [key, r] of this.running) {
        // A build claimed after the renewal began is not in `held` only because it was too new.
        if (!held.has(key) && r.b.startedAt && Date.now() - Date.parse(r.b.startedAt) > this.o.leaseMs / 3) {
          r.abort.abort(new StopBuild('lost', 'its lease lapsed and another worker may have it'));
        }
      }
      await this.store.saveWorker({ name: this.name, slots: { builds: this.o.buildConcurrency, rebases: this.o.rebaseConcurrency }, controller: this.o.isController?.() ?? false });
      await this.store.dropStaleWorkers(this.o.leaseMs * 10);
      const back = await this.store.requeueExpired();
      for (const b of back) this.o.log(`${b.namespace}/${b.image}#${b.number}: ${b.status === 'failed' ? b.message : `its worker ${b.lostBy} lost its lease; back in the queue (attempt ${b.attempts} done)`}`);
      if (back.some((b) => b.status === 'pending')) await this.store.wake({ type: 'builds' });
    } catch (err) {
      this.o.log(`heartbeat: ${errorMessage(err)}`);
    }
  }

  private count(kind: BuildRecord['kind']): number {
    return [...this.running.values()].filter((r) => r.b.kind === kind).length;
  }

  /** Starts pending builds while there are free slots of their kind; one dispatch at a time, so slots hold. */
  dispatch(): void {
    if (this.stopping) return;
    if (this.dispatching) {
      this.redispatch = true;
      return;
    }
    this.dispatching = true;
    this.tookSome = false;
    void (async () => {
      for (const kind of ['rebase', 'build'] as const) {
        const limit = kind === 'rebase' ? this.o.rebaseConcurrency : this.o.buildConcurrency;
        while (!this.stopping && this.count(kind) < limit) {
          let b: BuildRecord | undefined;
          try {
            b = await this.store.claim(this.name, [kind], this.o.leaseMs);
          } catch (err) {
            this.o.log(`claiming a build failed: ${errorMessage(err)}`);
          }
          if (!b) break;
          this.tookSome = true;
          this.launch(b);
        }
      }
    })().finally(() => {
      this.dispatching = false;
      if (this.redispatch) {
        this.redispatch = false;
        this.dispatch();
      } else this.notifyIfIdle();
    });
  }

  private launch(b: BuildRecord): void {
    const key = `${b.namespace}/${b.image}#${b.number}`;
    const abort = new AbortController();
    this.ranBuilds = true;
    // A deleted Image takes its records with it, whichever process or machine deleted it: the build then stops.
    const watch = setInterval(() => {
      void this.store.build(b).then((r) => {
        if (!r) abort.abort(new StopBuild('interrupt', `the ${b.ownerKind} was deleted`));
      }, () => undefined);
    }, 2000);
    watch.unref();
    const done = (async () => {
      this.o.log(`${key}: ${b.kind} started (${b.reasons})${b.attempts > 1 ? `, attempt ${b.attempts}` : ''}`);
      const status = await executeBuild(this.ctx, b, abort.signal);
      this.o.log(`${key}: ${status}${status === 'lost' ? ' (its lease lapsed; the record was left to the worker that has it now)' : ''}`);
      this.o.onFinished?.({ image: `${b.namespace}/${b.image}`, number: b.number, kind: b.kind, reasons: b.reasons, status });
      if (status !== 'lost') await this.store.wake({ type: 'finished' }).catch(() => undefined);
    })()
      .catch((err: unknown) => this.o.log(`${key}: ${errorMessage(err)}`))
      .finally(() => {
        clearInterval(watch);
        this.running.delete(key);
        this.dispatch();
      });
    this.running.set(key, { b, abort, done });
  }

  /** Stops the running builds of an Image or Build; when it was deleted, this machine's cache of it goes too. */
  abortBuildsOf(namespace: string, name: string, why: string, deleted = false): void {
    const stopped: Promise<void>[] = [];
    for (const r of this.running.values()) {
      if (r.b.namespace !== namespace || r.b.image !== name) continue;
      r.abort.abort(new StopBuild('interrupt', why));
      stopped.push(r.done);
    }
    if (deleted) void Promise.all(stopped).then(() => rm(imageCacheDir(this.o.home, namespace, name), { recursive: true, force: true }).catch(() => undefined));
  }

  private notifyIfIdle(): void {
    if (this.running.size || this.dispatching) return;
    void (async () => {
      if (this.ranBuilds) {
        this.ranBuilds = false;
        // Run images are read once per wave of rebases; pruned history gives its space back once the wave is done.
        this.ctx.runImages = new Map();
        if ((this.ctx.pruned ?? 0) > 0) {
          this.ctx.pruned = 0;
          await this.store.compact().catch(() => undefined);
        }
        this.o.onDrained?.();
      }
      const pending = await this.store.hasPending().catch(() => false);
      if (this.running.size || this.dispatching) return;
      // Builds this worker has no slot kind for, or that others took first, are not chased in a loop; the poll looks again.
      if (pending && !this.stopping && this.tookSome) return this.dispatch();
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const w of waiters) w();
    })();
  }

  get busy(): number {
    return this.running.size;
  }

  /** Resolves when this worker runs nothing and nothing is queued. */
  idle(): Promise<void> {
    return new Promise((resolve) => {
      this.idleWaiters.push(resolve);
      this.notifyIfIdle();
    });
  }

  /** Stops taking work; running builds get `graceMs` to finish, then go back to the queue for another worker. */
  async stop(graceMs: number, why = 'the worker is stopping'): Promise<void> {
    this.stopping = true;
    for (const t of this.timers) clearInterval(t);
    await this.stopListening?.();
    const all = () => Promise.all([...this.running.values()].map((r) => r.done));
    if (this.running.size && graceMs > 0) this.o.log(`stopping: waiting up to ${Math.round(graceMs / 1000)} s for ${this.running.size} running build(s)`);
    const timedOut = await Promise.race([all().then(() => false), new Promise<boolean>((r) => setTimeout(() => r(true), graceMs).unref())]);
    if (timedOut) {
      for (const r of this.running.values()) r.abort.abort(new StopBuild('release', why));
      await all();
    }
    await this.store.dropWorker(this.name).catch(() => undefined);
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of waiters) w();
  }
}
