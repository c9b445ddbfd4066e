import { mkdir, readdir, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { PGlite, type Transaction } from '@electric-sql/pglite';
import { StrataError, errorMessage } from '../../oci/errors.js';
import { pathExists } from '../../oci/fsutil.js';
import type { Row, SqlClient } from './sql.js';

/** PGlite's own abort dumps its whole bundle to stderr; this says what went wrong in one line. */
function openFailure(dir: string, err: unknown): StrataError {
  const first = errorMessage(err).split('\n')[0]!.slice(0, 200);
  return new StrataError(`the fleet database in ${dir} cannot be opened (${first}); move it aside to start an empty one`, 1, { cause: err });
}

function adapt(q: PGlite | Transaction, description: string): SqlClient {
  return {
    description,
    async query<T extends Row>(sql: string, params: unknown[] = []): Promise<T[]> {
      return (await q.query<T>(sql, params)).rows;
    },
    async transaction<T>(fn: (tx: SqlClient) => Promise<T>): Promise<T> {
      // PGlite runs one statement at a time; a nested transaction is the same one.
      if (!('transaction' in q)) return fn(this);
      return (q as PGlite).transaction((tx) => fn(adapt(tx, description)));
    },
    async close(): Promise<void> {
      if ('close' in q) await (q as PGlite).close();
    },
  };
}

/**
 * PostgreSQL in process (PGlite, Postgres compiled to WebAssembly) with its data under `dir`: no server to install,
 * and the same SQL as the multi-machine fleet's PostgreSQL. A new database is made in a temp dir and renamed into
 * place once initialised, so a process killed during `initdb` leaves nothing that breaks the next start. One process
 * at a time may open it (the caller holds the fleet lock).
 */
export async function openEmbedded(dir: string): Promise<SqlClient> {
  if (!(await pathExists(join(dir, 'PG_VERSION')))) {
    await mkdir(dirname(dir), { recursive: true });
    for (const n of await readdir(dirname(dir))) if (n.startsWith(`${basename(dir)}.init-`)) await rm(join(dirname(dir), n), { recursive: true, force: true });
    const tmp = `${dir}.init-${process.pid}`;
    try {
      const fresh = await PGlite.create(tmp);
      await fresh.close();
    } catch (err) {
      await rm(tmp, { recursive: true, force: true });
      throw openFailure(dir, err);
    }
    await rm(dir, { recursive: true, force: true });
    await rename(tmp, dir);
  }
  let db: PGlite;
  try {
    db = await PGlite.create(dir);
  } catch (err) {
    throw openFailure(dir, err);
  }
  return adapt(db, `embedded PostgreSQL in ${dir}`);
}
