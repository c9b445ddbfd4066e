import { rm } from 'node:fs/promises';
import { fleetPaths } from './paths.js';
import { StrataError, errorMessage } from '../oci/errors.js';
import { Reference } from '../oci/reference.js';
import { acquireLock, LockedError } from '../oci/fsutil.js';
import type { StoreOptions } from '../oci/target.js';
import { canonical } from './canonical.js';
import { Controller, ControllerSeat } from './controller.js';
import { Dispatcher, type Finished } from './dispatcher.js';
import { openFleetStore } from './open.js';
import { parseDocuments, type SourceDocument } from './manifests.js';
import type { ReconcileReport } from './reconciler.js';
import { brokenByDelete, checkReferences } from './references.js';
import { describe, resourceKey, type BuildpackSpec, type ImageSpec, type Kind, type Meta, type Resource } from './resources.js';
import { localPathOf, localSourceAllowed } from './sources.js';
import { imageConditions, readyOf, resourceConditions, type Condition } from './status.js';
import { FleetStore, type ApplyOutcome, type BuildKey, type BuildRecord, type ImageStatus, type StoredResource, type WorkerRecord } from './store.js';
import { imageCacheDir } from './worker.js';

export { fleetPaths } from './paths.js';

/**
 * What the CLI (and the dashboard) can ask of a fleet, whether it holds the database itself or talks to the
 * `fleet serve` that does: one interface, two ways to reach it.
 */

export interface ImageView {
  namespace: string;
  name: string;
  tag: string;
  builder: string;
  /** kpack's Ready: the latest build's outcome. */
  ready: Condition['status'];
  conditions: Condition[];
  latestImage?: string;
  latestReason?: string;
  why?: string;
  error?: string;
  latestBuild?: { number: number; status: BuildRecord['status']; reasons: string; kind: BuildRecord['kind'] };
  /** The run image the latest succeeded build sits on, name@digest. */
  runImage?: string;
  /** When the latest build finished (or started, or was queued). */
  latestAt?: string;
}

/** A stored resource as listings show it: its conditions computed, a Secret's values never there. */
export interface ResourceView extends StoredResource {
  conditions: Condition[];
}

export interface ReconcileOutcome {
  /** True when the fleet's controller (a `fleet serve` here or elsewhere) was asked to reconcile; it does the work. */
  served: boolean;
  /** Who that controller is, when it is known. */
  controller?: string;
  report?: ReconcileReport;
  finished?: Finished[];
}

export interface BuildFilter {
  ownerKind?: BuildRecord['ownerKind'];
  namespace?: string;
  image?: string;
  /** Queued at or after this time (ISO). */
  since?: string;
}

export interface ApplyResult {
  results: { key: string; outcome: ApplyOutcome }[];
  warnings: string[];
}

export interface FleetApi {
  readonly where: string;
  apply(documents: SourceDocument[]): Promise<ApplyResult>;
  delete(metas: Pick<Meta, 'kind' | 'namespace' | 'name'>[]): Promise<string[]>;
  resources(kind?: Kind): Promise<ResourceView[]>;
  images(): Promise<ImageView[]>;
  builds(filter: BuildFilter): Promise<BuildRecord[]>;
  log(key: BuildKey, fromSeq: number): Promise<{ chunks: { seq: number; text: string }[]; status: BuildRecord['status'] }>;
  trigger(namespace: string, name: string): Promise<void>;
  reconcileNow(): Promise<ReconcileOutcome>;
  /** The worker processes of the fleet, on every machine, as their heartbeats last said. */
  workers(): Promise<WorkerRecord[]>;
  close(): Promise<void>;
}

/** Who sent an apply: this machine's own CLI (any local source), or the network (only the allowed dirs). */
export interface ApplyOrigin {
  remote: boolean;
  /** `fleet serve --allow-local-source DIR`. */
  allowLocalSources?: string[];
}

export interface FleetOptions {
  home: string;
  /** A PostgreSQL server's URL, shared by the fleet's machines; absent, the embedded database. */
  database?: string;
  storeOptions: StoreOptions;
  /** Full builds and rebases this process runs at once. */
  buildConcurrency: number;
  rebaseConcurrency: number;
  /** How often the controller looks sources and images up again. */
  pollIntervalMs: number;
  /** How long a worker's claim on a build holds without a heartbeat. */
  leaseMs: number;
  maxLogBytes?: number;
  log: (line: string) => void;
}

/** How often a worker looks at the queue without being told (an embedded fleet's other processes tell it nothing). */
const QUEUE_POLL_MS = 3000;

/** A worker on the fleet's queue, with the options every process gives one. */
export function dispatcherFor(store: FleetStore, o: FleetOptions, extra: Partial<ConstructorParameters<typeof Dispatcher>[1]> = {}): Dispatcher {
  return new Dispatcher(store, {
    storeOptions: o.storeOptions,
    home: o.home,
    buildConcurrency: o.buildConcurrency,
    rebaseConcurrency: o.rebaseConcurrency,
    leaseMs: o.leaseMs,
    pollMs: QUEUE_POLL_MS,
    log: o.log,
    ...(o.maxLogBytes ? { maxLogBytes: o.maxLogBytes } : {}),
    ...extra,
  });
}

/** The fleet with its database open in this process. */
export class LocalFleet implements FleetApi {
  protected constructor(
    readonly store: FleetStore,
    protected readonly options: FleetOptions,
  ) {}

  get where(): string {
    return this.store.description;
  }

  /**
   * Opens the fleet's database: the embedded one under `$STRATA_HOME/fleet`, or the server `options.database` names.
   * Any number of processes may have it open; passes run in the one process that holds the controller's role.
   */
  static async open(options: FleetOptions): Promise<LocalFleet> {
    return new this(await openFleetStore({ home: options.home, ...(options.database ? { database: options.database } : {}) }), options);
  }

  apply(documents: SourceDocument[]): Promise<ApplyResult> {
    return this.applyFrom(documents, { remote: false });
  }

  /**
   * Checks documents as one change and stores them in one transaction; nothing is stored when any is wrong. The
   * same checks whoever sends them: the CLI's files and the HTTP API's bodies.
   */
  async applyFrom(documents: SourceDocument[], origin: ApplyOrigin): Promise<ApplyResult> {
    if (!Array.isArray(documents) || !documents.length) throw new StrataError('nothing to apply: no documents were given');
    const { parsed, warnings } = parseDocuments(documents);
    if (origin.remote) {
      for (const p of parsed) {
        if (p.resource.meta.kind !== 'Image' && p.resource.meta.kind !== 'Build') continue;
        const local = localPathOf((p.resource.spec as ImageSpec).source);
        if (local && !localSourceAllowed(local, origin.allowLocalSources ?? [])) {
          throw new StrataError(`${p.where}: spec.source names ${local} on the fleet's machine, which a resource applied over the network may read only in a directory allowed with fleet serve --allow-local-source; nothing was applied`);
        }
      }
    }
    const stored = await this.store.list();
    const storedByKey = new Map(stored.map((r) => [resourceKey(r.resource.meta), r.resource]));
    const where = new Map(parsed.map((p) => [resourceKey(p.resource.meta), p.where]));
    for (const p of parsed) {
      const m = p.resource.meta;
      const before = storedByKey.get(resourceKey(m));
      if (m.kind === 'Image' && before && (before.spec as ImageSpec).tag !== (p.resource.spec as ImageSpec).tag) {
        throw new StrataError(`${p.where}: spec.tag cannot change (${(before.spec as ImageSpec).tag} → ${(p.resource.spec as ImageSpec).tag}), as in kpack; delete the Image and apply it again; nothing was applied`);
      }
      if (m.kind === 'Build' && before && canonical(before.spec) !== canonical(p.resource.spec)) throw new StrataError(`${p.where}: a Build cannot change once applied, as in kpack; apply one under a new name; nothing was applied`);
    }
    const incoming = new Set(where.keys());
    const all = [...stored.filter((r) => !incoming.has(resourceKey(r.resource.meta))).map((r) => r.resource), ...parsed.map((p) => p.resource)];
    const report = checkReferences(all, (m) => where.get(resourceKey(m)) ?? describe(m));
    if (report.errors.length) throw new StrataError(`${report.errors[0]}${report.errors.length > 1 ? ` (and ${report.errors.length - 1} more)` : ''}; nothing was applied`);
    const waiting = report.waiting.filter((w) => [...where.values()].some((x) => w.startsWith(x)));
    await this.checkBuildpackImages(parsed.filter((p) => p.resource.meta.kind === 'ClusterBuildpack' || p.resource.meta.kind === 'Buildpack'), storedByKey);
    const out = await this.store.apply(parsed.map((p) => p.resource));
    if (out.some((o) => o.outcome !== 'unchanged')) await this.store.wake({ type: 'reconcile', refresh: true });
    return { results: out.map((o) => ({ key: resourceKey(o.resource.meta), outcome: o.outcome })), warnings: [...warnings, ...waiting] };
  }

  /**
   * A ClusterBuildpack or Buildpack whose image cannot be read as a buildpackage is refused at once, naming its
   * document: unlike a missing builder, nothing later can make a wrong image right. Read with the resource's own
   * service account (or the machine's logins without one).
   */
  private async checkBuildpackImages(list: { resource: Resource; where: string }[], stored: Map<string, Resource>): Promise<void> {
    const { buildpacksOf } = await import('./builders.js');
    const { accountCredentials } = await import('./credentials.js');
    const { credentialReader, withLogins } = await import('./worker.js');
    for (const p of list) {
      const spec = p.resource.spec as BuildpackSpec;
      const before = stored.get(resourceKey(p.resource.meta));
      if (before && (before.spec as BuildpackSpec).image === spec.image) continue;
      try {
        const creds = await accountCredentials(spec.serviceAccount, credentialReader(this.store)).catch(() => undefined);
        const opts = creds ? withLogins(this.options.storeOptions, creds) : this.options.storeOptions;
        await Promise.race([buildpacksOf(spec.image, opts), new Promise((_, reject) => setTimeout(() => reject(new Error('no answer in 60 s')), 60_000).unref())]);
      } catch (err) {
        throw new StrataError(`${p.where}: spec.image: ${spec.image} cannot be read as a buildpackage (${errorMessage(err).split('\n')[0]}); nothing was applied`);
      }
    }
  }

  async delete(metas: Pick<Meta, 'kind' | 'namespace' | 'name'>[]): Promise<string[]> {
    const stored = (await this.store.list()).map((r) => r.resource);
    const going = new Set(metas.map(resourceKey));
    const broken = brokenByDelete(
      stored.filter((r) => !going.has(resourceKey(r.meta))),
      going,
    );
    if (broken.length) throw new StrataError(`${broken[0]}; delete what uses it first (nothing was deleted)`);
    const gone = await this.store.delete(metas);
    // A deleted Image's running build is stopped by its worker, told now (or seeing the record go); this machine's
    // cache of it goes now, every other worker's when it hears.
    for (const m of metas) {
      if ((m.kind !== 'Image' && m.kind !== 'Build') || !gone.includes(resourceKey(m))) continue;
      await rm(imageCacheDir(this.options.home, m.namespace, m.name), { recursive: true, force: true });
      await this.store.wake({ type: 'abort', ownerKind: m.kind, namespace: m.namespace, name: m.name });
    }
    return gone;
  }

  async resources(kind?: Kind): Promise<ResourceView[]> {
    const list = await this.store.list(kind);
    const latest = list.some((r) => r.resource.meta.kind === 'Image') ? await this.store.latestBuilds() : new Map<string, { latest?: BuildRecord }>();
    return list.map((r) => view(r, latest.get(`${r.resource.meta.namespace}/${r.resource.meta.name}`)?.latest));
  }

  async images(): Promise<ImageView[]> {
    const latest = await this.store.latestBuilds();
    return (await this.store.list('Image')).map((r) => {
      const spec = r.resource.spec as ImageSpec;
      const s = r.status as ImageStatus;
      const b = latest.get(`${r.resource.meta.namespace}/${r.resource.meta.name}`);
      const conditions = imageConditions(s, b?.latest);
      const l = b?.latest;
      const ok = b?.lastSuccess;
      return {
        namespace: r.resource.meta.namespace,
        name: r.resource.meta.name,
        tag: spec.tag,
        builder: describe(spec.builder),
        ready: readyOf(conditions),
        conditions,
        ...(ok?.result?.image ? { latestImage: ok.result.image, latestReason: ok.reasons } : {}),
        ...(s.why ? { why: s.why } : {}),
        ...(s.error ? { error: s.error } : {}),
        ...(l ? { latestBuild: { number: l.number, status: l.status, reasons: l.reasons, kind: l.kind }, latestAt: l.finishedAt ?? l.startedAt ?? l.createdAt } : {}),
        ...(ok?.result?.runImage ? { runImage: ok.result.runImage } : {}),
      };
    });
  }

  builds(filter: BuildFilter): Promise<BuildRecord[]> {
    return this.store.builds(filter);
  }

  async log(key: BuildKey, fromSeq: number): Promise<{ chunks: { seq: number; text: string }[]; status: BuildRecord['status'] }> {
    const b = await this.store.build(key);
    if (!b) throw new StrataError(`${key.ownerKind} ${key.namespace}/${key.image} has no build #${key.number}`);
    return { chunks: await this.store.readLog(b, fromSeq), status: b.status };
  }

  async trigger(namespace: string, name: string): Promise<void> {
    if (!(await this.store.trigger(namespace, name))) throw new StrataError(`no Image ${namespace}/${name} (see strata fleet images)`);
    await this.store.wake({ type: 'reconcile', refresh: false });
  }

  /**
   * With no controller running: passes, and the builds they queue, to the end (`fleet reconcile --once`). When the
   * fleet has a controller (a `fleet serve` here or on another machine) it is asked instead.
   */
  async reconcileNow(): Promise<ReconcileOutcome> {
    const hold = await this.store.tryControl();
    if ('holder' in hold) {
      if (this.store.engine === 'sqlite') throw new StrataError(`another strata fleet reconcile or serve (${hold.holder}) is running the fleet in ${fleetPaths(this.options.home).dir}; it picks up changes itself`);
      await this.store.wake({ type: 'reconcile', refresh: true });
      return { served: true, controller: `the fleet's controller (${hold.holder})` };
    }
    const finished: Finished[] = [];
    const worker = dispatcherFor(this.store, this.options, { onFinished: (f) => finished.push(f) });
    const c = new Controller(this.store, { ...this.options, pollIntervalMs: 0 });
    try {
      await worker.start();
      let report: ReconcileReport | undefined;
      // A pass after the builds, for what changed while they ran; a fleet whose every pass queues builds stops anyway.
      for (let round = 0; round < 10; round++) {
        const before = finished.length;
        c.requestReconcile(round === 0);
        await c.idle();
        report ??= c.lastReport;
        if (c.lastReport) report = { created: [...(round ? report!.created : []), ...c.lastReport.created], errors: c.lastReport.errors };
        worker.dispatch();
        await worker.idle();
        if (finished.length === before) break;
      }
      return { served: false, ...(report ? { report } : {}), finished };
    } finally {
      await c.stop();
      await worker.stop(0);
      await hold.release();
    }
  }

  workers(): Promise<WorkerRecord[]> {
    return this.store.workers();
  }

  async close(): Promise<void> {
    await this.store.close();
  }
}

function view(r: StoredResource, latest: BuildRecord | undefined): ResourceView {
  const spec = r.resource.meta.kind === 'Secret' ? { ...(r.resource.spec as object), digest: undefined } : r.resource.spec;
  const conditions = r.resource.meta.kind === 'Image' ? imageConditions(r.status as ImageStatus, latest) : resourceConditions(r.resource.meta.kind, r.status);
  return { ...r, resource: { ...r.resource, spec } as Resource, conditions };
}

/**
 * The fleet inside `fleet serve`: a worker all along, and the controller while this process holds the role (else a
 * standby that takes it over). Changes made through any process of the fleet reach it as events.
 */
export class ServedFleet extends LocalFleet {
  private releaseHome: (() => Promise<void>) | undefined;
  private worker: Dispatcher | undefined;
  private seat: ControllerSeat | undefined;
  private stopEvents: (() => Promise<void>) | undefined;
  private watched: Set<string> | undefined;
  private lookAgain: NodeJS.Timeout | undefined;

  /** One `fleet serve` per `$STRATA_HOME`, taken before the API listens, so a second one never replaces the socket. */
  async takeHome(): Promise<void> {
    if (this.releaseHome) return;
    const paths = fleetPaths(this.options.home);
    try {
      this.releaseHome = await acquireLock(paths.serveLock, `the fleet serve of ${paths.dir}`, 0);
    } catch (err) {
      if (err instanceof LockedError) throw new StrataError(`a strata fleet serve (process ${err.pid}) already runs for ${paths.dir}`);
      throw err;
    }
  }

  async serve(): Promise<void> {
    await this.takeHome();
    this.seat = new ControllerSeat(this.store, { ...this.options, retryMs: Math.max(500, Math.floor(this.options.leaseMs / 3)) });
    this.stopEvents = await this.store.events((e) => {
      if (e.type !== 'reconcile') return;
      if (e.refresh) this.watched = undefined;
      this.seat?.requestReconcile(e.refresh);
    });
    await this.seat.start();
    // A worker that ran builds and has none left asks for one more pass, for what changed while they ran.
    this.worker = dispatcherFor(this.store, this.options, { onDrained: () => void this.store.wake({ type: 'reconcile', refresh: false }).catch(() => undefined), isController: () => this.seat?.holding ?? false });
    await this.worker.start();
  }

  override async reconcileNow(): Promise<ReconcileOutcome> {
    await this.store.wake({ type: 'reconcile', refresh: true });
    return { served: true };
  }

  get busy(): { reconciling: boolean; running: number; controller: boolean } {
    return { reconciling: this.seat?.busy ?? false, running: this.worker?.busy ?? 0, controller: this.seat?.holding ?? false };
  }

  override async applyFrom(documents: SourceDocument[], origin: ApplyOrigin): Promise<ApplyResult> {
    this.watched = undefined;
    return super.applyFrom(documents, origin);
  }

  override async delete(metas: Pick<Meta, 'kind' | 'namespace' | 'name'>[]): Promise<string[]> {
    this.watched = undefined;
    return super.delete(metas);
  }

  /**
   * Registry notifications: a push to a repository the fleet watches wakes its controller (wherever it runs), without
   * looking sources up again. The fleet's own pushes (every rebased image) notify too, so the watched set is kept,
   * not read per event.
   */
  async registryPush(repositories: string[]): Promise<string[]> {
    this.watched ??= watchedRepositories((await this.store.list()).map((r) => r.resource));
    const hits = [...new Set(repositories.filter((r) => this.watched!.has(r)))];
    if (!hits.length) return hits;
    await this.store.wake({ type: 'reconcile', refresh: false });
    // The registry notifies of a manifest before it moves the tag to it, so a pass at once can still read the old
    // digest: a second look shortly after (pushes in between fold into it) sees where the tag went.
    this.lookAgain ??= setTimeout(() => {
      this.lookAgain = undefined;
      void this.store.wake({ type: 'reconcile', refresh: false }).catch(() => undefined);
    }, 2000);
    this.lookAgain.unref();
    return hits;
  }

  /** Stops passes at once; running builds get `graceMs` to finish, then go back to the queue. */
  async stop(graceMs: number): Promise<void> {
    if (this.lookAgain) clearTimeout(this.lookAgain);
    try {
      await this.stopEvents?.();
      await this.seat?.stop();
      await this.worker?.stop(graceMs, 'the fleet serve is stopping');
      await this.close();
    } finally {
      await this.releaseHome?.();
      this.releaseHome = undefined;
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
      case 'ClusterBuildpack':
      case 'Buildpack':
      case 'ClusterLifecycle':
        add((r.spec as { image: string }).image);
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
      default:
        break;
    }
  }
  return out;
}
