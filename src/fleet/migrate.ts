import { existsSync } from 'node:fs';
import { StrataError } from '../oci/errors.js';
import { fleetPaths } from './paths.js';
import { openDatabase } from './open.js';
import { copyFleet } from './store.js';

/**
 * `strata fleet migrate --to URL`: this machine's embedded fleet, copied whole to a PostgreSQL server in one
 * transaction — resources (Secrets still sealed: every machine then needs this machine's key file), build records,
 * logs and the key's check. Nothing is copied into a server that already holds a fleet, nor while a build runs; the
 * embedded database is left as it was.
 */
export async function migrateFleet(home: string, to: string): Promise<{ resources: number; builds: number; logs: number; to: string }> {
  const paths = fleetPaths(home);
  if (!existsSync(paths.db)) throw new StrataError(`there is no embedded fleet in ${paths.dir} to copy`);
  const from = await openDatabase({ home });
  try {
    const hold = await from.tryControl();
    if ('holder' in hold) throw new StrataError(`${hold.holder} is running the fleet in ${paths.dir}; stop it first`);
    try {
      const { migrate } = await import('./db/database.js');
      await migrate(from);
      const target = await openDatabase({ home, database: to });
      try {
        await migrate(target);
        return { ...(await copyFleet(from, target)), to: target.description };
      } finally {
        await target.close();
      }
    } finally {
      await hold.release();
    }
  } finally {
    await from.close();
  }
}
