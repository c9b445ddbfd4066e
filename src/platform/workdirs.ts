import { mkdir, mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { processAlive } from '../oci/fsutil.js';

/** Work dirs of older stratas whose names carry no pid are removed once they are this old. */
const LEGACY_AGE_MS = 24 * 3600_000;

/**
 * A per-process work dir under `parent` (`<prefix><pid>-<random>`). Making one first removes those a killed strata
 * left behind — any whose pid is no longer running — so a SIGKILL costs disk only until the next run.
 */
export async function workDir(parent: string, prefix: string): Promise<string> {
  await mkdir(parent, { recursive: true });
  await removeStale(parent, prefix);
  return mkdtemp(join(parent, `${prefix}${process.pid}-`));
}

export async function removeStale(parent: string, prefix: string): Promise<string[]> {
  const removed: string[] = [];
  for (const name of await readdir(parent).catch(() => [] as string[])) {
    if (!name.startsWith(prefix)) continue;
    const m = /^(\d+)-/.exec(name.slice(prefix.length));
    const stale = m ? !processAlive(Number(m[1])) : Date.now() - ((await stat(join(parent, name)).catch(() => undefined))?.mtimeMs ?? Date.now()) > LEGACY_AGE_MS;
    if (!stale) continue;
    await rm(join(parent, name), { recursive: true, force: true });
    removed.push(name);
  }
  return removed;
}
