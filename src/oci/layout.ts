import { createReadStream } from 'node:fs';
import { mkdir, readdir, readFile, rename, rm, stat, access, open } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { VerifyingStream, digestHex, isDigest, sha256, type Digest } from './digest.js';
import { NotFoundError, StrataError } from './errors.js';
import { processAlive, tempSibling, WHOLE_FILE_READ, withLock, writeFileAtomic } from './fsutil.js';
import { parseManifest, type Descriptor, type ImageIndex, type ParsedManifest } from './manifest.js';
import { MediaType } from './mediatype.js';
import type { BlobOpener, ImageStore } from './store.js';

export const REF_NAME = 'org.opencontainers.image.ref.name';
const LAYOUT_VERSION = '1.0.0';

/**
 * An OCI image layout directory holding any number of images, each named by the `ref.name` annotation of its entry
 * in index.json. Blobs are written under their final name only when complete, and index.json is replaced
 * atomically after every blob it references is in place, so a crash never leaves a dangling reference.
 */
export class OciLayout implements ImageStore {
  readonly root: string;
  readonly description: string;

  private constructor(root: string, private readonly defaultTag: string | undefined) {
    this.root = resolve(root);
    this.description = `oci:${root}${defaultTag ? `:${defaultTag}` : ''}`;
  }

  /** Opens a layout; with `create`, makes an empty one when the directory has none. */
  static async open(root: string, options: { create?: boolean; tag?: string } = {}): Promise<OciLayout> {
    const layout = new OciLayout(root, options.tag);
    const marker = join(layout.root, 'oci-layout');
    const exists = await access(marker).then(() => true, () => false);
    if (!exists) {
      if (!options.create) throw new NotFoundError(`oci:${root}: not an OCI image layout (no oci-layout file)`);
      await mkdir(join(layout.root, 'blobs', 'sha256'), { recursive: true });
      await writeFileAtomic(marker, JSON.stringify({ imageLayoutVersion: LAYOUT_VERSION }));
      if (!(await access(join(layout.root, 'index.json')).then(() => true, () => false))) {
        await writeFileAtomic(join(layout.root, 'index.json'), JSON.stringify({ schemaVersion: 2, mediaType: MediaType.OciIndex, manifests: [] }));
      }
    } else {
      const m = JSON.parse(await readFile(marker, 'utf8')) as { imageLayoutVersion?: string };
      if (m.imageLayoutVersion !== LAYOUT_VERSION) throw new StrataError(`oci:${root}: unsupported imageLayoutVersion ${String(m.imageLayoutVersion)}`);
    }
    return layout;
  }

  withDefaultTag(tag: string | undefined): OciLayout {
    return new OciLayout(this.root, tag);
  }

  blobPath(digest: Digest): string {
    return join(this.root, 'blobs', 'sha256', digestHex(digest));
  }

  async readIndex(): Promise<ImageIndex> {
    const path = join(this.root, 'index.json');
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch {
      throw new NotFoundError(`${this.description}: index.json is missing`);
    }
    const parsed = parseManifest(Buffer.from(text), MediaType.OciIndex, `${this.description} index.json`);
    if (parsed.kind !== 'index') throw new StrataError(`${this.description}: index.json is not an image index`);
    return parsed.index;
  }

  /** Finds the index entry for a tag or digest; with neither, the layout's only image or its `latest`. */
  async resolve(tagOrDigest?: string): Promise<Descriptor> {
    const index = await this.readIndex();
    const want = tagOrDigest ?? this.defaultTag;
    let found: Descriptor | undefined;
    if (want === undefined) {
      found = index.manifests.length === 1 ? index.manifests[0] : index.manifests.find((d) => d.annotations?.[REF_NAME] === 'latest');
      if (!found) throw new StrataError(`${this.description}: the layout holds ${index.manifests.length} images; name one as oci:<dir>:<tag>`);
    } else if (isDigest(want)) {
      found = index.manifests.find((d) => d.digest === want) ?? (await this.hasBlob(want) ? { mediaType: '', digest: want, size: -1 } : undefined);
    } else {
      found = index.manifests.find((d) => d.annotations?.[REF_NAME] === want);
      // A layout of one unnamed image (what many tools write, and what layout mode keeps one per path) is that image
      // under any name.
      if (!found && index.manifests.length === 1 && !index.manifests[0]!.annotations?.[REF_NAME]) found = index.manifests[0];
    }
    if (!found) throw new NotFoundError(`${this.description}: no image "${want ?? ''}" in ${this.root}/index.json`);
    return found;
  }

  async getManifest(tagOrDigest?: string): Promise<ParsedManifest> {
    const desc = await this.resolve(tagOrDigest);
    const bytes = await this.readBlobFile(desc.digest);
    if (sha256(bytes) !== desc.digest) throw new StrataError(`${this.description}: manifest blob ${desc.digest} is corrupt`);
    return parseManifest(bytes, desc.mediaType || undefined, `${this.description}@${desc.digest}`);
  }

  private async readBlobFile(digest: Digest): Promise<Buffer> {
    try {
      return await readFile(this.blobPath(digest));
    } catch {
      throw new StrataError(`${this.description}: blob ${digest} is missing from ${this.root}/blobs`);
    }
  }

  async getBlob(desc: Descriptor): Promise<Readable> {
    const path = this.blobPath(desc.digest);
    await stat(path).catch(() => {
      throw new StrataError(`${this.description}: blob ${desc.digest} is missing from ${this.root}/blobs`);
    });
    const verify = new VerifyingStream(desc.digest, desc.size >= 0 ? desc.size : undefined, this.description);
    pipeline(createReadStream(path, WHOLE_FILE_READ), verify).catch((e: Error) => verify.destroy(e));
    return verify;
  }

  async getBlobRange(digest: Digest, start: number, end: number): Promise<Readable> {
    const st = await stat(this.blobPath(digest)).catch(() => undefined);
    if (!st?.isFile()) throw new StrataError(`${this.description}: blob ${digest} is missing from ${this.root}/blobs`);
    if (st.size < end) throw new StrataError(`${this.description}: blob ${digest} is ${st.size} bytes, shorter than the ${end} its descriptor says (truncated)`);
    if (end <= start) return Readable.from([]);
    return createReadStream(this.blobPath(digest), { start, end: end - 1 });
  }

  async getBlobBytes(desc: Descriptor): Promise<Buffer> {
    const bytes = await this.readBlobFile(desc.digest);
    if (sha256(bytes) !== desc.digest) throw new StrataError(`${this.description}: blob ${desc.digest} is corrupt (content hashes to ${sha256(bytes)})`);
    return bytes;
  }

  async hasBlob(digest: Digest): Promise<boolean> {
    return stat(this.blobPath(digest)).then((s) => s.isFile(), () => false);
  }

  async putBlob(desc: Descriptor, openRange: BlobOpener): Promise<'uploaded' | 'exists'> {
    if (await this.hasBlob(desc.digest)) return 'exists';
    const dest = this.blobPath(desc.digest);
    await mkdir(join(this.root, 'blobs', 'sha256'), { recursive: true });
    const tmp = tempSibling(dest);
    try {
      const fh = await open(tmp, 'w', 0o644);
      await pipeline(await openRange(0, desc.size), new VerifyingStream(desc.digest, desc.size, this.description), fh.createWriteStream());
      await rename(tmp, dest);
    } catch (err) {
      await rm(tmp, { force: true });
      throw err;
    }
    return 'uploaded';
  }

  /** Moves an already written and verified file in as a blob (used for layers we create). */
  async adoptBlobFile(path: string, digest: Digest): Promise<void> {
    await mkdir(join(this.root, 'blobs', 'sha256'), { recursive: true });
    if (await this.hasBlob(digest)) {
      await rm(path, { force: true });
      return;
    }
    await rename(path, this.blobPath(digest));
  }

  async putManifest(bytes: Buffer, mediaType: string, tag?: string): Promise<Digest> {
    const digest = sha256(bytes);
    if (!(await this.hasBlob(digest))) await writeFileAtomic(this.blobPath(digest), bytes);
    if (tag === undefined) return digest;
    const name = tag;
    await this.updateIndex((index) => {
      const desc: Descriptor = { mediaType, digest, size: bytes.length, annotations: { [REF_NAME]: name } };
      index.manifests = index.manifests.filter((d) => d.annotations?.[REF_NAME] !== name);
      index.manifests.push(desc);
    });
    return digest;
  }

  async removeTag(tag: string): Promise<boolean> {
    let removed = false;
    await this.updateIndex((index) => {
      const before = index.manifests.length;
      index.manifests = index.manifests.filter((d) => d.annotations?.[REF_NAME] !== tag);
      removed = index.manifests.length !== before;
    });
    return removed;
  }

  async listTags(): Promise<string[]> {
    const index = await this.readIndex();
    return index.manifests.map((d) => d.annotations?.[REF_NAME]).filter((t): t is string => typeof t === 'string');
  }

  /** Read-modify-write of index.json under a lock directory, replaced atomically. */
  private async updateIndex(change: (index: ImageIndex) => void): Promise<void> {
    await withLock(join(this.root, '.index.lock'), `${this.description}: index.json`, async () => {
      // A writer killed between its temp file and the rename left the temp file: gone once its process is.
      for (const n of await readdir(this.root)) {
        const m = /^\.tmp-index\.json-(\d+)-[0-9a-f]+$/.exec(n);
        if (m && !processAlive(Number(m[1]))) await rm(join(this.root, n), { force: true });
      }
      const index = await this.readIndex();
      change(index);
      await writeFileAtomic(join(this.root, 'index.json'), JSON.stringify(index));
    });
  }
}
