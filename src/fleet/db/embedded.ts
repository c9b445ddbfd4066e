import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { DatabaseSync, type StatementSync } from 'node:sqlite';
import { CompiledQuery, Kysely, SqliteDialect, SqliteDriver, sql, type DatabaseConnection, type Driver, type SqliteDatabase, type SqliteStatement } from 'kysely';
import { EventEmitter } from 'node:events';
import { StrataError, errorMessage } from '../../oci/errors.js';
import { acquireLock, LockedError } from '../../oci/fsutil.js';
import type { FleetDatabase, FleetEvent } from './database.js';
import type { FleetTables } from './schema.js';

/** node:sqlite's statements in the shape kysely's SQLite dialect drives (better-sqlite3's). */
function adapt(db: DatabaseSync): SqliteDatabase {
  return {
    close: () => db.close(),
    prepare(sql: string): SqliteStatement {
      const stmt: StatementSync = db.prepare(sql);
      const params = (p: ReadonlyArray<unknown>) => p as (null | number | bigint | string | Uint8Array)[];
      return {
        reader: stmt.columns().length > 0,
        all: (p) => stmt.all(...params(p)),
        run: (p) => stmt.run(...params(p)),
        iterate: (p) => stmt.iterate(...params(p)),
      };
    },
  };
}

/**
 * Write transactions take the write lock when they begin: a deferred transaction that reads and then writes can
 * fail at once with SQLITE_BUSY when another process wrote in between, where an immediate one waits its turn.
 */
class ImmediateDriver extends SqliteDriver {
  override async beginTransaction(connection: DatabaseConnection): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw('begin immediate'));
  }
}

class EmbeddedDialect extends SqliteDialect {
  constructor(private readonly database: SqliteDatabase) {
    super({ database });
  }

  override createDriver(): Driver {
    return new ImmediateDriver({ database: this.database });
  }
}

/**
 * The fleet's embedded database: one SQLite file (Node's built-in node:sqlite) under `$STRATA_HOME/fleet`. WAL mode
 * lets any number of strata processes read and write it at once (a writer waits for the other's commit, up to the
 * busy timeout), so `fleet images` never waits for a `reconcile --once` that is building. SQLite commits survive
 * SIGKILL and power loss (synchronous=FULL in WAL mode). Events reach this process's own listeners only: other
 * processes on the machine poll. The controller's role is a lock file beside the database.
 */
export function openEmbedded(file: string, lockFile: string): FleetDatabase {
  let raw: DatabaseSync;
  try {
    mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
    raw = new DatabaseSync(file, { timeout: 30_000 });
    raw.exec('PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; PRAGMA auto_vacuum = INCREMENTAL');
  } catch (err) {
    throw new StrataError(`the fleet database ${file} cannot be opened (${errorMessage(err).split('\n')[0]}); move it aside to start an empty one`, 1, { cause: err });
  }
  const db = new Kysely<FleetTables>({ dialect: new EmbeddedDialect(adapt(raw)) });
  const events = new EventEmitter();
  return {
    db,
    dialect: 'sqlite',
    description: file,
    timeIn: (ms) => sql<string>`strftime('%Y-%m-%dT%H:%M:%fZ', 'now', ${`${ms >= 0 ? '+' : ''}${ms / 1000} seconds`})`,
    notify: async (event) => void events.emit('event', event),
    listen: async (fn) => {
      const on = (e: FleetEvent) => fn(e);
      events.on('event', on);
      return async () => void events.off('event', on);
    },
    tryControl: async () => {
      try {
        const release = await acquireLock(lockFile, `the fleet in ${dirname(file)}`, 0);
        // A lock file is only lost by being released.
        return { lost: new Promise<void>(() => undefined), release };
      } catch (err) {
        if (err instanceof LockedError) return { holder: `process ${err.pid}` };
        throw err;
      }
    },
    // Through kysely's one connection, so it waits its turn behind any transaction of this process.
    compact: async () => {
      await sql`PRAGMA incremental_vacuum`.execute(db);
      await sql`PRAGMA wal_checkpoint(TRUNCATE)`.execute(db);
    },
    close: () => db.destroy(),
  };
}
