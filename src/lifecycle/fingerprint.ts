import { createHash } from 'node:crypto';
import { lstatSync, readdirSync, readlinkSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../oci/fsutil.js';

/**
 * What a layer dir looks like from its inodes alone: every path with its type, mode, owner, size, inode, link
 * target and both mtime and ctime in nanoseconds. Any write to a file moves its ctime, which no program can set
 * back, so an equal fingerprint means equal contents — learned from lstat calls, without reading a byte of data.
 */
export function fingerprint(dir: string): string {
  const h = createHash('sha256');
  const walk = (abs: string, rel: string): void => {
    for (const name of readdirSync(abs).sort()) {
      const p = join(abs, name);
      const st = lstatSync(p, { bigint: true });
      h.update(`${rel}/${name}\0${st.mode}\0${st.uid}:${st.gid}\0${st.size}\0${st.ino}\0${st.mtimeNs}\0${st.ctimeNs}\0`);
      if (st.isSymbolicLink()) h.update(`${readlinkSync(p)}\0`);
      if (st.isDirectory()) walk(p, `${rel}/${name}`);
    }
  };
  const top = lstatSync(dir, { bigint: true });
  h.update(`${top.mode}\0${top.uid}:${top.gid}\0${top.mtimeNs}\0${top.ctimeNs}\0`);
  walk(dir, '');
  return h.digest('hex');
}

/** A layer's known diffID, valid while the dir's fingerprint and the way the tar is made (`recipe`) stay the same. */
interface Record_ {
  fingerprint: string;
  recipe: string;
  diffID: string;
}

const recordPath = (layerDir: string): string => `${layerDir}.strata-fingerprint`;

export async function knownDiffID(layerDir: string, recipe: string): Promise<string | undefined> {
  let rec: Record_;
  try {
    rec = JSON.parse(await readFile(recordPath(layerDir), 'utf8')) as Record_;
  } catch {
    return undefined;
  }
  if (rec.recipe !== recipe) return undefined;
  return fingerprint(layerDir) === rec.fingerprint ? rec.diffID : undefined;
}

export async function rememberDiffID(layerDir: string, recipe: string, diffID: string): Promise<void> {
  await writeFileAtomic(recordPath(layerDir), JSON.stringify({ fingerprint: fingerprint(layerDir), recipe, diffID } satisfies Record_));
}
