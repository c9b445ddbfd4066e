import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import tar from 'tar-stream';
import { envValue } from '../oci/config.js';
import { extractLayer } from '../oci/extract.js';
import type { ResolvedImage } from '../oci/image.js';
import type { GroupEntry } from '../spec/group.js';
import { LayersDir } from './layersdir.js';
import type { Logger } from './log.js';

/** Where an image's layers dir was when it was built (its `CNB_LAYERS_DIR`), without the leading slash. */
export function imageLayersDir(image: ResolvedImage): string {
  return (envValue(image.config, 'CNB_LAYERS_DIR') ?? '/layers').replace(/^\/+|\/+$/g, '');
}

/**
 * Unpacks a previous image's SBOM layer into `<layers>/sbom/launch`. The layer comes from a registry, so it may hold
 * only that one tree, of plain files and dirs: whiteouts, links and entries anywhere else are refused.
 */
export async function extractSbomLayer(image: ResolvedImage, diffID: string, what: string, log: Logger, layersDir: string): Promise<boolean> {
  const i = image.config.rootfs.diff_ids.indexOf(diffID as never);
  const desc = i < 0 ? undefined : image.manifest.manifest.layers[i];
  if (!desc) {
    log.warn(`${what}: SBOM layer ${diffID} not found; SBOMs of reused layers will be missing`);
    return false;
  }
  try {
    await LayersDir.with(layersDir, async (layers) => {
      layers.dir.remove('sbom/launch');
      layers.dir.mkdirp('sbom/launch');
      await extractLayer(await image.store.getBlob(desc), layers.dir.pathOf('sbom/launch'), {
        label: `${what} SBOM layer`,
        strip: `${imageLayersDir(image)}/sbom/launch`,
        whiteouts: false,
        links: false,
        diffID: image.config.rootfs.diff_ids[i]!,
      });
    });
    return true;
  } catch (err) {
    log.warn(`${err instanceof Error ? err.message : String(err)}; SBOMs of reused layers will be missing`);
    await LayersDir.with(layersDir, async (layers) => layers.dir.remove('sbom/launch'));
    return false;
  }
}

/**
 * After restoring (spec §7): each `<layers>/sbom/{cache,launch}/<bp>/<layer>/sbom.<ext>` goes back next to its layer as
 * `<layers>/<bp>/<layer>.sbom.<ext>` for buildpacks of the group that have a dir, then `<layers>/sbom` is removed.
 * Both ends are confined: a link in either place is refused with a warning, never followed.
 */
export function restoreLayerSboms(layers: LayersDir, group: GroupEntry[], log: Logger): number {
  let n = 0;
  for (const kind of ['cache', 'launch']) {
    for (const bp of group) {
      const bpRel = LayersDir.bpDir(bp.id);
      if (!layers.isDirectory(bpRel)) continue;
      const from = `sbom/${kind}/${bpRel}`;
      for (const layer of (layers.isDirectory(from) ? layers.dir.readdir(from) : undefined) ?? []) {
        const dir = `${from}/${layer}`;
        if (!layers.isDirectory(dir)) continue;
        for (const f of layers.dir.readdir(dir) ?? []) {
          const m = /^sbom\.(.+)$/.exec(f);
          if (!m) continue;
          try {
            if (layers.dir.copyFileTo(`${dir}/${f}`, layers.dir, `${bpRel}/${layer}.sbom.${m[1]}`)) n++;
          } catch (err) {
            log.warn(`SBOM ${kind}/${bpRel}/${layer}/${f} not restored: ${err instanceof Error ? err.message : String(err)}`);
          }
        }
      }
    }
  }
  layers.dir.remove('sbom');
  return n;
}

/** One SBOM document of an app image: whose layer it describes, and its text. */
export interface ImageSbomDocument {
  buildpack: string;
  layer: string;
  file: string;
  text: string;
}

const MAX_SBOM_FILE = 8 << 20;
const MAX_SBOM_TOTAL = 32 << 20;

/**
 * An app image's launch SBOM documents, read straight from its SBOM layer as it streams (nothing is written to disk,
 * so nothing in the layer can point anywhere): regular files under `<layers>/sbom/launch/<buildpack>/<layer>/`, each
 * at most 8 MiB and 32 MiB in all. The layer comes from a registry; everything else in it is passed over.
 */
export async function imageSbomDocuments(image: ResolvedImage, sha: string | undefined): Promise<ImageSbomDocument[]> {
  const i = sha ? image.config.rootfs.diff_ids.indexOf(sha as never) : -1;
  const desc = i < 0 ? undefined : image.manifest.manifest.layers[i];
  if (!desc) return [];
  const prefix = `${imageLayersDir(image)}/sbom/launch/`;
  const out: ImageSbomDocument[] = [];
  let total = 0;
  const extract = tar.extract();
  const done = new Promise<void>((resolve, reject) => {
    extract.on('entry', (header, stream, next) => {
      const name = header.name.replace(/^\.?\/+/, '');
      const parts = name.startsWith(prefix) ? name.slice(prefix.length).split('/') : [];
      const wanted = header.type === 'file' && parts.length === 3 && /^sbom\.(cdx|spdx|syft)\.json$/.test(parts[2]!) && (header.size ?? 0) <= MAX_SBOM_FILE && total + (header.size ?? 0) <= MAX_SBOM_TOTAL;
      if (!wanted) {
        stream.on('end', next).resume();
        return;
      }
      const chunks: Buffer[] = [];
      stream.on('data', (c: unknown) => void chunks.push(c as Buffer));
      stream.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        total += text.length;
        out.push({ buildpack: parts[0]!.replace(/_/g, '/'), layer: parts[1]!, file: parts[2]!, text });
        next();
      });
    });
    extract.on('finish', resolve);
    extract.on('error', reject);
  });
  const blob = await image.store.getBlob(desc);
  await (/gzip/.test(desc.mediaType) ? pipeline(blob, createGunzip(), extract) : pipeline(blob, extract));
  await done;
  return out;
}
