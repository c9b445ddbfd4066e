import type { Kysely } from 'kysely';
import { Migrator, type MigrationProvider } from 'kysely/migration';
import { StrataError, errorMessage } from '../../oci/errors.js';
import { MIGRATIONS, type FleetTables } from './schema.js';

/**
 * The seam below the fleet's store: a kysely instance over the embedded SQLite file or a PostgreSQL server. The store
 * builds every query with kysely, which speaks each engine's dialect, so one set of queries serves one machine and
 * many; `dialect` is there only for the few clauses one engine lacks (row locks that skip locked rows).
 */
export interface FleetDatabase {
  readonly db: Kysely<FleetTables>;
  readonly dialect: 'sqlite' | 'postgres';
  /** For messages: where the data lives. */
  readonly description: string;
  /** Gives back the space deleted rows held (SQLite's incremental vacuum; a server vacuums itself). */
  compact(): Promise<void>;
  close(): Promise<void>;
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
