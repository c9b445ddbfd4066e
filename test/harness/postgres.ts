import { spawnSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { freePort } from './proc.js';

/**
 * A PostgreSQL server of the test's own: Debian's binaries, `initdb` and `pg_ctl` run as an unprivileged user (nobody
 * when the tests run as root), a private port on 127.0.0.1 and the socket in its own dir; no system service.
 */
export interface TestPostgres {
  /** postgres://strata@127.0.0.1:PORT/postgres */
  url: string;
  port: number;
  /** A new, empty database on the server; its URL. */
  database(name: string): string;
  stop(): void;
}

function binDir(): string {
  const root = '/usr/lib/postgresql';
  const versions = existsSync(root) ? readdirSync(root).filter((v) => existsSync(join(root, v, 'bin', 'initdb'))).sort((a, b) => Number(b) - Number(a)) : [];
  if (!versions.length) throw new Error('PostgreSQL is not installed (scripts/setup.sh installs Debian\'s postgresql)');
  return join(root, versions[0]!, 'bin');
}

export async function startPostgres(dir: string): Promise<TestPostgres> {
  const bin = binDir();
  const asRoot = process.getuid?.() === 0;
  // nobody exists on every Debian system; initdb refuses to run as root.
  const as = (cmd: string, args: string[]) => {
    const r = asRoot ? spawnSync('setpriv', ['--reuid', '65534', '--regid', '65534', '--clear-groups', '--', cmd, ...args], { encoding: 'utf8' }) : spawnSync(cmd, args, { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr || r.stdout}`);
    return r.stdout;
  };
  const data = join(dir, 'data');
  mkdirSync(dir, { recursive: true });
  if (asRoot) {
    chownSync(dir, 65534, 65534);
    // The server's user must pass through the test's own (0700) temp dir to reach its data.
    const parent = dirname(dir);
    chmodSync(parent, statSync(parent).mode | 0o011);
  }
  as(join(bin, 'initdb'), ['-D', data, '-U', 'strata', '--auth=trust', '-E', 'UTF8', '--no-locale', '--no-sync']);
  const port = await freePort();
  as(join(bin, 'pg_ctl'), ['-D', data, '-o', `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200`, '-l', join(dir, 'log'), '-w', 'start']);
  const url = `postgres://strata@127.0.0.1:${port}/postgres`;
  return {
    url,
    port,
    database(name: string): string {
      const r = spawnSync(join(bin, 'psql'), ['-h', '127.0.0.1', '-p', String(port), '-U', 'strata', '-d', 'postgres', '-v', 'ON_ERROR_STOP=1', '-c', `create database "${name}"`], { encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`create database ${name}: ${r.stderr}`);
      return `postgres://strata@127.0.0.1:${port}/${name}`;
    },
    stop() {
      try {
        as(join(bin, 'pg_ctl'), ['-D', data, '-m', 'immediate', '-w', 'stop']);
      } catch {
        // already down
      }
    },
  };
}

/** Runs SQL with Debian's psql against `url`; its output, tuples only. */
export function psql(url: string, query: string): string {
  const r = spawnSync(join(binDir(), 'psql'), [url, '-At', '-v', 'ON_ERROR_STOP=1', '-c', query], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`psql: ${r.stderr}`);
  return r.stdout.trim();
}
