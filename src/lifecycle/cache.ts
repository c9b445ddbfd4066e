import { createReadStream } from 'node:fs';
import { access, link, mkdir, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import type { Digest } from '../oci/digest.js';
import { digestHex } from '../oci/digest.js';
import { writeFileAtomic } from '../oci/fsutil.js';
import { writeTarFile, type LayerEntry } from '../oci/layer.js';
import type { LayerRecord } from './labels.js';
import type { Logger } from './log.js';

/** What a cache holds: per buildpack, its cached layers with their diffIDs and metadata. */
export interface CacheMetadata {
  sbom?: { sha: string };
  buildpacks: { key: string; version: string; layers: Record<string, LayerRecord> }[];
}

const METADATA_FILE = 'io.buildpacks.lifecycle.cache.metadata';

/**
 * A volume cache: `committed/` holds `<diffID hex>.tar` layers and the metadata. A new cache is written into
 * `staging/` and swapped in by renames through `committed-backup/`, so a build killed at any instant leaves a
 * readable cache: the old one, or the new one, or (between the two renames) the old one under its backup name,
 * which the next open moves back.
 */
export class DirCache {
  private constructor(readonly dir: string, private readonly log: Logger) {}

  static async open(dir: string, log: Logger): Promise<DirCache> {
    await mkdir(dir, { recursive: true });
    const cache = new DirCache(dir, log);
    const committed = join(dir, 'committed');
    const backup = join(dir, 'committed-backup');
    if (!(await exists(committed)) && (await exists(backup))) await rename(backup, committed);
    await rm(backup, { recursive: true, force: true });
    await rm(join(dir, 'staging'), { recursive: true, force: true });
    return cache;
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

  layerPath(diffID: string): string {
    return join(this.dir, 'committed', `${digestHex(diffID as Digest)}.tar`);
  }

  async openLayer(diffID: string): Promise<Readable> {
    return createReadStream(this.layerPath(diffID));
  }

  /** Starts writing the next cache; nothing is visible until `commit`. */
  async stage(): Promise<CacheWriter> {
    const staging = join(this.dir, 'staging');
    await rm(staging, { recursive: true, force: true });
    await mkdir(staging, { recursive: true });
    return new CacheWriter(this, staging);
  }
}

export class CacheWriter {
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

  /** Carries a committed layer over by hard link: no copy, no re-tar. False when the cache does not have it. */
  async keepLayer(diffID: string): Promise<boolean> {
    const from = this.cache.layerPath(diffID);
    if (!(await exists(from))) return false;
    await link(from, join(this.staging, `${digestHex(diffID as Digest)}.tar`)).catch((e: NodeJS.ErrnoException) => {
      if (e.code !== 'EEXIST') throw e;
    });
    return true;
  }

  async commit(metadata: CacheMetadata): Promise<void> {
    await writeFileAtomic(join(this.staging, METADATA_FILE), JSON.stringify(metadata));
    const committed = join(this.cache.dir, 'committed');
    const backup = join(this.cache.dir, 'committed-backup');
    await rm(backup, { recursive: true, force: true });
    if (await exists(committed)) await rename(committed, backup);
    await rename(this.staging, committed);
    await rm(backup, { recursive: true, force: true });
  }
}

const exists = (p: string): Promise<boolean> => access(p).then(() => true, () => false);
