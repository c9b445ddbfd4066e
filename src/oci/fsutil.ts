import { access, lchown, lstat, mkdir, mkdtemp, open, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, basename, join } from 'node:path';
import { randomBytes } from 'node:crypto';

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
 * finished one, and a failed one leaves nothing behind.
 */
export async function cachedDir(dest: string, marker: string, fill: (tmp: string) => Promise<void>): Promise<{ dir: string; made: boolean }> {
  if (await pathExists(join(dest, marker))) return { dir: dest, made: false };
  await mkdir(dirname(dest), { recursive: true });
  const tmp = await mkdtemp(`${dest}.tmp-`);
  try {
    await fill(tmp);
    await writeFile(join(tmp, marker), '');
    await rm(dest, { recursive: true, force: true });
    await rename(tmp, dest);
    return { dir: dest, made: true };
  } catch (err) {
    await rm(tmp, { recursive: true, force: true });
    throw err;
  }
}

/**
 * Gives a tree to a user, touching only what someone else owns: an unneeded chown would move ctimes, and with them
 * the layer fingerprints that let unchanged layers go unread.
 */
export async function chownTree(dir: string, uid: number, gid: number): Promise<void> {
  const st = await lstat(dir);
  if (st.uid !== uid || st.gid !== gid) await lchown(dir, uid, gid);
  if (st.isDirectory()) for (const n of await readdir(dir)) await chownTree(join(dir, n), uid, gid);
}

export function pathExists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}
