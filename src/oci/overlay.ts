import { chmodSync, lchownSync, linkSync, lstatSync, mkdirSync, readdirSync, rmSync, utimesSync, type Stats } from 'node:fs';
import { join } from 'node:path';
import { lstatOrUndefined, OPAQUE, WHITEOUT } from './extract.js';

/** One layer unpacked on its own by `extractLayer` with `whiteoutMarkers`. */
export interface LayerTree {
  dir: string;
  /** Dirs the layer holds only as parents of its entries: they take the lower layer's mode and owner, not their own. */
  implicitDirs: ReadonlySet<string>;
}

/**
 * Lays layer trees over one another into `target` as an overlay mount would show them, bottom layer first, with hard
 * links in place of copies: a layer unpacked once serves every image that has it, and an image's tree costs one
 * metadata call per entry. Whiteout markers remove what lower layers put there; a dir replaces a non-dir and the
 * other way round. Only paths this walk has seen to be real directories (by lstat, or because it made them) are
 * walked into, so a link planted by a lower layer is replaced, never followed. Setting owners needs root, as when
 * the layers were unpacked. Synchronous: every call is metadata, microseconds from the inode cache.
 */
export function overlayLayers(layers: LayerTree[], target: string, chown = typeof process.getuid === 'function' && process.getuid() === 0): void {
  // The top layer that states a dir's metadata gives its times.
  const dirTimes = new Map<string, Stats>();
  const walk = (layer: LayerTree, rel: string, fresh: boolean): void => {
    const src = rel ? join(layer.dir, rel) : layer.dir;
    const dst = rel ? join(target, rel) : target;
    const entries = readdirSync(src, { withFileTypes: true });
    if (!fresh) {
      // Whiteouts first: they hide the lower layers' entries, never this layer's own.
      for (const e of entries) {
        if (e.name === OPAQUE) {
          for (const child of readdirSync(dst)) rmSync(join(dst, child), { recursive: true, force: true });
        }
      }
      for (const e of entries) {
        if (e.name.startsWith(WHITEOUT) && e.name !== OPAQUE) rmSync(join(dst, e.name.slice(WHITEOUT.length)), { recursive: true, force: true });
      }
    }
    for (const e of entries) {
      if (e.name.startsWith(WHITEOUT)) continue;
      const childRel = rel ? `${rel}/${e.name}` : e.name;
      const from = join(src, e.name);
      const to = join(dst, e.name);
      const there = fresh ? undefined : lstatOrUndefined(to);
      if (e.isDirectory()) {
        const kept = there?.isDirectory() ?? false;
        if (there && !kept) rmSync(to, { recursive: true, force: true });
        if (!kept) mkdirSync(to, { mode: 0o700 });
        if (!kept || !layer.implicitDirs.has(childRel)) {
          const st = lstatSync(from);
          if (chown) lchownSync(to, st.uid, st.gid);
          chmodSync(to, st.mode & 0o7777);
          dirTimes.set(to, st);
        }
        walk(layer, childRel, !kept);
      } else {
        if (there) rmSync(to, { recursive: true, force: true });
        // link(2) does not follow a symbolic link: the link itself is shared, as every other non-directory is.
        linkSync(from, to);
      }
    }
  };
  const empty = readdirSync(target).length === 0;
  for (const [i, layer] of layers.entries()) walk(layer, '', i === 0 && empty);
  // Directory times last: making their children moved them.
  for (const [path, st] of dirTimes) {
    try {
      utimesSync(path, st.atime, st.mtime);
    } catch {
      // A dir an upper layer removed has no time to set.
    }
  }
}
