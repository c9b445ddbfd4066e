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
      // Room for the whole compressed block (deflate's worst case is a little over the input): with the default
      // 16 KiB, zlib hands every 16 KiB back to the main thread and waits for it.
      chunkSize: Math.max(64 * 1024, data.length + (data.length >> 3) + 4096),
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
interface Slot {
  done: Promise<void>;
  out?: Buffer;
  err?: Error;
}

export class ParallelGzip extends Transform {
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private prevTail: Buffer | undefined;
  private crc = 0;
  private total = 0;
  private readonly queue: Slot[] = [];
  private readonly maxInflight: number;

  constructor(private readonly level = 6) {
    super();
    if (!crc32) throw new Error('ParallelGzip needs zlib.crc32 (Node.js 20.15 or later)');
    // libuv's pool has 4 threads by default; keeping it full matters more than matching the core count.
    this.maxInflight = Math.max(4, availableParallelism() + 2);
    // mtime 0 and OS 255 ("unknown") keep the header independent of the machine.
    this.push(Buffer.from([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff]));
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.pending.push(chunk);
    this.pendingBytes += chunk.length;
    while (this.pendingBytes >= BLOCK) this.enqueue(this.takeBlock());
    this.settle(this.maxInflight).then(() => cb(), cb);
  }

  override _flush(cb: TransformCallback): void {
    while (this.pendingBytes > 0) this.enqueue(this.takeBlock());
    // Every block ends with a sync flush; an empty final block closes the deflate stream.
    this.enqueueDeflate(Buffer.alloc(0), undefined, true);
    this.settle(1)
      .then(() => {
        const trailer = Buffer.alloc(8);
        trailer.writeUInt32LE(this.crc >>> 0, 0);
        trailer.writeUInt32LE(this.total % 0x100000000, 4);
        this.push(trailer);
        cb();
      })
      .catch(cb);
  }

  private takeBlock(): Buffer {
    const all = this.pending.length === 1 ? this.pending[0]! : Buffer.concat(this.pending);
    const block = all.subarray(0, Math.min(BLOCK, all.length));
    const rest = all.subarray(block.length);
    this.pending = rest.length > 0 ? [rest] : [];
    this.pendingBytes = rest.length;
    return block;
  }

  private enqueue(block: Buffer): void {
    this.crc = crc32!(block, this.crc);
    this.total += block.length;
    const dict = this.prevTail;
    // A copy: `block` may share memory with a buffer its producer reuses.
    this.prevTail = Buffer.from(block.subarray(Math.max(0, block.length - WINDOW)));
    this.enqueueDeflate(block, dict, false);
  }

  private enqueueDeflate(block: Buffer, dict: Buffer | undefined, last: boolean): void {
    const slot: Slot = { done: Promise.resolve() };
    slot.done = deflateBlock(block, dict, this.level, last).then(
      (out) => {
        slot.out = out;
      },
      (err: Error) => {
        slot.err = err;
      },
    );
    this.queue.push(slot);
  }

  /** Pushes finished blocks in order, waiting only while more than `room - 1` are still in flight. */
  private async settle(room: number): Promise<void> {
    for (;;) {
      while (this.queue.length > 0 && (this.queue[0]!.out || this.queue[0]!.err)) {
        const slot = this.queue.shift()!;
        if (slot.err) throw slot.err;
        this.push(slot.out);
      }
      if (this.queue.length < room) return;
      await this.queue[0]!.done;
    }
  }
}
