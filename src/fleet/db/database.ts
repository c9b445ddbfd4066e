import type { Kysely, RawBuilder } from 'kysely';
import { Migrator, type MigrationProvider } from 'kysely/migration';
import { StrataError, errorMessage } from '../../oci/errors.js';
import { MIGRATIONS, type FleetTables } from './schema.js';

/** What one fleet process tells the others (on any machine sharing the database). */
export type FleetEvent =
  /** Something changed that a reconcile pass should look at; `refresh` also looks sources up again. */
  | { type: 'reconcile'; refresh: boolean }
  /** Builds were queued: idle workers claim them. */
  | { type: 'builds' }
  /** A build or rebase finished (for live views such as the dashboard's coverage). */
  | { type: 'finished' }
  /** An Image or Build was deleted: whoever runs its build stops it. */
  | { type: 'abort'; ownerKind: 'Image' | 'Build'; namespace: string; name: string };

/** The controller's role while a process holds it; `lost` settles when the hold ends without `release` (a dropped connection). */
export interface ControlHold {
  lost: Promise<void>;
  release(): Promise<void>;
}

/**
 * The seam below the fleet's store: a kysely instance over the embedded SQLite file or a PostgreSQL server. The store
 * builds every query with kysely, which speaks each engine's dialect, so one set of queries serves one machine and
 * many; `dialect` is there only for the few clauses one engine lacks (row locks that skip locked rows). The engine's
 * own ways to coordinate processes live here too: its clock, its notifications and the controller's lock.
 */
export interface FleetDatabase {
  readonly db: Kysely<FleetTables>;
  readonly dialect: 'sqlite' | 'postgres';
  /** For messages: where the data lives (never a password). */
  readonly description: string;
  /** The database's clock `ms` from now, as ISO-8601 UTC text: leases compare on one clock, whatever the machines' say. */
  timeIn(ms: number): RawBuilder<string>;
  /** Sends an event to every process listening, this one included. Embedded: this process only (the others poll). */
  notify(event: FleetEvent): Promise<void>;
  /** Calls `fn` for every event; returns how to stop. */
  listen(fn: (event: FleetEvent) => void): Promise<() => Promise<void>>;
  /** The controller's role, or who holds it now (`process 1234`, `strata on host:1234`). */
  tryControl(): Promise<ControlHold | { holder: string }>;
  /** Gives back the space deleted rows held (SQLite's incremental vacuum; a server vacuums itself). */
  compact(): Promise<void>;
  close(): Promise<void>;
}

/** Events as they travel: JSON, and anything that is not one of ours is dropped. */
export function parseEvent(text: string): FleetEvent | undefined {
  try {
    const e = JSON.parse(text) as FleetEvent;
    if (e && (e.type === 'reconcile' || e.type === 'builds' || e.type === 'finished' || e.type === 'abort')) return e;
  } catch {
    // not ours
  }
  return undefined;
}

const provider: MigrationProvider = { getMigrations: async () => MIGRATIONS };

/**
 * Brings the schema up to this strata's migrations. The engines serialise concurrent runs (SQLite's write lock, a
 * PostgreSQL advisory lock), so two processes starting at once run each migration once.
 */
export async function migrate(fdb: FleetDatabase): Promise<void> {
  const { error, results } = await new Migrator({ db: fdb.db, provider }).migrateToLatest();
  if (!error) return;
  const failed = results?.find((r) => r.status === 'Error');
  const message = errorMessage(error);
  if (/corrupted migrations|missing/i.test(message)) {
    throw new StrataError(`the fleet database in ${fdb.description} was written by a newer strata (${message.split('\n')[0]}); upgrade strata`);
  }
  throw new StrataError(`the fleet database in ${fdb.description} could not be migrated${failed ? ` (${failed.migrationName})` : ''}: ${message.split('\n')[0]}`, 1, { cause: error });
}
