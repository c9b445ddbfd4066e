import { closeSync, createWriteStream, fstatSync, lstatSync, readdirSync, readlinkSync, type Stats } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { dirname, join, posix } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Readable, Transform, Writable, type TransformCallback } from 'node:stream';
import { at, openDirAt, openDirNoFollow, type ConfinedDir } from './confined.js';
import { DigestStream, type Digest } from './digest.js';
import { StrataError } from './errors.js';
import { MediaType } from './mediatype.js';
import { ParallelGzip } from './pgzip.js';
import { tarStream, type LayerEntry, type TarHeaderFields } from './tarwriter.js';

/**
 * gzip level 1, as go-containerregistry (and so the reference lifecycle) writes layers: on typical layer content it
 * is a few percent larger than level 6 and several times cheaper to make.
 */
export const DEFAULT_GZIP_LEVEL = 1;

/** The one buffer a layer's files are read through on their way to gzip. */
const READ_BUFFER = 1 << 20;

/** 1980-01-01T00:00:01Z: the earliest time every tar and zip reader agrees on, as the reference tools use. */
export const NORMALISED_MTIME = new Date(Date.UTC(1980, 0, 1, 0, 0, 1));

/** The layer time: `SOURCE_DATE_EPOCH` when set (reproducible-builds.org), else the normalised constant. */
export function layerTime(env: NodeJS.ProcessEnv = process.env): Date {
  const sde = env.SOURCE_DATE_EPOCH;
  if (sde === undefined || sde === '') return NORMALISED_MTIME;
  if (!/^\d+$/.test(sde)) throw new StrataError(`SOURCE_DATE_EPOCH="${sde}" is not a whole number of seconds since 1970`);
  return new Date(Number(sde) * 1000);
}

export type { LayerEntry } from './tarwriter.js';

export interface TreeOptions {
  /** In-image directory the tree lands in, e.g. `layers/my_bp/node`; its parents get entries too. */
  prefix?: string;
  /** Decides per path (relative to the tree root, `/`-separated) whether to include it. */
  include?: (relPath: string, st: Stats) => boolean;
  /** Entries for each parent of `prefix` (default true), so the layer stands alone when extracted. */
  parentDirs?: boolean;
  /** Mode for the synthesised parent directories. */
  parentMode?: number;
  /** Keep each file's owner from the filesystem (an OS tree), instead of the writer's one uid/gid. */
  owners?: boolean;
}

export interface LayerWriteOptions {
  uid?: number;
  gid?: number;
  mtime?: Date;
  /** gzip level (default DEFAULT_GZIP_LEVEL). */
  level?: number;
  /** Also gets the blob's bytes as they are made (a streamed upload); if it fails, the blob is still written. */
  copyTo?: Writable;
}

/** Passes chunks on and copies each into `copy`, keeping to its pace; a copy that fails is dropped, never the pass. */
class CopyTo extends Transform {
  private dropped = false;

  constructor(private readonly copy: Writable) {
    super();
    // An error, or a close before this pass ended it (a destroyed upload): either way the copy is gone.
    const drop = (): void => {
      if (this.dropped) return;
      this.dropped = true;
      this.emit('dropped');
    };
    copy.on('error', drop);
    copy.on('close', () => {
      if (!copy.writableFinished) drop();
    });
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    if (this.dropped || this.copy.write(chunk)) return cb(null, chunk);
    const go = (): void => {
      this.copy.off('drain', go);
      this.off('dropped', go);
      cb(null, chunk);
    };
    this.copy.on('drain', go);
    this.on('dropped', go);
  }

  override _flush(cb: TransformCallback): void {
    if (!this.dropped) this.copy.end();
    cb();
  }
}

export interface LayerInfo {
  diffID: Digest;
  digest: Digest;
  /** Compressed size: the blob's size. */
  size: number;
  uncompressedSize: number;
  mediaType: string;
}

function byteOrder(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

/** The parents of an in-image path, outermost first: `a/b/c` → `a`, `a/b`. */
export function parentPaths(path: string): string[] {
  const parts = path.split('/').filter(Boolean);
  return parts.slice(0, -1).map((_, i) => parts.slice(0, i + 1).join('/'));
}

/** A tree's root: a trusted path, or a directory inside a confined root (reached without following any link). */
export type TreeRoot = string | { dir: ConfinedDir; rel: string };

function openTreeRoot(root: TreeRoot): { fd: number; display: string } {
  if (typeof root !== 'string') return { fd: root.dir.openDir(root.rel), display: root.dir.pathOf(root.rel) };
  try {
    return { fd: openDirNoFollow(root), display: root };
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new StrataError(code === 'ENOENT' ? `${root}: no such directory` : `${root}: not a directory`, 1, { cause: err });
  }
}

/**
 * Walks a directory depth-first with each directory's names in byte order, so the entry order depends only on the
 * names. Hard links among the tree's files become tar hard links to the first path seen. Each directory is entered
 * through a descriptor opened with O_NOFOLLOW and everything in it is named relative to that descriptor, so a tree
 * that untrusted code wrote can only ever yield its own entries: a link is an entry, never a way out. Metadata calls
 * are synchronous: they are microseconds each from the inode cache, where a thread-pool round trip per file costs
 * more than the call and competes with compression for the pool.
 */
export async function* treeEntries(root: TreeRoot, options: TreeOptions = {}): AsyncGenerator<LayerEntry> {
  const prefix = (options.prefix ?? '').replace(/^\/+|\/+$/g, '');
  if (prefix && options.parentDirs !== false) {
    for (const p of parentPaths(prefix)) yield { type: 'directory', path: p, mode: options.parentMode ?? 0o755 };
  }
  const { fd: rootFd, display } = openTreeRoot(root);
  const seenInodes = new Map<string, string>();

  function* walk(dirFd: number, rel: string): Generator<LayerEntry> {
    const names = readdirSync(at(dirFd)).sort(byteOrder);
    for (const name of names) {
      const abs = at(dirFd, name);
      const relPath = rel ? `${rel}/${name}` : name;
      const st = lstatSync(abs);
      if (options.include && !options.include(relPath, st)) continue;
      const path = prefix ? `${prefix}/${relPath}` : relPath;
      const mode = st.mode & 0o7777;
      const own = options.owners ? { uid: st.uid, gid: st.gid } : {};
      if (st.isDirectory()) {
        let child: number;
        try {
          child = openDirAt(dirFd, name);
        } catch (err) {
          throw new StrataError(`${display}/${relPath} changed while being read (${(err as NodeJS.ErrnoException).code ?? 'gone'}); refused`, 1, { cause: err });
        }
        try {
          yield { type: 'directory', path, mode, ...own };
          yield* walk(child, relPath);
        } finally {
          closeSync(child);
        }
      } else if (st.isSymbolicLink()) {
        yield { type: 'symlink', path, target: readlinkSync(abs), ...own };
      } else if (st.isFile()) {
        if (st.nlink > 1) {
          const key = `${st.dev}:${st.ino}`;
          const first = seenInodes.get(key);
          if (first !== undefined) {
            yield { type: 'link', path, target: first, ...own };
            continue;
          }
          seenInodes.set(key, path);
        }
        // Read while this directory's descriptor is open: the tar writer consumes each entry before the next.
        yield { type: 'file', path, mode, size: st.size, source: abs, display: `${display}/${relPath}`, ...own };
      }
      // Sockets, FIFOs and device nodes have no place in an image layer made from a tree; they are left out.
    }
  }
  try {
    if (prefix) yield { type: 'directory', path: prefix, mode: fstatSync(rootFd).mode & 0o7777 };
    yield* walk(rootFd, '');
  } finally {
    closeSync(rootFd);
  }
}

/** The header fields every layer writer uses: the caller's owner (default root) and the normalised time. */
function tarFields(options: LayerWriteOptions): TarHeaderFields {
  return { mtime: options.mtime ?? NORMALISED_MTIME, uid: options.uid ?? 0, gid: options.gid ?? 0 };
}

/** The uncompressed tar `writeLayer` would compress for these entries and options: its bytes hash to the diffID. */
export function layerTar(entries: AsyncIterable<LayerEntry>, options: LayerWriteOptions = {}): Readable {
  return Readable.from(tarStream(entries, tarFields(options)), { objectMode: false });
}

/**
 * Writes entries as a reproducible tar, gzips it, and reports diffID, digest and sizes — all in one pass over the
 * data. Owners are the caller's uid/gid with empty names; every mtime is the same.
 */
export async function writeLayer(entries: AsyncIterable<LayerEntry>, out: Writable, options: LayerWriteOptions = {}): Promise<LayerInfo> {
  const gzip = new ParallelGzip(options.level ?? DEFAULT_GZIP_LEVEL);
  const blob = new DigestStream();
  const written = options.copyTo ? pipeline(gzip, blob, new CopyTo(options.copyTo), out) : pipeline(gzip, blob, out);
  // Awaited below; until then a failed destination shows as the next feed failing.
  written.catch(() => undefined);
  // The tar is hashed and handed to gzip here, chunk by chunk, rather than through streams that would each hold
  // chunks: gzip copies a chunk before the next is read, so every file is read through one buffer.
  const diff = createHash('sha256');
  let uncompressed = 0;
  try {
    for await (const chunk of tarStream(entries, tarFields(options), Buffer.allocUnsafe(READ_BUFFER))) {
      diff.update(chunk);
      uncompressed += chunk.length;
      await gzip.feed(chunk);
    }
    gzip.end();
  } catch (err) {
    gzip.destroy(err as Error);
    await written.catch(() => undefined);
    throw err;
  }
  await written;
  return { diffID: `sha256:${diff.digest('hex')}`, digest: blob.digest, size: blob.size, uncompressedSize: uncompressed, mediaType: MediaType.OciLayerGzip };
}

/**
 * The diffID entries would have as a layer, from the tar stream alone: no gzip, nothing written. For a layer that is
 * probably unchanged, this decides reuse at the cost of a read, where making the blob would also pay for compression.
 */
export async function layerDiffID(entries: AsyncIterable<LayerEntry>, options: LayerWriteOptions = {}): Promise<Digest> {
  const diff = createHash('sha256');
  for await (const chunk of tarStream(entries, tarFields(options), Buffer.allocUnsafe(READ_BUFFER))) diff.update(chunk);
  return `sha256:${diff.digest('hex')}`;
}

/** Gzips an existing tar stream as a layer blob, learning its diffID and digest in the same pass. */
export async function compressLayer(tarBytes: Readable, out: Writable, level = DEFAULT_GZIP_LEVEL, copyTo?: Writable): Promise<LayerInfo> {
  const diff = new DigestStream();
  const blob = new DigestStream();
  if (copyTo) await pipeline(tarBytes, diff, new ParallelGzip(level), blob, new CopyTo(copyTo), out);
  else await pipeline(tarBytes, diff, new ParallelGzip(level), blob, out);
  return { diffID: diff.digest, digest: blob.digest, size: blob.size, uncompressedSize: diff.size, mediaType: MediaType.OciLayerGzip };
}

/** Writes entries as an uncompressed tar file (the form caches keep), atomically; returns the diffID. */
export async function writeTarFile(entries: AsyncIterable<LayerEntry>, dest: string, options: LayerWriteOptions = {}): Promise<Digest> {
  const tmp = join(dirname(dest), `.tmp-${process.pid}-${Math.random().toString(36).slice(2)}-${posix.basename(dest)}`);
  const diff = new DigestStream();
  try {
    await pipeline(layerTar(entries, options), diff, createWriteStream(tmp));
    await rename(tmp, dest);
    return diff.digest;
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}

/**
 * Writes a layer to `dest` atomically: the blob appears under its final name only when complete.
 */
export async function writeLayerFile(entries: AsyncIterable<LayerEntry>, dest: string, options: LayerWriteOptions = {}): Promise<LayerInfo> {
  const tmp = join(dirname(dest), `.tmp-${process.pid}-${Math.random().toString(36).slice(2)}-${posix.basename(dest)}`);
  try {
    const info = await writeLayer(entries, createWriteStream(tmp), options);
    await rename(tmp, dest);
    return info;
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}
