import { parseConfig, type ImageConfig } from './config.js';
import { NotFoundError, StrataError } from './errors.js';
import { hostPlatform, selectPlatform, type ParsedManifest, type PlatformWanted, type ImageManifest } from './manifest.js';
import type { ImageStore } from './store.js';

/** A single-platform image as read from a store: its manifest, its config, and the index it was chosen from. */
export interface ResolvedImage {
  store: ImageStore;
  manifest: Extract<ParsedManifest, { kind: 'manifest' }>;
  config: ImageConfig;
  configBytes: Buffer;
  index?: Extract<ParsedManifest, { kind: 'index' }>;
}

/** Reads an image, choosing the wanted platform (default: this host's) from an index. */
export async function resolveImage(store: ImageStore, tagOrDigest?: string, platform: PlatformWanted = hostPlatform()): Promise<ResolvedImage> {
  let top = await store.getManifest(tagOrDigest);
  let index: ResolvedImage['index'];
  if (top.kind === 'index') {
    index = top;
    const chosen = selectPlatform(top.index, platform);
    if (!chosen) {
      const have = top.index.manifests.map((d) => (d.platform ? `${d.platform.os}/${d.platform.architecture}${d.platform.variant ? `/${d.platform.variant}` : ''}` : '?')).join(', ');
      throw new NotFoundError(`${store.description}: no image for ${platform.os}/${platform.architecture} in its index (has: ${have || 'none'})`);
    }
    top = await store.getManifest(chosen.digest);
    if (top.kind !== 'manifest') throw new StrataError(`${store.description}: nested index at ${chosen.digest} is not supported`);
  }
  const manifest = top;
  const configBytes = await store.getBlobBytes(manifest.manifest.config);
  const config = parseConfig(configBytes, `${store.description} config ${manifest.manifest.config.digest}`);
  checkConsistent(manifest.manifest, config, store.description);
  return { store, manifest, config, configBytes, ...(index ? { index } : {}) };
}

function checkConsistent(m: ImageManifest, c: ImageConfig, where: string): void {
  if (m.layers.length !== c.rootfs.diff_ids.length) {
    throw new StrataError(`${where}: manifest has ${m.layers.length} layers but config lists ${c.rootfs.diff_ids.length} diff_ids`);
  }
}
