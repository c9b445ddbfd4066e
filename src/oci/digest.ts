import { createHash, type Hash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { StrataError } from './errors.js';

/** `sha256:<64 hex>`; the only algorithm OCI registries are required to support. */
export type Digest = `sha256:${string}`;

const DIGEST_RE = /^sha256:[a-f0-9]{64}$/;

export function isDigest(s: string): s is Digest {
  return DIGEST_RE.test(s);
}

export function parseDigest(s: string, what = 'digest'): Digest {
  if (!isDigest(s)) throw new StrataError(`invalid ${what} "${s}": expected sha256:<64 lowercase hex digits>`);
  return s;
}

export function digestHex(d: Digest): string {
  return d.slice('sha256:'.length);
}

export function sha256(data: Uint8Array | string): Digest {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

/**
 * Pass-through stream that hashes and counts what flows through it, so a blob is digested in the same pass
 * that writes or uploads it.
 */
export class DigestStream extends Transform {
  private readonly hash: Hash = createHash('sha256');
  private bytes = 0;
  private final?: Digest;

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.hash.update(chunk);
    this.bytes += chunk.length;
    cb(null, chunk);
  }

  override _flush(cb: TransformCallback): void {
    this.final = `sha256:${this.hash.digest('hex')}`;
    cb();
  }

  get size(): number {
    return this.bytes;
  }

  /** Available once the stream has ended. */
  get digest(): Digest {
    if (!this.final) throw new Error('DigestStream: digest read before the stream ended');
    return this.final;
  }
}

/** Verifies a stream against an expected digest (and size when known) as it passes through. */
export class VerifyingStream extends Transform {
  private readonly hash: Hash = createHash('sha256');
  private bytes = 0;
  constructor(
    private readonly expected: Digest,
    private readonly expectedSize: number | undefined,
    private readonly what: string,
  ) {
    super();
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.hash.update(chunk);
    this.bytes += chunk.length;
    if (this.expectedSize !== undefined && this.bytes > this.expectedSize) {
      cb(new StrataError(`${this.what}: blob ${this.expected} is larger than its descriptor's ${this.expectedSize} bytes`));
      return;
    }
    cb(null, chunk);
  }

  override _flush(cb: TransformCallback): void {
    const got: Digest = `sha256:${this.hash.digest('hex')}`;
    if (this.expectedSize !== undefined && this.bytes !== this.expectedSize) {
      cb(new StrataError(`${this.what}: blob ${this.expected} is ${this.bytes} bytes, descriptor says ${this.expectedSize} (truncated or corrupt)`));
    } else if (got !== this.expected) {
      cb(new StrataError(`${this.what}: blob ${this.expected} is corrupt: its content hashes to ${got}`));
    } else cb();
  }
}
