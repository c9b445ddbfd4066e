import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createOnce } from '../oci/fsutil.js';
import { StrataError } from '../oci/errors.js';
import { SecretBox } from './secrets.js';

/**
 * Who may call the fleet's HTTP API over TCP. Three roles: `read` (every GET), `admin` (everything, apply and delete
 * included) and `webhook` (the registry's push notifications only). A caller shows a bearer token; only digests of
 * tokens are kept in memory and on disk, and they are compared in constant time.
 */

export const ROLES = ['admin', 'read', 'webhook'] as const;
export type Role = (typeof ROLES)[number];

export interface TokenSet {
  entries: { role: Role; digest: Buffer }[];
  /** Where they came from, for messages. */
  source: string;
}

/** The role a presented token has, or undefined. */
export function roleOf(tokens: TokenSet, presented: string | undefined): Role | undefined {
  if (!presented) return undefined;
  let found: Role | undefined;
  // Every entry is compared, so the time taken says nothing about which one matched.
  for (const e of tokens.entries) if (SecretBox.sameToken(presented, e.digest) && !found) found = e.role;
  return found;
}

/** The token of an `Authorization: Bearer …` header. */
export function bearerToken(authorization: unknown): string | undefined {
  return typeof authorization === 'string' ? /^Bearer\s+(\S+)$/i.exec(authorization)?.[1] : undefined;
}

/** Whether a role may do what a route needs. */
export function allows(role: Role | undefined, need: Role): boolean {
  if (!role) return false;
  if (role === 'admin') return true;
  return role === need;
}

function parseLines(text: string, file: string, digests: boolean): TokenSet {
  const entries: TokenSet['entries'] = [];
  const lines = text.split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
  for (const [i, line] of lines.entries()) {
    const parts = line.split(/\s+/);
    // A file holding one bare token is an admin token, the simplest thing an operator can write.
    const [role, value] = parts.length === 1 && !digests ? ['admin', parts[0]!] : [parts[0]!, parts[1]];
    if (!(ROLES as readonly string[]).includes(role) || !value || parts.length > 2) throw new StrataError(`${file}: line ${i + 1}: expected "ROLE TOKEN" with ROLE admin, read or webhook (or one bare token, which is an admin token)`);
    if (!digests && value.length < 16) throw new StrataError(`${file}: line ${i + 1}: a token needs at least 16 characters`);
    entries.push({ role: role as Role, digest: digests ? Buffer.from(value, 'hex') : SecretBox.tokenDigest(value) });
  }
  if (!entries.length) throw new StrataError(`${file}: no tokens in it`);
  return { entries, source: file };
}

/** `fleet serve --token-file FILE`: tokens the operator manages, `ROLE TOKEN` per line. */
export function readTokenFile(file: string): TokenSet {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new StrataError(`--token-file ${file}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message}`);
  }
  return parseLines(text, `--token-file ${file}`, false);
}

/**
 * The fleet's own tokens: digests in `file` (0600). The first time, an admin, a read and a webhook token are made
 * and returned in the clear, once, to be shown to the operator; afterwards only their digests exist.
 */
export function ownTokens(file: string): { tokens: TokenSet; created?: Record<Role, string> } {
  try {
    return { tokens: parseLines(readFileSync(file, 'utf8'), file, true) };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const created = Object.fromEntries(ROLES.map((r) => [r, `strata_${r}_${randomBytes(24).toString('base64url')}`])) as Record<Role, string>;
  const text = `# strata fleet API tokens (digests only); remove this file to make new ones\n${ROLES.map((r) => `${r} ${SecretBox.tokenDigest(created[r]).toString('hex')}`).join('\n')}\n`;
  // Another process may make them first: then theirs stand, and ours were never valid.
  if (!createOnce(file, text)) return { tokens: parseLines(readFileSync(file, 'utf8'), file, true) };
  return { tokens: parseLines(text, file, true), created };
}
