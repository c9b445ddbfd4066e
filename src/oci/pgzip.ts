import { Transform, type TransformCallback } from 'node:stream';
import { availableParallelism } from 'node:os';
import * as zlib from 'node:zlib';

const BLOCK = 512 * 1024;
const WINDOW = 32 * 1024;

// Node 20.15+ has zlib.crc32; typed loosely because @types/node for 20 may predate it.
const crc32 = (zlib as unknown as { crc32?: (data: Uint8Array, value?: number) => number }).crc32;

function deflateBlock(data: Buffer, dictionary: Buffer | undefined, level: number, last: boolean): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const opts: zlib.ZlibOptions = {
      level,
      finishFlush: last ? zlib.constants.Z_FINISH : zlib.constants.Z_SYNC_FLUSH,
    };
    if (dictionary) opts.dictionary = dictionary;
    zlib.deflateRaw(data, opts, (err, out) => (err ? reject(err) : resolve(out)));
  });
}

/**
 * Gzip on several cores, the way pigz does it: the input is cut into blocks, each block is deflated on the libuv
 * thread pool primed with the previous block's last 32 KiB as dictionary and ended with a sync flush, and the
 * pieces are joined into one ordinary single-member gzip stream. Output depends only on the input, the level and
 * the zlib that Node ships, not on timing or core count.
 */
export class ParallelGzip extends Transform {
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private prevTail: Buffer | undefined;
  private crc = 0;
  private total = 0;
  private headerSent = false;
  private readonly inflight: Promise<Buffer>[] = [];
  private readonly maxInflight: number;

  constructor(private readonly level = 6) {
    super();
    if (!crc32) throw new Error('ParallelGzip needs zlib.crc32 (Node.js 20.15 or later)');
    this.maxInflight = Math.max(2, availableParallelism() * 2);
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.pending.push(chunk);
    this.pendingBytes += chunk.length;
    this.drainBlocks(false).then(() => cb(), cb);
  }

  override _flush(cb: TransformCallback): void {
    this.drainBlocks(true)
      .then(async () => {
        while (this.inflight.length > 0) this.push(await this.inflight.shift()!);
        const trailer = Buffer.alloc(8);
        trailer.writeUInt32LE(this.crc >>> 0, 0);
        trailer.writeUInt32LE(this.total % 0x100000000, 4);
        this.push(trailer);
        cb();
      })
      .catch(cb);
  }

  private async drainBlocks(final: boolean): Promise<void> {
    if (!this.headerSent) {
      // mtime 0 and OS 255 ("unknown") keep the header independent of the machine.
      this.push(Buffer.from([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff]));
      this.headerSent = true;
    }
    while (this.pendingBytes >= BLOCK || (final && this.pendingBytes > 0)) {
      const all = this.pending.length === 1 ? this.pending[0]! : Buffer.concat(this.pending);
      const block = all.subarray(0, Math.min(BLOCK, all.length));
      const rest = all.subarray(block.length);
      this.pending = rest.length > 0 ? [rest] : [];
      this.pendingBytes = rest.length;
      this.crc = crc32!(block, this.crc);
      this.total += block.length;
      // The dictionary must be a copy: `block` may share memory with a buffer the caller reuses.
      const dict = this.prevTail;
      this.prevTail = Buffer.from(block.subarray(Math.max(0, block.length - WINDOW)));
      this.inflight.push(deflateBlock(block, dict, this.level, false));
      while (this.inflight.length >= this.maxInflight) this.push(await this.inflight.shift()!);
    }
    // Every block ends with a sync flush; an empty final block closes the deflate stream.
    if (final) this.inflight.push(deflateBlock(Buffer.alloc(0), undefined, this.level, true));
    // Hand over whatever is already done, so output flows while later blocks compress.
    while (this.inflight.length > 0 && this.inflight.length >= this.maxInflight / 2) this.push(await this.inflight.shift()!);
  }
}
