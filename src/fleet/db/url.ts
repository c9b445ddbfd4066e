import { StrataError } from '../../oci/errors.js';

/** A PostgreSQL URL checked and shown without loading the driver: every fleet command reads one. */

/** The URL as messages may show it: no password. */
export function describeUrl(url: string): string {
  try {
    const u = new URL(url);
    u.password = '';
    return u.toString();
  } catch {
    return 'the --database URL';
  }
}

/** Checks a --database value before anything connects. */
export function checkDatabaseUrl(url: string, where: string): void {
  let u: URL | undefined;
  try {
    u = new URL(url);
  } catch {
    // reported below
  }
  if (!u || (u.protocol !== 'postgres:' && u.protocol !== 'postgresql:')) {
    throw new StrataError(`${where}: expected a PostgreSQL URL such as postgres://user@host:5432/fleet (got "${describeUrl(url)}")`);
  }
}
