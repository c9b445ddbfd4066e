import { join } from 'node:path';

/** Where one machine's fleet lives under `$STRATA_HOME`: its database, its lock and its API socket. */
export interface FleetPaths {
  dir: string;
  db: string;
  lock: string;
  socket: string;
}

export function fleetPaths(home: string): FleetPaths {
  const dir = join(home, 'fleet');
  return { dir, db: join(dir, 'fleet.sqlite'), lock: join(dir, 'lock'), socket: join(dir, 'api.sock') };
}
