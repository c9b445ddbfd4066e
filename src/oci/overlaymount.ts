import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { ConfinedDir } from './confined.js';
import { StrataError } from './errors.js';
import { runCommand } from './command.js';
import { treeEntries, type LayerEntry } from './layer.js';

/**
 * A kernel overlay over an unpacked image tree: programs change the merged view, the lower tree stays as it was, and
 * the upper dir holds exactly what changed, which becomes a layer (`changedEntries`). Needs root, as any mount does.
 */

export interface Overlay {
  lower: string;
  upper: string;
  merged: string;
}

/** Mounts an overlay of `lower` in `dir` (upper, work and merged made there), runs `use`, and unmounts. */
export async function withOverlay<T>(lower: string, dir: string, use: (o: Overlay) => Promise<T>): Promise<T> {
  if (process.getuid?.() !== 0) throw new StrataError('applying an image extension\'s Dockerfile needs root (an overlay mount and runc): run strata as root');
  const o = { lower, upper: join(dir, 'upper'), merged: join(dir, 'merged') };
  const work = join(dir, 'work');
  for (const d of [o.upper, work, o.merged]) await mkdir(d, { recursive: true, mode: 0o755 });
  await runCommand('mount', ['-t', 'overlay', 'overlay', '-o', `lowerdir=${lower},upperdir=${o.upper},workdir=${work}`, o.merged]);
  try {
    return await use(o);
  } finally {
    await runCommand('umount', [o.merged]).catch(() => runCommand('umount', ['-l', o.merged]));
  }
}

/**
 * What a run over an overlay changed, as layer entries: the upper tree with owners (but not the paths in `leaveOut`,
 * such as the files a sandbox binds in), and a whiteout for every entry of a changed lower directory that the merged
 * view no longer shows (a deleted file, or everything under a directory removed and made again). Reads the three
 * trees without following links; call it while the overlay is still mounted.
 */
export async function* changedEntries(o: Overlay, leaveOut: ReadonlySet<string>): AsyncGenerator<LayerEntry> {
  yield* treeEntries(o.upper, { owners: true, include: (rel) => !leaveOut.has(rel) });
  const whiteouts: string[] = [];
  ConfinedDir.with(o.upper, (upper) =>
    ConfinedDir.with(o.lower, (lower) =>
      ConfinedDir.with(o.merged, (merged) => {
        const visit = (rel: string): void => {
          for (const name of upper.readdir(rel) ?? []) {
            const child = rel ? `${rel}/${name}` : name;
            if (upper.isDirectory(child) && !leaveOut.has(child)) visit(child);
          }
          if (rel && !lower.isDirectory(rel)) return;
          for (const name of lower.readdir(rel) ?? []) {
            const child = rel ? `${rel}/${name}` : name;
            if (!leaveOut.has(child) && !merged.lstat(child)) whiteouts.push(child);
          }
        };
        visit('');
      }),
    ),
  );
  for (const w of whiteouts.sort()) {
    const slash = w.lastIndexOf('/');
    const path = slash < 0 ? `.wh.${w}` : `${w.slice(0, slash)}/.wh.${w.slice(slash + 1)}`;
    yield { type: 'file', path, mode: 0o644, size: 0, source: Buffer.alloc(0), uid: 0, gid: 0 };
  }
}
