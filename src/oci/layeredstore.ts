import type { Readable } from 'node:stream';
import type { Descriptor } from './manifest.js';
import type { Digest } from './digest.js';
import { StrataError } from './errors.js';
import type { BlobOpener, ImageStore, MountHint } from './store.js';

/**
 * An image made on top of another without copying it: its manifest, config and new layers live in `top` (a small
 * layout), the layers it shares with its base stay in `base` (a registry, the local store). Read-only: it is what an
 * export or an unpack reads, and a push of it mounts the base's layers from where they are.
 */
export class LayeredStore implements ImageStore {
  readonly description: string;
  /** The base's mount source, where it has one: the shared layers are mounted from there rather than uploaded. */
  readonly mountHint?: () => MountHint;

  constructor(
    private readonly top: ImageStore,
    private readonly base: ImageStore,
  ) {
    this.description = `${top.description} over ${base.description}`;
    if (base.mountHint) this.mountHint = () => base.mountHint!();
  }

  private async holder(digest: Digest): Promise<ImageStore> {
    return (await this.top.hasBlob(digest)) ? this.top : this.base;
  }

  getManifest(tagOrDigest?: string) {
    return this.top.getManifest(tagOrDigest);
  }

  async getBlob(desc: Descriptor): Promise<Readable> {
    return (await this.holder(desc.digest)).getBlob(desc);
  }

  async getBlobRange(digest: Digest, start: number, end: number): Promise<Readable> {
    return (await this.holder(digest)).getBlobRange(digest, start, end);
  }

  async getBlobBytes(desc: Descriptor): Promise<Buffer> {
    return (await this.holder(desc.digest)).getBlobBytes(desc);
  }

  async hasBlob(digest: Digest): Promise<boolean> {
    return (await this.top.hasBlob(digest)) || this.base.hasBlob(digest);
  }

  putBlob(_desc: Descriptor, _open: BlobOpener, _mount?: MountHint): Promise<'uploaded' | 'mounted' | 'exists'> {
    throw new StrataError(`${this.description} is read-only`);
  }

  putManifest(): Promise<Digest> {
    throw new StrataError(`${this.description} is read-only`);
  }

  listTags(): Promise<string[]> {
    return this.top.listTags();
  }
}
