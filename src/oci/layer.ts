import { createReadStream, createWriteStream, type Stats } from 'node:fs';
import { lstat, opendir, readlink, rename, rm } from 'node:fs/promises';
import { dirname, join, posix } from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { Writable } from 'node:stream';
import tar, { type Header } from 'tar-stream';
import { DigestStream, type Digest } from './digest.js';
import { StrataError } from './errors.js';
import { MediaType } from './mediatype.js';
import { ParallelGzip } from './pgzip.js';

/** 1980-01-01T00:00:01Z: the earliest time every tar and zip reader agrees on, as the reference tools use. */
export const NORMALISED_MTIME = new Date(Date.UTC(1980, 0, 1, 0, 0, 1));

/** The layer time: `SOURCE_DATE_EPOCH` when set (reproducible-builds.org), else the normalised constant. */
export function layerTime(env: NodeJS.ProcessEnv = process.env): Date {
  const sde = env.SOURCE_DATE_EPOCH;
  if (sde === undefined || sde === '') return NORMALISED_MTIME;
  if (!/^\d+$/.test(sde)) throw new StrataError(`SOURCE_DATE_EPOCH="${sde}" is not a whole number of seconds since 1970`);
  return new Date(Number(sde) * 1000);
}

/** One entry of a layer, already placed at its in-image path (relative, no leading slash). */
export type LayerEntry =
  | { type: 'directory'; path: string; mode: number; uid?: number; gid?: number }
  | { type: 'file'; path: string; mode: number; size: number; source: string | Buffer; uid?: number; gid?: number }
  | { type: 'symlink'; path: string; target: string; uid?: number; gid?: number }
  | { type: 'link'; path: string; target: string; uid?: number; gid?: number };

export interface TreeOptions {
  /** In-image directory the tree lands in, e.g. `layers/my_bp/node`; its parents get entries too. */
  prefix?: string;
  /** Decides per path (relative to the tree root, `/`-separated) whether to include it. */
  include?: (relPath: string, st: Stats) => boolean;
  /** Entries for each parent of `prefix` (default true), so the layer stands alone when extracted. */
  parentDirs?: boolean;
  /** Mode for the synthesised parent directories. */
  parentMode?: number;
}

export interface LayerWriteOptions {
  uid?: number;
  gid?: number;
  mtime?: Date;
  /** gzip level; 6 matches gzip's and pigz's default. */
  level?: number;
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

/**
 * Walks a directory depth-first with each directory's names in byte order, so the entry order depends only on the
 * names. Hard links among the tree's files become tar hard links to the first path seen.
 */
export async function* treeEntries(root: string, options: TreeOptions = {}): AsyncGenerator<LayerEntry> {
  const prefix = (options.prefix ?? '').replace(/^\/+|\/+$/g, '');
  if (prefix && options.parentDirs !== false) {
    for (const p of [...parentPaths(prefix)]) yield { type: 'directory', path: p, mode: options.parentMode ?? 0o755 };
  }
  const rootStat = await lstat(root).catch(() => undefined);
  if (!rootStat?.isDirectory()) throw new StrataError(`${root}: not a directory`);
  if (prefix) yield { type: 'directory', path: prefix, mode: rootStat.mode & 0o7777 };
  const seenInodes = new Map<string, string>();

  async function* walk(dir: string, rel: string): AsyncGenerator<LayerEntry> {
    const names: string[] = [];
    for await (const d of await opendir(dir)) names.push(d.name);
    names.sort(byteOrder);
    for (const name of names) {
      const abs = join(dir, name);
      const relPath = rel ? `${rel}/${name}` : name;
      const st = await lstat(abs);
      if (options.include && !options.include(relPath, st)) continue;
      const path = prefix ? `${prefix}/${relPath}` : relPath;
      const mode = st.mode & 0o7777;
      if (st.isDirectory()) {
        yield { type: 'directory', path, mode };
        yield* walk(abs, relPath);
      } else if (st.isSymbolicLink()) {
        yield { type: 'symlink', path, target: await readlink(abs) };
      } else if (st.isFile()) {
        if (st.nlink > 1) {
          const key = `${st.dev}:${st.ino}`;
          const first = seenInodes.get(key);
          if (first !== undefined) {
            yield { type: 'link', path, target: first };
            continue;
          }
          seenInodes.set(key, path);
        }
        yield { type: 'file', path, mode, size: st.size, source: abs };
      }
      // Sockets, FIFOs and device nodes have no place in an image layer made from a tree; they are left out.
    }
  }
  yield* walk(root, '');
}

/**
 * Writes entries as a reproducible tar, gzips it, and reports diffID, digest and sizes — all in one pass over the
 * data. Owners are the caller's uid/gid with empty names; every mtime is the same.
 */
export async function writeLayer(entries: AsyncIterable<LayerEntry>, out: Writable, options: LayerWriteOptions = {}): Promise<LayerInfo> {
  const mtime = options.mtime ?? NORMALISED_MTIME;
  const pack = tar.pack();
  const diff = new DigestStream();
  const blob = new DigestStream();
  const flow = pipeline(pack, diff, new ParallelGzip(options.level ?? 6), blob, out);

  const feed = async (): Promise<void> => {
    for await (const e of entries) {
      const base = {
        name: e.path,
        mtime,
        uid: e.uid ?? options.uid ?? 0,
        gid: e.gid ?? options.gid ?? 0,
        uname: '',
        gname: '',
      };
      if (e.type === 'directory') {
        await addEntry(pack, { ...base, type: 'directory', mode: e.mode });
      } else if (e.type === 'symlink') {
        await addEntry(pack, { ...base, type: 'symlink', linkname: e.target, mode: 0o777 });
      } else if (e.type === 'link') {
        await addEntry(pack, { ...base, type: 'link', linkname: e.target, mode: 0o644 });
      } else if (Buffer.isBuffer(e.source)) {
        await addEntry(pack, { ...base, type: 'file', mode: e.mode, size: e.source.length }, e.source);
      } else {
        const source = e.source;
        await new Promise<void>((resolve, reject) => {
          const sink = pack.entry({ ...base, type: 'file', mode: e.mode, size: e.size }, (err) => (err ? reject(rewordSizeError(err, source)) : resolve()));
          pipeline(createReadStream(source, { highWaterMark: 1 << 20 }), sink).catch(reject);
        });
      }
    }
    pack.finalize();
  };
  const fed = feed().catch((err: unknown) => {
    pack.destroy(err instanceof Error ? err : new Error(String(err)));
    throw err;
  });
  await Promise.all([fed, flow]);
  return { diffID: diff.digest, digest: blob.digest, size: blob.size, uncompressedSize: diff.size, mediaType: MediaType.OciLayerGzip };
}

function addEntry(pack: tar.Pack, header: Partial<Header> & { name: string }, body?: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    const done = (err?: Error | null): void => (err ? reject(err) : resolve());
    if (body) pack.entry(header, body, done);
    else pack.entry(header, done);
  });
}

function rewordSizeError(err: Error, source: string): Error {
  return /size mismatch/i.test(err.message) ? new StrataError(`${source}: file changed size while being added to a layer`) : err;
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
