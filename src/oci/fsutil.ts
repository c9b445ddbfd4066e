import { access, lstat, mkdir, mkdtemp, open, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { StrataError } from './errors.js';
import { dirname, basename, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, lchownSync, linkSync, lstatSync, openSync, readdirSync, rmSync, writeSync } from 'node:fs';

export function tempSibling(path: string): string {
  return join(dirname(path), `.tmp-${basename(path)}-${process.pid}-${randomBytes(4).toString('hex')}`);
}

/** Writes a whole file so that readers see either the old or the new content, never a mix (temp + fsync + rename). */
export async function writeFileAtomic(path: string, data: string | Uint8Array, mode = 0o644): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const tmp = tempSibling(path);
  try {
    await writeFile(tmp, data, { mode });
    const fh = await open(tmp, 'r');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}

/**
 * A cached directory made once: returns `dest` when its `marker` file says it is complete, otherwise fills a temp
 * dir beside it, writes the marker last and renames it into place — so an interrupted fill is never mistaken for a
 * finished one, and a failed one leaves nothing behind. Concurrent callers (parallel builds of one new builder)
 * serialise on a lock: one fills, the others wait and then use its result; nobody ever removes or renames over a
 * complete dir another process may be using. Temp dirs left by killed fills are removed by the next filler.
 */
export async function cachedDir(dest: string, marker: string, fill: (tmp: string) => Promise<void>): Promise<{ dir: string; made: boolean }> {
  if (await pathExists(join(dest, marker))) return { dir: dest, made: false };
  await mkdir(dirname(dest), { recursive: true });
  return withLock(
    `${dest}.lock`,
    dest,
    async () => {
      if (await pathExists(join(dest, marker))) return { dir: dest, made: false };
      const prefix = `${basename(dest)}.tmp-`;
      for (const n of await readdir(dirname(dest))) if (n.startsWith(prefix)) await rm(join(dirname(dest), n), { recursive: true, force: true });
      const tmp = await mkdtemp(join(dirname(dest), prefix));
      try {
        await fill(tmp);
        await writeFile(join(tmp, marker), '');
        // Only an incomplete dir (no marker, so never handed out) can be here: a leftover of an older layout.
        await rm(dest, { recursive: true, force: true });
        await rename(tmp, dest);
        return { dir: dest, made: true };
      } catch (err) {
        await rm(tmp, { recursive: true, force: true });
        throw err;
      }
    },
    60 * 60_000,
  );
}

/**
 * Gives a tree to a user, touching only what someone else owns: an unneeded chown would move ctimes, and with them
 * the layer fingerprints that let unchanged layers go unread.
 */
export function chownTree(dir: string, uid: number, gid: number, known?: ReadonlySet<string>): void {
  // Synchronous: each call is a microsecond from the inode cache, where a thread-pool round trip costs tens, and a
  // rebuild hands over a layers dir of thousands of entries that are nearly all its user's already. `known`: paths
  // the caller has seen owned by this user throughout, not walked again.
  if (known?.has(dir)) return;
  const st = lstatSync(dir);
  if (st.uid !== uid || st.gid !== gid) lchownSync(dir, uid, gid);
  if (st.isDirectory()) for (const n of readdirSync(dir)) chownTree(join(dir, n), uid, gid, known);
}

export function pathExists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}

/** Whether a process with this pid exists (EPERM: it does, as another user). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Takes a lock directory (mkdir is atomic) that records our pid, returning its release. A lock whose owner has died
 * is stale and taken over, so a killed process never blocks the next one; a live owner is waited for up to `waitMs`.
 */
export async function acquireLock(lock: string, what: string, waitMs = 10_000): Promise<() => Promise<void>> {
  const deadline = Date.now() + waitMs;
  for (;;) {
    try {
      await mkdir(lock);
      await writeFile(join(lock, 'pid'), String(process.pid));
      return () => rm(lock, { recursive: true, force: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const pid = Number(await readFile(join(lock, 'pid'), 'utf8').catch(() => ''));
      // No pid after a while: its owner died between making the lock and writing the pid.
      const orphan = !pid && Date.now() - ((await lstat(lock).catch(() => undefined))?.mtimeMs ?? Date.now()) > 5000;
      if ((pid > 0 && !processAlive(pid)) || orphan) await rm(lock, { recursive: true, force: true });
      else if (Date.now() > deadline) throw new LockedError(`${what} is locked by process ${pid || '?'} (remove ${lock} if none is running)`, pid);
      else await new Promise((r) => setTimeout(r, 25));
    }
  }
}

export class LockedError extends StrataError {
  constructor(
    message: string,
    readonly pid: number,
  ) {
    super(message);
  }
}

/** Runs `fn` holding the lock (see acquireLock). */
export async function withLock<T>(lock: string, what: string, fn: () => Promise<T>, waitMs = 10_000): Promise<T> {
  const release = await acquireLock(lock, what, waitMs);
  try {
    return await fn();
  } finally {
    await release();
  }
}

/**
 * Read-stream options for blobs and layer tars read whole: 1 MiB reads, where the default 64 KiB costs a thread-pool
 * round trip per chunk and, downstream, the tar parser's work per chunk.
 */
/**
 * Creates `path` with `data` (mode `mode`) unless it exists: written and synced beside it, then linked into place, so
 * two processes racing get one file (the loser's data is dropped) and a killed one leaves none half-written. Returns
 * whether this call made it.
 */
export function createOnce(path: string, data: string, mode = 0o600): boolean {
  const tmp = tempSibling(path);
  const fd = openSync(tmp, 'wx', mode);
  try {
    writeSync(fd, data);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  try {
    linkSync(tmp, path);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    return false;
  } finally {
    rmSync(tmp, { force: true });
  }
}

export const WHOLE_FILE_READ = { highWaterMark: 1 << 20 } as const;
