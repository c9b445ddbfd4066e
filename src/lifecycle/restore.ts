import { fstatSync } from 'node:fs';
import { closeSync } from 'node:fs';
import { isDigest } from '../oci/digest.js';
import { extractLayer } from '../oci/extract.js';
import type { GroupEntry } from '../spec/group.js';
import type { ApiVersion } from '../spec/api.js';
import type { Cache } from './cache.js';
import { layerRecipe } from './export.js';
import { rememberDiffID } from './fingerprint.js';
import { restoreLayerSboms } from './sbom.js';
import type { LayerRecord, LifecycleMetadata } from './labels.js';
import { LayersDir } from './layersdir.js';
import type { Logger } from './log.js';
import type { LayerStash } from './stash.js';

export interface RestoreInputs {
  group: GroupEntry[];
  layersDir: string;
  /** The previous image's lifecycle metadata, from analyzed.toml. */
  previous?: LifecycleMetadata;
  cache?: Cache;
  platformApi: ApiVersion;
  skipLayers: boolean;
  /** Where the layers dir is in the image when the host dir differs (cached tars hold in-image paths); default: the same. */
  imageLayersDir?: string;
  /** Layer dirs of the last build, put in place by rename when they are exactly what the cache holds. */
  stash?: LayerStash;
  log: Logger;
}

/**
 * The restorer (spec §7): store.toml from the image label; layer metadata per the restoration table; cached layer
 * contents only when the recorded SHA and the cache's agree, otherwise the layer is removed so metadata and content
 * never disagree. A cache that cannot be read only warns.
 *
 * Everything it reads is hostile: layer names and SHAs come from image labels or a cache image, cached tars from a
 * registry, and the layers dir was writable by buildpacks during detection. So names must be single path components,
 * SHAs digests, each cached tar may fill only its own layer dir (no whiteouts) and must hash to its diffID, and every
 * write into the layers dir is confined (links refused, never followed).
 */
export async function restore(inputs: RestoreInputs): Promise<{ restored: string[]; removed: string[] }> {
  return LayersDir.with(inputs.layersDir, (layers) => restoreInto(layers, inputs));
}

async function restoreInto(layers: LayersDir, inputs: RestoreInputs): Promise<{ restored: string[]; removed: string[] }> {
  const { log } = inputs;
  const restored: string[] = [];
  const removed: string[] = [];
  const cacheMd = inputs.cache ? await inputs.cache.metadata() : { buildpacks: [] };
  const imageLayers = (inputs.imageLayersDir ?? layers.path).replace(/\/+$/, '');
  /** Layer records whose names can be paths; the rest are dropped with a warning. */
  const usable = (records: Record<string, LayerRecord> | undefined, bp: string, from: string): [string, LayerRecord, string][] => {
    const out: [string, LayerRecord, string][] = [];
    for (const [name, rec] of Object.entries(records ?? {})) {
      try {
        out.push([name, rec, LayersDir.layerRel(bp, name)]);
      } catch (err) {
        log.warn(`${from}: ${err instanceof Error ? err.message : String(err)}; layer ignored`);
      }
    }
    return out;
  };
  const forget = (rel: string): void => {
    for (const r of [rel, `${rel}.toml`, `${rel}.sha`]) layers.dir.remove(r);
  };
  for (const bp of inputs.group) {
    const bpRel = LayersDir.bpDir(bp.id);
    const fromImage = inputs.previous?.buildpacks.find((b) => b.key === bp.id);
    if (fromImage?.store) layers.writeToml(`${bpRel}/store.toml`, { metadata: fromImage.store.metadata ?? {} });
    if (inputs.skipLayers) continue;
    const fromCache = usable(cacheMd.buildpacks.find((b) => b.key === bp.id)?.layers, bp.id, 'cache metadata');
    const cacheByName = new Map(fromCache.map(([name, rec]) => [name, rec]));
    const shas = new Map<string, string>();
    // Only the metadata, in `<layer>.toml`: the buildpack decides the types again.
    const writeMetadata = (rel: string, rec: LayerRecord): void => layers.writeToml(`${rel}.toml`, { metadata: rec.data ?? {} });
    for (const [name, rec, rel] of usable(fromImage?.layers, bp.id, 'previous image metadata')) {
      if (!rec.launch || (rec.build && !rec.cache)) continue;
      if (rec.cache && !cacheByName.get(name)?.cache) continue;
      writeMetadata(rel, rec);
      shas.set(name, rec.sha);
    }
    for (const [name, rec, rel] of fromCache) {
      if (!rec.cache || shas.has(name)) continue;
      if (rec.launch && !inputs.platformApi.atLeast('0.14')) continue;
      writeMetadata(rel, rec);
      shas.set(name, rec.sha);
    }
    for (const [name, rec, rel] of fromCache) {
      if (!rec.cache || !shas.has(name)) continue;
      if (shas.get(name) !== rec.sha) {
        forget(rel);
        removed.push(`${bp.id}:${name}`);
        continue;
      }
      try {
        if (!isDigest(rec.sha)) throw new Error(`its SHA "${rec.sha}" is not a digest`);
        if (inputs.stash?.take(layers.dir, rel, rec.sha)) {
          restored.push(`${bp.id}:${name}`);
          continue;
        }
        // Whatever is at the layer's place goes first (a link included): the restored dir is exactly the cached tar.
        layers.dir.remove(rel);
        layers.dir.mkdirp(rel);
        await extractLayer(await inputs.cache!.openLayer(rec.sha), layers.dir.pathOf(rel), {
          label: `cached layer ${bp.id}:${name}`,
          strip: `${imageLayers}/${rel}`,
          whiteouts: false,
          diffID: rec.sha,
        });
        // The extracted dir re-tars to the cached bytes: remember its diffID so an untouched layer is never re-read.
        const fd = layers.dir.openDir(rel);
        const st = fstatSync(fd);
        closeSync(fd);
        rememberDiffID(layers.dir, rel, layerRecipe(`${imageLayers}/${rel}`, st.uid, st.gid, st.mtime), rec.sha);
        restored.push(`${bp.id}:${name}`);
      } catch (err) {
        log.warn(`cache: could not restore ${bp.id}:${name} (${err instanceof Error ? err.message : String(err)}); it will be rebuilt`);
        forget(rel);
      }
    }
  }
  if (!inputs.skipLayers && inputs.platformApi.atLeast('0.8')) {
    try {
      if (cacheMd.sbom?.sha && inputs.cache) {
        if (!isDigest(cacheMd.sbom.sha)) throw new Error(`its SHA "${cacheMd.sbom.sha}" is not a digest`);
        layers.dir.remove('sbom/cache');
        layers.dir.mkdirp('sbom/cache');
        await extractLayer(await inputs.cache.openLayer(cacheMd.sbom.sha), layers.dir.pathOf('sbom/cache'), {
          label: 'cached SBOM layer',
          strip: `${imageLayers}/sbom/cache`,
          whiteouts: false,
          links: false,
          diffID: cacheMd.sbom.sha,
        });
      }
    } catch (err) {
      log.warn(`cache: SBOM layer not restored (${err instanceof Error ? err.message : String(err)})`);
      layers.dir.remove('sbom/cache');
    }
    restoreLayerSboms(layers, inputs.group, log);
  }
  return { restored, removed };
}
