import { createHash } from 'node:crypto';
import {
  chmodSync,
  closeSync,
  constants as fsc,
  fchmodSync,
  fchownSync,
  futimesSync,
  lchownSync,
  linkSync,
  lstatSync,
  lutimesSync,
  mkdirSync,
  openSync,
  readdirSync,
  symlinkSync,
  utimesSync,
  writeSync,
  type Stats,
} from 'node:fs';
import { rm } from 'node:fs/promises';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import tar from 'tar-stream';
import { at } from './confined.js';
import { FileBatcher, writeFileJob } from './filewriter.js';
import type { Digest } from './digest.js';
import { StrataError } from './errors.js';
import { extractLimits, LIMIT_VARS, type ExtractLimits } from './layerlimits.js';

export interface ExtractOptions {
  /** Apply the archive's uid/gid (default: only when running as root). */
  chown?: boolean;
  /** Shown in errors, e.g. the layer digest. */
  label?: string;
  /**
   * Leave directories that already exist as they are (owner, mode, times). For restoring into a live filesystem,
   * where a tar's parent entries must not re-mode /tmp; image unpacking wants the layer's modes instead.
   */
  keepExistingDirs?: boolean;
  /**
   * Apply OCI whiteouts (default true: image layers have them). Off, any whiteout is refused: caches, SBOM layers
   * and buildpacks never hold one, so one there can only be an attempt to delete something.
   */
  whiteouts?: boolean;
  /**
   * Keep whiteouts as empty marker files instead of applying them (they are still checked), for a layer unpacked on
   * its own and laid over others later (`overlay.ts`).
   */
  whiteoutMarkers?: boolean;
  /** Symbolic and hard links allowed (default true); SBOM layers hold only files. */
  links?: boolean;
  /**
   * The layer holds one tree at this in-image path (e.g. `layers/my_bp/node`): its parent entries are skipped, its
   * contents land in `target`, and any entry elsewhere is refused — so a cache layer can fill only its own dir.
   */
  strip?: string;
  /** The layer's diffID: the uncompressed stream must hash to it, or the extraction fails. */
  diffID?: Digest;
  /** Caps on size, expansion and entry count (default: `extractLimits()` from the environment). */
  limits?: ExtractLimits;
  /** Small files written on this thread before the rest go to the file worker (tests set 0 to send every one). */
  directFiles?: number;
}

export interface ExtractResult {
  /** Dirs made only because an entry needed a parent (no entry of their own): their mode and owner are not the layer's. */
  implicitDirs: string[];
}

export const WHITEOUT = '.wh.';
const SMALL_FILE = 256 << 10;
/** Small files written on this thread before the worker is worth starting. */
const DIRECT_FILES = 256;
/** Thrown by `ensureParents` when a queued file must be written before a parent can be checked. */
const DRAIN = Symbol('drain');
export const OPAQUE = '.wh..wh..opq';

/**
 * Normalises an entry name to its path components, refusing anything that could leave the target: absolute names
 * and `..` components. `./` prefixes and `.` components are dropped.
 */
export function safeComponents(name: string, what: string): string[] {
  if (name.includes('\0')) throw new StrataError(`${what}: entry name contains a NUL byte`);
  if (name.startsWith('/')) throw new StrataError(`${what}: absolute path "${name}" refused`);
  const parts = name.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.includes('..')) throw new StrataError(`${what}: path "${name}" escapes the target with ".."`);
  return parts;
}

/** Gunzips when the stream starts with the gzip magic, so callers need not trust a media type. */
export function decompressIfGzip(input: Readable): Readable {
  return Readable.from(
    (async function* () {
      const it = input[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
      const first = await it.next();
      if (first.done) return;
      const head = first.value;
      const all = async function* (): AsyncGenerator<Buffer> {
        yield head;
        for (let n = await it.next(); !n.done; n = await it.next()) yield n.value;
      };
      if (head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b) {
        const gunzip = createGunzip({ chunkSize: 256 << 10 });
        pipeline(Readable.from(all(), { objectMode: false }), gunzip).catch((e: Error) => gunzip.destroy(e));
        yield* gunzip as AsyncIterable<Buffer>;
      } else {
        yield* all();
      }
    })(),
    { objectMode: false },
  );
}

/** lstat, or undefined when nothing is there (or it cannot be seen). */
export function lstatOrUndefined(path: string): Stats | undefined {
  try {
    return lstatSync(path);
  } catch {
    return undefined;
  }
}

function writeAllSync(fd: number, data: Buffer): void {
  let off = 0;
  while (off < data.length) off += writeSync(fd, data, off, data.length - off);
}

/** Where an entry lands relative to a `strip` prefix. */
type Placement = { kind: 'parent' } | { kind: 'root' } | { kind: 'inside'; parts: string[] } | { kind: 'outside' };

function place(parts: string[], strip: string[]): Placement {
  const n = Math.min(parts.length, strip.length);
  for (let i = 0; i < n; i++) if (parts[i] !== strip[i]) return { kind: 'outside' };
  if (parts.length < strip.length) return { kind: 'parent' };
  if (parts.length === strip.length) return { kind: 'root' };
  return { kind: 'inside', parts: parts.slice(strip.length) };
}

/**
 * Extracts an (optionally gzipped) layer tar onto `target`, applying OCI whiteouts. Nothing is ever written outside
 * `target`: absolute names, `..`, paths through symlinks, hard links leaving the tree, device nodes and whiteouts of
 * `.`, `..` or the whole root are refused. Every path is resolved from a descriptor of `target` opened once, so the
 * target cannot be swapped for a link midway. The stream is hashed (against `diffID`) and measured (against the
 * limits) as it passes, so a bomb stops at its cap rather than at a full disk.
 */
export async function extractLayer(input: Readable, target: string, options: ExtractOptions = {}): Promise<ExtractResult> {
  const label = options.label ?? 'layer';
  const chown = options.chown ?? (typeof process.getuid === 'function' && process.getuid() === 0);
  const whiteouts = options.whiteouts ?? true;
  const links = options.links ?? true;
  const strip = options.strip ? safeComponents(options.strip.replace(/^\/+/, ''), `${label}: strip prefix`) : [];
  const limits = options.limits ?? extractLimits();
  let rootFd: number;
  try {
    rootFd = openSync(target, fsc.O_RDONLY | fsc.O_DIRECTORY | fsc.O_NOFOLLOW);
  } catch (err) {
    throw new StrataError(`${label}: cannot extract into ${target}: ${(err as NodeJS.ErrnoException).code === 'ELOOP' ? 'it is a symbolic link' : (err as NodeJS.ErrnoException).code ?? (err as Error).message}`, 1, { cause: err });
  }
  const base = at(rootFd).slice(0, -2);
  const pathOf = (parts: string[]): string => (parts.length ? `${base}/${parts.join('/')}` : `${base}/.`);

  const touched = new Set<string>();
  const files = new FileBatcher();
  let smallFiles = 0;
  const dirTimes: { path: string; mtime: Date }[] = [];
  const extract = tar.extract();

  let compressed = 0;
  let expanded = 0;
  let entries = 0;
  const hash = createHash('sha256');
  const countIn = new Transform({
    transform(c: Buffer, _e, done) {
      compressed += c.length;
      done(null, c);
    },
  });
  pipeline(input, countIn).catch((e: Error) => countIn.destroy(e));
  const guard = new Transform({
    transform(c: Buffer, _e, done) {
      expanded += c.length;
      if (options.diffID) hash.update(c);
      if (expanded > limits.maxBytes) {
        done(new StrataError(`${label}: expands to more than ${limits.maxBytes} bytes (${LIMIT_VARS.maxBytes}); refused`));
      } else if (expanded > limits.ratioFloor && expanded > limits.maxRatio * Math.max(compressed, 1)) {
        done(new StrataError(`${label}: expands more than ${limits.maxRatio}× (${compressed} compressed bytes gave ${expanded}; a compression bomb?); refused (${LIMIT_VARS.maxRatio})`));
      } else done(null, c);
    },
  });
  const feeding = pipeline(decompressIfGzip(countIn), guard, extract);
  // A broken input (truncated gzip, dropped connection) must also fail the entry being written, or the write
  // waits forever for bytes that will not come. The entry is destroyed with the error rather than raced against a
  // promise of it: a race per read would keep every chunk it delivered alive until the extraction ends.
  let current: { destroy(err?: Error): void } | undefined;
  feeding.catch((err: Error) => current?.destroy(err));

  // Dirs this extraction has already checked (or made) are real directories; an entry that puts anything else at
  // such a path, or a whiteout that removes it, takes it and everything below it out of this set first.
  const knownDirs = new Set<string>();
  // Dirs this extraction made itself: nothing is in them but what it put there (`touched`), so an entry there needs no
  // lstat to find what it replaces. The target counts when it starts empty.
  const freshDirs = new Set<string>();
  if (readdirSync(pathOf([])).length === 0) freshDirs.add('');
  const implicitDirs = new Set<string>();
  // Every dir in these sets has its parents in `knownDirs`, and forgetting one forgets all below it: so a path that
  // is in none of them has nothing below it in any, and the common case (a new file) costs no scan.
  const forget = (rel: string): void => {
    if (!knownDirs.has(rel) && !freshDirs.has(rel) && !implicitDirs.has(rel)) return;
    for (const set of [knownDirs, freshDirs, implicitDirs]) for (const d of set) if (d === rel || d.startsWith(`${rel}/`)) set.delete(d);
  };

  /**
   * Makes sure every parent of `parts` is a real directory inside target, creating missing ones. Metadata calls are
   * synchronous: each is microseconds from the inode cache, where a thread-pool round trip costs more than the call.
   */
  const ensureParents = (parts: string[], name: string): string => {
    for (let i = 0; i < parts.length - 1; i++) {
      const rel = parts.slice(0, i + 1).join('/');
      if (knownDirs.has(rel)) continue;
      const cur = pathOf(parts.slice(0, i + 1));
      const parent = parts.slice(0, i).join('/');
      if (files.pending(rel)) throw DRAIN;
      const st = freshDirs.has(parent) && !touched.has(rel) ? undefined : lstatOrUndefined(cur);
      if (!st) {
        mkdirSync(cur, { mode: 0o755 });
        implicitDirs.add(rel);
        touched.add(rel);
        knownDirs.add(rel);
        freshDirs.add(rel);
      } else if (st.isDirectory()) {
        knownDirs.add(rel);
      } else if (st.isSymbolicLink()) {
        throw new StrataError(`${label}: "${name}" goes through the symlink "${rel}"; refused`);
      } else {
        throw new StrataError(`${label}: "${name}" needs "${rel}" to be a directory, but it is a file`);
      }
    }
    return pathOf(parts);
  };

  /** `ensureParents`, after the worker has written a queued file that stands where a parent must be. */
  const parentsOf = async (parts: string[], name: string): Promise<string> => {
    try {
      return ensureParents(parts, name);
    } catch (e) {
      if (e !== DRAIN) throw e;
      await files.drain();
      return ensureParents(parts, name);
    }
  };

  /** Removes what is at `path` (keeping a directory when asked), unless the entry lands in a fresh dir. */
  const clear = async (parts: string[], path: string, keepDir: boolean): Promise<void> => {
    const rel = parts.join('/');
    if (freshDirs.has(parts.slice(0, -1).join('/')) && !touched.has(rel)) return;
    if (files.pending(rel)) await files.drain();
    const st = lstatOrUndefined(path);
    if (!st) return;
    if (keepDir && st.isDirectory()) return;
    await rm(path, { recursive: true, force: true });
  };

  /** The entry's components in the target, or undefined for a parent of the strip prefix (skipped). */
  const local = (name: string, isDir: boolean): string[] | undefined => {
    const parts = safeComponents(name, label);
    if (!strip.length) return parts;
    const p = place(parts, strip);
    if (p.kind === 'inside') return p.parts;
    if (p.kind === 'root') return [];
    if (p.kind === 'parent' && isDir) return undefined;
    throw new StrataError(`${label}: "${name}" is outside /${strip.join('/')}, the only tree this layer may hold; refused`);
  };

  /** An entry's data: read whole for small files, which are then written with one call. */
  const readAll = async (entry: Readable): Promise<Buffer> => {
    const chunks: Buffer[] = [];
    // Plain listeners: a stream pipeline per small file costs more than the file's own write.
    const read = new Promise<void>((resolve, reject) => {
      entry.on('data', (c: Buffer) => chunks.push(c));
      entry.once('end', resolve);
      entry.once('error', reject);
    });
    await read;
    return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
  };

  /** A whiteout must name one entry (not `.`, `..` or nothing), and an opaque one not the whole root. */
  const checkWhiteout = (parts: string[], name: string): void => {
    const base = parts[parts.length - 1]!;
    if (base === OPAQUE) {
      if (parts.length === 1) throw new StrataError(`${label}: "${name}" is an opaque whiteout of the whole root (it would hide every lower layer); refused`);
      return;
    }
    const gone = base.slice(WHITEOUT.length);
    if (gone === '' || gone === '.' || gone === '..' || gone.startsWith(WHITEOUT)) throw new StrataError(`${label}: whiteout "${name}" names "${gone}", which is not an entry; refused`);
  };

  const applyWhiteout = async (parts: string[], name: string): Promise<void> => {
    checkWhiteout(parts, name);
    await files.drain();
    const base = parts[parts.length - 1]!;
    const parentParts = parts.slice(0, -1);
    const parentRel = parentParts.join('/');
    if (base === OPAQUE) {
      ensureParents(parts, name);
      for (const child of readdirSync(pathOf(parentParts))) {
        const childRel = `${parentRel}/${child}`;
        if (!touched.has(childRel)) {
          forget(childRel);
          await rm(pathOf([...parentParts, child]), { recursive: true, force: true });
        }
      }
      return;
    }
    const gone = base.slice(WHITEOUT.length);
    ensureParents(parts, name);
    forget(parentRel ? `${parentRel}/${gone}` : gone);
    await rm(pathOf([...parentParts, gone]), { recursive: true, force: true });
  };

  /** One entry, applied before the parser is allowed to the next (so entries land in order). */
  const handle = async (h: tar.Header, entry: tar.ExtractEvents['entry'][1]): Promise<void> => {
    if (++entries > limits.maxEntries) {
      entry.resume();
      throw new StrataError(`${label}: holds more than ${limits.maxEntries} entries (${LIMIT_VARS.maxEntries}); refused`);
    }
    const isDir = h.type === 'directory';
    const parts = local(h.name, isDir);
    if (parts === undefined) {
      entry.resume();
      return;
    }
    if (parts.length === 0) {
      entry.resume();
      if (!isDir) throw new StrataError(`${label}: "${h.name}" must be a directory; refused`);
      // The target itself: its mode and owner from the layer, unless it already existed and is kept.
      if (strip.length && !options.keepExistingDirs) {
        if (chown) fchownSync(rootFd, h.uid, h.gid);
        fchmodSync(rootFd, h.mode & 0o7777);
        dirTimes.push({ path: pathOf([]), mtime: h.mtime });
      }
      return;
    }
    const rel = parts.join('/');
    const name = parts[parts.length - 1]!;
    if (name.startsWith(WHITEOUT)) {
      entry.resume();
      if (!whiteouts) throw new StrataError(`${label}: whiteout "${h.name}" in a layer that cannot have any; refused`);
      if (options.whiteoutMarkers) {
        checkWhiteout(parts, h.name);
        const marker = await parentsOf(parts, h.name);
        touched.add(rel);
        closeSync(openSync(marker, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_TRUNC | fsc.O_NOFOLLOW, 0o600));
        return;
      }
      await applyWhiteout(parts, h.name);
      return;
    }
    const path = await parentsOf(parts, h.name);
    const mode = h.mode & 0o7777;
    switch (h.type) {
      case 'directory': {
        await clear(parts, path, true);
        touched.add(rel);
        let existed = false;
        try {
          mkdirSync(path, { mode: 0o700 });
          freshDirs.add(rel);
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
          existed = true;
        }
        entry.resume();
        knownDirs.add(rel);
        implicitDirs.delete(rel);
        if (existed && options.keepExistingDirs) break;
        if (chown) lchownSync(path, h.uid, h.gid);
        chmodSync(path, mode);
        dirTimes.push({ path, mtime: h.mtime });
        break;
      }
      case 'file':
      case 'contiguous-file': {
        await clear(parts, path, false);
        touched.add(rel);
        forget(rel);
        // O_EXCL|O_NOFOLLOW: never write through whatever might have appeared at this path.
        const flags = fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW;
        if ((h.size ?? 0) <= SMALL_FILE) {
          // Small files (most of an OS tree): the data in hand, then written whole. The first few here, at once;
          // past them (a tree worth a second core) on the worker, while this thread parses on.
          const data = await readAll(entry as unknown as Readable);
          const job = { path, mode, mtime: h.mtime.getTime() / 1000, ...(chown ? { uid: h.uid, gid: h.gid } : {}) };
          if (++smallFiles <= (options.directFiles ?? DIRECT_FILES)) writeFileJob({ ...job, start: 0, end: data.length }, data);
          else await files.add(rel, job, data);
        } else {
          // Large files chunk by chunk as the stream delivers them; a broken feed ends the wait, not the process.
          const fd = openSync(path, flags, 0o600);
          try {
            for await (const c of entry as AsyncIterable<Buffer>) writeAllSync(fd, c);
            if (chown) fchownSync(fd, h.uid, h.gid);
            fchmodSync(fd, mode);
            futimesSync(fd, h.mtime, h.mtime);
          } finally {
            closeSync(fd);
          }
        }
        break;
      }
      case 'symlink': {
        entry.resume();
        if (!links) throw new StrataError(`${label}: symbolic link "${h.name}" in a layer that holds only files; refused`);
        await clear(parts, path, false);
        touched.add(rel);
        forget(rel);
        symlinkSync(h.linkname ?? '', path);
        if (chown) lchownSync(path, h.uid, h.gid);
        try {
          lutimesSync(path, h.mtime, h.mtime);
        } catch {
          // Some filesystems cannot time a link; its time does not matter.
        }
        break;
      }
      case 'link': {
        entry.resume();
        if (!links) throw new StrataError(`${label}: hard link "${h.name}" in a layer that holds only files; refused`);
        const linkParts = local(h.linkname ?? '', false);
        if (!linkParts?.length) throw new StrataError(`${label}: hard link "${h.name}" points to "${h.linkname}", which is not a file of the layer`);
        const source = await parentsOf(linkParts, h.linkname ?? '');
        if (files.pending(linkParts.join('/'))) await files.drain();
        const st = lstatOrUndefined(source);
        if (!st) throw new StrataError(`${label}: hard link "${h.name}" points to "${h.linkname}", which is not in the layer`);
        if (st.isDirectory()) throw new StrataError(`${label}: hard link "${h.name}" points to a directory; refused`);
        await clear(parts, path, false);
        touched.add(rel);
        forget(rel);
        linkSync(source, path);
        break;
      }
      case 'character-device':
      case 'block-device':
        entry.resume();
        throw new StrataError(`${label}: device node "${h.name}" refused`);
      default:
        // FIFOs and unknown types carry no data an image needs.
        entry.resume();
    }
  };
  try {
    // The parser's events rather than its async iterator: the iterator costs a promise chain per entry.
    const handled = new Promise<never>((_, reject) => {
      extract.on('entry', (h, entry, next) => {
        current = entry;
        // Its readers see an error through their own means; this keeps one after the extraction gave up from
        // becoming an uncaught exception.
        entry.on('error', () => undefined);
        handle(h, entry).then(() => next(), reject);
      });
    });
    handled.catch(() => undefined);
    await Promise.race([feeding, handled]);
    await files.drain();
    if (options.diffID) {
      const got = `sha256:${hash.digest('hex')}`;
      if (got !== options.diffID) throw new StrataError(`${label}: content hashes to ${got}, not its diffID ${options.diffID} (corrupt or substituted); refused`);
    }
    // Directory times last: creating their children changed them.
    for (const d of dirTimes.reverse()) {
      try {
        utimesSync(d.path, d.mtime, d.mtime);
      } catch {
        // A directory removed by a later whiteout has no time to set.
      }
    }
    return { implicitDirs: [...implicitDirs] };
  } catch (err) {
    extract.destroy();
    countIn.destroy();
    if (err instanceof StrataError) throw err;
    throw new StrataError(`${label}: cannot extract: ${(err as Error).message.split(base).join(target)}`, 1, { cause: err });
  } finally {
    // The worker's paths go through the root descriptor: it must be idle before that closes.
    await files.quiesce();
    closeSync(rootFd);
  }
}
