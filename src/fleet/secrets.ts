import { createCipheriv, createDecipheriv, createHmac, hkdfSync, randomBytes, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createOnce } from '../oci/fsutil.js';
import { StrataError } from '../oci/errors.js';
import { canonical } from './canonical.js';

/**
 * Secrets at rest: every Secret's values are sealed with AES-256-GCM under the fleet's key before they reach the
 * database, bound to the Secret's name (a sealed value moved to another row does not open). The key is 32 random
 * bytes in a 0600 file under `$STRATA_HOME/fleet`, made once; sealing and digests use keys derived from it, so the
 * database alone reveals nothing, and a digest of the values tells a change without telling the values.
 */

const VERSION = 'v1';

export class SecretBox {
  private readonly sealKey: Buffer;
  private readonly digestKey: Buffer;

  constructor(master: Buffer) {
    if (master.length !== 32) throw new StrataError('the fleet key must be 32 bytes');
    this.sealKey = Buffer.from(hkdfSync('sha256', master, Buffer.alloc(0), 'strata fleet seal', 32));
    this.digestKey = Buffer.from(hkdfSync('sha256', master, Buffer.alloc(0), 'strata fleet digest', 32));
  }

  /** `v1:` + base64(nonce ‖ ciphertext ‖ tag) of the values as JSON; `context` (the Secret's key) is authenticated. */
  seal(values: Record<string, string>, context: string): string {
    const nonce = randomBytes(12);
    const c = createCipheriv('aes-256-gcm', this.sealKey, nonce);
    c.setAAD(Buffer.from(context));
    const body = Buffer.concat([c.update(JSON.stringify(values), 'utf8'), c.final()]);
    return `${VERSION}:${Buffer.concat([nonce, body, c.getAuthTag()]).toString('base64')}`;
  }

  open(sealed: string, context: string): Record<string, string> {
    const [v, b64] = sealed.split(':', 2);
    const raw = Buffer.from(b64 ?? '', 'base64');
    if (v !== VERSION || raw.length < 28) throw new StrataError(`the sealed values of ${context} are damaged`);
    const d = createDecipheriv('aes-256-gcm', this.sealKey, raw.subarray(0, 12));
    d.setAAD(Buffer.from(context));
    d.setAuthTag(raw.subarray(raw.length - 16));
    try {
      return JSON.parse(Buffer.concat([d.update(raw.subarray(12, raw.length - 16)), d.final()]).toString('utf8')) as Record<string, string>;
    } catch {
      throw new StrataError(`the values of ${context} cannot be opened with this fleet's key (was the key file replaced?)`);
    }
  }

  /** A keyed digest: equal values give equal digests under this key, and nothing can be learned from one without it. */
  digest(values: Record<string, string>): string {
    return `hmac-sha256:${createHmac('sha256', this.digestKey).update(canonical(values)).digest('hex')}`;
  }

  /** A token's digest, for comparing a presented token with a stored one in constant time. */
  static tokenDigest(token: string): Buffer {
    return createHmac('sha256', 'strata fleet token').update(token).digest();
  }

  static sameToken(presented: string, digest: Buffer): boolean {
    const d = SecretBox.tokenDigest(presented);
    return d.length === digest.length && timingSafeEqual(d, digest);
  }
}

/**
 * The fleet's key from `file`, made (32 random bytes, mode 0600) when there is none. A new key is written beside the
 * file and linked into place, so two processes starting at once end up with the same key and a killed one leaves
 * no half-written key.
 */
export function loadFleetKey(file: string): Buffer {
  try {
    return readKey(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  createOnce(file, randomBytes(32).toString('base64'));
  return readKey(file);
}

function readKey(file: string): Buffer {
  const text = readFileSync(file, 'utf8').trim();
  const key = Buffer.from(text, 'base64');
  if (key.length !== 32) throw new StrataError(`${file}: not a fleet key (32 bytes, base64); restore it from a backup, or remove it and apply every Secret again`);
  return key;
}

/**
 * Replaces every occurrence of the given values in text with `[redacted]`. Values shorter than 4 characters are left
 * alone (they would blank out ordinary words); longer ones are replaced wherever they appear, line by line.
 */
export class Redactor {
  private readonly values: string[];

  constructor(values: Iterable<string>) {
    const set = new Set<string>();
    for (const v of values) {
      for (const part of [v, ...v.split('\n')]) if (part.trim().length >= 4) set.add(part.trim());
    }
    // Longest first, so a value containing another is replaced whole.
    this.values = [...set].sort((a, b) => b.length - a.length);
  }

  get empty(): boolean {
    return this.values.length === 0;
  }

  /** The longest value: text this long may hold the start of a value whose end is still to come. */
  get longest(): number {
    return this.values[0]?.length ?? 0;
  }

  redact(text: string): string {
    let out = text;
    for (const v of this.values) if (out.includes(v)) out = out.split(v).join('[redacted]');
    return out;
  }
}
