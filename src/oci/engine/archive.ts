import { createReadStream, createWriteStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import tar from 'tar-stream';
import { digestHex, sha256, type Digest } from '../digest.js';
import { StrataError } from '../errors.js';
import { decompressIfGzip } from '../extract.js';
import { compressLayer } from '../layer.js';
import type { OciLayout } from '../layout.js';
import { encodeJson, type Descriptor, type ImageManifest } from '../manifest.js';
import { MediaType } from '../mediatype.js';
import type { ResolvedImage } from '../image.js';
import { parseConfig } from '../config.js';
import { tempSibling } from '../fsutil.js';

/** One entry of a docker-archive's manifest.json. */
interface ArchiveEntry {
  Config: string;
  RepoTags?: string[] | null;
  Layers: string[];
}

const EPOCH = new Date(0);

/**
 * Streams an image as a docker-archive (what `docker load` reads): the config, each layer blob as it is stored
 * (engines accept gzip layers and unpack them), and manifest.json naming them. Nothing is buffered but the config.
 */
export function dockerArchive(image: ResolvedImage, repoTags: string[]): Readable {
  const pack = tar.pack();
  const write = async (): Promise<void> => {
    const config = `${digestHex(image.manifest.manifest.config.digest)}.json`;
    pack.entry({ name: config, size: image.configBytes.length, mode: 0o644, mtime: EPOCH }, image.configBytes);
    const layers: string[] = [];
    for (const desc of image.manifest.manifest.layers) {
      const name = `${digestHex(desc.digest)}/layer.tar`;
      layers.push(name);
      const entry = pack.entry({ name, size: desc.size, mode: 0o644, mtime: EPOCH });
      await pipeline(await image.store.getBlob(desc), entry);
    }
    const manifest = Buffer.from(JSON.stringify([{ Config: config, RepoTags: repoTags, Layers: layers } satisfies ArchiveEntry]));
    pack.entry({ name: 'manifest.json', size: manifest.length, mode: 0o644, mtime: EPOCH }, manifest);
    pack.finalize();
  };
  write().catch((err: Error) => pack.destroy(err));
  return Readable.from(pack as AsyncIterable<Buffer>, { objectMode: false });
}

const SMALL_LIMIT = 16 << 20;

/**
 * Reads a docker-archive (from `GET /images/{name}/get`) into a layout under `tag`. Layers usually come before
 * manifest.json, so every file is spooled to a temp file named by its position (never by its archive path); once the
 * manifest is known, each layer is gzipped into a blob while its diffID is checked against the config. The config's
 * bytes are kept, so the engine's image ID is the config digest.
 */
export async function importDockerArchive(input: Readable, layout: OciLayout, tag: string, what: string): Promise<Digest> {
  const spooled = new Map<string, string>();
  const small = new Map<string, Buffer>();
  const extract = tar.extract();
  let n = 0;
  try {
    const done = (async () => {
      for await (const entry of extract) {
        const name = entry.header.name.replace(/^\.\//, '');
        if (entry.header.type !== 'file') {
          entry.resume();
          continue;
        }
        if (name.endsWith('.json') && (entry.header.size ?? 0) <= SMALL_LIMIT) {
          const chunks: Buffer[] = [];
          for await (const c of entry as AsyncIterable<Buffer>) chunks.push(c);
          small.set(name, Buffer.concat(chunks));
          continue;
        }
        const tmp = tempSibling(join(layout.root, `engine-layer-${n++}`));
        spooled.set(name, tmp);
        await pipeline(entry, createWriteStream(tmp));
      }
    })();
    await Promise.all([pipeline(input, extract), done]);

    const manifestBytes = small.get('manifest.json');
    if (!manifestBytes) throw new StrataError(`${what}: the engine's archive has no manifest.json`);
    const entries = JSON.parse(manifestBytes.toString('utf8')) as ArchiveEntry[];
    const top = entries[0];
    if (!top) throw new StrataError(`${what}: the engine's archive lists no image`);
    const configBytes = small.get(top.Config);
    if (!configBytes) throw new StrataError(`${what}: the engine's archive lacks its config ${top.Config}`);
    const config = parseConfig(configBytes, `${what} config`);
    if (config.rootfs.diff_ids.length !== top.Layers.length) throw new StrataError(`${what}: archive has ${top.Layers.length} layers, config lists ${config.rootfs.diff_ids.length}`);

    const layers: Descriptor[] = [];
    for (const [i, path] of top.Layers.entries()) {
      const file = spooled.get(path);
      if (!file) throw new StrataError(`${what}: the engine's archive lacks layer ${path}`);
      const blob = tempSibling(join(layout.root, 'blob'));
      const info = await compressLayer(decompressIfGzip(createReadStream(file)), createWriteStream(blob));
      if (info.diffID !== config.rootfs.diff_ids[i]) {
        await rm(blob, { force: true });
        throw new StrataError(`${what}: layer ${path} has diffID ${info.diffID}, the config says ${config.rootfs.diff_ids[i]}`);
      }
      await layout.adoptBlobFile(blob, info.digest);
      layers.push({ mediaType: info.mediaType, digest: info.digest, size: info.size });
    }
    const configDesc: Descriptor = { mediaType: MediaType.OciConfig, digest: sha256(configBytes), size: configBytes.length };
    await layout.putBlob(configDesc, async () => Readable.from([configBytes]));
    const manifest: ImageManifest = { schemaVersion: 2, mediaType: MediaType.OciManifest, config: configDesc, layers };
    return await layout.putManifest(encodeJson(manifest), MediaType.OciManifest, tag);
  } finally {
    await Promise.all([...spooled.values()].map((f) => rm(f, { force: true })));
  }
}
