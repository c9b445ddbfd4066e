import { errorMessage } from '../oci/errors.js';
import type { StoreOptions } from '../oci/target.js';
import { reconcile, type ReconcileReport } from './reconciler.js';
import type { FleetStore } from './store.js';

export interface ControllerOptions {
  storeOptions: StoreOptions;
  home: string;
  /** How often sources and images are polled; a registry notification reconciles at once. */
  pollIntervalMs: number;
  log: (line: string) => void;
}

/**
 * The fleet's controller: reconcile passes (on a timer, on request, when workers drain), which resolve sources and
 * images, make builders and queue builds. One process of the fleet runs it at a time (the holder of the controller's
 * role: see `ControllerSeat`); queued builds are announced so every idle worker, on any machine, claims them.
 */
export class Controller {
  private reconciling: Promise<void> | undefined;
  private again: { refresh: boolean } | undefined;
  private stopping = false;
  private timer: NodeJS.Timeout | undefined;
  private idleWaiters: (() => void)[] = [];
  lastReport: ReconcileReport | undefined;

  constructor(
    readonly store: FleetStore,
    private readonly o: ControllerOptions,
  ) {}

  /** The first pass (with sources looked up), then one per poll interval. */
  start(): void {
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
        this.lastReport = await reconcile(this.store, { storeOptions: this.o.storeOptions, home: this.o.home, log: this.o.log, refreshSources });
        for (const e of this.lastReport.errors) this.o.log(`not ready: ${e}`);
        if (this.lastReport.created.length) await this.store.wake({ type: 'builds' });
      } catch (err) {
        this.o.log(`reconcile failed: ${errorMessage(err)}`);
      }
    })().finally(() => {
      this.reconciling = undefined;
      const again = this.again;
      this.again = undefined;
      if (again) this.requestReconcile(again.refresh);
      else {
        const waiters = this.idleWaiters;
        this.idleWaiters = [];
        for (const w of waiters) w();
      }
    });
  }

  get reconcilingNow(): boolean {
    return this.reconciling !== undefined;
  }

  /** Resolves when no pass runs or is due. */
  idle(): Promise<void> {
    if (!this.reconciling) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  async stop(): Promise<void> {
    this.stopping = true;
    this.again = undefined;
    if (this.timer) clearTimeout(this.timer);
    await this.reconciling?.catch(() => undefined);
  }
}

/**
 * The controller's role for a long-running process: held while this process holds the fleet's controller lock (a
 * lock file beside an embedded database; an advisory lock on a server, which the server drops with the connection),
 * else standing by and trying again every `retryMs`, so a standby takes over within one lease of the holder's death.
 */
export class ControllerSeat {
  private controller: Controller | undefined;
  private release: (() => Promise<void>) | undefined;
  private stopped = false;
  private wakeUp: (() => void) | undefined;
  private loop: Promise<void> | undefined;
  private toldHolder: string | undefined;

  constructor(
    private readonly store: FleetStore,
    private readonly o: ControllerOptions & { retryMs: number },
  ) {}

  get holding(): boolean {
    return this.controller !== undefined;
  }

  get busy(): boolean {
    return this.controller?.reconcilingNow ?? false;
  }

  requestReconcile(refresh: boolean): void {
    this.controller?.requestReconcile(refresh);
  }

  /** Takes the role now if it is free (resolves either way), and keeps trying in the background while it is not. */
  async start(): Promise<void> {
    await this.attempt();
    this.loop = (async () => {
      while (!this.stopped) {
        if (this.controller) {
          // Hold until the lock is lost (the connection dropped) or we stop.
          await new Promise<void>((resolve) => (this.wakeUp = resolve));
          continue;
        }
        await new Promise<void>((resolve) => {
          this.wakeUp = resolve;
          setTimeout(resolve, this.o.retryMs).unref();
        });
        if (!this.stopped) await this.attempt();
      }
    })();
  }

  private async attempt(): Promise<void> {
    let hold;
    try {
      hold = await this.store.tryControl();
    } catch (err) {
      this.o.log(`controller: ${errorMessage(err)}`);
      return;
    }
    if ('holder' in hold) {
      if (this.toldHolder !== hold.holder) this.o.log(`standing by: ${hold.holder} is the fleet's controller`);
      this.toldHolder = hold.holder;
      return;
    }
    this.toldHolder = undefined;
    const c = new Controller(this.store, this.o);
    this.controller = c;
    this.release = () => hold.release();
    this.o.log('this process is the fleet\'s controller');
    void hold.lost.then(async () => {
      if (this.controller !== c) return;
      this.o.log('lost the controller\'s role (its database connection dropped); standing by');
      this.controller = undefined;
      this.release = undefined;
      await c.stop();
      this.wakeUp?.();
    });
    c.start();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.wakeUp?.();
    const c = this.controller;
    this.controller = undefined;
    await c?.stop();
    await this.release?.();
    this.release = undefined;
    await this.loop;
  }
}
