import { copyFile, readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { extractLayer } from '../oci/extract.js';
import type { ResolvedImage } from '../oci/image.js';
import { escapeId } from '../spec/buildpack.js';
import type { GroupEntry } from '../spec/group.js';
import type { Logger } from './log.js';

/** Unpacks an SBOM layer (its entries are `<layers>/sbom/...` at absolute paths) without touching the dirs above. */
export async function extractSbomLayer(image: ResolvedImage, diffID: string, what: string, log: Logger, root = '/'): Promise<boolean> {
  const i = image.config.rootfs.diff_ids.indexOf(diffID as never);
  const desc = i < 0 ? undefined : image.manifest.manifest.layers[i];
  if (!desc) {
    log.warn(`${what}: SBOM layer ${diffID} not found; SBOMs of reused layers will be missing`);
    return false;
  }
  await extractLayer(await image.store.getBlob(desc), root, { label: `${what} SBOM layer`, keepExistingDirs: true });
  return true;
}

/**
 * After restoring (spec §7): each `<layers>/sbom/{cache,launch}/<bp>/<layer>/sbom.<ext>` goes back next to its layer as
 * `<layers>/<bp>/<layer>.sbom.<ext>` for buildpacks of the group that have a dir, then `<layers>/sbom` is removed.
 */
export async function restoreLayerSboms(layersDir: string, group: GroupEntry[]): Promise<number> {
  let n = 0;
  for (const kind of ['cache', 'launch']) {
    for (const bp of group) {
      const from = join(layersDir, 'sbom', kind, escapeId(bp.id));
      const bpDir = join(layersDir, escapeId(bp.id));
      if (!(await stat(bpDir).catch(() => undefined))?.isDirectory()) continue;
      for (const layer of await readdir(from).catch(() => [] as string[])) {
        const dir = join(from, layer);
        if (!(await stat(dir)).isDirectory()) continue;
        for (const f of await readdir(dir)) {
          const m = /^sbom\.(.+)$/.exec(f);
          if (!m) continue;
          await copyFile(join(dir, f), join(bpDir, `${layer}.sbom.${m[1]}`));
          n++;
        }
      }
    }
  }
  await rm(join(layersDir, 'sbom'), { recursive: true, force: true });
  return n;
}
