import { constants as fsc } from 'node:fs';
import { chmod, lchown, link, lstat, lutimes, mkdir, open, readdir, rm, symlink, utimes } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import tar from 'tar-stream';
import { StrataError } from './errors.js';

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
}

const WHITEOUT = '.wh.';
const SMALL_FILE = 256 << 10;
const OPAQUE = '.wh..wh..opq';

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
        const gunzip = createGunzip();
        pipeline(Readable.from(all(), { objectMode: false }), gunzip).catch((e: Error) => gunzip.destroy(e));
        yield* gunzip as AsyncIterable<Buffer>;
      } else {
        yield* all();
      }
    })(),
    { objectMode: false },
  );
}

/**
 * Extracts an (optionally gzipped) layer tar onto `target`, applying OCI whiteouts. Nothing is ever written outside
 * `target`: absolute names, `..`, paths through symlinks, hard links leaving the tree and device nodes are refused.
 */
export async function extractLayer(input: Readable, target: string, options: ExtractOptions = {}): Promise<void> {
  const label = options.label ?? 'layer';
  const chown = options.chown ?? (typeof process.getuid === 'function' && process.getuid() === 0);
  const touched = new Set<string>();
  const dirTimes: { path: string; mtime: Date }[] = [];
  const extract = tar.extract();
  const feeding = pipeline(decompressIfGzip(input), extract);
  // A broken input (truncated gzip, dropped connection) must also fail the entry being written, or the write
  // waits forever for bytes that will not come.
  const feedFailed = new Promise<never>((_, reject) => {
    feeding.catch(reject);
  });
  feedFailed.catch(() => undefined);

  // Dirs this extraction has already checked (or made) are real directories; an entry that puts anything else at
  // such a path, or a whiteout that removes it, takes it and everything below it out of this set first.
  const knownDirs = new Set<string>();
  const forget = (rel: string): void => {
    for (const d of knownDirs) if (d === rel || d.startsWith(`${rel}/`)) knownDirs.delete(d);
  };

  /** Makes sure every parent of `parts` is a real directory inside target, creating missing ones. */
  const ensureParents = async (parts: string[], name: string): Promise<string> => {
    let cur = target;
    for (let i = 0; i < parts.length - 1; i++) {
      cur = join(cur, parts[i]!);
      const rel = parts.slice(0, i + 1).join('/');
      if (knownDirs.has(rel)) continue;
      const st = await lstat(cur).catch(() => undefined);
      if (!st) {
        await mkdir(cur, { mode: 0o755 });
        touched.add(rel);
        knownDirs.add(rel);
      } else if (st.isDirectory()) {
        knownDirs.add(rel);
      } else if (st.isSymbolicLink()) {
        throw new StrataError(`${label}: "${name}" goes through the symlink "${parts.slice(0, i + 1).join('/')}"; refused`);
      } else if (!st.isDirectory()) {
        throw new StrataError(`${label}: "${name}" needs "${parts.slice(0, i + 1).join('/')}" to be a directory, but it is a file`);
      }
    }
    return join(target, ...parts);
  };

  const clear = async (path: string, keepDir: boolean): Promise<void> => {
    const st = await lstat(path).catch(() => undefined);
    if (!st) return;
    if (keepDir && st.isDirectory()) return;
    await rm(path, { recursive: true, force: true });
  };

  const consume = async (): Promise<void> => {
    for await (const entry of extract) {
      const h = entry.header;
      const parts = safeComponents(h.name, label);
      if (parts.length === 0) {
        entry.resume();
        continue;
      }
      const rel = parts.join('/');
      const base = parts[parts.length - 1]!;
      if (base.startsWith(WHITEOUT)) {
        entry.resume();
        const dir = await ensureParents(parts, h.name);
        const parentDir = join(dir, '..');
        if (base === OPAQUE) {
          const parentRel = parts.slice(0, -1).join('/');
          for (const child of await readdir(parentDir)) {
            const childRel = parentRel ? `${parentRel}/${child}` : child;
            if (!touched.has(childRel)) {
              forget(childRel);
              await rm(join(parentDir, child), { recursive: true, force: true });
            }
          }
        } else {
          const parentRel = parts.slice(0, -1).join('/');
          const gone = base.slice(WHITEOUT.length);
          forget(parentRel ? `${parentRel}/${gone}` : gone);
          await rm(join(parentDir, gone), { recursive: true, force: true });
        }
        continue;
      }
      const path = await ensureParents(parts, h.name);
      touched.add(rel);
      if (h.type !== 'directory') forget(rel);
      const mode = h.mode & 0o7777;
      switch (h.type) {
        case 'directory': {
          await clear(path, true);
          let existed = false;
          await mkdir(path, { mode: 0o700 }).catch((e: NodeJS.ErrnoException) => {
            if (e.code !== 'EEXIST') throw e;
            existed = true;
          });
          entry.resume();
          knownDirs.add(rel);
          if (existed && options.keepExistingDirs) break;
          if (chown) await lchown(path, h.uid, h.gid);
          await chmod(path, mode);
          dirTimes.push({ path, mtime: h.mtime });
          break;
        }
        case 'file':
        case 'contiguous-file': {
          await clear(path, false);
          // O_EXCL|O_NOFOLLOW: never write through whatever might have appeared at this path.
          const flags = fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW;
          const fh = await open(path, flags, 0o600);
          if ((h.size ?? 0) <= SMALL_FILE) {
            // Small files (most of an OS tree) in one write, with owner, mode and times set through the descriptor.
            try {
              const chunks: Buffer[] = [];
              const collect = new Writable({
                write(c: Buffer, _e, done) {
                  chunks.push(c);
                  done();
                },
              });
              await Promise.race([pipeline(entry, collect), feedFailed]);
              if (chunks.length) await fh.write(Buffer.concat(chunks));
              if (chown) await fh.chown(h.uid, h.gid);
              await fh.chmod(mode);
              await fh.utimes(h.mtime, h.mtime);
            } finally {
              await fh.close();
            }
          } else {
            const sink = fh.createWriteStream();
            try {
              await Promise.race([pipeline(entry, sink), feedFailed]);
            } catch (err) {
              sink.destroy();
              throw err;
            }
            if (chown) await lchown(path, h.uid, h.gid);
            await chmod(path, mode);
            await utimes(path, h.mtime, h.mtime);
          }
          break;
        }
        case 'symlink': {
          entry.resume();
          await clear(path, false);
          await symlink(h.linkname, path);
          if (chown) await lchown(path, h.uid, h.gid);
          await lutimes(path, h.mtime, h.mtime).catch(() => undefined);
          break;
        }
        case 'link': {
          entry.resume();
          const linkParts = safeComponents(h.linkname, `${label}: hard link "${h.name}"`);
          const source = await ensureParents(linkParts, h.linkname);
          const st = await lstat(source).catch(() => undefined);
          if (!st) throw new StrataError(`${label}: hard link "${h.name}" points to "${h.linkname}", which is not in the layer`);
          if (st.isDirectory()) throw new StrataError(`${label}: hard link "${h.name}" points to a directory; refused`);
          await clear(path, false);
          await link(source, path);
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
    }
  };
  try {
    await Promise.race([consume(), feedFailed]);
    await feeding;
  } catch (err) {
    extract.destroy();
    if (err instanceof StrataError) throw err;
    throw new StrataError(`${label}: cannot extract: ${(err as Error).message}`, 1, { cause: err });
  }
  // Directory times last: creating their children changed them.
  for (const d of dirTimes.reverse()) await utimes(d.path, d.mtime, d.mtime).catch(() => undefined);
}
