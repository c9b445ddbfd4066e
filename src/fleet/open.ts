import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { StrataError } from '../oci/errors.js';
import type { FleetDatabase } from './db/database.js';
import { fleetPaths } from './paths.js';
import { loadFleetKey, SecretBox } from './secrets.js';
import { FleetStore } from './store.js';

/** Where a fleet's state is: this machine's `$STRATA_HOME`, and a PostgreSQL server's URL when many machines share it. */
export interface FleetLocation {
  home: string;
  /** `postgres://…`; absent, the embedded database under `$STRATA_HOME/fleet`. */
  database?: string;
}

/** The key file: STRATA_FLEET_KEY_FILE, else `$STRATA_HOME/fleet/key`. */
export function fleetKeyFile(home: string): string {
  return process.env.STRATA_FLEET_KEY_FILE || fleetPaths(home).key;
}

/** Opens the fleet's database (the engine is loaded only when used), brings its schema up to date, and checks its key. */
export async function openDatabase(where: FleetLocation): Promise<FleetDatabase> {
  const paths = fleetPaths(where.home);
  await mkdir(paths.dir, { recursive: true, mode: 0o700 });
  if (where.database) {
    const { connectServer } = await import('./db/server.js');
    return connectServer(where.database);
  }
  const { openEmbedded } = await import('./db/embedded.js');
  return openEmbedded(paths.db, paths.lock);
}

const KEY_CHECK = 'key-check';

/**
 * The fleet's store, migrated and with the key its Secrets are sealed with. The database records a keyed digest of
 * that key the first time: a machine whose key differs (every machine of a shared fleet needs the same one) is
 * stopped with a line saying so, before it could seal a Secret no other machine can open.
 */
export async function openFleetStore(where: FleetLocation): Promise<FleetStore> {
  const fdb = await openDatabase(where);
  try {
    const probe = new FleetStore(fdb, undefined);
    await probe.migrate();
    const recorded = await probe.fact(KEY_CHECK);
    const keyFile = fleetKeyFile(where.home);
    if (recorded && !existsSync(keyFile)) {
      throw new StrataError(`the fleet in ${fdb.description} seals its Secrets with a key this machine does not have: copy the key file from a machine of this fleet to ${keyFile} (or set STRATA_FLEET_KEY_FILE)`);
    }
    const box = new SecretBox(loadFleetKey(keyFile));
    const check = box.digest({ 'strata fleet key': 'check' });
    if ((await probe.recordFact(KEY_CHECK, check)) !== check) {
      throw new StrataError(`${keyFile} is not the key the fleet in ${fdb.description} seals its Secrets with: copy the key file from a machine of this fleet (or set STRATA_FLEET_KEY_FILE)`);
    }
    return new FleetStore(fdb, box);
  } catch (err) {
    await fdb.close().catch(() => undefined);
    throw err;
  }
}
