import { randomBytes } from 'node:crypto';
import {
  chmodSync,
  closeSync,
  copyFileSync,
  constants as C,
  fchmodSync,
  fchownSync,
  fstatSync,
  lstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  readSync,
  readlinkSync,
  renameSync,
  rmdirSync,
  symlinkSync,
  unlinkSync,
  writeSync,
  type Stats,
} from 'node:fs';
import { StrataError } from './errors.js';

/**
 * A directory tree that strata's trusted code reads or changes after untrusted code (a buildpack, a pulled layer) has
 * had its way with it. Every path is resolved from an open descriptor of the root one component at a time, each
 * component opened with O_NOFOLLOW: a symbolic link anywhere on the way is refused, never followed, and a directory
 * renamed or swapped for a link between two calls cannot redirect the next one. Node has no openat(2); on Linux the
 * kernel resolves `/proc/self/fd/<dirfd>/<name>` from the open directory itself, which is the same thing.
 */

const DIR_FLAGS = C.O_RDONLY | C.O_DIRECTORY | C.O_NOFOLLOW;
const READ_FLAGS = C.O_RDONLY | C.O_NOFOLLOW | C.O_NONBLOCK;
const CHUNK = 1 << 20;

/** Opens `name` in the directory `dirFd` as a directory, refusing a link (ELOOP/ENOTDIR); the caller closes it. */
export function openDirAt(dirFd: number, name: string): number {
  return openSync(at(dirFd, name), DIR_FLAGS);
}

/** Opens a path the caller trusts up to its last component, which must be a real directory. */
export function openDirNoFollow(path: string): number {
  return openSync(path, DIR_FLAGS);
}

/** `name` inside the directory open as `fd`, as a path the kernel resolves from that descriptor. */
export function at(fd: number, name = '.'): string {
  return `/proc/self/fd/${fd}/${name}`;
}

/** A relative path's components; absolute paths, `..` and NUL are refused (they cannot name anything inside). */
export function components(rel: string, what: string): string[] {
  if (rel.includes('\0')) throw new StrataError(`${what}: path contains a NUL byte`);
  if (rel.startsWith('/')) throw new StrataError(`${what}: absolute path "${rel}" refused`);
  const parts = rel.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.includes('..')) throw new StrataError(`${what}: path "${rel}" leaves its directory with ".."; refused`);
  return parts;
}

/**
 * One name that will become a single path component (a layer name, a buildpack version, a file name from a label):
 * not empty, no `/`, not `.` or `..`, no control characters.
 */
export function checkPathComponent(value: string, what: string): string {
  // eslint-disable-next-line no-control-regex
  if (value === '' || value === '.' || value === '..' || value.includes('/') || /[\u0000-\u001f\u007f]/.test(value)) {
    throw new StrataError(`${what} "${printable(value)}" cannot be used as a file name (empty, ".", "..", "/" or control characters); refused`);
  }
  return value;
}

function printable(s: string): string {
  // eslint-disable-next-line no-control-regex
  return s.replace(/[\u0000-\u001f\u007f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

function code(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | undefined)?.code;
}

/** A refusal: what strata found where it expected a plain file or directory. */
function refused(display: string, err: unknown): StrataError {
  const c = code(err);
  const why = c === 'ELOOP' ? 'is a symbolic link' : c === 'ENOTDIR' ? 'is not a directory' : c === 'ENXIO' ? 'is a socket or device' : undefined;
  if (why) return new StrataError(`${display} ${why}; strata does not follow links or special files it did not make (refused)`, 1, { cause: err });
  if (err instanceof StrataError) return err;
  // The system's message names /proc/self/fd paths; the code and the real name say more.
  return new StrataError(`${display}: ${c ?? (err as Error).message}`, 1, { cause: err });
}

export interface ConfinedOptions {
  /** Shown in messages instead of the root's path. */
  display?: string;
}

/**
 * A root directory and the operations strata's trusted phases need inside it, none of which can reach outside.
 * Synchronous on purpose: these are single metadata calls on small trees, cheaper than a thread-pool round trip, and
 * a sequence of them must not interleave with anything that changes the tree.
 */
export class ConfinedDir {
  private closed = false;

  private constructor(
    readonly path: string,
    private readonly fd: number,
    private readonly display: string,
  ) {}

  /** Opens `path` (trusted: the caller made it or was given it) as the root; the root itself must not be a link. */
  static open(path: string, options: ConfinedOptions = {}): ConfinedDir {
    let fd: number;
    try {
      fd = openSync(path, DIR_FLAGS);
    } catch (err) {
      if (code(err) === 'ENOENT') throw new StrataError(`${options.display ?? path}: no such directory`, 1, { cause: err });
      throw refused(options.display ?? path, err);
    }
    return new ConfinedDir(path, fd, options.display ?? path);
  }

  /** Runs `use` with the root open, closing it afterwards whatever happens. */
  static with<T>(path: string, use: (dir: ConfinedDir) => T, options: ConfinedOptions = {}): T {
    const dir = ConfinedDir.open(path, options);
    let async = false;
    try {
      const out = use(dir);
      if (out instanceof Promise) {
        async = true;
        return out.finally(() => dir.close()) as T;
      }
      return out;
    } finally {
      if (!async) dir.close();
    }
  }

  close(): void {
    if (!this.closed) closeSync(this.fd);
    this.closed = true;
  }

  /** The host path of `rel`, for messages and for handing to code that needs a path (after confinement was checked). */
  pathOf(rel: string): string {
    return rel ? `${this.path}/${components(rel, this.display).join('/')}` : this.path;
  }

  private shown(rel: string): string {
    return rel ? `${this.display}/${rel}` : this.display;
  }

  /** Opens the directory at `rel` with every component a real directory; the caller closes the descriptor. */
  openDir(rel: string, create = false, mode = 0o755): number {
    const parts = components(rel, this.display);
    let cur = openSync(at(this.fd), C.O_RDONLY | C.O_DIRECTORY);
    try {
      for (let i = 0; i < parts.length; i++) {
        const part = parts[i]!;
        let next: number;
        try {
          try {
            next = openSync(at(cur, part), DIR_FLAGS);
          } catch (err) {
            if (!(create && code(err) === 'ENOENT')) throw err;
            mkdirSync(at(cur, part), { mode });
            // Opened with O_NOFOLLOW again: whatever replaced the new dir in between is refused, not entered.
            next = openSync(at(cur, part), DIR_FLAGS);
          }
        } catch (err) {
          // O_DIRECTORY reports a link as ENOTDIR; say which it is.
          if (code(err) === 'ENOTDIR' && lstatSafe(at(cur, part))?.isSymbolicLink()) throw Object.assign(new Error('link'), { code: 'ELOOP', at: parts.slice(0, i + 1).join('/') });
          throw Object.assign(err as Error, { at: parts.slice(0, i + 1).join('/') });
        }
        closeSync(cur);
        cur = next;
      }
      return cur;
    } catch (err) {
      closeSync(cur);
      const where = (err as { at?: string }).at ?? rel;
      if (code(err) === 'ENOENT') throw Object.assign(new StrataError(`${this.shown(rel)}: no such directory`, 1, { cause: err }), { code: 'ENOENT' });
      throw refused(this.shown(where), err);
    }
  }

  /** Runs `use` with the parent dir of `rel` open and the last component's name. */
  private inParent<T>(rel: string, use: (dirFd: number, leaf: string) => T, create = false): T {
    const parts = components(rel, this.display);
    const leaf = parts.pop();
    if (leaf === undefined) throw new StrataError(`${this.display}: an entry name is needed`);
    const dirFd = this.openDir(parts.join('/'), create);
    try {
      return use(dirFd, leaf);
    } finally {
      closeSync(dirFd);
    }
  }

  /** lstat of `rel` (never following it); undefined when it or a parent does not exist. A link on the way is refused. */
  lstat(rel: string): Stats | undefined {
    if (components(rel, this.display).length === 0) return fstatSync(this.fd);
    try {
      return this.inParent(rel, (d, leaf) => lstatSync(at(d, leaf)));
    } catch (err) {
      if (code(err) === 'ENOENT' || code((err as Error).cause) === 'ENOENT') return undefined;
      throw err;
    }
  }

  isDirectory(rel: string): boolean {
    return this.lstat(rel)?.isDirectory() ?? false;
  }

  exists(rel: string): boolean {
    return this.lstat(rel) !== undefined;
  }

  /** Names in the directory at `rel` (unsorted); undefined when it does not exist. */
  readdir(rel: string): string[] | undefined {
    let fd: number;
    try {
      fd = this.openDir(rel);
    } catch (err) {
      if (code(err) === 'ENOENT') return undefined;
      throw err;
    }
    try {
      return readdirSync(at(fd));
    } finally {
      closeSync(fd);
    }
  }

  /** Opens a regular file for reading; a link, FIFO, socket or device is refused. Undefined when absent. */
  openFile(rel: string): { fd: number; size: number } | undefined {
    try {
      return this.inParent(rel, (d, leaf) => openRegular(at(d, leaf), this.shown(rel)));
    } catch (err) {
      if (code(err) === 'ENOENT' || code((err as Error).cause) === 'ENOENT') return undefined;
      throw err;
    }
  }

  /** A whole regular file, at most `limit` bytes; undefined when absent. */
  readFile(rel: string, limit = 16 << 20): Buffer | undefined {
    const f = this.openFile(rel);
    if (!f) return undefined;
    try {
      if (f.size > limit) throw new StrataError(`${this.shown(rel)} is ${f.size} bytes; more than the ${limit} strata reads for such a file (refused)`);
      const buf = Buffer.alloc(f.size);
      let off = 0;
      while (off < f.size) {
        const n = readSync(f.fd, buf, off, f.size - off, null);
        if (n === 0) break;
        off += n;
      }
      return off === f.size ? buf : buf.subarray(0, off);
    } finally {
      closeSync(f.fd);
    }
  }

  readText(rel: string, limit?: number): string | undefined {
    return this.readFile(rel, limit)?.toString('utf8');
  }

  /** Makes the directories of `rel` that are missing; an existing link or file on the way is refused. */
  mkdirp(rel: string, mode = 0o755): void {
    closeSync(this.openDir(rel, true, mode));
  }

  /**
   * Replaces `rel` atomically with `data` (temp file beside it, then rename): readers see the old or the new file,
   * and a link or file someone left at `rel` is replaced, never written through. Parents are made as needed.
   */
  writeFile(rel: string, data: string | Uint8Array, mode = 0o644): void {
    try {
      this.inParent(rel, (d, leaf) => writeAtomic(d, leaf, (fd) => writeAll(fd, typeof data === 'string' ? Buffer.from(data) : data), mode), true);
    } catch (err) {
      throw refused(this.shown(rel), err);
    }
  }

  /** Copies the regular file `rel` to `destRel` in `dest` (atomically there), reading at most `limit` bytes. */
  copyFileTo(rel: string, dest: ConfinedDir, destRel: string, mode = 0o644, limit = 256 << 20): boolean {
    const f = this.openFile(rel);
    if (!f) return false;
    try {
      if (f.size > limit) throw new StrataError(`${this.shown(rel)} is ${f.size} bytes; more than the ${limit} strata copies (refused)`);
      dest.inParent(
        destRel,
        (d, leaf) => {
          writeAtomic(d, leaf, (out) => {
            const buf = Buffer.allocUnsafe(Math.min(CHUNK, Math.max(f.size, 1)));
            let left = f.size;
            while (left > 0) {
              const n = readSync(f.fd, buf, 0, Math.min(buf.length, left), null);
              if (n === 0) break;
              writeAll(out, buf.subarray(0, n));
              left -= n;
            }
          }, mode);
        },
        true,
      );
      return true;
    } finally {
      closeSync(f.fd);
    }
  }

  /**
   * Moves `rel` to `destRel` in another confined root (both ends walked without following links); false when the two
   * are on different filesystems or something is already at the destination.
   */
  moveTo(rel: string, dest: ConfinedDir, destRel: string): boolean {
    try {
      this.inParent(rel, (fd1, leaf1) => dest.inParent(destRel, (fd2, leaf2) => renameSync(at(fd1, leaf1), at(fd2, leaf2)), true));
      return true;
    } catch (err) {
      const c = code(err) ?? code((err as Error).cause);
      if (c === 'EXDEV' || c === 'ENOTEMPTY' || c === 'EEXIST' || c === 'ENOENT') return false;
      throw err;
    }
  }

  /** Renames within the root (both ends confined); replaces a file or link at `to`, never follows it. */
  rename(from: string, to: string): void {
    this.inParent(from, (fd1, leaf1) => this.inParent(to, (fd2, leaf2) => renameSync(at(fd1, leaf1), at(fd2, leaf2)), true));
  }

  /** Gives `rel` (a file or directory, never a link's target) to this owner. */
  chown(rel: string, uid: number, gid: number): void {
    this.inParent(rel, (d, leaf) => {
      const fd = openSync(at(d, leaf), C.O_RDONLY | C.O_NOFOLLOW);
      try {
        fchownSync(fd, uid, gid);
      } finally {
        closeSync(fd);
      }
    });
  }

  /** Removes `rel` and, for a directory, everything below it, never leaving the tree through a link. */
  remove(rel: string): void {
    try {
      this.inParent(rel, (d, leaf) => removeAt(d, leaf));
    } catch (err) {
      if (code(err) === 'ENOENT' || code((err as Error).cause) === 'ENOENT') return;
      throw err;
    }
  }

  /** Empties the root (or the dir at `rel`) except for the names in `keep`. */
  clear(rel: string, keep: ReadonlySet<string> = new Set()): void {
    const fd = this.openDir(rel);
    try {
      for (const name of readdirSync(at(fd))) if (!keep.has(name)) removeAt(fd, name);
    } finally {
      closeSync(fd);
    }
  }
}

function lstatSafe(path: string): Stats | undefined {
  try {
    return lstatSync(path);
  } catch {
    return undefined;
  }
}

/** Opens a path for reading with O_NOFOLLOW, refusing anything but a regular file. */
export function openRegular(path: string, display: string): { fd: number; size: number } {
  let fd: number;
  try {
    fd = openSync(path, READ_FLAGS);
  } catch (err) {
    if (code(err) === 'ENOENT') throw err;
    throw refused(display, err);
  }
  const st = fstatSync(fd);
  if (!st.isFile()) {
    closeSync(fd);
    throw new StrataError(`${display} is not a regular file; refused`);
  }
  return { fd, size: st.size };
}

function writeAll(fd: number, data: Uint8Array): void {
  let off = 0;
  while (off < data.length) off += writeSync(fd, data, off, data.length - off);
}

function writeAtomic(dirFd: number, leaf: string, fill: (fd: number) => void, mode: number): void {
  const tmp = `.strata-tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  const fd = openSync(at(dirFd, tmp), C.O_WRONLY | C.O_CREAT | C.O_EXCL | C.O_NOFOLLOW, mode);
  try {
    fill(fd);
    fchmodSync(fd, mode);
  } catch (err) {
    closeSync(fd);
    unlinkSync(at(dirFd, tmp));
    throw err;
  }
  closeSync(fd);
  try {
    renameSync(at(dirFd, tmp), at(dirFd, leaf));
  } catch (err) {
    unlinkSync(at(dirFd, tmp));
    throw err;
  }
}

/** Removes `name` in the open dir `dirFd`: a subtree is walked by descriptors, so a link inside is unlinked, not entered. */
export function removeAt(dirFd: number, name: string): void {
  let st: Stats;
  try {
    st = lstatSync(at(dirFd, name));
  } catch (err) {
    if (code(err) === 'ENOENT') return;
    throw err;
  }
  if (!st.isDirectory()) {
    unlinkSync(at(dirFd, name));
    return;
  }
  let fd: number;
  try {
    fd = openSync(at(dirFd, name), DIR_FLAGS);
  } catch (err) {
    // Swapped for a link or file since the lstat: that is removed instead of entered.
    if (code(err) === 'ELOOP' || code(err) === 'ENOTDIR') return unlinkSync(at(dirFd, name));
    if (code(err) === 'ENOENT') return;
    throw err;
  }
  try {
    for (const child of readdirSync(at(fd))) removeAt(fd, child);
  } finally {
    closeSync(fd);
  }
  try {
    rmdirSync(at(dirFd, name));
  } catch (err) {
    if (code(err) !== 'ENOENT') throw err;
  }
}

/**
 * Copies the tree at `rel` (confined) to `dest`, a new directory the caller owns: directories and regular files with
 * their modes, symbolic links as links (their targets verbatim, never followed) when `links` is set, skipped
 * otherwise, and nothing else. Files are read through the descriptor that was checked, so a swap after the check
 * cannot redirect the read.
 */
export function copyTreeOut(src: ConfinedDir, rel: string, dest: string, options: { links: boolean }): void {
  const walk = (dirFd: number, to: string, mode: number): void => {
    mkdirSync(to, { mode: 0o700 });
    for (const name of readdirSync(at(dirFd))) {
      const p = at(dirFd, name);
      const st = lstatSync(p);
      if (st.isDirectory()) {
        const fd = openDirAt(dirFd, name);
        try {
          walk(fd, `${to}/${name}`, st.mode & 0o7777);
        } finally {
          closeSync(fd);
        }
      } else if (st.isFile()) {
        const f = openRegular(p, `${src.pathOf(rel)}/${name}`);
        try {
          copyFileSync(`/proc/self/fd/${f.fd}`, `${to}/${name}`, C.COPYFILE_FICLONE);
          chmodSync(`${to}/${name}`, st.mode & 0o777);
        } finally {
          closeSync(f.fd);
        }
      } else if (st.isSymbolicLink() && options.links) {
        symlinkSync(readlinkSync(p), `${to}/${name}`);
      }
    }
    chmodSync(to, mode);
  };
  const fd = src.openDir(rel);
  try {
    walk(fd, dest, fstatSync(fd).mode & 0o7777);
  } finally {
    closeSync(fd);
  }
}

/**
 * Makes the dirs a sandbox mounts over (absolute in-image paths) inside an unpacked rootfs. One the image made a
 * link or a file is left as it is: never followed out of the tree, and the sandbox reports the mount it cannot make.
 */
export function makeMountPoints(rootfs: string, destinations: string[], display: string): void {
  ConfinedDir.with(rootfs, (root) => {
    for (const d of destinations) {
      try {
        root.mkdirp(d.replace(/^\/+/, ''));
      } catch {
        // Left to the sandbox, as said.
      }
    }
  }, { display });
}
