import type { Command } from 'commander';
import { StrataError } from '../oci/errors.js';
import { strataHome } from '../oci/images.js';
import { RemoteFleet } from '../fleet/client.js';
import { fleetPaths } from '../fleet/paths.js';
import type { FleetApi } from '../fleet/service.js';
import { checkDatabaseUrl } from '../fleet/db/url.js';
import { repeatable } from './options.js';

/** What every `strata fleet` command shares: reaching the fleet (a running server, or the database), names, tables. */

export const log = (line: string): void => void process.stderr.write(`${new Date().toISOString()} ${line}\n`);

let databaseFlag: string | undefined;

/** `--database` of the command being run (every fleet command takes it); the hook on `fleet` sets it. */
export function useDatabase(url: string | undefined): void {
  databaseFlag = url;
}

/** The fleet's PostgreSQL server: --database, else STRATA_FLEET_DATABASE; undefined for the embedded database. */
export function fleetDatabase(): string | undefined {
  const url = databaseFlag ?? (process.env.STRATA_FLEET_DATABASE || undefined);
  if (url) checkDatabaseUrl(url, databaseFlag ? '--database' : 'STRATA_FLEET_DATABASE');
  return url;
}

/** `slotsAtLeast` 0 lets a `fleet serve` run passes and the API only, leaving every build to the workers. */
export function controllerOptions(o: { builds?: string; rebases?: string; pollInterval?: string; lease?: string; insecureRegistry?: string[] }, slotsAtLeast = 1) {
  const int = (v: string | undefined, flag: string, fallback: number): number => {
    if (v === undefined) return fallback;
    if (!/^\d+$/.test(v) || Number(v) < slotsAtLeast) throw new StrataError(`${flag} "${v}": expected a whole number of at least ${slotsAtLeast}`);
    return Number(v);
  };
  const database = fleetDatabase();
  const leaseMs = duration(o.lease ?? '30s', '--lease');
  if (leaseMs < 1000) throw new StrataError(`--lease "${o.lease}": at least 1s`);
  return {
    home: strataHome(),
    ...(database ? { database } : {}),
    leaseMs,
    storeOptions: { insecureRegistries: o.insecureRegistry ?? [] },
    buildConcurrency: int(o.builds, '--builds', 2),
    rebaseConcurrency: int(o.rebases, '--rebases', 16),
    pollIntervalMs: duration(o.pollInterval ?? '60s', '--poll-interval'),
    log,
  };
}

/** `90s`, `5m`, `1h` or plain seconds. */
export function duration(text: string, flag: string): number {
  const m = /^(\d+)(ms|s|m|h)?$/.exec(text.trim());
  if (!m) throw new StrataError(`${flag} "${text}": expected a duration such as 30s, 5m or 1h`);
  return Number(m[1]) * ({ ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] ?? 's'] ?? 1000);
}

export async function openFleet(o: Parameters<typeof controllerOptions>[0] = {}): Promise<FleetApi> {
  const paths = fleetPaths(strataHome());
  const remote = await RemoteFleet.connect(paths.socket);
  if (remote) return remote;
  try {
    // The database and the controller load only when no server holds them.
    const { LocalFleet } = await import('../fleet/service.js');
    return await LocalFleet.open(controllerOptions(o));
  } catch (err) {
    // A `fleet serve` that was starting up holds the database now: talk to it instead.
    return (await RemoteFleet.connect(paths.socket)) ?? Promise.reject(err);
  }
}

export async function withFleet<T>(fn: (fleet: FleetApi) => Promise<T>, o?: Parameters<typeof controllerOptions>[0]): Promise<T> {
  const fleet = await openFleet(o);
  try {
    return await fn(fleet);
  } finally {
    await fleet.close();
  }
}

/** `ns/name`, or `name` in `-n` (default: default). */
export function imageName(text: string, namespace: string | undefined): { namespace: string; name: string } {
  const slash = text.indexOf('/');
  if (slash > 0) return { namespace: text.slice(0, slash), name: text.slice(slash + 1) };
  return { namespace: namespace ?? 'default', name: text };
}

export function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return `${rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]! + 3))).join('').trimEnd()).join('\n')}\n`;
}

export function format(o: { output: string }): 'human' | 'json' {
  if (o.output !== 'human' && o.output !== 'json') throw new StrataError(`-o "${o.output}": use human or json`);
  return o.output;
}

export const ago = (iso: string | undefined): string => (iso ? iso.replace('T', ' ').replace(/\.\d+Z$/, 'Z') : '--');

/** The options of the commands that run builds. */
export function workerOptions(cmd: Command): Command {
  return cmd
    .option('--builds <n>', 'full builds at once', '2')
    .option('--rebases <n>', 'rebases at once', '16')
    .option('--lease <duration>', 'how long a claim on a build holds without a heartbeat; a lapsed one goes back to the queue', '30s')
    .option('--insecure-registry <host>', 'plain HTTP or unverified TLS for this registry (repeatable)', repeatable, []);
}

