import { canonical } from './canonical.js';
import type { SqlClient } from './db/sql.js';
import type { BuildInputs, BuildpackRef, BuildStatus, Change, PastBuild } from './reasons.js';
import { resourceKey, type Kind, type Meta, type Resource, type ResourceOf } from './resources.js';

/**
 * The fleet's state behind one interface: declared resources with what they resolved to, and build records with
 * their logs. Only portable PostgreSQL is spoken here, through `SqlClient`, so the embedded database and a server
 * behave the same; every multi-row change is one transaction, so a crash loses no declared resource and no
 * finished build record.
 */

export const SCHEMA_VERSION = 1;

const SCHEMA = [
  `CREATE TABLE IF NOT EXISTS fleet_meta (key text PRIMARY KEY, value text NOT NULL)`,
  `CREATE TABLE IF NOT EXISTS resources (
    kind text NOT NULL,
    namespace text NOT NULL,
    name text NOT NULL,
    spec jsonb NOT NULL,
    generation integer NOT NULL DEFAULT 1,
    status jsonb NOT NULL DEFAULT '{}'::jsonb,
    applied_at timestamptz NOT NULL DEFAULT now(),
    triggered_at timestamptz,
    PRIMARY KEY (kind, namespace, name)
  )`,
  `CREATE TABLE IF NOT EXISTS builds (
    namespace text NOT NULL,
    image text NOT NULL,
    number integer NOT NULL,
    kind text NOT NULL,
    status text NOT NULL,
    reasons text NOT NULL,
    changes jsonb NOT NULL,
    inputs jsonb NOT NULL,
    tags jsonb NOT NULL,
    priority integer NOT NULL DEFAULT 0,
    result jsonb,
    message text,
    worker text,
    created_at timestamptz NOT NULL DEFAULT now(),
    started_at timestamptz,
    finished_at timestamptz,
    PRIMARY KEY (namespace, image, number)
  )`,
  // At most one build in flight per image, whoever (whichever machine) tries to add another.
  `CREATE UNIQUE INDEX IF NOT EXISTS builds_one_active ON builds (namespace, image) WHERE status IN ('pending', 'running')`,
  `CREATE INDEX IF NOT EXISTS builds_queue ON builds (status, priority DESC, created_at)`,
  `CREATE TABLE IF NOT EXISTS build_logs (
    namespace text NOT NULL,
    image text NOT NULL,
    number integer NOT NULL,
    seq integer NOT NULL,
    text text NOT NULL,
    PRIMARY KEY (namespace, image, number, seq)
  )`,
];

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
  buildImage?: string;
  runImage?: string;
  /** The run image as declared (a tag), for builders and rebases to name. */
  runImageTag?: string;
}

export interface StoreStatus extends ResourceStatus {
  sources?: { image: string; digest: string; buildpacks: BuildpackRef[] }[];
}

export interface BuilderStatus extends ResourceStatus {
  /** The builder image, tag@digest. */
  image?: string;
  buildpacks?: BuildpackRef[];
  lifecycle?: string;
  /** Everything the builder was made from; a new one means a new builder. */
  fingerprint?: string;
}

export interface ImageStatus extends ResourceStatus {
  /** The source as last resolved: the commit, or the source image's digest. */
  commit?: string;
  sourceImage?: string;
  latestImage?: string;
  latestReason?: string;
  why?: string;
}

export interface StoredResource<R extends Resource = Resource> {
  resource: R;
  generation: number;
  status: ResourceStatus;
  appliedAt: string;
  triggeredAt?: string;
}

export interface BuildResult {
  /** The image it pushed, tag@digest. */
  image?: string;
  digest?: string;
  usedBuildpacks?: BuildpackRef[];
}

export interface BuildRecord {
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
  result?: BuildResult;
  message?: string;
  worker?: string;
  createdAt: string;
  startedAt?: string;
  finishedAt?: string;
}

export type ApplyOutcome = 'created' | 'configured' | 'unchanged';

const iso = (v: unknown): string | undefined => (v === null || v === undefined ? undefined : v instanceof Date ? v.toISOString() : new Date(String(v)).toISOString());

function json<T>(v: unknown): T {
  return (typeof v === 'string' ? JSON.parse(v) : v) as T;
}

function toResource(r: Record<string, unknown>): StoredResource {
  const meta = { kind: r.kind as Kind, namespace: r.namespace as string, name: r.name as string } as Meta;
  const triggeredAt = iso(r.triggered_at);
  return { resource: { meta, spec: json(r.spec) } as Resource, generation: Number(r.generation), status: json(r.status), appliedAt: iso(r.applied_at)!, ...(triggeredAt ? { triggeredAt } : {}) };
}

function toBuild(r: Record<string, unknown>): BuildRecord {
  const opt = <T>(k: string, v: T | undefined): Partial<Record<string, T>> => (v === undefined || v === null ? {} : { [k]: v });
  return {
    namespace: r.namespace as string,
    image: r.image as string,
    number: Number(r.number),
    kind: r.kind as BuildRecord['kind'],
    status: r.status as BuildStatus,
    reasons: r.reasons as string,
    changes: json(r.changes),
    inputs: json(r.inputs),
    tags: json(r.tags),
    priority: Number(r.priority),
    ...opt('result', r.result === null ? undefined : json<BuildResult>(r.result)),
    ...opt('message', (r.message as string | null) ?? undefined),
    ...opt('worker', (r.worker as string | null) ?? undefined),
    createdAt: iso(r.created_at)!,
    ...opt('startedAt', iso(r.started_at)),
    ...opt('finishedAt', iso(r.finished_at)),
  } as BuildRecord;
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
  constructor(readonly sql: SqlClient) {}

  get description(): string {
    return this.sql.description;
  }

  /** Creates the schema, or checks an existing one is one this strata understands. */
  async migrate(): Promise<void> {
    await this.sql.transaction(async (tx) => {
      for (const s of SCHEMA) await tx.query(s);
      const v = await tx.query<{ value: string }>(`SELECT value FROM fleet_meta WHERE key = 'schema_version'`);
      if (!v.length) await tx.query(`INSERT INTO fleet_meta (key, value) VALUES ('schema_version', $1)`, [String(SCHEMA_VERSION)]);
      else if (Number(v[0]!.value) > SCHEMA_VERSION) throw new Error(`the fleet database has schema ${v[0]!.value}, newer than this strata's ${SCHEMA_VERSION}; upgrade strata`);
    });
  }

  /**
   * Stores resources in one transaction. A resource whose spec is unchanged keeps its generation and status; a
   * changed one gets the next generation, which tells the reconciler to look at it again.
   */
  async apply(resources: Resource[]): Promise<{ resource: Resource; outcome: ApplyOutcome }[]> {
    return this.sql.transaction(async (tx) => {
      const out: { resource: Resource; outcome: ApplyOutcome }[] = [];
      for (const r of resources) {
        const spec = JSON.stringify(r.spec);
        const before = await tx.query<{ spec: unknown }>(`SELECT spec FROM resources WHERE kind = $1 AND namespace = $2 AND name = $3`, [r.meta.kind, r.meta.namespace, r.meta.name]);
        if (!before.length) {
          await tx.query(`INSERT INTO resources (kind, namespace, name, spec) VALUES ($1, $2, $3, $4::jsonb)`, [r.meta.kind, r.meta.namespace, r.meta.name, spec]);
          out.push({ resource: r, outcome: 'created' });
        } else if (canonical(json(before[0]!.spec)) === canonical(r.spec)) {
          out.push({ resource: r, outcome: 'unchanged' });
        } else {
          await tx.query(`UPDATE resources SET spec = $4::jsonb, generation = generation + 1, applied_at = now() WHERE kind = $1 AND namespace = $2 AND name = $3`, [r.meta.kind, r.meta.namespace, r.meta.name, spec]);
          out.push({ resource: r, outcome: 'configured' });
        }
      }
      return out;
    });
  }

  /** Deletes resources; an Image takes its build records and logs with it. Returns the ones that existed. */
  async delete(metas: Pick<Meta, 'kind' | 'namespace' | 'name'>[]): Promise<string[]> {
    return this.sql.transaction(async (tx) => {
      const gone: string[] = [];
      for (const m of metas) {
        const r = await tx.query(`DELETE FROM resources WHERE kind = $1 AND namespace = $2 AND name = $3 RETURNING name`, [m.kind, m.namespace, m.name]);
        if (!r.length) continue;
        gone.push(resourceKey(m));
        if (m.kind === 'Image') {
          await tx.query(`DELETE FROM build_logs WHERE namespace = $1 AND image = $2`, [m.namespace, m.name]);
          await tx.query(`DELETE FROM builds WHERE namespace = $1 AND image = $2`, [m.namespace, m.name]);
        }
      }
      return gone;
    });
  }

  async list<K extends Kind>(kind?: K): Promise<StoredResource<ResourceOf<K>>[]> {
    const rows = kind ? await this.sql.query(`SELECT * FROM resources WHERE kind = $1 ORDER BY namespace, name`, [kind]) : await this.sql.query(`SELECT * FROM resources ORDER BY kind, namespace, name`);
    return rows.map(toResource) as StoredResource<ResourceOf<K>>[];
  }

  async get<K extends Kind>(m: { kind: K; namespace: string; name: string }): Promise<StoredResource<ResourceOf<K>> | undefined> {
    const rows = await this.sql.query(`SELECT * FROM resources WHERE kind = $1 AND namespace = $2 AND name = $3`, [m.kind, m.namespace, m.name]);
    return rows[0] ? (toResource(rows[0]) as StoredResource<ResourceOf<K>>) : undefined;
  }

  async setStatus(m: Pick<Meta, 'kind' | 'namespace' | 'name'>, status: ResourceStatus): Promise<void> {
    await this.sql.query(`UPDATE resources SET status = $4::jsonb WHERE kind = $1 AND namespace = $2 AND name = $3`, [m.kind, m.namespace, m.name, JSON.stringify(status)]);
  }

  /** Records a request for a build (`fleet trigger`); the reconciler turns it into a TRIGGER build. */
  async trigger(namespace: string, name: string): Promise<boolean> {
    const r = await this.sql.query(`UPDATE resources SET triggered_at = now() WHERE kind = 'Image' AND namespace = $1 AND name = $2 RETURNING name`, [namespace, name]);
    return r.length > 0;
  }

  async builds(filter: { namespace?: string; image?: string; limit?: number } = {}): Promise<BuildRecord[]> {
    const where: string[] = [];
    const params: unknown[] = [];
    if (filter.namespace !== undefined) where.push(`namespace = $${params.push(filter.namespace)}`);
    if (filter.image !== undefined) where.push(`image = $${params.push(filter.image)}`);
    const limit = filter.limit ? ` LIMIT ${Math.floor(filter.limit)}` : '';
    const rows = await this.sql.query(`SELECT * FROM builds${where.length ? ` WHERE ${where.join(' AND ')}` : ''} ORDER BY namespace, image, number DESC${limit}`, params);
    return rows.map(toBuild);
  }

  async build(namespace: string, image: string, number: number): Promise<BuildRecord | undefined> {
    const rows = await this.sql.query(`SELECT * FROM builds WHERE namespace = $1 AND image = $2 AND number = $3`, [namespace, image, number]);
    return rows[0] ? toBuild(rows[0]) : undefined;
  }

  async lastSucceeded(namespace: string, image: string): Promise<BuildRecord | undefined> {
    const rows = await this.sql.query(`SELECT * FROM builds WHERE namespace = $1 AND image = $2 AND status = 'succeeded' ORDER BY number DESC LIMIT 1`, [namespace, image]);
    return rows[0] ? toBuild(rows[0]) : undefined;
  }

  /** The newest build, and the newest succeeded one, of every image at once: what a reconcile decides from. */
  async latestBuilds(): Promise<Map<string, { latest?: BuildRecord; lastSuccess?: BuildRecord }>> {
    const rows = await this.sql.query(
      `SELECT b.* FROM builds b
       JOIN (SELECT namespace, image, max(number) AS n FROM builds GROUP BY namespace, image
             UNION SELECT namespace, image, max(number) AS n FROM builds WHERE status = 'succeeded' GROUP BY namespace, image) m
       ON b.namespace = m.namespace AND b.image = m.image AND b.number = m.n`,
    );
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
   * pending or running. The unique index decides, so two reconcilers on two machines cannot both add one.
   */
  async createBuild(b: Pick<BuildRecord, 'namespace' | 'image' | 'kind' | 'reasons' | 'changes' | 'inputs' | 'priority'>, tags: (number: number) => string[]): Promise<BuildRecord | undefined> {
    try {
      return await this.sql.transaction(async (tx) => {
        const next = await tx.query<{ n: number }>(`SELECT coalesce(max(number), 0) + 1 AS n FROM builds WHERE namespace = $1 AND image = $2`, [b.namespace, b.image]);
        const n = Number(next[0]!.n);
        const rows = await tx.query(
          `INSERT INTO builds (namespace, image, number, kind, status, reasons, changes, inputs, tags, priority)
           VALUES ($1, $2, $3, $4, 'pending', $5, $6::jsonb, $7::jsonb, $8::jsonb, $9) RETURNING *`,
          [b.namespace, b.image, n, b.kind, b.reasons, JSON.stringify(b.changes), JSON.stringify(b.inputs), JSON.stringify(tags(n)), b.priority],
        );
        return toBuild(rows[0]!);
      });
    } catch (err) {
      if (/builds_one_active|duplicate key|unique/.test(String((err as Error).message))) return undefined;
      throw err;
    }
  }

  /** Takes the most urgent pending build for `worker`, or undefined; safe with many workers (SKIP LOCKED). */
  async claim(worker: string, kinds: BuildRecord['kind'][] = ['build', 'rebase']): Promise<BuildRecord | undefined> {
    return this.sql.transaction(async (tx) => {
      const rows = await tx.query(
        `UPDATE builds SET status = 'running', worker = $1, started_at = now()
         WHERE (namespace, image, number) = (
           SELECT namespace, image, number FROM builds WHERE status = 'pending' AND kind = ANY($2::text[])
           ORDER BY priority DESC, created_at LIMIT 1 FOR UPDATE SKIP LOCKED)
         RETURNING *`,
        [worker, kinds],
      );
      return rows[0] ? toBuild(rows[0]) : undefined;
    });
  }

  async finish(b: Pick<BuildRecord, 'namespace' | 'image' | 'number'>, status: 'succeeded' | 'failed' | 'interrupted', outcome: { result?: BuildResult; message?: string }): Promise<void> {
    await this.sql.query(`UPDATE builds SET status = $4, result = $5::jsonb, message = $6, finished_at = now() WHERE namespace = $1 AND image = $2 AND number = $3`, [b.namespace, b.image, b.number, status, outcome.result ? JSON.stringify(outcome.result) : null, outcome.message ?? null]);
  }

  /** Builds left running by a process that is gone: marked interrupted, so the reconciler builds them again. */
  async interruptRunning(worker?: string): Promise<number> {
    const rows = worker
      ? await this.sql.query(`UPDATE builds SET status = 'interrupted', finished_at = now(), message = 'the worker stopped before the build finished' WHERE status = 'running' AND worker = $1 RETURNING number`, [worker])
      : await this.sql.query(`UPDATE builds SET status = 'interrupted', finished_at = now(), message = 'the worker stopped before the build finished' WHERE status = 'running' RETURNING number`);
    return rows.length;
  }

  async appendLog(b: Pick<BuildRecord, 'namespace' | 'image' | 'number'>, seq: number, text: string): Promise<void> {
    await this.sql.query(`INSERT INTO build_logs (namespace, image, number, seq, text) VALUES ($1, $2, $3, $4, $5)`, [b.namespace, b.image, b.number, seq, text]);
  }

  async readLog(b: Pick<BuildRecord, 'namespace' | 'image' | 'number'>, fromSeq = 0): Promise<{ seq: number; text: string }[]> {
    const rows = await this.sql.query<{ seq: number; text: string }>(`SELECT seq, text FROM build_logs WHERE namespace = $1 AND image = $2 AND number = $3 AND seq >= $4 ORDER BY seq`, [b.namespace, b.image, b.number, fromSeq]);
    return rows.map((r) => ({ seq: Number(r.seq), text: r.text }));
  }

  /**
   * kpack's history limits: keeps the newest `success` succeeded and `failed` failed (or interrupted) builds of an
   * image, never the newest build or the newest succeeded one, and deletes the rest with their logs.
   */
  async pruneHistory(namespace: string, image: string, success: number, failed: number): Promise<number> {
    return this.sql.transaction(async (tx) => {
      const rows = await tx.query<{ number: number; status: string }>(`SELECT number, status FROM builds WHERE namespace = $1 AND image = $2 AND status IN ('succeeded', 'failed', 'interrupted') ORDER BY number DESC`, [namespace, image]);
      const keepOk = rows.filter((r) => r.status === 'succeeded').slice(0, success).map((r) => Number(r.number));
      const keepBad = rows.filter((r) => r.status !== 'succeeded').slice(0, failed).map((r) => Number(r.number));
      const newest = rows.length ? Number(rows[0]!.number) : -1;
      const drop = rows.map((r) => Number(r.number)).filter((n) => n !== newest && !keepOk.includes(n) && !keepBad.includes(n));
      if (!drop.length) return 0;
      await tx.query(`DELETE FROM build_logs WHERE namespace = $1 AND image = $2 AND number = ANY($3::int[])`, [namespace, image, drop]);
      await tx.query(`DELETE FROM builds WHERE namespace = $1 AND image = $2 AND number = ANY($3::int[])`, [namespace, image, drop]);
      return drop.length;
    });
  }

  async close(): Promise<void> {
    await this.sql.close();
  }
}
