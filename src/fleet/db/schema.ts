import { sql, type Generated, type Kysely } from 'kysely';
import type { Migration } from 'kysely/migration';

/**
 * The fleet's tables, one schema for every engine: the embedded SQLite file and a PostgreSQL server run the same
 * migrations through kysely's schema builder, which spells each type for its dialect. Timestamps are ISO-8601 UTC
 * text (they sort as they compare) and documents are JSON text, so no query depends on an engine's own types.
 */

export interface ResourcesTable {
  kind: string;
  namespace: string;
  name: string;
  /** The resource's spec as JSON (a Secret's values sealed: see secrets.ts). */
  spec: string;
  generation: number;
  /** What the last reconcile found, JSON. */
  status: string;
  applied_at: string;
  triggered_at: string | null;
  /** A Secret's values, sealed under the fleet key (secrets.ts); null for every other kind. */
  sealed: string | null;
}

export interface BuildsTable {
  /** `Image`, or `Build` for a Build resource applied by itself (which then owns the name in its namespace). */
  owner_kind: string;
  namespace: string;
  image: string;
  number: number;
  kind: string;
  status: string;
  reasons: string;
  changes: string;
  inputs: string;
  tags: string;
  priority: number;
  result: string | null;
  message: string | null;
  worker: string | null;
  created_at: string;
  started_at: string | null;
  finished_at: string | null;
  /** While running: until when the worker's claim holds; a worker renews it, a lapsed one goes back to the queue. */
  lease_until: string | null;
  /** How many times a worker took it (a lost worker's build is taken again). */
  attempts: Generated<number>;
}

export interface BuildLogsTable {
  owner_kind: string;
  namespace: string;
  image: string;
  number: number;
  seq: number;
  text: string;
}

/** Facts about the fleet itself, such as which key its Secrets are sealed with (a keyed digest of it). */
export interface FleetMetaTable {
  key: string;
  value: string;
}

/** Every worker process that has run builds: for listings; nothing depends on a row being here. */
export interface WorkersTable {
  name: string;
  started_at: string;
  seen_at: string;
  /** JSON: its slots, `{ builds, rebases }`. */
  slots: string;
  /** The controller's role: 1 while this process holds it. */
  controller: number;
}

export interface FleetTables {
  resources: ResourcesTable;
  builds: BuildsTable;
  build_logs: BuildLogsTable;
  fleet_meta: FleetMetaTable;
  workers: WorkersTable;
}

// Migrations are named in order and never edited once released: a database records which ones it has run.
export const MIGRATIONS: Record<string, Migration> = {
  '0001-resources-builds-logs': {
    async up(db: Kysely<unknown>): Promise<void> {
      await db.schema
        .createTable('resources')
        .addColumn('kind', 'text', (c) => c.notNull())
        .addColumn('namespace', 'text', (c) => c.notNull())
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('spec', 'text', (c) => c.notNull())
        .addColumn('generation', 'integer', (c) => c.notNull().defaultTo(1))
        .addColumn('status', 'text', (c) => c.notNull().defaultTo('{}'))
        .addColumn('applied_at', 'text', (c) => c.notNull())
        .addColumn('triggered_at', 'text')
        .addColumn('sealed', 'text')
        .addPrimaryKeyConstraint('resources_pk', ['kind', 'namespace', 'name'])
        .execute();
      await db.schema
        .createTable('builds')
        .addColumn('owner_kind', 'text', (c) => c.notNull().defaultTo('Image'))
        .addColumn('namespace', 'text', (c) => c.notNull())
        .addColumn('image', 'text', (c) => c.notNull())
        .addColumn('number', 'integer', (c) => c.notNull())
        .addColumn('kind', 'text', (c) => c.notNull())
        .addColumn('status', 'text', (c) => c.notNull())
        .addColumn('reasons', 'text', (c) => c.notNull())
        .addColumn('changes', 'text', (c) => c.notNull())
        .addColumn('inputs', 'text', (c) => c.notNull())
        .addColumn('tags', 'text', (c) => c.notNull())
        .addColumn('priority', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('result', 'text')
        .addColumn('message', 'text')
        .addColumn('worker', 'text')
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('started_at', 'text')
        .addColumn('finished_at', 'text')
        .addPrimaryKeyConstraint('builds_pk', ['owner_kind', 'namespace', 'image', 'number'])
        .execute();
      // At most one build in flight per image, whichever process (or machine) tries to add another.
      await db.schema
        .createIndex('builds_one_active')
        .on('builds')
        .columns(['owner_kind', 'namespace', 'image'])
        .unique()
        .where(sql<boolean>`status in ('pending', 'running')`)
        .execute();
      await db.schema.createIndex('builds_queue').on('builds').columns(['status', 'priority', 'created_at']).execute();
      await db.schema
        .createTable('build_logs')
        .addColumn('owner_kind', 'text', (c) => c.notNull().defaultTo('Image'))
        .addColumn('namespace', 'text', (c) => c.notNull())
        .addColumn('image', 'text', (c) => c.notNull())
        .addColumn('number', 'integer', (c) => c.notNull())
        .addColumn('seq', 'integer', (c) => c.notNull())
        .addColumn('text', 'text', (c) => c.notNull())
        .addPrimaryKeyConstraint('build_logs_pk', ['owner_kind', 'namespace', 'image', 'number', 'seq'])
        .execute();
    },
  },
  '0002-leases-meta-workers': {
    async up(db: Kysely<unknown>): Promise<void> {
      await db.schema.alterTable('builds').addColumn('lease_until', 'text').execute();
      await db.schema.alterTable('builds').addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0)).execute();
      await db.schema.createIndex('builds_worker').on('builds').columns(['worker', 'status']).execute();
      await db.schema
        .createTable('fleet_meta')
        .addColumn('key', 'text', (c) => c.primaryKey())
        .addColumn('value', 'text', (c) => c.notNull())
        .execute();
      await db.schema
        .createTable('workers')
        .addColumn('name', 'text', (c) => c.primaryKey())
        .addColumn('started_at', 'text', (c) => c.notNull())
        .addColumn('seen_at', 'text', (c) => c.notNull())
        .addColumn('slots', 'text', (c) => c.notNull())
        .addColumn('controller', 'integer', (c) => c.notNull().defaultTo(0))
        .execute();
    },
  },
};
