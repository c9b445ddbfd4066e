import { hostname } from 'node:os';
import pg from 'pg';
import { Kysely, PostgresDialect, sql } from 'kysely';
import { StrataError, errorMessage } from '../../oci/errors.js';
import { parseEvent, type ControlHold, type FleetDatabase, type FleetEvent } from './database.js';
import type { FleetTables } from './schema.js';
import { checkDatabaseUrl, describeUrl } from './url.js';

/**
 * The fleet on a PostgreSQL server, shared by every machine of a fleet: a pool of connections for queries, one
 * connection that LISTENs for the fleet's events, and, in the controller, one that holds the controller's advisory
 * lock for as long as the process lives (the server drops it when the connection goes, so a standby takes over).
 */

const CHANNEL = 'strata_fleet';
// Two 32-bit keys, apart from the one kysely's migrator takes.
const CONTROL_LOCK = [0x53545241, 1] as const;

export function openServer(url: string, options: { poolSize?: number } = {}): FleetDatabase {
  checkDatabaseUrl(url, '--database');
  const description = describeUrl(url);
  const config: pg.ClientConfig = { connectionString: url, application_name: `strata ${hostname()}:${process.pid}`, keepAlive: true };
  const pool = new pg.Pool({ ...config, max: options.poolSize ?? 10, idleTimeoutMillis: 30_000 });
  // An idle connection the server closed (a restart) is replaced by the pool; nothing to crash over.
  pool.on('error', () => undefined);
  const db = new Kysely<FleetTables>({ dialect: new PostgresDialect({ pool }) });
  const extra = new Set<pg.Client>();

  const connect = async (): Promise<pg.Client> => {
    const c = new pg.Client(config);
    c.on('error', () => undefined);
    try {
      await c.connect();
    } catch (err) {
      throw unreachable(description, err);
    }
    extra.add(c);
    c.once('end', () => extra.delete(c));
    return c;
  };

  return {
    db,
    dialect: 'postgres',
    description,
    timeIn: (ms) => sql<string>`to_char((clock_timestamp() + ${ms} * interval '1 millisecond') at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`,
    notify: async (event) => {
      await sql`select pg_notify(${CHANNEL}, ${JSON.stringify(event)})`.execute(db);
    },
    async listen(fn: (e: FleetEvent) => void) {
      let stopped = false;
      let client: pg.Client | undefined;
      let retry: NodeJS.Timeout | undefined;
      // A dropped connection (a server restart) is made again; the fleet polls meanwhile, so nothing is missed for long.
      const start = async (): Promise<void> => {
        try {
          const c = await connect();
          c.on('notification', (m) => {
            const e = m.channel === CHANNEL && m.payload ? parseEvent(m.payload) : undefined;
            if (e) fn(e);
          });
          c.once('end', () => {
            if (!stopped) retry = setTimeout(() => void start(), 2000).unref();
          });
          await c.query(`LISTEN ${CHANNEL}`);
          client = c;
        } catch {
          if (!stopped) retry = setTimeout(() => void start(), 2000).unref();
        }
      };
      await start();
      return async () => {
        stopped = true;
        if (retry) clearTimeout(retry);
        await client?.end().catch(() => undefined);
      };
    },
    async tryControl(): Promise<ControlHold | { holder: string }> {
      const c = await connect();
      try {
        const r = await c.query<{ ok: boolean }>('select pg_try_advisory_lock($1, $2) as ok', [...CONTROL_LOCK]);
        if (!r.rows[0]?.ok) {
          const who = await c.query<{ name: string }>(
            `select a.application_name as name from pg_locks l join pg_stat_activity a on a.pid = l.pid
             where l.locktype = 'advisory' and l.classid = $1 and l.objid = $2 and l.granted limit 1`,
            [...CONTROL_LOCK],
          );
          await c.end().catch(() => undefined);
          return { holder: who.rows[0]?.name || 'another process' };
        }
      } catch (err) {
        await c.end().catch(() => undefined);
        throw unreachable(description, err);
      }
      let released = false;
      const lost = new Promise<void>((resolve) => {
        c.once('end', () => {
          if (!released) resolve();
        });
        c.once('error', () => {
          if (!released) resolve();
        });
      });
      // The hold is checked now and then, so a connection that died quietly (a cable, a firewall) ends it too.
      const check = setInterval(() => void c.query('select 1').catch(() => c.end().catch(() => undefined)), 5000);
      check.unref();
      return {
        lost,
        async release() {
          released = true;
          clearInterval(check);
          await c.query('select pg_advisory_unlock($1, $2)', [...CONTROL_LOCK]).catch(() => undefined);
          await c.end().catch(() => undefined);
        },
      };
    },
    // The server vacuums on its own.
    compact: async () => undefined,
    async close() {
      await Promise.all([...extra].map((c) => c.end().catch(() => undefined)));
      await db.destroy();
    },
  };
}

/** Opens the server's database and checks it answers, so a wrong URL or a server that is down is one line at once. */
export async function connectServer(url: string): Promise<FleetDatabase> {
  const fdb = openServer(url);
  try {
    await sql`select 1`.execute(fdb.db);
  } catch (err) {
    await fdb.close().catch(() => undefined);
    throw unreachable(fdb.description, err);
  }
  return fdb;
}

/** A connection failure as one line that names the database (without its password) and what to check. */
export function unreachable(description: string, err: unknown): StrataError {
  return new StrataError(`the fleet database ${description} cannot be reached (${errorMessage(err).split('\n')[0]}); check --database or STRATA_FLEET_DATABASE`, 1, { cause: err });
}
