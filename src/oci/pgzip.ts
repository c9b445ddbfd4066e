import { Transform, type TransformCallback } from 'node:stream';
import { availableParallelism } from 'node:os';
import * as zlib from 'node:zlib';

const BLOCK = 512 * 1024;
const WINDOW = 32 * 1024;

// Node 20.15+ has zlib.crc32; typed loosely because @types/node for 20 may predate it.
const crc32 = (zlib as unknown as { crc32?: (data: Uint8Array, value?: number) => number }).crc32;

/**
 * One block deflated on the thread pool, as the pieces zlib produced (never joined: that would be a copy).
 * `outSize` is the room zlib writes into: enough for the block's likely output in one piece, since each piece more
 * is a trip back to the main thread, and no more, since each block's room is a fresh buffer V8 frees only later.
 * It does not change the bytes.
 */
function deflateBlock(data: Buffer, dictionary: Buffer | undefined, level: number, last: boolean, outSize: number): Promise<Buffer[]> {
  return new Promise((resolve, reject) => {
    const opts: zlib.ZlibOptions = { level, chunkSize: outSize, finishFlush: last ? zlib.constants.Z_FINISH : zlib.constants.Z_SYNC_FLUSH };
    if (dictionary) opts.dictionary = dictionary;
    const pieces: Buffer[] = [];
    const deflate = zlib.createDeflateRaw(opts);
    deflate.on('data', (piece: Buffer) => pieces.push(piece));
    deflate.on('error', reject);
    deflate.on('end', () => resolve(pieces));
    deflate.end(data);
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
  out?: Buffer[];
  err?: Error;
}

export class ParallelGzip extends Transform {
  /** The block being filled: input is copied in, so no upstream buffer is kept alive by a block in flight. */
  private block: Buffer | undefined;
  private filled = 0;
  /** The last 32 KiB of the previous block: the next block's dictionary, copied by zlib when its deflate starts. */
  private readonly tail = Buffer.allocUnsafe(WINDOW);
  private tailLength = 0;
  /** Blocks whose deflate has finished, for reuse: a layer's worth of fresh buffers would wait for V8 to free them. */
  private readonly spare: Buffer[] = [];
  private crc = 0;
  private total = 0;
  /** Bytes in and out of the blocks deflated so far: how much room the next block's output likely needs. */
  private deflatedIn = 0;
  private deflatedOut = 0;
  private readonly queue: Slot[] = [];
  private readonly maxInflight: number;
  /** A `feed` waiting for the reader to take what was pushed. */
  private wake: (() => void) | undefined;

  constructor(private readonly level = 6) {
    super();
    if (!crc32) throw new Error('ParallelGzip needs zlib.crc32 (Node.js 20.15 or later)');
    // libuv's pool has 4 threads by default; keeping it full matters more than matching the core count.
    this.maxInflight = Math.max(4, availableParallelism() + 2);
    // mtime 0 and OS 255 ("unknown") keep the header independent of the machine.
    this.push(Buffer.from([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff]));
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.copyIn(chunk);
    this.settle(this.maxInflight).then(() => cb(), cb);
  }

  /**
   * Takes a chunk without the writable side's buffering: it is copied before this returns, so the caller may reuse
   * its buffer at once. Resolves when there is room for the next (blocks in flight, and the reader keeping up);
   * `end()` follows the last. Not to be mixed with `write()`.
   */
  async feed(chunk: Buffer): Promise<void> {
    this.copyIn(chunk);
    await this.settle(this.maxInflight);
    while (this.readableLength >= this.readableHighWaterMark && !this.destroyed) await new Promise<void>((resolve) => (this.wake = resolve));
    if (this.destroyed) throw this.errored ?? new Error('gzip stream closed before its input ended');
  }

  override _read(size: number): void {
    this.wakeFeed();
    super._read(size);
  }

  override _destroy(err: Error | null, cb: (error?: Error | null) => void): void {
    this.wakeFeed();
    super._destroy(err, cb);
  }

  private wakeFeed(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }

  private copyIn(chunk: Buffer): void {
    let at = 0;
    while (at < chunk.length) {
      this.block ??= this.spare.pop() ?? Buffer.allocUnsafe(BLOCK);
      const n = chunk.copy(this.block, this.filled, at);
      this.filled += n;
      at += n;
      if (this.filled === BLOCK) this.enqueueFilled();
    }
  }

  override _flush(cb: TransformCallback): void {
    if (this.filled > 0) this.enqueueFilled();
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

  private enqueueFilled(): void {
    const buffer = this.block!;
    const data = buffer.subarray(0, this.filled);
    this.block = undefined;
    this.filled = 0;
    this.crc = crc32!(data, this.crc);
    this.total += data.length;
    this.enqueueDeflate(data, this.tailLength > 0 ? this.tail.subarray(0, this.tailLength) : undefined, false, buffer);
    // zlib has taken its copy of the dictionary by now: the tail can hold this block's end.
    this.tailLength = data.copy(this.tail, 0, Math.max(0, data.length - WINDOW));
  }

  private enqueueDeflate(data: Buffer, dict: Buffer | undefined, last: boolean, reuse?: Buffer): void {
    const slot: Slot = { done: Promise.resolve() };
    // Until a block has been seen, deflate's worst case (a little over the input); then the ratio so far, with slack.
    const worst = data.length + (data.length >> 3) + 4096;
    const likely = this.deflatedIn > 0 ? Math.ceil((data.length * this.deflatedOut * 1.25) / this.deflatedIn) + 16 * 1024 : worst;
    slot.done = deflateBlock(data, dict, this.level, last, Math.max(64 * 1024, Math.min(worst, likely))).then(
      (out) => {
        slot.out = out;
        this.deflatedIn += data.length;
        for (const piece of out) this.deflatedOut += piece.length;
        if (reuse) this.spare.push(reuse);
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
        for (const piece of slot.out!) this.push(piece);
      }
      if (this.queue.length < room) return;
      await this.queue[0]!.done;
    }
  }
}
