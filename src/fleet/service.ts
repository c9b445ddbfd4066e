import { mkdir } from 'node:fs/promises';
import { fleetPaths } from './paths.js';
import { StrataError } from '../oci/errors.js';
import { Reference } from '../oci/reference.js';
import { acquireLock, LockedError } from '../oci/fsutil.js';
import { Controller, type ControllerOptions, type Finished } from './controller.js';
import type { ReconcileReport } from './reconciler.js';
import { danglingReferences, describe, resourceKey, type ImageSpec, type Kind, type Meta, type Resource } from './resources.js';
import { FleetStore, type ApplyOutcome, type BuildRecord, type ImageStatus, type StoredResource } from './store.js';

export { fleetPaths } from './paths.js';

/**
 * What the CLI (and later the dashboard) can ask of a fleet, whether it holds the database itself or talks to the
 * `fleet serve` that does: one interface, two ways to reach it.
 */

export interface ImageView {
  namespace: string;
  name: string;
  tag: string;
  builder: string;
  ready: boolean;
  latestImage?: string;
  latestReason?: string;
  why?: string;
  error?: string;
  latestBuild?: { number: number; status: BuildRecord['status']; reasons: string; kind: BuildRecord['kind'] };
}

export interface ReconcileOutcome {
  /** True when a running `fleet serve` was asked to reconcile (it does the work, in the background). */
  served: boolean;
  report?: ReconcileReport;
  finished?: Finished[];
}

export interface FleetApi {
  readonly where: string;
  apply(resources: Resource[]): Promise<{ key: string; outcome: ApplyOutcome }[]>;
  delete(metas: Pick<Meta, 'kind' | 'namespace' | 'name'>[]): Promise<string[]>;
  resources(kind?: Kind): Promise<StoredResource[]>;
  images(): Promise<ImageView[]>;
  builds(filter: { namespace?: string; image?: string }): Promise<BuildRecord[]>;
  log(namespace: string, image: string, number: number, fromSeq: number): Promise<{ chunks: { seq: number; text: string }[]; status: BuildRecord['status'] }>;
  trigger(namespace: string, name: string): Promise<void>;
  reconcileNow(): Promise<ReconcileOutcome>;
  close(): Promise<void>;
}

/** The fleet with its database open in this process (holding the fleet lock). */
export class LocalFleet implements FleetApi {
  protected controller: Controller | undefined;

  protected constructor(
    readonly store: FleetStore,
    protected readonly options: Omit<ControllerOptions, 'log'> & { log: (line: string) => void },
  ) {}

  get where(): string {
    return this.store.description;
  }

  /**
   * Opens the embedded database under `$STRATA_HOME/fleet`. Any number of processes may have it open; only the
   * controller's work (passes and builds) is one process at a time, under the controller lock.
   */
  static async open(options: LocalFleet['options']): Promise<LocalFleet> {
    const paths = fleetPaths(options.home);
    await mkdir(paths.dir, { recursive: true, mode: 0o700 });
    const { openEmbedded } = await import('./db/embedded.js');
    const store = new FleetStore(openEmbedded(paths.db));
    try {
      await store.migrate();
    } catch (err) {
      await store.close();
      throw err;
    }
    return new this(store, options);
  }

  /** The controller lock: one process runs passes and builds for this fleet at a time (serve or reconcile --once). */
  protected async lockController(): Promise<() => Promise<void>> {
    const paths = fleetPaths(this.options.home);
    try {
      return await acquireLock(paths.lock, `the fleet in ${paths.dir}`, 0);
    } catch (err) {
      if (err instanceof LockedError) throw new StrataError(`another strata fleet reconcile or serve (process ${err.pid}) is running the fleet in ${paths.dir}; it picks up changes itself`);
      throw err;
    }
  }

  async apply(resources: Resource[]): Promise<{ key: string; outcome: ApplyOutcome }[]> {
    const stored = (await this.store.list()).map((r) => r.resource);
    const incoming = new Set(resources.map((r) => resourceKey(r.meta)));
    const dangling = danglingReferences([...stored.filter((r) => !incoming.has(resourceKey(r.meta))), ...resources]);
    if (dangling.length) throw new StrataError(`${dangling[0]}${dangling.length > 1 ? ` (and ${dangling.length - 1} more)` : ''}; nothing was applied`);
    const out = await this.store.apply(resources);
    if (out.some((o) => o.outcome !== 'unchanged')) this.controller?.requestReconcile(true);
    return out.map((o) => ({ key: resourceKey(o.resource.meta), outcome: o.outcome }));
  }

  async delete(metas: Pick<Meta, 'kind' | 'namespace' | 'name'>[]): Promise<string[]> {
    const stored = (await this.store.list()).map((r) => r.resource);
    const going = new Set(metas.map(resourceKey));
    const left = stored.filter((r) => !going.has(resourceKey(r.meta)));
    const dangling = danglingReferences(left);
    if (dangling.length) throw new StrataError(`${dangling[0]}; delete what uses it first (nothing was deleted)`);
    return this.store.delete(metas);
  }

  resources(kind?: Kind): Promise<StoredResource[]> {
    return this.store.list(kind) as Promise<StoredResource[]>;
  }

  async images(): Promise<ImageView[]> {
    const latest = await this.store.latestBuilds();
    return (await this.store.list('Image')).map((r) => {
      const spec = r.resource.spec as ImageSpec;
      const s = r.status as ImageStatus;
      const l = latest.get(`${r.resource.meta.namespace}/${r.resource.meta.name}`)?.latest;
      return {
        namespace: r.resource.meta.namespace,
        name: r.resource.meta.name,
        tag: spec.tag,
        builder: describe(spec.builder),
        ready: Boolean(s.latestImage) && !s.error,
        ...(s.latestImage ? { latestImage: s.latestImage } : {}),
        ...(s.latestReason ? { latestReason: s.latestReason } : {}),
        ...(s.why ? { why: s.why } : {}),
        ...(s.error ? { error: s.error } : {}),
        ...(l ? { latestBuild: { number: l.number, status: l.status, reasons: l.reasons, kind: l.kind } } : {}),
      };
    });
  }

  builds(filter: { namespace?: string; image?: string }): Promise<BuildRecord[]> {
    return this.store.builds(filter);
  }

  async log(namespace: string, image: string, number: number, fromSeq: number): Promise<{ chunks: { seq: number; text: string }[]; status: BuildRecord['status'] }> {
    const b = await this.store.build(namespace, image, number);
    if (!b) throw new StrataError(`Image ${namespace}/${image} has no build #${number}`);
    return { chunks: await this.store.readLog(b, fromSeq), status: b.status };
  }

  async trigger(namespace: string, name: string): Promise<void> {
    if (!(await this.store.trigger(namespace, name))) throw new StrataError(`no Image ${namespace}/${name} (see strata fleet images)`);
    this.controller?.requestReconcile(false);
  }

  /** With no server: one pass, then every build it queued, to the end (`fleet reconcile --once`). */
  async reconcileNow(): Promise<ReconcileOutcome> {
    const release = await this.lockController();
    try {
      const c = new Controller(this.store, { ...this.options, pollIntervalMs: 0 });
      await c.start();
      await c.idle();
      await c.stop(0);
      return { served: false, ...(c.lastReport ? { report: c.lastReport } : {}), finished: c.finished };
    } finally {
      await release();
    }
  }

  async close(): Promise<void> {
    await this.store.close();
  }
}

/** The fleet inside `fleet serve`: its controller runs all along, and changes made through it wake the controller. */
export class ServedFleet extends LocalFleet {
  private releaseController: (() => Promise<void>) | undefined;

  /** Takes the controller lock; before the API listens, so a second server never replaces the first one's socket. */
  async takeControl(): Promise<void> {
    this.releaseController ??= await this.lockController();
  }

  async serve(): Promise<Controller> {
    await this.takeControl();
    this.controller = new Controller(this.store, this.options);
    await this.controller.start();
    return this.controller;
  }

  override async reconcileNow(): Promise<ReconcileOutcome> {
    this.controller?.requestReconcile(true);
    return { served: true };
  }

  private watched: Set<string> | undefined;

  get busy(): { reconciling: boolean; running: number } {
    return this.controller?.busy ?? { reconciling: false, running: 0 };
  }

  override async apply(resources: Resource[]): Promise<{ key: string; outcome: ApplyOutcome }[]> {
    this.watched = undefined;
    return super.apply(resources);
  }

  override async delete(metas: Pick<Meta, 'kind' | 'namespace' | 'name'>[]): Promise<string[]> {
    this.watched = undefined;
    return super.delete(metas);
  }

  /**
   * Registry notifications: a push to a repository the fleet watches wakes it, without looking sources up again.
   * The fleet's own pushes (every rebased image) notify too, so the watched set is kept, not read per event.
   */
  async registryPush(repositories: string[]): Promise<string[]> {
    this.watched ??= watchedRepositories((await this.store.list()).map((r) => r.resource));
    const hits = [...new Set(repositories.filter((r) => this.watched!.has(r)))];
    if (hits.length) this.controller?.requestReconcile(false);
    return hits;
  }

  async stop(graceMs: number): Promise<void> {
    try {
      await this.controller?.stop(graceMs);
      await this.close();
    } finally {
      await this.releaseController?.();
      this.releaseController = undefined;
    }
  }
}

/** The repositories (path only, as registry notifications name them) whose pushes the fleet reacts to. */
export function watchedRepositories(resources: Resource[]): Set<string> {
  const out = new Set<string>();
  const add = (image: string): void => {
    out.add(Reference.parse(image).repository);
  };
  for (const r of resources) {
    switch (r.meta.kind) {
      case 'ClusterStack': {
        const s = r.spec as { buildImage: string; runImage: string };
        add(s.buildImage);
        add(s.runImage);
        break;
      }
      case 'ClusterStore':
        for (const src of (r.spec as { sources: string[] }).sources) add(src);
        break;
      case 'Builder':
      case 'ClusterBuilder':
        for (const g of (r.spec as { order: { group: { image?: string }[] }[] }).order) for (const e of g.group) if (e.image) add(e.image);
        break;
      case 'Image': {
        const src = (r.spec as ImageSpec).source.registry;
        if (src) add(src.image);
        break;
      }
    }
  }
  return out;
}
