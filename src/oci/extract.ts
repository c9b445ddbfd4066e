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

/** Options with their defaults applied, as an extraction uses them. */
interface Settings {
  label: string;
  chown: boolean;
  whiteouts: boolean;
  whiteoutMarkers: boolean;
  links: boolean;
  keepExistingDirs: boolean;
  strip: string[];
  limits: ExtractLimits;
  directFiles: number;
}

/**
 * The layer stream on its way to the tar parser: counted compressed and expanded, hashed for the diffID check, and
 * stopped at the size and ratio caps as it passes, so a bomb stops at its cap rather than at a full disk.
 */
function meteredTar(input: Readable, s: Settings, diffID: Digest | undefined) {
  let compressed = 0;
  let expanded = 0;
  const hash = createHash('sha256');
  const countIn = new Transform({
    transform(c: Buffer, _e, done) {
      compressed += c.length;
      done(null, c);
    },
  });
  pipeline(input, countIn).catch((e: Error) => countIn.destroy(e));
  const { limits, label } = s;
  const guard = new Transform({
    transform(c: Buffer, _e, done) {
      expanded += c.length;
      if (diffID) hash.update(c);
      if (expanded > limits.maxBytes) {
        done(new StrataError(`${label}: expands to more than ${limits.maxBytes} bytes (${LIMIT_VARS.maxBytes}); refused`));
      } else if (expanded > limits.ratioFloor && expanded > limits.maxRatio * Math.max(compressed, 1)) {
        done(new StrataError(`${label}: expands more than ${limits.maxRatio}× (${compressed} compressed bytes gave ${expanded}; a compression bomb?); refused (${LIMIT_VARS.maxRatio})`));
      } else done(null, c);
    },
  });
  const extract = tar.extract();
  const feeding = pipeline(decompressIfGzip(countIn), guard, extract);
  return {
    extract,
    feeding,
    stop(): void {
      extract.destroy();
      countIn.destroy();
    },
    /** After the whole stream: its hash must be the layer's diffID. */
    verify(): void {
      if (!diffID) return;
      const got = `sha256:${hash.digest('hex')}`;
      if (got !== diffID) throw new StrataError(`${label}: content hashes to ${got}, not its diffID ${diffID} (corrupt or substituted); refused`);
    },
  };
}

/**
 * One extraction onto a target opened once as `rootFd`: every entry checked (its place, the caps, whiteouts), then
 * written (directories, files — small ones in batches on the file worker — and links), never through a link and never
 * outside the target. Entries are applied in order, each before the parser moves on.
 */
class Extraction {
  private readonly base: string;
  private readonly touched = new Set<string>();
  private readonly files = new FileBatcher();
  private smallFiles = 0;
  private entries = 0;
  private readonly dirTimes: { path: string; mtime: Date }[] = [];
  // Dirs this extraction has already checked (or made) are real directories; an entry that puts anything else at
  // such a path, or a whiteout that removes it, takes it and everything below it out of this set first.
  private readonly knownDirs = new Set<string>();
  // Dirs this extraction made itself: nothing is in them but what it put there (`touched`), so an entry there needs no
  // lstat to find what it replaces. The target counts when it starts empty.
  private readonly freshDirs = new Set<string>();
  private readonly implicitDirs = new Set<string>();

  constructor(
    private readonly rootFd: number,
    private readonly s: Settings,
  ) {
    this.base = at(rootFd).slice(0, -2);
    if (readdirSync(this.pathOf([])).length === 0) this.freshDirs.add('');
  }

  get made(): string[] {
    return [...this.implicitDirs];
  }

  /** How a message names a path inside the target, mapped back from the descriptor path. */
  shown(message: string, target: string): string {
    return message.split(this.base).join(target);
  }

  private pathOf(parts: string[]): string {
    return parts.length ? `${this.base}/${parts.join('/')}` : `${this.base}/.`;
  }

  // ---- entry checks ----

  /** Counts an entry against the cap. */
  private count(entry: Readable): void {
    if (++this.entries > this.s.limits.maxEntries) {
      entry.resume();
      throw new StrataError(`${this.s.label}: holds more than ${this.s.limits.maxEntries} entries (${LIMIT_VARS.maxEntries}); refused`);
    }
  }

  /** The entry's components in the target, or undefined for a parent of the strip prefix (skipped). */
  private local(name: string, isDir: boolean): string[] | undefined {
    const parts = safeComponents(name, this.s.label);
    const { strip } = this.s;
    if (!strip.length) return parts;
    const p = place(parts, strip);
    if (p.kind === 'inside') return p.parts;
    if (p.kind === 'root') return [];
    if (p.kind === 'parent' && isDir) return undefined;
    throw new StrataError(`${this.s.label}: "${name}" is outside /${strip.join('/')}, the only tree this layer may hold; refused`);
  }

  /** A whiteout must name one entry (not `.`, `..` or nothing), and an opaque one not the whole root. */
  private checkWhiteout(parts: string[], name: string): void {
    const base = parts[parts.length - 1]!;
    if (base === OPAQUE) {
      if (parts.length === 1) throw new StrataError(`${this.s.label}: "${name}" is an opaque whiteout of the whole root (it would hide every lower layer); refused`);
      return;
    }
    const gone = base.slice(WHITEOUT.length);
    if (gone === '' || gone === '.' || gone === '..' || gone.startsWith(WHITEOUT)) throw new StrataError(`${this.s.label}: whiteout "${name}" names "${gone}", which is not an entry; refused`);
  }

  // ---- the tree as this extraction knows it ----

  // Every dir in these sets has its parents in `knownDirs`, and forgetting one forgets all below it: so a path that
  // is in none of them has nothing below it in any, and the common case (a new file) costs no scan.
  private forget(rel: string): void {
    if (!this.knownDirs.has(rel) && !this.freshDirs.has(rel) && !this.implicitDirs.has(rel)) return;
    for (const set of [this.knownDirs, this.freshDirs, this.implicitDirs]) for (const d of set) if (d === rel || d.startsWith(`${rel}/`)) set.delete(d);
  }

  /**
   * Makes sure every parent of `parts` is a real directory inside target, creating missing ones. Metadata calls are
   * synchronous: each is microseconds from the inode cache, where a thread-pool round trip costs more than the call.
   */
  private ensureParents(parts: string[], name: string): string {
    for (let i = 0; i < parts.length - 1; i++) {
      const rel = parts.slice(0, i + 1).join('/');
      if (this.knownDirs.has(rel)) continue;
      const cur = this.pathOf(parts.slice(0, i + 1));
      const parent = parts.slice(0, i).join('/');
      if (this.files.pending(rel)) throw DRAIN;
      const st = this.freshDirs.has(parent) && !this.touched.has(rel) ? undefined : lstatOrUndefined(cur);
      if (!st) {
        mkdirSync(cur, { mode: 0o755 });
        this.implicitDirs.add(rel);
        this.touched.add(rel);
        this.knownDirs.add(rel);
        this.freshDirs.add(rel);
      } else if (st.isDirectory()) {
        this.knownDirs.add(rel);
      } else if (st.isSymbolicLink()) {
        throw new StrataError(`${this.s.label}: "${name}" goes through the symlink "${rel}"; refused`);
      } else {
        throw new StrataError(`${this.s.label}: "${name}" needs "${rel}" to be a directory, but it is a file`);
      }
    }
    return this.pathOf(parts);
  }

  /** `ensureParents`, after the worker has written a queued file that stands where a parent must be. */
  private async parentsOf(parts: string[], name: string): Promise<string> {
    try {
      return this.ensureParents(parts, name);
    } catch (e) {
      if (e !== DRAIN) throw e;
      await this.files.drain();
      return this.ensureParents(parts, name);
    }
  }

  /** Removes what is at `path` (keeping a directory when asked), unless the entry lands in a fresh dir. */
  private async clear(parts: string[], path: string, keepDir: boolean): Promise<void> {
    const rel = parts.join('/');
    if (this.freshDirs.has(parts.slice(0, -1).join('/')) && !this.touched.has(rel)) return;
    if (this.files.pending(rel)) await this.files.drain();
    const st = lstatOrUndefined(path);
    if (!st) return;
    if (keepDir && st.isDirectory()) return;
    await rm(path, { recursive: true, force: true });
  }

  /** A new entry stands at `rel`: what this extraction knew of the path before is void. */
  private takes(rel: string): void {
    this.touched.add(rel);
    this.forget(rel);
  }

  // ---- whiteouts ----

  private async whiteout(parts: string[], name: string): Promise<void> {
    if (!this.s.whiteouts) throw new StrataError(`${this.s.label}: whiteout "${name}" in a layer that cannot have any; refused`);
    if (this.s.whiteoutMarkers) {
      this.checkWhiteout(parts, name);
      const marker = await this.parentsOf(parts, name);
      this.touched.add(parts.join('/'));
      closeSync(openSync(marker, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_TRUNC | fsc.O_NOFOLLOW, 0o600));
      return;
    }
    this.checkWhiteout(parts, name);
    await this.files.drain();
    const base = parts[parts.length - 1]!;
    const parentParts = parts.slice(0, -1);
    const parentRel = parentParts.join('/');
    this.ensureParents(parts, name);
    if (base === OPAQUE) {
      for (const child of readdirSync(this.pathOf(parentParts))) {
        const childRel = `${parentRel}/${child}`;
        if (!this.touched.has(childRel)) {
          this.forget(childRel);
          await rm(this.pathOf([...parentParts, child]), { recursive: true, force: true });
        }
      }
      return;
    }
    const gone = base.slice(WHITEOUT.length);
    this.forget(parentRel ? `${parentRel}/${gone}` : gone);
    await rm(this.pathOf([...parentParts, gone]), { recursive: true, force: true });
  }

  // ---- writes ----

  /** The target itself: its mode and owner from the layer, unless it already existed and is kept. */
  private rootEntry(h: tar.Header): void {
    if (!this.s.strip.length || this.s.keepExistingDirs) return;
    if (this.s.chown) fchownSync(this.rootFd, h.uid, h.gid);
    fchmodSync(this.rootFd, h.mode & 0o7777);
    this.dirTimes.push({ path: this.pathOf([]), mtime: h.mtime });
  }

  private async directory(h: tar.Header, parts: string[], path: string): Promise<void> {
    const rel = parts.join('/');
    await this.clear(parts, path, true);
    this.touched.add(rel);
    let existed = false;
    try {
      mkdirSync(path, { mode: 0o700 });
      this.freshDirs.add(rel);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      existed = true;
    }
    this.knownDirs.add(rel);
    this.implicitDirs.delete(rel);
    if (existed && this.s.keepExistingDirs) return;
    if (this.s.chown) lchownSync(path, h.uid, h.gid);
    chmodSync(path, h.mode & 0o7777);
    this.dirTimes.push({ path, mtime: h.mtime });
  }

  private async file(h: tar.Header, parts: string[], path: string, entry: Readable): Promise<void> {
    const rel = parts.join('/');
    await this.clear(parts, path, false);
    this.takes(rel);
    const mode = h.mode & 0o7777;
    if ((h.size ?? 0) <= SMALL_FILE) {
      // Small files (most of an OS tree): the data in hand, then written whole. The first few here, at once; past
      // them (a tree worth a second core) in batches on the worker, while this thread parses on.
      const data = await readAll(entry);
      const job = { path, mode, mtime: h.mtime.getTime() / 1000, ...(this.s.chown ? { uid: h.uid, gid: h.gid } : {}) };
      if (++this.smallFiles <= this.s.directFiles) writeFileJob({ ...job, start: 0, end: data.length }, data);
      else await this.files.add(rel, job, data);
      return;
    }
    // Large files chunk by chunk as the stream delivers them; a broken feed ends the wait, not the process.
    // O_EXCL|O_NOFOLLOW: never write through whatever might have appeared at this path.
    const fd = openSync(path, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW, 0o600);
    try {
      for await (const c of entry as AsyncIterable<Buffer>) writeAllSync(fd, c);
      if (this.s.chown) fchownSync(fd, h.uid, h.gid);
      fchmodSync(fd, mode);
      futimesSync(fd, h.mtime, h.mtime);
    } finally {
      closeSync(fd);
    }
  }

  private async symlink(h: tar.Header, parts: string[], path: string): Promise<void> {
    if (!this.s.links) throw new StrataError(`${this.s.label}: symbolic link "${h.name}" in a layer that holds only files; refused`);
    await this.clear(parts, path, false);
    this.takes(parts.join('/'));
    symlinkSync(h.linkname ?? '', path);
    if (this.s.chown) lchownSync(path, h.uid, h.gid);
    try {
      lutimesSync(path, h.mtime, h.mtime);
    } catch {
      // Some filesystems cannot time a link; its time does not matter.
    }
  }

  private async hardLink(h: tar.Header, parts: string[], path: string): Promise<void> {
    const { label } = this.s;
    if (!this.s.links) throw new StrataError(`${label}: hard link "${h.name}" in a layer that holds only files; refused`);
    const linkParts = this.local(h.linkname ?? '', false);
    if (!linkParts?.length) throw new StrataError(`${label}: hard link "${h.name}" points to "${h.linkname}", which is not a file of the layer`);
    const source = await this.parentsOf(linkParts, h.linkname ?? '');
    if (this.files.pending(linkParts.join('/'))) await this.files.drain();
    const st = lstatOrUndefined(source);
    if (!st) throw new StrataError(`${label}: hard link "${h.name}" points to "${h.linkname}", which is not in the layer`);
    if (st.isDirectory()) throw new StrataError(`${label}: hard link "${h.name}" points to a directory; refused`);
    await this.clear(parts, path, false);
    this.takes(parts.join('/'));
    linkSync(source, path);
  }

  /** One entry, applied before the parser is allowed to the next (so entries land in order). */
  async handle(h: tar.Header, entry: Readable): Promise<void> {
    this.count(entry);
    const isDir = h.type === 'directory';
    const parts = this.local(h.name, isDir);
    if (parts === undefined) return void entry.resume();
    if (parts.length === 0) {
      entry.resume();
      if (!isDir) throw new StrataError(`${this.s.label}: "${h.name}" must be a directory; refused`);
      return this.rootEntry(h);
    }
    if (parts[parts.length - 1]!.startsWith(WHITEOUT)) {
      entry.resume();
      return this.whiteout(parts, h.name);
    }
    const path = await this.parentsOf(parts, h.name);
    switch (h.type) {
      case 'directory':
        await this.directory(h, parts, path);
        entry.resume();
        return;
      case 'file':
      case 'contiguous-file':
        return this.file(h, parts, path, entry);
      case 'symlink':
        entry.resume();
        return this.symlink(h, parts, path);
      case 'link':
        entry.resume();
        return this.hardLink(h, parts, path);
      case 'character-device':
      case 'block-device':
        entry.resume();
        throw new StrataError(`${this.s.label}: device node "${h.name}" refused`);
      default:
        // FIFOs and unknown types carry no data an image needs.
        entry.resume();
    }
  }

  /** Everything queued written. */
  async drained(): Promise<void> {
    await this.files.drain();
  }

  /** Directory times last: creating their children changed them. */
  setTimes(): void {
    for (const d of this.dirTimes.reverse()) {
      try {
        utimesSync(d.path, d.mtime, d.mtime);
      } catch {
        // A directory removed by a later whiteout has no time to set.
      }
    }
  }

  /** The worker's paths go through the root descriptor: it must be idle before that closes. */
  async quiesce(): Promise<void> {
    await this.files.quiesce();
  }
}

/** An entry's data: read whole for small files, which are then written with one call. */
async function readAll(entry: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  // Plain listeners: a stream pipeline per small file costs more than the file's own write.
  await new Promise<void>((resolve, reject) => {
    entry.on('data', (c: Buffer) => chunks.push(c));
    entry.once('end', resolve);
    entry.once('error', reject);
  });
  return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
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
  const settings: Settings = {
    label,
    chown: options.chown ?? (typeof process.getuid === 'function' && process.getuid() === 0),
    whiteouts: options.whiteouts ?? true,
    whiteoutMarkers: options.whiteoutMarkers ?? false,
    links: options.links ?? true,
    keepExistingDirs: options.keepExistingDirs ?? false,
    strip: options.strip ? safeComponents(options.strip.replace(/^\/+/, ''), `${label}: strip prefix`) : [],
    limits: options.limits ?? extractLimits(),
    directFiles: options.directFiles ?? DIRECT_FILES,
  };
  let rootFd: number;
  try {
    rootFd = openSync(target, fsc.O_RDONLY | fsc.O_DIRECTORY | fsc.O_NOFOLLOW);
  } catch (err) {
    throw new StrataError(`${label}: cannot extract into ${target}: ${(err as NodeJS.ErrnoException).code === 'ELOOP' ? 'it is a symbolic link' : (err as NodeJS.ErrnoException).code ?? (err as Error).message}`, 1, { cause: err });
  }
  const stream = meteredTar(input, settings, options.diffID);
  // A broken input (truncated gzip, dropped connection) must also fail the entry being written, or the write waits
  // forever for bytes that will not come. The entry is destroyed with the error rather than raced against a promise
  // of it: a race per read would keep every chunk it delivered alive until the extraction ends.
  let current: { destroy(err?: Error): void } | undefined;
  stream.feeding.catch((err: Error) => current?.destroy(err));
  const x = new Extraction(rootFd, settings);
  try {
    // The parser's events rather than its async iterator: the iterator costs a promise chain per entry.
    const handled = new Promise<never>((_, reject) => {
      stream.extract.on('entry', (h, entry, next) => {
        current = entry;
        // Its readers see an error through their own means; this keeps one after the extraction gave up from
        // becoming an uncaught exception.
        entry.on('error', () => undefined);
        x.handle(h, entry as unknown as Readable).then(() => next(), reject);
      });
    });
    handled.catch(() => undefined);
    await Promise.race([stream.feeding, handled]);
    await x.drained();
    stream.verify();
    x.setTimes();
    return { implicitDirs: x.made };
  } catch (err) {
    stream.stop();
    if (err instanceof StrataError) throw err;
    throw new StrataError(`${label}: cannot extract: ${x.shown((err as Error).message, target)}`, 1, { cause: err });
  } finally {
    await x.quiesce();
    closeSync(rootFd);
  }
}
