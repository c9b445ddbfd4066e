import { mkdirSync } from 'node:fs';
import { ConfinedDir } from '../oci/confined.js';
import { recordedDiffID, recordRel } from './fingerprint.js';
import type { Logger } from './log.js';
import { LayersDir } from './layersdir.js';

/**
 * The layer dirs of an app's last build, kept unpacked beside its cache so the next build puts them in place with a
 * rename instead of extracting a tar: a no-op rebuild does no work proportional to layer size. A stashed layer is
 * used only when its fingerprint (lstat data of every entry) still matches the diffID it was recorded with and that
 * diffID is the one the cache holds for it; anything else is extracted from the cache as before. The stash holds what
 * buildpacks wrote, so it is handled like the layers dir itself: every access confined, links never followed.
 */
export class LayerStash {
  /** What `verify` found: each stashed layer's recorded diffID (when its fingerprint holds) and whether one user owns it all. */
  private readonly verified = new Map<string, { sha: string | undefined; ownedBy: string | undefined; record: string | undefined }>();
  private readonly taken = new Map<string, string | undefined>();

  constructor(
    readonly dir: string,
    private readonly log: Logger,
  ) {}

  /**
   * Checks every stashed layer against its record ahead of `take`, yielding between layers: run while detection runs
   * in its sandbox (the stash is not mounted there, so nothing can change it in between), the restore then only
   * renames. The same walk notes who owns each layer's entries.
   */
  async verify(): Promise<void> {
    const stash = this.open();
    if (!stash) return;
    try {
      for (const bp of stash.readdir('') ?? []) {
        if (!stash.isDirectory(bp)) continue;
        for (const name of stash.readdir(bp) ?? []) {
          const rel = `${bp}/${name}`;
          if (!stash.isDirectory(rel)) continue;
          await new Promise((r) => setImmediate(r));
          const owners = new Set<string>();
          const record = stash.readText(recordRel(rel), 1 << 16);
          const sha = recordedDiffID(stash, rel, undefined, (st) => owners.add(`${st.uid}:${st.gid}`));
          this.verified.set(rel, { sha, ownedBy: owners.size === 1 ? [...owners][0] : undefined, record });
        }
      }
    } catch (err) {
      this.verified.clear();
      this.log.debug(`stash: not checked ahead: ${err instanceof Error ? err.message : String(err)}`);
    } finally {
      stash.close();
    }
  }

  /** The layers `take` put in place whose every entry `uid:gid` owns already: handing them over would change nothing. */
  ownedBy(uid: number, gid: number): string[] {
    return [...this.taken].filter(([, owner]) => owner === `${uid}:${gid}`).map(([rel]) => rel);
  }

  private open(): ConfinedDir | undefined {
    try {
      mkdirSync(this.dir, { recursive: true, mode: 0o700 });
      return ConfinedDir.open(this.dir);
    } catch {
      return undefined;
    }
  }

  /** Moves the stashed `rel` (`<bp>/<layer>`) into `layers` when it is exactly the layer `sha`; false otherwise. */
  take(layers: ConfinedDir, rel: string, sha: string): boolean {
    const stash = this.open();
    if (!stash) return false;
    try {
      // A verdict holds while the record it was made against is still there (another build of the same app may have
      // stashed its own layers since); otherwise the layer is checked now.
      const found = this.verified.get(rel);
      const ahead = found && found.record === stash.readText(recordRel(rel), 1 << 16) ? found : undefined;
      if ((ahead ? ahead.sha : recordedDiffID(stash, rel)) !== sha) return false;
      layers.remove(rel);
      if (!stash.moveTo(rel, layers, rel)) return false;
      stash.moveTo(recordRel(rel), layers, recordRel(rel));
      this.taken.set(rel, ahead?.ownedBy);
      this.log.debug(`stash: ${rel} put in place (${sha.slice(7, 19)}), not extracted`);
      return true;
    } catch (err) {
      this.log.debug(`stash: ${rel} not used: ${err instanceof Error ? err.message : String(err)}`);
      return false;
    } finally {
      stash.close();
    }
  }

  /** After a successful build: the cached layers of `layersDir` (with their fingerprint records) go to the stash. */
  keep(layersDir: string, layers: { bp: string; names: string[] }[]): number {
    const stash = this.open();
    if (!stash) return 0;
    let kept = 0;
    try {
      // Only what this build made is kept: older entries could never match the cache again.
      stash.clear('');
      const src = ConfinedDir.open(layersDir);
      try {
        for (const { bp, names } of layers) {
          for (const name of names) {
            const rel = LayersDir.layerRel(bp, name);
            if (!src.isDirectory(rel) || !src.exists(recordRel(rel))) continue;
            if (src.moveTo(rel, stash, rel) && src.moveTo(recordRel(rel), stash, recordRel(rel))) kept++;
          }
        }
      } finally {
        src.close();
      }
    } catch (err) {
      this.log.debug(`stash: not kept: ${err instanceof Error ? err.message : String(err)}`);
    } finally {
      stash.close();
    }
    return kept;
  }
}
