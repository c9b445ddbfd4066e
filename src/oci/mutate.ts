import { Readable } from 'node:stream';
import { sha256, type Digest } from './digest.js';
import { imageTime, type HistoryEntry, type ImageConfig } from './config.js';
import { encodeJson, type Descriptor, type ImageManifest, type PlatformWanted } from './manifest.js';
import { layerTypeIn, MediaType } from './mediatype.js';
import type { ImageStore } from './store.js';

export interface AddedLayer {
  descriptor: Descriptor;
  diffID: Digest;
  history?: HistoryEntry;
}

/** A fresh config for an image with no base. */
export function emptyConfig(platform: PlatformWanted, created?: Date): ImageConfig {
  return {
    architecture: platform.architecture,
    os: platform.os,
    ...(platform.variant ? { variant: platform.variant } : {}),
    ...(created ? { created: imageTime(created) } : {}),
    config: {},
    rootfs: { type: 'layers', diff_ids: [] },
    history: [],
  };
}

export function emptyManifest(): ImageManifest {
  return { schemaVersion: 2, mediaType: MediaType.OciManifest, config: { mediaType: MediaType.OciConfig, digest: sha256('{}'), size: 2 }, layers: [] };
}

/**
 * Appends layers to an image, returning new config and manifest objects (inputs untouched). History gets one entry
 * per layer so tools that pair history with layers stay aligned.
 */
export function appendLayers(config: ImageConfig, manifest: ImageManifest, layers: AddedLayer[]): { config: ImageConfig; manifest: ImageManifest } {
  const history = [...(config.history ?? [])];
  const hadHistory = (config.history?.length ?? 0) > 0 || config.rootfs.diff_ids.length === 0;
  for (const l of layers) if (hadHistory) history.push(l.history ?? {});
  return {
    config: { ...config, rootfs: { type: 'layers', diff_ids: [...config.rootfs.diff_ids, ...layers.map((l) => l.diffID)] }, ...(hadHistory ? { history } : {}) },
    manifest: { ...manifest, layers: [...manifest.layers, ...layers.map((l) => l.descriptor)] },
  };
}

/**
 * The manifest with every layer named in one family: the manifest's own, or OCI when a layer has no Docker name
 * (zstd). Layers from two bases (a rebase across an OCI and a Docker run image) otherwise mix names, which skopeo and
 * Docker refuse. Only the names change: the bytes, and so the digests, are the same in both.
 */
export function unifyMediaTypes(manifest: ImageManifest): ImageManifest {
  const docker = manifest.mediaType === MediaType.DockerManifest && manifest.layers.every((l) => layerTypeIn(l.mediaType, true) !== undefined);
  return {
    ...manifest,
    mediaType: docker ? MediaType.DockerManifest : MediaType.OciManifest,
    layers: manifest.layers.map((l) => ({ ...l, mediaType: layerTypeIn(l.mediaType, docker)! })),
  };
}

/**
 * Writes config then manifest (layers must already be in the store). The media types follow the manifest kind, so a
 * Docker base stays a Docker image and an OCI base an OCI image, whatever names the layers came with. `freshConfig`
 * says the config is new (a rebase's), so no request asks whether the store has it.
 */
export async function writeImage(store: ImageStore, config: ImageConfig, anyManifest: ImageManifest, tag: string | undefined, freshConfig = false): Promise<{ digest: Digest; manifestBytes: Buffer; mediaType: string; configDigest: Digest }> {
  const manifest = unifyMediaTypes(anyManifest);
  const docker = manifest.mediaType === MediaType.DockerManifest;
  const configBytes = encodeJson(config);
  const configDesc: Descriptor = { mediaType: docker ? MediaType.DockerConfig : MediaType.OciConfig, digest: sha256(configBytes), size: configBytes.length };
  await store.putBlob(configDesc, async () => Readable.from([configBytes]), undefined, freshConfig);
  const out: ImageManifest = { ...manifest, config: configDesc };
  const manifestBytes = encodeJson(out);
  const mediaType = out.mediaType ?? MediaType.OciManifest;
  const digest = await store.putManifest(manifestBytes, mediaType, tag);
  return { digest, manifestBytes, mediaType, configDigest: configDesc.digest };
}

/**
 * A stored image as an index names it: its manifest's digest, size and media type (read from the store when not
 * given), and the platform it is for (needed only in an index).
 */
export interface PlatformImage {
  digest: Digest;
  size?: number;
  mediaType?: string;
  platform?: PlatformWanted;
}

/** `writeImage`'s result as an index names it. */
export function platformImage(written: { digest: Digest; manifestBytes: Buffer; mediaType: string }, platform?: PlatformWanted): PlatformImage {
  return { digest: written.digest, size: written.manifestBytes.length, mediaType: written.mediaType, ...(platform ? { platform } : {}) };
}

/**
 * Images for one or more platforms under one tag, as every multi-platform writer makes them: one is the image itself,
 * tagged; several are images stored by digest (`write` gets no tag) and an index of them, tagged, written last.
 */
export async function writePlatformImages<T>(store: ImageStore, tag: string | undefined, items: T[], write: (item: T, tag: string | undefined) => Promise<PlatformImage>): Promise<Digest> {
  if (items.length === 1) return (await write(items[0]!, tag)).digest;
  const images: { digest: Digest; size: number; mediaType: string; platform: PlatformWanted }[] = [];
  for (const item of items) {
    const w = await write(item, undefined);
    if (!w.platform) throw new Error('an image for an index was written without its platform');
    if (w.size !== undefined && w.mediaType !== undefined) images.push({ digest: w.digest, size: w.size, mediaType: w.mediaType, platform: w.platform });
    else {
      const m = await store.getManifest(w.digest);
      images.push({ digest: w.digest, size: m.bytes.length, mediaType: m.mediaType, platform: w.platform });
    }
  }
  return writeIndex(store, images, tag);
}

/** One image per platform under one tag: each image already stored by digest, the index naming them written last. */
export async function writeIndex(store: ImageStore, images: { digest: Digest; size: number; mediaType: string; platform: PlatformWanted }[], tag: string | undefined): Promise<Digest> {
  const manifests: Descriptor[] = images.map((i) => ({ mediaType: i.mediaType, digest: i.digest, size: i.size, platform: { ...i.platform } }));
  return store.putManifest(encodeJson({ schemaVersion: 2, mediaType: MediaType.OciIndex, manifests }), MediaType.OciIndex, tag);
}
