import { sql, type ExpressionBuilder, type Kysely, type Selectable } from 'kysely';
import { StrataError } from '../oci/errors.js';
import { canonical } from './canonical.js';
import { migrate, type FleetDatabase, type FleetEvent } from './db/database.js';
import type { BuildsTable, FleetTables, ResourcesTable } from './db/schema.js';
import type { BuildInputs, BuildpackRef, BuildStatus, Change, PastBuild } from './reasons.js';
import { resourceKey, type Kind, type Meta, type Resource, type ResourceOf } from './resources.js';
import type { SecretBox } from './secrets.js';

/**
 * The fleet's state behind one interface: declared resources with what they resolved to, and build records with
 * their logs. Queries are built with kysely over `FleetDatabase`, so the embedded database and a PostgreSQL server
 * behave the same; every multi-row change is one transaction, so a crash loses no declared resource and no
 * finished build record.
 */

/** What a stack, store, builder or image resolved to on its last reconcile, and any problem with it. */
export interface ResourceStatus {
  ready?: boolean;
  /** One line when the resource cannot be made true now (an unreachable registry, a missing buildpack). */
  error?: string;
  observedGeneration?: number;
  reconciledAt?: string;
  [k: string]: unknown;
}

export interface StackStatus extends ResourceStatus {
  id?: string;
  buildImage?: string;
  runImage?: string;
  /** The run image as declared (a tag), for builders and rebases to name. */
  runImageTag?: string;
}

export interface StoreStatus extends ResourceStatus {
  sources?: { image: string; digest: string; buildpacks: BuildpackRef[] }[];
}

/** A ClusterBuildpack or Buildpack, resolved. */
export interface BuildpackStatus extends ResourceStatus {
  /** Its image, name@digest. */
  image?: string;
  buildpacks?: BuildpackRef[];
  /** The buildpack an order entry naming only this resource means. */
  root?: BuildpackRef;
}

export interface LifecycleStatus extends ResourceStatus {
  image?: string;
  version?: string;
}

export interface BuilderStatus extends ResourceStatus {
  /** The builder image, tag@digest. */
  image?: string;
  buildpacks?: BuildpackRef[];
  lifecycle?: string;
  /** The stack's run image (by digest) and id the builder was made for. */
  runImage?: string;
  stackId?: string;
  order?: { group: { id: string; version?: string; optional?: boolean }[] }[];
  /** Everything the builder was made from; a new one means a new builder. */
  fingerprint?: string;
}

/** What a pass found for an image; what it last built comes from its build records, which only workers write. */
export interface ImageStatus extends ResourceStatus {
  /** The source as last resolved: the commit, or the source image's digest. */
  commit?: string;
  sourceImage?: string;
  /** The builder's readiness, as the pass found it (kpack's BuilderReady). */
  builderReady?: boolean;
  why?: string;
}

export interface StoredResource<R extends Resource = Resource> {
  resource: R;
  generation: number;
  status: ResourceStatus;
  appliedAt: string;
  triggeredAt?: string;
}

export interface RecordResult {
  /** The image it pushed, tag@digest. */
  image?: string;
  digest?: string;
  usedBuildpacks?: BuildpackRef[];
  /** The run image it sits on, by digest. */
  runImage?: string;
  /** Each step and how long it took. */
  steps?: { name: string; ms: number }[];
  /** The signature tags written for it (cosign). */
  signatures?: string[];
}

export interface BuildRecord {
  /** `Build` when a Build resource applied by itself owns the record; else an Image does. */
  ownerKind: 'Image' | 'Build';
  namespace: string;
  image: string;
  number: number;
  kind: 'build' | 'rebase';
  status: BuildStatus;
  reasons: string;
  changes: Change[];
  inputs: BuildInputs;
  tags: string[];
  priority: number;
  result?: RecordResult;
  message?: string;
  worker?: string;
  createdAt: string;
  startedAt?: string;
  finishedAt?: string;
  /** How many times a worker took it; more than one when a worker was lost (or stopped) and it was taken again. */
  attempts: number;
  /** While running: the worker's claim holds until then (the database's clock). */
  leaseUntil?: string;
}

/** A worker process as listings show it. */
export interface WorkerRecord {
  name: string;
  startedAt: string;
  seenAt: string;
  slots: { builds: number; rebases: number };
  controller: boolean;
}

export type ApplyOutcome = 'created' | 'configured' | 'unchanged';

const now = (): string => new Date().toISOString();

function json<T>(v: string): T {
  return JSON.parse(v) as T;
}

/** Every column but the sealed values: nothing that lists resources ever reads them. */
const RESOURCE_COLUMNS = ['kind', 'namespace', 'name', 'spec', 'generation', 'status', 'applied_at', 'triggered_at'] as const;

function toResource(r: Omit<Selectable<ResourcesTable>, 'sealed'>): StoredResource {
  const meta = { kind: r.kind as Kind, namespace: r.namespace, name: r.name } as Meta;
  return { resource: { meta, spec: json(r.spec) } as Resource, generation: Number(r.generation), status: json(r.status), appliedAt: r.applied_at, ...(r.triggered_at ? { triggeredAt: r.triggered_at } : {}) };
}

function toBuild(r: Selectable<BuildsTable>): BuildRecord {
  return {
    ownerKind: r.owner_kind === 'Build' ? 'Build' : 'Image',
    namespace: r.namespace,
    image: r.image,
    number: Number(r.number),
    kind: r.kind as BuildRecord['kind'],
    status: r.status as BuildStatus,
    reasons: r.reasons,
    changes: json(r.changes),
    inputs: json(r.inputs),
    tags: json(r.tags),
    priority: Number(r.priority),
    ...(r.result !== null ? { result: json<RecordResult>(r.result) } : {}),
    ...(r.message !== null ? { message: r.message } : {}),
    ...(r.worker !== null ? { worker: r.worker } : {}),
    createdAt: r.created_at,
    ...(r.started_at !== null ? { startedAt: r.started_at } : {}),
    ...(r.finished_at !== null ? { finishedAt: r.finished_at } : {}),
    attempts: Number(r.attempts ?? 0),
    ...(r.lease_until ? { leaseUntil: r.lease_until } : {}),
  };
}

/** A claimed build goes back to the queue this many times at most; then it fails, so a build that kills its worker does not go round for ever. */
export const MAX_ATTEMPTS = 3;

/** Whose builds: an Image's, or a Build resource's (the two kinds may share a name). */
export type Owner = Pick<BuildRecord, 'ownerKind' | 'namespace' | 'image'>;
export type BuildKey = Owner & Pick<BuildRecord, 'number'>;

/** The rows of one owner, in either table that has them. */
function owned(o: Owner) {
  return (eb: ExpressionBuilder<FleetTables, 'builds'> | ExpressionBuilder<FleetTables, 'build_logs'>) => {
    const e = eb as ExpressionBuilder<FleetTables, 'builds'>;
    return e.and([e('owner_kind', '=', o.ownerKind), e('namespace', '=', o.namespace), e('image', '=', o.image)]);
  };
}

/** A build record as the decision rules see it. */
export function pastBuild(b: BuildRecord): PastBuild {
  return {
    number: b.number,
    status: b.status,
    inputs: b.inputs,
    createdAt: b.createdAt,
    ...(b.result?.usedBuildpacks ? { usedBuildpacks: b.result.usedBuildpacks } : {}),
    ...(b.result?.image ? { image: b.result.image } : {}),
  };
}

export class FleetStore {
  private readonly db: Kysely<FleetTables>;

  /** Without `box`, only what needs no key: the schema and the fleet's facts (opening checks the key with these). */
  constructor(
    private readonly fdb: FleetDatabase,
    private readonly keyBox?: SecretBox,
  ) {
    this.db = fdb.db;
  }

  private get box(): SecretBox {
    if (!this.keyBox) throw new Error('the fleet store was opened without its key');
    return this.keyBox;
  }

  get description(): string {
    return this.fdb.description;
  }

  /** Which engine holds the fleet: one machine's SQLite file, or a server that many machines share. */
  get engine(): FleetDatabase['dialect'] {
    return this.fdb.dialect;
  }

  /** Tells every process of the fleet, on any machine, that something happened (this one included). */
  wake(event: FleetEvent): Promise<void> {
    return this.fdb.notify(event);
  }

  /** Calls `fn` for the fleet's events; returns how to stop. */
  events(fn: (event: FleetEvent) => void): Promise<() => Promise<void>> {
    return this.fdb.listen(fn);
  }

  /** The controller's role (one process of the fleet at a time), or who holds it. */
  tryControl(): ReturnType<FleetDatabase['tryControl']> {
    return this.fdb.tryControl();
  }

  /** Creates the schema, or brings an older one up to date. */
  async migrate(): Promise<void> {
    await migrate(this.fdb);
  }

  /**
   * Stores resources in one transaction. A resource whose spec is unchanged keeps its generation and status; a
   * changed one gets the next generation, which tells the reconciler to look at it again.
   */
  async apply(resources: Resource[]): Promise<{ resource: Resource; outcome: ApplyOutcome }[]> {
    return this.db.transaction().execute(async (tx) => {
      const out: { resource: Resource; outcome: ApplyOutcome }[] = [];
      for (const given of resources) {
        const { resource: r, sealed } = this.seal(given);
        const spec = JSON.stringify(r.spec);
        const key = { kind: r.meta.kind, namespace: r.meta.namespace, name: r.meta.name };
        const before = await tx.selectFrom('resources').select('spec').where('kind', '=', key.kind).where('namespace', '=', key.namespace).where('name', '=', key.name).executeTakeFirst();
        if (!before) {
          await tx.insertInto('resources').values({ ...key, spec, generation: 1, status: '{}', applied_at: now(), sealed }).execute();
          out.push({ resource: r, outcome: 'created' });
        } else if (canonical(json(before.spec)) === canonical(r.spec)) {
          out.push({ resource: r, outcome: 'unchanged' });
        } else {
          await tx
            .updateTable('resources')
            .set((eb) => ({ spec, sealed, generation: eb('generation', '+', 1), applied_at: now() }))
            .where('kind', '=', key.kind)
            .where('namespace', '=', key.namespace)
            .where('name', '=', key.name)
            .execute();
          out.push({ resource: r, outcome: 'configured' });
        }
      }
      return out;
    });
  }

  /** A Secret with its values sealed and replaced by their digest; any other resource as it is. */
  private seal(r: Resource): { resource: Resource; sealed: string | null } {
    if (r.meta.kind !== 'Secret') return { resource: r, sealed: null };
    const { data, ...rest } = (r as ResourceOf<'Secret'>).spec;
    const values = data ?? {};
    return { resource: { meta: r.meta, spec: { ...rest, keys: Object.keys(values).sort(), digest: this.box.digest(values) } } as Resource, sealed: this.box.seal(values, resourceKey(r.meta)) };
  }

  /** A keyed digest of values (Secret values read by a build's env): equal values, equal digests; values unknowable. */
  digestOf(values: Record<string, string>): string {
    return this.box.digest(values);
  }

  /** A Secret's values, opened: for the process that uses them, never for a listing. */
  async secretValues(namespace: string, name: string): Promise<Record<string, string> | undefined> {
    const row = await this.db.selectFrom('resources').select('sealed').where('kind', '=', 'Secret').where('namespace', '=', namespace).where('name', '=', name).executeTakeFirst();
    if (!row?.sealed) return undefined;
    return this.box.open(row.sealed, resourceKey({ kind: 'Secret', namespace, name }));
  }

  /** Deletes resources; an Image takes its build records and logs with it. Returns the ones that existed. */
  async delete(metas: Pick<Meta, 'kind' | 'namespace' | 'name'>[]): Promise<string[]> {
    return this.db.transaction().execute(async (tx) => {
      const gone: string[] = [];
      for (const m of metas) {
        const r = await tx.deleteFrom('resources').where('kind', '=', m.kind).where('namespace', '=', m.namespace).where('name', '=', m.name).returning('name').execute();
        if (!r.length) continue;
        gone.push(resourceKey(m));
        if (m.kind === 'Image' || m.kind === 'Build') {
          const o = { ownerKind: m.kind, namespace: m.namespace, image: m.name };
          await tx.deleteFrom('build_logs').where(owned(o)).execute();
          await tx.deleteFrom('builds').where(owned(o)).execute();
        }
      }
      return gone;
    });
  }

  async list<K extends Kind>(kind?: K): Promise<StoredResource<ResourceOf<K>>[]> {
    let q = this.db.selectFrom('resources').select(RESOURCE_COLUMNS);
    if (kind) q = q.where('kind', '=', kind);
    const rows = await q.orderBy('kind').orderBy('namespace').orderBy('name').execute();
    return rows.map(toResource) as StoredResource<ResourceOf<K>>[];
  }

  async get<K extends Kind>(m: { kind: K; namespace: string; name: string }): Promise<StoredResource<ResourceOf<K>> | undefined> {
    const row = await this.db.selectFrom('resources').select(RESOURCE_COLUMNS).where('kind', '=', m.kind).where('namespace', '=', m.namespace).where('name', '=', m.name).executeTakeFirst();
    return row ? (toResource(row) as StoredResource<ResourceOf<K>>) : undefined;
  }

  async setStatus(m: Pick<Meta, 'kind' | 'namespace' | 'name'>, status: ResourceStatus): Promise<void> {
    await this.db.updateTable('resources').set({ status: JSON.stringify(status) }).where('kind', '=', m.kind).where('namespace', '=', m.namespace).where('name', '=', m.name).execute();
  }

  /** Records a request for a build (`fleet trigger`); the reconciler turns it into a TRIGGER build. */
  async trigger(namespace: string, name: string): Promise<boolean> {
    const r = await this.db.updateTable('resources').set({ triggered_at: now() }).where('kind', '=', 'Image').where('namespace', '=', namespace).where('name', '=', name).returning('name').execute();
    return r.length > 0;
  }

  /** Builds, newest first per owner; `since` keeps those queued at or after that time (ISO). */
  async builds(filter: { ownerKind?: BuildRecord['ownerKind']; namespace?: string; image?: string; limit?: number; since?: string } = {}): Promise<BuildRecord[]> {
    let q = this.db.selectFrom('builds').selectAll();
    if (filter.ownerKind !== undefined) q = q.where('owner_kind', '=', filter.ownerKind);
    if (filter.since !== undefined) q = q.where('created_at', '>=', filter.since);
    if (filter.namespace !== undefined) q = q.where('namespace', '=', filter.namespace);
    if (filter.image !== undefined) q = q.where('image', '=', filter.image);
    q = q.orderBy('namespace').orderBy('image').orderBy('owner_kind', 'desc').orderBy('number', 'desc');
    if (filter.limit) q = q.limit(Math.floor(filter.limit));
    return (await q.execute()).map(toBuild);
  }

  async hasPending(): Promise<boolean> {
    return (await this.db.selectFrom('builds').select('number').where('status', '=', 'pending').limit(1).executeTakeFirst()) !== undefined;
  }

  async build(key: BuildKey): Promise<BuildRecord | undefined> {
    const row = await this.db.selectFrom('builds').selectAll().where(owned(key)).where('number', '=', key.number).executeTakeFirst();
    return row ? toBuild(row) : undefined;
  }

  async lastSucceeded(o: Owner): Promise<BuildRecord | undefined> {
    const row = await this.db.selectFrom('builds').selectAll().where(owned(o)).where('status', '=', 'succeeded').orderBy('number', 'desc').limit(1).executeTakeFirst();
    return row ? toBuild(row) : undefined;
  }

  /**
   * The newest build, and the newest succeeded one, of every owner of one kind at once: what a reconcile decides
   * from. Keyed `namespace/name`.
   */
  async latestBuilds(ownerKind: BuildRecord['ownerKind'] = 'Image'): Promise<Map<string, { latest?: BuildRecord; lastSuccess?: BuildRecord }>> {
    const mine = this.db.selectFrom('builds').where('owner_kind', '=', ownerKind);
    const newest = mine.select(['namespace', 'image']).select((eb) => eb.fn.max('number').as('n')).groupBy(['namespace', 'image']);
    const newestOk = mine.select(['namespace', 'image']).select((eb) => eb.fn.max('number').as('n')).where('status', '=', 'succeeded').groupBy(['namespace', 'image']);
    const rows = await this.db
      .selectFrom('builds as b')
      .innerJoin(newest.union(newestOk).as('m'), (j) => j.onRef('b.namespace', '=', 'm.namespace').onRef('b.image', '=', 'm.image').onRef('b.number', '=', 'm.n'))
      .where('b.owner_kind', '=', ownerKind)
      .selectAll('b')
      .execute();
    const out = new Map<string, { latest?: BuildRecord; lastSuccess?: BuildRecord }>();
    for (const b of rows.map(toBuild)) {
      const k = `${b.namespace}/${b.image}`;
      const e = out.get(k) ?? {};
      if (!e.latest || b.number > e.latest.number) e.latest = b;
      if (b.status === 'succeeded' && (!e.lastSuccess || b.number > e.lastSuccess.number)) e.lastSuccess = b;
      out.set(k, e);
    }
    return out;
  }

  /**
   * Adds a pending build with the next number (its tags may depend on it); undefined when the image already has one
   * pending or running. The unique index decides, so two reconcilers in two processes cannot both add one.
   */
  async createBuild(b: Pick<BuildRecord, 'namespace' | 'image' | 'kind' | 'reasons' | 'changes' | 'inputs' | 'priority'> & { ownerKind?: BuildRecord['ownerKind'] }, tags: (number: number) => string[]): Promise<BuildRecord | undefined> {
    const owner: Owner = { ownerKind: b.ownerKind ?? 'Image', namespace: b.namespace, image: b.image };
    try {
      return await this.db.transaction().execute(async (tx) => {
        const next = await tx.selectFrom('builds').select((eb) => eb.fn.max('number').as('n')).where(owned(owner)).executeTakeFirst();
        const n = Number(next?.n ?? 0) + 1;
        const row = await tx
          .insertInto('builds')
          .values({ owner_kind: owner.ownerKind, namespace: b.namespace, image: b.image, number: n, kind: b.kind, status: 'pending', reasons: b.reasons, changes: JSON.stringify(b.changes), inputs: JSON.stringify(b.inputs), tags: JSON.stringify(tags(n)), priority: b.priority, created_at: now() })
          .returningAll()
          .executeTakeFirstOrThrow();
        return toBuild(row);
      });
    } catch (err) {
      if (/builds_one_active|duplicate key|unique/i.test(String((err as Error).message))) return undefined;
      throw err;
    }
  }

  /**
   * Takes the most urgent pending build for `worker` with a lease of `leaseMs`, or undefined; safe with many workers
   * (SKIP LOCKED on a server, the one writer on SQLite).
   */
  async claim(worker: string, kinds: BuildRecord['kind'][], leaseMs: number): Promise<BuildRecord | undefined> {
    return this.db.transaction().execute(async (tx) => {
      let next = tx.selectFrom('builds').select(['owner_kind', 'namespace', 'image', 'number']).where('status', '=', 'pending').where('kind', 'in', kinds).orderBy('priority', 'desc').orderBy('created_at').limit(1);
      // SQLite has one writer at a time, which is the lock; PostgreSQL's workers skip each other's rows.
      if (this.fdb.dialect === 'postgres') next = next.forUpdate().skipLocked();
      const pick = await next.executeTakeFirst();
      if (!pick) return undefined;
      const row = await tx
        .updateTable('builds')
        .set((eb) => ({ status: 'running', worker, started_at: now(), lease_until: this.fdb.timeIn(leaseMs), attempts: eb('attempts', '+', 1) }))
        .where('owner_kind', '=', pick.owner_kind)
        .where('namespace', '=', pick.namespace)
        .where('image', '=', pick.image)
        .where('number', '=', pick.number)
        .where('status', '=', 'pending')
        .returningAll()
        .executeTakeFirst();
      return row ? toBuild(row) : undefined;
    });
  }

  /** Only this worker's running builds: every write of a build's outcome or log is fenced on it. */
  private mine(b: BuildKey, worker: string) {
    return (eb: ExpressionBuilder<FleetTables, 'builds'>) => eb.and([owned(b)(eb), eb('number', '=', b.number), eb('worker', '=', worker), eb('status', '=', 'running')]);
  }

  /**
   * Records a build's outcome, if `worker` still holds it: false when its lease lapsed and the build went back to the
   * queue (or to another worker), whose record is then left alone.
   */
  async finish(b: BuildKey, worker: string, status: 'succeeded' | 'failed' | 'interrupted', outcome: { result?: RecordResult; message?: string; kind?: BuildRecord['kind'] }): Promise<boolean> {
    const r = await this.db
      .updateTable('builds')
      .set({ status, result: outcome.result ? JSON.stringify(outcome.result) : null, message: outcome.message ?? null, finished_at: now(), lease_until: null, ...(outcome.kind ? { kind: outcome.kind } : {}) })
      .where(this.mine(b, worker))
      .returning('number')
      .execute();
    return r.length > 0;
  }

  /** Gives a build back to the queue (its worker is stopping), attempts kept; false when `worker` no longer held it. */
  async release(b: BuildKey, worker: string): Promise<boolean> {
    const r = await this.db.updateTable('builds').set({ status: 'pending', worker: null, lease_until: null, started_at: null }).where(this.mine(b, worker)).returning('number').execute();
    return r.length > 0;
  }

  /** Extends the leases of `worker`'s running builds; returns the ones it still holds (any other was taken from it). */
  async renewLeases(worker: string, leaseMs: number): Promise<BuildKey[]> {
    const rows = await this.db
      .updateTable('builds')
      .set({ lease_until: this.fdb.timeIn(leaseMs) })
      .where('worker', '=', worker)
      .where('status', '=', 'running')
      .returning(['owner_kind', 'namespace', 'image', 'number'])
      .execute();
    return rows.map((r) => ({ ownerKind: r.owner_kind === 'Build' ? 'Build' : 'Image', namespace: r.namespace, image: r.image, number: Number(r.number) }));
  }

  /**
   * Running builds whose lease lapsed (their worker died, hung or lost the database) go back to the queue with their
   * attempts kept, or fail once they have had MAX_ATTEMPTS. Any process may run this: the update decides.
   */
  async requeueExpired(): Promise<(BuildRecord & { lostBy: string })[]> {
    return this.db.transaction().execute(async (tx) => {
      let q = tx.selectFrom('builds').selectAll().where('status', '=', 'running').where('lease_until', '<', this.fdb.timeIn(0));
      if (this.fdb.dialect === 'postgres') q = q.forUpdate().skipLocked();
      const out: (BuildRecord & { lostBy: string })[] = [];
      for (const r of await q.execute()) {
        const spent = Number(r.attempts) >= MAX_ATTEMPTS;
        const row = await tx
          .updateTable('builds')
          .set(spent ? { status: 'failed', finished_at: now(), lease_until: null, message: `its worker was lost ${MAX_ATTEMPTS} times; not tried again` } : { status: 'pending', worker: null, lease_until: null, started_at: null })
          .where(this.mine(toBuild(r), r.worker ?? ''))
          .returningAll()
          .executeTakeFirst();
        if (row) out.push({ ...toBuild(row), lostBy: r.worker ?? '' });
      }
      return out;
    });
  }

  /**
   * At a worker's start: builds that earlier processes of this machine left running, and that are gone (`gone` says
   * so from the worker's name), go back to the queue now instead of when their lease lapses. Nobody else's are touched.
   */
  async requeueLeftBy(gone: (worker: string) => boolean): Promise<number> {
    const running = await this.db.selectFrom('builds').select(['owner_kind', 'namespace', 'image', 'number', 'worker']).where('status', '=', 'running').execute();
    let n = 0;
    for (const r of running) {
      if (!r.worker || !gone(r.worker)) continue;
      const key: BuildKey = { ownerKind: r.owner_kind === 'Build' ? 'Build' : 'Image', namespace: r.namespace, image: r.image, number: Number(r.number) };
      if (await this.release(key, r.worker)) n++;
    }
    return n;
  }

  /** Adds a piece of a build's log, if `worker` still holds the build; false when it does not (nothing is written). */
  async appendLog(b: BuildKey, worker: string, seq: number, text: string): Promise<boolean> {
    const r = await this.db
      .insertInto('build_logs')
      .columns(['owner_kind', 'namespace', 'image', 'number', 'seq', 'text'])
      .expression((eb) =>
        eb
          .selectFrom('builds')
          .select(['owner_kind', 'namespace', 'image', 'number', sql<number>`cast(${seq} as integer)`.as('seq'), sql<string>`cast(${text} as text)`.as('text')])
          .where(this.mine(b, worker)),
      )
      .executeTakeFirst();
    return Number(r.numInsertedOrUpdatedRows ?? 0) > 0;
  }

  /** Where a build's log goes on: after what earlier attempts wrote. */
  async nextLogSeq(b: BuildKey): Promise<number> {
    const r = await this.db.selectFrom('build_logs').select((eb) => eb.fn.max('seq').as('n')).where(owned(b)).where('number', '=', b.number).executeTakeFirst();
    return r?.n === null || r?.n === undefined ? 0 : Number(r.n) + 1;
  }

  async readLog(b: BuildKey, fromSeq = 0): Promise<{ seq: number; text: string }[]> {
    const rows = await this.db.selectFrom('build_logs').select(['seq', 'text']).where(owned(b)).where('number', '=', b.number).where('seq', '>=', fromSeq).orderBy('seq').execute();
    return rows.map((r) => ({ seq: Number(r.seq), text: r.text }));
  }

  /**
   * kpack's history limits: keeps the newest `success` succeeded and `failed` failed (or interrupted) builds of an
   * image, never the newest build or the newest succeeded one, and deletes the rest with their logs.
   */
  async pruneHistory(o: Owner, success: number, failed: number): Promise<number> {
    return this.db.transaction().execute(async (tx) => {
      const rows = await tx.selectFrom('builds').select(['number', 'status']).where(owned(o)).where('status', 'in', ['succeeded', 'failed', 'interrupted']).orderBy('number', 'desc').execute();
      const keepOk = rows.filter((r) => r.status === 'succeeded').slice(0, success).map((r) => Number(r.number));
      const keepBad = rows.filter((r) => r.status !== 'succeeded').slice(0, failed).map((r) => Number(r.number));
      const newest = rows.length ? Number(rows[0]!.number) : -1;
      const drop = rows.map((r) => Number(r.number)).filter((n) => n !== newest && !keepOk.includes(n) && !keepBad.includes(n));
      if (!drop.length) return 0;
      await tx.deleteFrom('build_logs').where(owned(o)).where('number', 'in', drop).execute();
      await tx.deleteFrom('builds').where(owned(o)).where('number', 'in', drop).execute();
      return drop.length;
    });
  }

  /** Records a worker as alive now (its heartbeat). */
  async saveWorker(w: Omit<WorkerRecord, 'seenAt' | 'startedAt'>): Promise<void> {
    const t = now();
    await this.db
      .insertInto('workers')
      .values({ name: w.name, started_at: t, seen_at: t, slots: JSON.stringify(w.slots), controller: w.controller ? 1 : 0 })
      .onConflict((oc) => oc.column('name').doUpdateSet({ seen_at: t, slots: JSON.stringify(w.slots), controller: w.controller ? 1 : 0 }))
      .execute();
  }

  /** Forgets workers not seen for `ms` (killed ones): listings show the living. */
  async dropStaleWorkers(ms: number): Promise<void> {
    await this.db.deleteFrom('workers').where('seen_at', '<', new Date(Date.now() - ms).toISOString()).execute();
  }

  async dropWorker(name: string): Promise<void> {
    await this.db.deleteFrom('workers').where('name', '=', name).execute();
  }

  async workers(): Promise<WorkerRecord[]> {
    const rows = await this.db.selectFrom('workers').selectAll().orderBy('name').execute();
    return rows.map((r) => ({ name: r.name, startedAt: r.started_at, seenAt: r.seen_at, slots: json(r.slots), controller: Number(r.controller) === 1 }));
  }

  /** A fact about the fleet, recorded by the first process to know it; returns the recorded one. */
  async recordFact(key: string, value: string): Promise<string> {
    await this.db.insertInto('fleet_meta').values({ key, value }).onConflict((oc) => oc.column('key').doNothing()).execute();
    return (await this.fact(key))!;
  }

  async fact(key: string): Promise<string | undefined> {
    return (await this.db.selectFrom('fleet_meta').select('value').where('key', '=', key).executeTakeFirst())?.value;
  }

  /** Gives back the space pruned history held. */
  async compact(): Promise<void> {
    await this.fdb.compact();
  }

  async close(): Promise<void> {
    await this.fdb.close();
  }
}

/**
 * Copies a whole fleet from one database into another that holds none, in one transaction on the target: resources
 * (Secrets stay sealed), build records, their logs and the fleet's facts. A build left running in the source has no
 * worker in the target, so it arrives queued, its attempts kept.
 */
export async function copyFleet(from: FleetDatabase, to: FleetDatabase): Promise<{ resources: number; builds: number; logs: number }> {
  const src = from.db;
  return to.db.transaction().execute(async (tx) => {
    const held = (await tx.selectFrom('resources').select('name').limit(1).executeTakeFirst()) ?? (await tx.selectFrom('builds').select('image').limit(1).executeTakeFirst());
    if (held) throw new StrataError(`${to.description} already holds a fleet; nothing was copied`);
    for (const fact of await src.selectFrom('fleet_meta').selectAll().execute()) {
      const there = await tx.selectFrom('fleet_meta').select('value').where('key', '=', fact.key).executeTakeFirst();
      if (there && there.value !== fact.value) throw new StrataError(`${to.description} was opened with another fleet key (${fact.key} differs); nothing was copied`);
      if (!there) await tx.insertInto('fleet_meta').values(fact).execute();
    }
    const resources = await src.selectFrom('resources').selectAll().orderBy('kind').orderBy('namespace').orderBy('name').execute();
    for (let i = 0; i < resources.length; i += 500) await tx.insertInto('resources').values(resources.slice(i, i + 500)).execute();
    const builds = await src.selectFrom('builds').selectAll().orderBy('namespace').orderBy('image').orderBy('number').execute();
    const moved = builds.map((b) => (b.status === 'running' ? { ...b, status: 'pending', worker: null, lease_until: null, started_at: null } : b));
    for (let i = 0; i < moved.length; i += 500) await tx.insertInto('builds').values(moved.slice(i, i + 500)).execute();
    let logs = 0;
    // A build's log at a time, so a long history is never held whole.
    for (const b of builds) {
      const key: BuildKey = { ownerKind: b.owner_kind === 'Build' ? 'Build' : 'Image', namespace: b.namespace, image: b.image, number: Number(b.number) };
      const rows = await src.selectFrom('build_logs').selectAll().where(owned(key)).where('number', '=', key.number).orderBy('seq').execute();
      for (let i = 0; i < rows.length; i += 1000) await tx.insertInto('build_logs').values(rows.slice(i, i + 1000)).execute();
      logs += rows.length;
    }
    return { resources: resources.length, builds: builds.length, logs };
  });
}
