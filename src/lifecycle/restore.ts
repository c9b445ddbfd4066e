import { mkdir, rm, stat } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { extractLayer } from '../oci/extract.js';
import { escapeId } from '../spec/buildpack.js';
import type { GroupEntry } from '../spec/group.js';
import { writeStore } from '../spec/storetoml.js';
import { writeToml } from '../spec/toml.js';
import type { ApiVersion } from '../spec/api.js';
import type { Cache } from './cache.js';
import { layerRecipe } from './export.js';
import { rememberDiffID } from './fingerprint.js';
import { restoreLayerSboms } from './sbom.js';
import type { LayerRecord, LifecycleMetadata } from './labels.js';
import type { Logger } from './log.js';

export interface RestoreInputs {
  group: GroupEntry[];
  layersDir: string;
  /** The previous image's lifecycle metadata, from analyzed.toml. */
  previous?: LifecycleMetadata;
  cache?: Cache;
  platformApi: ApiVersion;
  skipLayers: boolean;
  /** Where the image's `/` is on this host: cached tars hold in-image paths (`/layers/…`); default `/`. */
  extractRoot?: string;
  log: Logger;
}

/** Writes `<layer>.toml` holding only the metadata: the buildpack decides the types again. */
async function writeLayerMetadata(bpDir: string, name: string, record: LayerRecord): Promise<void> {
  await mkdir(bpDir, { recursive: true });
  await writeToml(join(bpDir, `${name}.toml`), { metadata: record.data ?? {} });
}

/**
 * The restorer (spec §7): store.toml from the image label; layer metadata per the restoration table; cached layer
 * contents only when the recorded SHA and the cache's agree, otherwise the layer is removed so metadata and content
 * never disagree. A cache that cannot be read only warns.
 */
export async function restore(inputs: RestoreInputs): Promise<{ restored: string[]; removed: string[] }> {
  const { layersDir, log } = inputs;
  const restored: string[] = [];
  const removed: string[] = [];
  const cacheMd = inputs.cache ? await inputs.cache.metadata() : { buildpacks: [] };
  const root = inputs.extractRoot ?? '/';
  for (const bp of inputs.group) {
    const bpDir = join(layersDir, escapeId(bp.id));
    const fromImage = inputs.previous?.buildpacks.find((b) => b.key === bp.id);
    if (fromImage?.store) await mkdir(bpDir, { recursive: true }).then(() => writeStore(join(bpDir, 'store.toml'), { metadata: fromImage.store!.metadata }));
    if (inputs.skipLayers) continue;
    const fromCache = cacheMd.buildpacks.find((b) => b.key === bp.id)?.layers ?? {};
    const shas = new Map<string, string>();
    for (const [name, rec] of Object.entries(fromImage?.layers ?? {})) {
      if (!rec.launch || (rec.build && !rec.cache)) continue;
      if (rec.cache && !fromCache[name]?.cache) continue;
      await writeLayerMetadata(bpDir, name, rec);
      shas.set(name, rec.sha);
    }
    for (const [name, rec] of Object.entries(fromCache)) {
      if (!rec.cache || shas.has(name)) continue;
      if (rec.launch && !inputs.platformApi.atLeast('0.14')) continue;
      await writeLayerMetadata(bpDir, name, rec);
      shas.set(name, rec.sha);
    }
    for (const [name, rec] of Object.entries(fromCache)) {
      if (!rec.cache || !shas.has(name)) continue;
      if (shas.get(name) !== rec.sha) {
        await Promise.all([rm(join(bpDir, name), { recursive: true, force: true }), rm(join(bpDir, `${name}.toml`), { force: true }), rm(join(bpDir, `${name}.sha`), { force: true })]);
        removed.push(`${bp.id}:${name}`);
        continue;
      }
      try {
        // Cached tars hold the layer at its absolute path, as in the image.
        await extractLayer(await inputs.cache!.openLayer(rec.sha), root, { label: `cached layer ${bp.id}:${name}`, keepExistingDirs: true });
        // The extracted dir re-tars to the cached bytes: remember its diffID so an untouched layer is never re-read.
        const dir = join(bpDir, name);
        const st = await stat(dir);
        await rememberDiffID(dir, layerRecipe(root === '/' ? dir : `/${relative(root, dir)}`, st.uid, st.gid, st.mtime), rec.sha);
        restored.push(`${bp.id}:${name}`);
      } catch (err) {
        log.warn(`cache: could not restore ${bp.id}:${name} (${err instanceof Error ? err.message : String(err)}); it will be rebuilt`);
        await Promise.all([rm(join(bpDir, name), { recursive: true, force: true }), rm(join(bpDir, `${name}.toml`), { force: true })]);
      }
    }
  }
  if (!inputs.skipLayers && inputs.platformApi.atLeast('0.8')) {
    try {
      if (cacheMd.sbom?.sha && inputs.cache) await extractLayer(await inputs.cache.openLayer(cacheMd.sbom.sha), root, { label: 'cached SBOM layer', keepExistingDirs: true });
    } catch (err) {
      log.warn(`cache: SBOM layer not restored (${err instanceof Error ? err.message : String(err)})`);
    }
    await restoreLayerSboms(layersDir, inputs.group);
  }
  return { restored, removed };
}
