import type { Readable, Writable } from 'node:stream';
import type { Digest } from './digest.js';
import type { Descriptor, ParsedManifest } from './manifest.js';

/** Opens a byte range [start, end) of a blob; ranges let a broken upload resume without re-reading from zero. */
export type BlobOpener = (start: number, end: number) => Promise<Readable>;

/** Where a blob can be mounted from instead of uploaded (same registry, another repository). */
export interface MountHint {
  registry: string;
  repository: string;
}

/**
 * A blob sent while it is still being made (a layer as it is compressed): its bytes go into `sink`, then `finish`
 * closes the upload under the digest they turned out to have. Any failure only makes `finish` answer false: the
 * caller still has the blob and puts it the ordinary way.
 */
export interface BlobStream {
  sink: Writable;
  finish(desc: Descriptor): Promise<boolean>;
  /** Gives up (the blob was not made after all). */
  abort(): void;
}

/**
 * One image repository in some backend: a registry repository, an OCI layout, an engine. Copy, export and rebase are
 * written against this, so every backend gets them.
 */
export interface ImageStore {
  /** For messages: `127.0.0.1:5000/app/foo`, `oci:/tmp/layout`. */
  readonly description: string;
  /** `tagOrDigest` undefined means the store's default image. */
  getManifest(tagOrDigest?: string): Promise<ParsedManifest>;
  /** A verified stream of a blob; a digest or size mismatch errors the stream. */
  getBlob(desc: Descriptor): Promise<Readable>;
  /** The raw bytes [start, end) of a blob, unverified: for resuming and chunking, where the receiver verifies. */
  getBlobRange(digest: Digest, start: number, end: number): Promise<Readable>;
  /** Reads a small blob (config, manifest) whole, verified. */
  getBlobBytes(desc: Descriptor): Promise<Buffer>;
  hasBlob(digest: Digest): Promise<boolean>;
  /** Stores a blob whose digest and size are known up front. */
  /** `fresh`: the blob is new (a rebase's config), so a registry is not asked first whether it has it. */
  putBlob(desc: Descriptor, open: BlobOpener, mount?: MountHint, fresh?: boolean): Promise<'uploaded' | 'mounted' | 'exists'>;
  /** Stores a manifest; with a tag, points the tag at it, without one it is stored by digest only (an index's
   * children). Always the last write of an image. */
  putManifest(bytes: Buffer, mediaType: string, tag?: string): Promise<Digest>;
  listTags(): Promise<string[]>;
  /** A mount source for blobs held here, when the backend supports cross-repository mounts. */
  mountHint?(): MountHint;
  /** Starts an upload of a blob not yet made, where sending while it is made saves time (a registry). */
  streamBlob?(): Promise<BlobStream>;
}
