import { createHash } from 'node:crypto';
import { closeSync, fstatSync, lstatSync, readdirSync, readlinkSync, type BigIntStats } from 'node:fs';
import { at, openDirAt, type ConfinedDir } from '../oci/confined.js';

/**
 * What a layer dir looks like from its inodes alone: every path with its type, mode, owner, size, inode, link
 * target and both mtime and ctime in nanoseconds. Any write to a file moves its ctime, which no program can set
 * back, so an equal fingerprint means equal contents — learned from lstat calls, without reading a byte of data.
 * The walk goes by descriptors from `rel` inside the confined layers dir: a link is hashed as a link, never entered.
 * `seen` is given each entry's lstat (and the top dir's), for callers that learn more from the same walk: when the
 * tree was last touched, who owns it.
 */
export function fingerprint(layers: ConfinedDir, rel: string, seen?: (st: BigIntStats, top: boolean) => void): string {
  const h = createHash('sha256');
  const walk = (dirFd: number, relPath: string): void => {
    for (const name of readdirSync(at(dirFd)).sort()) {
      const p = at(dirFd, name);
      const st = lstatSync(p, { bigint: true });
      h.update(`${relPath}/${name}\0${st.mode}\0${st.uid}:${st.gid}\0${st.size}\0${st.ino}\0${st.mtimeNs}\0${st.ctimeNs}\0`);
      seen?.(st, false);
      if (st.isSymbolicLink()) h.update(`${readlinkSync(p)}\0`);
      if (st.isDirectory()) {
        const fd = openDirAt(dirFd, name);
        try {
          walk(fd, `${relPath}/${name}`);
        } finally {
          closeSync(fd);
        }
      }
    }
  };
  const top = layers.openDir(rel);
  try {
    // Not the top dir's ctime: moving the dir into place (a rename) moves it, and an added or removed entry shows in
    // its mtime anyway.
    const st = fstatSync(top, { bigint: true });
    h.update(`${st.mode}\0${st.uid}:${st.gid}\0${st.mtimeNs}\0`);
    seen?.(st, true);
    walk(top, '');
  } finally {
    closeSync(top);
  }
  return h.digest('hex');
}

/** A layer's known diffID, valid while the dir's fingerprint and the way the tar is made (`recipe`) stay the same. */
interface Record_ {
  fingerprint: string;
  recipe: string;
  diffID: string;
}

export const recordRel = (rel: string): string => `${rel}.strata-fingerprint`;

/**
 * The diffID a layer dir was recorded with, when its fingerprint still matches; with `recipe`, only when it was made
 * by that same recipe (owners, time, in-image path).
 */
export function recordedDiffID(layers: ConfinedDir, rel: string, recipe?: string, seen?: (st: BigIntStats, top: boolean) => void): string | undefined {
  const rec = readRecord(layers, rel);
  if (!rec || (recipe !== undefined && rec.recipe !== recipe) || !layers.isDirectory(rel)) return undefined;
  return fingerprint(layers, rel, seen) === rec.fingerprint ? rec.diffID : undefined;
}

/** Whether `rel` has a record made by `recipe` for the fingerprint `print` (already taken by the caller). */
export function recordedAs(layers: ConfinedDir, rel: string, recipe: string, print: string): boolean {
  const rec = readRecord(layers, rel);
  return rec?.recipe === recipe && rec.fingerprint === print;
}

function readRecord(layers: ConfinedDir, rel: string): Record_ | undefined {
  try {
    return JSON.parse(layers.readText(recordRel(rel), 1 << 16) ?? '') as Record_;
  } catch {
    return undefined;
  }
}

export function knownDiffID(layers: ConfinedDir, rel: string, recipe: string): string | undefined {
  return recordedDiffID(layers, rel, recipe);
}

/** Records `diffID` for the dir as it is now; `print`, when the caller has just taken the dir's fingerprint. */
export function rememberDiffID(layers: ConfinedDir, rel: string, recipe: string, diffID: string, print = fingerprint(layers, rel)): void {
  layers.writeFile(recordRel(rel), JSON.stringify({ fingerprint: print, recipe, diffID } satisfies Record_));
}
