import { hostname } from 'node:os';
import { errorMessage } from '../oci/errors.js';
import type { StoreOptions } from '../oci/target.js';
import { reconcile, type ReconcileReport } from './reconciler.js';
import type { BuildRecord, FleetStore } from './store.js';
import { executeBuild, type WorkerContext } from './worker.js';

export interface ControllerOptions {
  storeOptions: StoreOptions;
  home: string;
  /** Full builds at once (each a `strata build` with its own sandbox). */
  buildConcurrency: number;
  /** Rebases at once (config and manifest writes only). */
  rebaseConcurrency: number;
  /** How often sources and images are polled; a registry notification reconciles at once. */
  pollIntervalMs: number;
  log: (line: string) => void;
  /** The most log text one build keeps. */
  maxLogBytes?: number;
  /** Keep a list of finished builds (for `reconcile --once` to print); a server keeps none. */
  collectFinished?: boolean;
}

/** One finished build, for summaries. */
export interface Finished {
  image: string;
  number: number;
  kind: BuildRecord['kind'];
  reasons: string;
  status: BuildRecord['status'];
}

/**
 * The fleet's engine on one machine: reconciles (on a timer, on request, after every build), and runs the builds
 * the reconciles queue with bounded concurrency, rebases apart from full builds so a run-image push is never stuck
 * behind a long build. Stopping lets running builds finish for a grace period, then interrupts them.
 */
export class Controller {
  readonly worker = `${hostname()}:${process.pid}`;
  private reconciling: Promise<void> | undefined;
  private again: { refresh: boolean } | undefined;
  private readonly running = new Map<string, { b: BuildRecord; abort: AbortController; done: Promise<void> }>();
  private stopping = false;
  private dispatching = false;
  private redispatch = false;
  private reconcileWhenDrained = false;
  private timer: NodeJS.Timeout | undefined;
  private idleWaiters: (() => void)[] = [];
  readonly finished: Finished[] = [];
  lastReport: ReconcileReport | undefined;
  private readonly ctx: WorkerContext;

  constructor(
    readonly store: FleetStore,
    private readonly o: ControllerOptions,
  ) {
    this.ctx = { store, storeOptions: o.storeOptions, home: o.home, worker: this.worker, ...(o.maxLogBytes ? { maxLogBytes: o.maxLogBytes } : {}) };
  }

  /** Builds a previous process left running are interrupted (they will be built again); then the first pass. */
  async start(): Promise<void> {
    const n = await this.store.interruptRunning();
    if (n) this.o.log(`${n} build(s) left running by a stopped fleet were marked interrupted; they will run again`);
    this.requestReconcile(true);
    this.schedulePoll();
  }

  private schedulePoll(): void {
    if (this.stopping || this.o.pollIntervalMs <= 0) return;
    this.timer = setTimeout(() => {
      this.requestReconcile(true);
      this.schedulePoll();
    }, this.o.pollIntervalMs);
    this.timer.unref();
  }

  /** Asks for a pass; requests during a pass are folded into one more pass after it. */
  requestReconcile(refreshSources: boolean): void {
    if (this.stopping) return;
    if (this.reconciling) {
      this.again = { refresh: (this.again?.refresh ?? false) || refreshSources };
      return;
    }
    this.reconciling = (async () => {
      try {
        // Run images are read once per pass: a fleet rebase reads the new one once, not once per image.
        this.ctx.runImages = new Map();
        this.lastReport = await reconcile(this.store, { storeOptions: this.o.storeOptions, home: this.o.home, log: this.o.log, refreshSources });
        for (const e of this.lastReport.errors) this.o.log(`not ready: ${e}`);
        // History pruned since the last pass gives its space back, so a long-running fleet's database stays its size.
        if ((this.ctx.pruned ?? 0) > 0) {
          this.ctx.pruned = 0;
          await this.store.compact();
        }
      } catch (err) {
        this.o.log(`reconcile failed: ${errorMessage(err)}`);
      }
      this.dispatch();
    })().finally(() => {
      this.reconciling = undefined;
      const again = this.again;
      this.again = undefined;
      if (again) this.requestReconcile(again.refresh);
      else this.notifyIfIdle();
    });
  }

  private count(kind: BuildRecord['kind']): number {
    return [...this.running.values()].filter((r) => r.b.kind === kind).length;
  }

  /** Starts pending builds while there are free slots of their kind; one dispatch at a time, so slots hold. */
  private dispatch(): void {
    if (this.stopping) return;
    if (this.dispatching) {
      this.redispatch = true;
      return;
    }
    this.dispatching = true;
    void (async () => {
      for (const kind of ['rebase', 'build'] as const) {
        const limit = kind === 'rebase' ? this.o.rebaseConcurrency : this.o.buildConcurrency;
        while (!this.stopping && this.count(kind) < limit) {
          let b: BuildRecord | undefined;
          try {
            b = await this.store.claim(this.worker, [kind]);
          } catch (err) {
            this.o.log(`claiming a build failed: ${errorMessage(err)}`);
          }
          if (!b) break;
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
    // A deleted Image takes its records with it, whichever process deleted it: the build then stops.
    const watch = setInterval(() => {
      void this.store.build(b).then((r) => {
        if (!r) abort.abort(`the ${b.ownerKind} was deleted`);
      }, () => undefined);
    }, 2000);
    watch.unref();
    const done = (async () => {
      this.o.log(`${key}: ${b.kind} started (${b.reasons})`);
      const status = await executeBuild(this.ctx, b, abort.signal);
      this.o.log(`${key}: ${status}`);
      if (this.o.collectFinished) this.finished.push({ image: `${b.namespace}/${b.image}`, number: b.number, kind: b.kind, reasons: b.reasons, status });
    })()
      .catch((err: unknown) => this.o.log(`${key}: ${errorMessage(err)}`))
      .finally(() => {
        clearInterval(watch);
        this.running.delete(key);
        // A change that came in while this image was building waited for it; one pass once the queue drains picks
        // all such up (a pass per finished build would compete with the builds for the database).
        this.reconcileWhenDrained = true;
        this.dispatch();
      });
    this.running.set(key, { b, abort, done });
  }

  /** Stops the running builds of an Image or Build (it was deleted). */
  abortBuildsOf(namespace: string, name: string, why: string): void {
    for (const r of this.running.values()) if (r.b.namespace === namespace && r.b.image === name) r.abort.abort(why);
  }

  private notifyIfIdle(): void {
    if (this.reconciling || this.running.size) return;
    if (this.reconcileWhenDrained && !this.stopping) {
      this.reconcileWhenDrained = false;
      return this.requestReconcile(false);
    }
    void this.store
      .hasPending()
      .then((pending) => {
        if (this.reconciling || this.running.size) return;
        if (pending && !this.stopping) return this.dispatch();
        const waiters = this.idleWaiters;
        this.idleWaiters = [];
        for (const w of waiters) w();
      })
      .catch(() => undefined);
  }

  /** Whether a pass or a build is under way (for `GET /v1/ping`). */
  get busy(): { reconciling: boolean; running: number } {
    return { reconciling: this.reconciling !== undefined, running: this.running.size };
  }

  /** Resolves when no pass is running, no build is running and none is pending: `reconcile --once` waits for this. */
  idle(): Promise<void> {
    return new Promise((resolve) => {
      this.idleWaiters.push(resolve);
      this.notifyIfIdle();
    });
  }

  /** Stops taking work; running builds get `graceMs` to finish, then are interrupted (and recorded so). */
  async stop(graceMs: number): Promise<void> {
    this.stopping = true;
    if (this.timer) clearTimeout(this.timer);
    const all = () => Promise.all([...this.running.values()].map((r) => r.done));
    if (this.running.size) this.o.log(`stopping: waiting up to ${Math.round(graceMs / 1000)} s for ${this.running.size} running build(s)`);
    const timedOut = await Promise.race([all().then(() => false), new Promise<boolean>((r) => setTimeout(() => r(true), graceMs).unref())]);
    if (timedOut) {
      for (const r of this.running.values()) r.abort.abort('the fleet is stopping');
      await all();
    }
    await this.reconciling?.catch(() => undefined);
  }
}
