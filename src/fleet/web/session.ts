import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

/**
 * The dashboard's sign-in: a cookie that says "this browser showed a read (or admin) token until <expiry>", signed
 * with a key made when the server starts (a restart signs everyone out). The token itself is never stored.
 */

export const COOKIE = 'strata_session';
const TTL_MS = 12 * 3600_000;

export class Sessions {
  private readonly key = randomBytes(32);

  private sign(body: string): string {
    return createHmac('sha256', this.key).update(body).digest('base64url');
  }

  issue(now = Date.now()): { value: string; maxAge: number } {
    const body = String(now + TTL_MS);
    return { value: `${body}.${this.sign(body)}`, maxAge: TTL_MS / 1000 };
  }

  valid(value: string | undefined, now = Date.now()): boolean {
    const m = value ? /^(\d{13,16})\.([\w-]{43})$/.exec(value) : null;
    if (!m || Number(m[1]) < now) return false;
    const want = Buffer.from(this.sign(m[1]!));
    const got = Buffer.from(m[2]!);
    return want.length === got.length && timingSafeEqual(want, got);
  }
}

/** The value of one cookie in a Cookie header. */
export function cookie(header: string | undefined, name: string): string | undefined {
  for (const part of (header ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}
