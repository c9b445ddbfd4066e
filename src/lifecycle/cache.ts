import { createReadStream } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { copyFile, link, mkdir, readdir, readFile, rename, rm } from 'node:fs/promises';
import { basename, join } from 'node:path';
import type { Readable } from 'node:stream';
import { tmpdir } from 'node:os';
import { mkdtemp } from 'node:fs/promises';
import { withLabels } from '../oci/config.js';
import { NotFoundError, StrataError } from '../oci/errors.js';
import { decompressIfGzip } from '../oci/extract.js';
import { resolveImage, type ResolvedImage } from '../oci/image.js';
import type { Descriptor } from '../oci/manifest.js';
import { MediaType } from '../oci/mediatype.js';
import { appendLayers, emptyConfig, emptyManifest, writeImage, type AddedLayer } from '../oci/mutate.js';
import type { ImageStore } from '../oci/store.js';
import type { Digest } from '../oci/digest.js';
import { digestHex, parseDigest } from '../oci/digest.js';
import { pathExists, processAlive, WHOLE_FILE_READ, withLock, writeFileAtomic } from '../oci/fsutil.js';
import { writeLayerFile, writeTarFile, type LayerEntry } from '../oci/layer.js';
import type { LayerRecord } from './labels.js';
import type { Logger } from './log.js';

/** What a cache holds: per buildpack, its cached layers with their diffIDs and metadata. */
export interface CacheMetadata {
  sbom?: { sha: string };
  buildpacks: { key: string; version: string; layers: Record<string, LayerRecord> }[];
}

const METADATA_FILE = 'io.buildpacks.lifecycle.cache.metadata';
const GZIP_SUFFIX = '.tar.gz';
/** A layer's two forms in a volume cache, the one preferred first. */
const LAYER_SUFFIXES = [GZIP_SUFFIX, '.tar'];
export const CACHE_LABEL = 'io.buildpacks.lifecycle.cache.metadata';

/** A build cache: a directory or an image; the restorer reads one, the exporter writes the next. */
export interface Cache {
  readonly description: string;
  metadata(): Promise<CacheMetadata>;
  /** The uncompressed layer tar with this diffID. */
  openLayer(diffID: string): Promise<Readable>;
  stage(): Promise<CacheStage>;
}

export interface CacheStage {
  addLayer(entries: AsyncIterable<LayerEntry>, mtime: Date): Promise<string>;
  /** Adds a layer the exporter already made, from its gzip blob. */
  addCompressed(diffID: string, path: string, descriptor: Descriptor): Promise<void>;
  keepLayer(diffID: string): Promise<boolean>;
  commit(metadata: CacheMetadata): Promise<void>;
  /** Drops what was staged (a failed save); the committed cache stays as it was. */
  discard(): Promise<void>;
}

/**
 * A volume cache: `committed/` holds each layer as `<diffID hex>.tar.gz` (the exporter's own blob, linked in: saving
 * costs no gunzip and no copy) or `<diffID hex>.tar` (a layer only the cache has), and the metadata. A new cache is
 * written into its own `staging-<pid>-<random>/` and swapped in, under a lock, by renames through
 * `committed-backup/`, so a build killed at any instant leaves a readable cache (the old one, the new one, or the old
 * one under its backup name, which the next open moves back) and parallel builds of one image each save theirs, the
 * last one winning.
 */
export class DirCache implements Cache {
  private constructor(readonly dir: string, private readonly log: Logger) {}

  get description(): string {
    return this.dir;
  }

  static async open(dir: string, log: Logger): Promise<DirCache> {
    await mkdir(dir, { recursive: true });
    const cache = new DirCache(dir, log);
    await cache.locked(async () => {
      const committed = join(dir, 'committed');
      const backup = join(dir, 'committed-backup');
      if (!(await pathExists(committed)) && (await pathExists(backup))) await rename(backup, committed);
      await rm(backup, { recursive: true, force: true });
      // Staging dirs of builds that died; a live build's own is left alone.
      for (const n of await readdir(dir)) {
        const m = /^staging(?:-(\d+)-[0-9a-f]+)?$/.exec(n);
        if (m && !(m[1] && processAlive(Number(m[1])))) await rm(join(dir, n), { recursive: true, force: true });
      }
    });
    return cache;
  }

  /** Serialises changes to `committed/` between processes sharing this cache. */
  locked<T>(fn: () => Promise<T>): Promise<T> {
    return withLock(join(this.dir, '.lock'), `cache ${this.dir}`, fn, 120_000);
  }

  async metadata(): Promise<CacheMetadata> {
    try {
      const md = JSON.parse(await readFile(join(this.dir, 'committed', METADATA_FILE), 'utf8')) as CacheMetadata;
      return { ...md, buildpacks: md.buildpacks ?? [] };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') this.log.warn(`cache ${this.dir}: unreadable metadata, starting with an empty cache`);
      return { buildpacks: [] };
    }
  }

  /** The committed file of a layer, in whichever of its two forms the cache holds; undefined when it has neither. */
  async layerPath(diffID: string): Promise<string | undefined> {
    const hex = digestHex(parseDigest(diffID, 'cached layer SHA'));
    for (const suffix of LAYER_SUFFIXES) {
      const path = join(this.dir, 'committed', `${hex}${suffix}`);
      if (await pathExists(path)) return path;
    }
    return undefined;
  }

  /** The layer's tar, gzip or not: extraction gunzips by the stream's magic and checks the diffID either way. */
  async openLayer(diffID: string): Promise<Readable> {
    const path = await this.layerPath(diffID);
    if (!path) throw new StrataError(`cache ${this.dir} has no layer ${diffID}`);
    return createReadStream(path, WHOLE_FILE_READ);
  }

  /** Starts writing the next cache; nothing is visible until `commit`. */
  async stage(): Promise<CacheWriter> {
    const staging = join(this.dir, `staging-${process.pid}-${randomBytes(4).toString('hex')}`);
    await mkdir(staging, { recursive: true });
    return new CacheWriter(this, staging);
  }
}

export class CacheWriter implements CacheStage {
  constructor(
    private readonly cache: DirCache,
    private readonly staging: string,
  ) {}

  /** Adds a layer; an identical one already committed is linked instead of kept twice. */
  async addLayer(entries: AsyncIterable<LayerEntry>, mtime: Date): Promise<string> {
    const tmp = join(this.staging, `.new-${Math.random().toString(36).slice(2)}.tar`);
    const diffID = await writeTarFile(entries, tmp, { mtime });
    await rename(tmp, join(this.staging, `${digestHex(diffID)}.tar`));
    return diffID;
  }

  /** The exporter's blob as it is: hard-linked (the export dir is on the same disk), copied when it is not. */
  async addCompressed(diffID: string, path: string): Promise<void> {
    const dest = join(this.staging, `${digestHex(diffID as Digest)}${GZIP_SUFFIX}`);
    try {
      await link(path, dest);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'EEXIST') return;
      if (code !== 'EXDEV' && code !== 'EPERM') throw e;
      await copyFile(path, `${dest}.tmp`);
      await rename(`${dest}.tmp`, dest);
    }
  }

  /** Carries a committed layer over by hard link: no copy, no re-tar. False when the cache does not have it. */
  async keepLayer(diffID: string): Promise<boolean> {
    const from = await this.cache.layerPath(diffID);
    if (!from) return false;
    try {
      await link(from, join(this.staging, basename(from)));
    } catch (e) {
      // Gone since the check: another build committed over it; the layer is then written anew.
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false;
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    return true;
  }

  async discard(): Promise<void> {
    await rm(this.staging, { recursive: true, force: true });
  }

  async commit(metadata: CacheMetadata): Promise<void> {
    await writeFileAtomic(join(this.staging, METADATA_FILE), JSON.stringify(metadata));
    const committed = join(this.cache.dir, 'committed');
    const backup = join(this.cache.dir, 'committed-backup');
    await this.cache.locked(async () => {
      await rm(backup, { recursive: true, force: true });
      if (await pathExists(committed)) await rename(committed, backup);
      await rename(this.staging, committed);
      await rm(backup, { recursive: true, force: true });
    });
  }
}


/**
 * An image cache (`-cache-image`): the cached layers as gzip layers of an image whose label holds the metadata.
 * Committing writes the manifest last, so a failed save leaves the previous cache image in place.
 */
export class ImageCache implements Cache {
  private previous?: ResolvedImage | null;

  constructor(
    private readonly store: ImageStore,
    private readonly tag: string,
    readonly description: string,
    private readonly log: Logger,
  ) {}

  private async image(): Promise<ResolvedImage | undefined> {
    if (this.previous === undefined) {
      try {
        this.previous = await resolveImage(this.store, this.tag);
      } catch (err) {
        if (!(err instanceof NotFoundError)) this.log.warn(`cache image ${this.description}: ${err instanceof Error ? err.message : String(err)}; starting with an empty cache`);
        this.previous = null;
      }
    }
    return this.previous ?? undefined;
  }

  async metadata(): Promise<CacheMetadata> {
    const label = (await this.image())?.config.config?.Labels?.[CACHE_LABEL];
    try {
      const md = label ? (JSON.parse(label) as CacheMetadata) : undefined;
      return { ...(md ?? {}), buildpacks: md?.buildpacks ?? [] };
    } catch {
      this.log.warn(`cache image ${this.description}: unreadable metadata label; starting with an empty cache`);
      return { buildpacks: [] };
    }
  }

  private descriptorFor(image: ResolvedImage, diffID: string): Descriptor | undefined {
    const i = image.config.rootfs.diff_ids.indexOf(diffID as Digest);
    return i < 0 ? undefined : image.manifest.manifest.layers[i];
  }

  async openLayer(diffID: string): Promise<Readable> {
    const image = await this.image();
    const desc = image && this.descriptorFor(image, diffID);
    if (!desc) throw new StrataError(`cache image ${this.description} has no layer ${diffID}`);
    return decompressIfGzip(await this.store.getBlob(desc));
  }

  async stage(): Promise<CacheStage> {
    const previous = await this.image();
    const layers: AddedLayer[] = [];
    const staging = await mkdtemp(join(tmpdir(), 'strata-cache-'));
    return {
      addLayer: async (entries, mtime) => {
        const file = join(staging, `layer-${layers.length}.tar.gz`);
        const info = await writeLayerFile(entries, file, { mtime });
        const desc: Descriptor = { mediaType: info.mediaType, digest: info.digest, size: info.size };
        await this.store.putBlob(desc, async (start, end) => createReadStream(file, { start, end: end - 1 }));
        await rm(file, { force: true });
        layers.push({ descriptor: desc, diffID: info.diffID });
        return info.diffID;
      },
      addCompressed: async (diffID, path, descriptor) => {
        // The cache image is OCI, whatever the app image's manifest type was; the blob is the same.
        const desc = { ...descriptor, mediaType: MediaType.OciLayerGzip };
        await this.store.putBlob(desc, async (start, end) => createReadStream(path, { start, end: end - 1 }));
        layers.push({ descriptor: desc, diffID: diffID as Digest });
      },
      keepLayer: async (diffID) => {
        const desc = previous && this.descriptorFor(previous, diffID);
        if (!desc) return false;
        layers.push({ descriptor: desc, diffID: diffID as Digest });
        return true;
      },
      discard: async () => {
        await rm(staging, { recursive: true, force: true });
      },
      commit: async (metadata) => {
        try {
          const base = appendLayers(emptyConfig({ os: 'linux', architecture: 'amd64' }), emptyManifest(), layers);
          await writeImage(this.store, withLabels(base.config, { [CACHE_LABEL]: JSON.stringify(metadata) }), base.manifest, this.tag);
        } finally {
          await rm(staging, { recursive: true, force: true });
        }
      },
    };
  }
}
