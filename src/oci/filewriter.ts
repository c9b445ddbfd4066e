import { closeSync, constants as fsc, fchmodSync, fchownSync, futimesSync, openSync, writeSync } from 'node:fs';
import { isMainThread, parentPort, Worker } from 'node:worker_threads';

/** One small file of a layer, written whole: where (a `/proc/self/fd/<root>/…` path), what, and its metadata. */
export interface FileJob {
  path: string;
  /** Byte range of the file's data in its batch's buffer. */
  start: number;
  end: number;
  mode: number;
  /** Owner to set, or undefined to keep the writer's own. */
  uid?: number;
  gid?: number;
  /** Seconds since the epoch. */
  mtime: number;
}

/**
 * Creates one file, never through whatever might be at its path (O_EXCL|O_NOFOLLOW), then its owner, mode and time,
 * as a row of synchronous calls: microseconds each from the page cache.
 */
export function writeFileJob(job: FileJob, data: Uint8Array): void {
  const fd = openSync(job.path, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW, 0o600);
  try {
    let off = job.start;
    while (off < job.end) off += writeSync(fd, data, off, job.end - off);
    if (job.uid !== undefined) fchownSync(fd, job.uid, job.gid ?? job.uid);
    fchmodSync(fd, job.mode);
    futimesSync(fd, job.mtime, job.mtime);
  } finally {
    closeSync(fd);
  }
}

interface Batch {
  id: number;
  data: Uint8Array;
  jobs: FileJob[];
}

/** Each reply hands the batch's buffer back, so the next batch reuses it. */
type Reply = { id: number; data?: Uint8Array; error?: { message: string; code?: string } };

// The worker side: batches in order, one reply each; the first failure is reported and the rest of that batch skipped.
if (!isMainThread && parentPort) {
  const port = parentPort;
  port.on('message', (b: Batch) => {
    try {
      for (const j of b.jobs) writeFileJob(j, b.data);
      port.postMessage({ id: b.id, data: b.data } satisfies Reply, [b.data.buffer as ArrayBuffer]);
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      port.postMessage({ id: b.id, data: b.data, error: { message: e.message, ...(e.code ? { code: e.code } : {}) } } satisfies Reply, [b.data.buffer as ArrayBuffer]);
    }
  });
}

// Measured on a builder's unpack (three layers at once): 1 MiB batches, two in flight, unpack as fast as 4 MiB and
// four, and hold 20-30 MB less at the peak.
const BATCH_FILES = 128;
const BATCH_BYTES = 1 << 20;
const IN_FLIGHT = 2;
const IDLE_MS = 1000;

let shared: Worker | undefined;
const waiting = new Map<number, (r: Reply) => void>();
let nextId = 0;
// Batch buffers going back and forth instead of a fresh one each time: garbage moved to the worker is collected only
// when that isolate gets round to it, and an OS layer's thousands of files made a builder's unpack hold some
// hundred megabytes of it.
const spare: Buffer[] = [];

function batchBuffer(bytes: number): Buffer {
  const i = spare.findIndex((b) => b.length >= bytes);
  return i >= 0 ? spare.splice(i, 1)[0]! : Buffer.allocUnsafeSlow(Math.max(bytes, BATCH_BYTES));
}

let idleTimer: NodeJS.Timeout | undefined;

/**
 * An idle worker lets the process exit, and after a moment without work it is stopped: its isolate is some ten
 * megabytes that a build (which unpacks its builder first, then runs for seconds) would otherwise keep to the end.
 */
function idle(): void {
  const w = shared;
  w?.unref();
  clearTimeout(idleTimer);
  idleTimer = setTimeout(() => {
    if (shared !== w || waiting.size) return;
    shared = undefined;
    spare.length = 0;
    void w?.terminate();
  }, IDLE_MS).unref();
}

/** Whether the worker is up (it stops a moment after its last batch). */
export function fileWorkerRunning(): boolean {
  return shared !== undefined;
}

/** One worker for the process, started on first use; it holds the process open only while it has work. */
function worker(): Worker {
  clearTimeout(idleTimer);
  if (!shared) {
    shared = new Worker(new URL(import.meta.url));
    shared.unref();
    shared.on('message', (r: Reply) => {
      if (r.data && spare.length < IN_FLIGHT + 2) spare.push(Buffer.from(r.data.buffer, r.data.byteOffset, r.data.byteLength));
      const done = waiting.get(r.id);
      waiting.delete(r.id);
      if (!waiting.size) idle();
      done?.(r);
    });
    shared.on('error', (err) => {
      for (const done of waiting.values()) done({ id: -1, error: { message: err.message } });
      waiting.clear();
      shared = undefined;
    });
  }
  return shared;
}

/**
 * Small files of one extraction written on a worker thread while the main thread parses the next entries, in order,
 * in batches: the parser and the file system calls then use two cores, as a tar reader and the kernel do. The caller
 * must `drain()` before it looks at or changes a path it queued (`pending`), and before it lets go of the root
 * descriptor the paths go through.
 */
export class FileBatcher {
  private jobs: FileJob[] = [];
  private chunks: Uint8Array[] = [];
  private bytes = 0;
  private readonly paths = new Set<string>();
  private readonly flying: Promise<Reply>[] = [];
  private failure: Error | undefined;

  /** Whether `rel` is queued or being written. */
  pending(rel: string): boolean {
    return this.paths.has(rel);
  }

  async add(rel: string, job: Omit<FileJob, 'start' | 'end'>, data: Uint8Array): Promise<void> {
    this.check();
    this.paths.add(rel);
    this.jobs.push({ ...job, start: this.bytes, end: this.bytes + data.length });
    this.chunks.push(data);
    this.bytes += data.length;
    if (this.jobs.length >= BATCH_FILES || this.bytes >= BATCH_BYTES) await this.send();
  }

  private async send(): Promise<void> {
    if (!this.jobs.length) return;
    // One buffer per batch, moved (not copied) to the worker and back; the parser's chunks are views of larger
    // buffers that a message would otherwise clone whole.
    const data = batchBuffer(this.bytes);
    let off = 0;
    for (const c of this.chunks) {
      data.set(c, off);
      off += c.length;
    }
    const batch: Batch = { id: nextId++, data, jobs: this.jobs };
    this.jobs = [];
    this.chunks = [];
    this.bytes = 0;
    const w = worker();
    w.ref();
    this.flying.push(new Promise<Reply>((resolve) => waiting.set(batch.id, resolve)));
    w.postMessage(batch, [data.buffer as ArrayBuffer]);
    // Bounded: at most a few batches' bytes held at once.
    while (this.flying.length > IN_FLIGHT) this.settle(await this.flying.shift()!);
  }

  private settle(r: Reply): void {
    if (r.error && !this.failure) this.failure = Object.assign(new Error(r.error.message), r.error.code ? { code: r.error.code } : {});
  }

  private check(): void {
    if (this.failure) throw this.failure;
  }

  /** Everything queued written (or its first failure thrown); nothing pending after. */
  async drain(): Promise<void> {
    await this.send();
    while (this.flying.length) this.settle(await this.flying.shift()!);
    this.paths.clear();
    this.check();
  }

  /** Waits for the worker without throwing: for the error path, before the root descriptor closes. */
  async quiesce(): Promise<void> {
    this.jobs = [];
    this.chunks = [];
    await Promise.all(this.flying.splice(0));
    this.paths.clear();
  }
}
