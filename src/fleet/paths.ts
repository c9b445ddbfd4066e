import { join } from 'node:path';

/**
 * Where one machine's fleet lives under `$STRATA_HOME`: its database, the key its Secrets are sealed with, the API
 * tokens' digests, the controller lock (an embedded fleet's), the serve lock and the API socket.
 */
export interface FleetPaths {
  dir: string;
  db: string;
  key: string;
  tokens: string;
  lock: string;
  /** Held by the one `fleet serve` of this home. */
  serveLock: string;
  socket: string;
}

export function fleetPaths(home: string): FleetPaths {
  const dir = join(home, 'fleet');
  return { dir, db: join(dir, 'fleet.sqlite'), key: join(dir, 'key'), tokens: join(dir, 'tokens'), lock: join(dir, 'lock'), serveLock: join(dir, 'serve.lock'), socket: join(dir, 'api.sock') };
}
