import type { Digest } from './digest.js';
import { StrataError, isTransient, sleep } from './errors.js';
import { mapLimit } from './concurrency.js';
import type { Descriptor, ParsedManifest } from './manifest.js';
import type { ImageStore } from './store.js';
import { counted, type Progress, type ProgressTask } from './progress.js';

export interface CopyResult {
  digest: Digest;
  mediaType: string;
  uploaded: number;
  mounted: number;
  existing: number;
  bytesUploaded: number;
}

export interface CopyOptions {
  /** Blob transfers at once. */
  concurrency?: number;
  onBlob?: (desc: Descriptor, outcome: 'uploaded' | 'mounted' | 'exists') => void;
  /** Shows each blob that is sent as it goes (mounted and present ones are not). */
  progress?: Progress;
}

/**
 * Copies an image or a whole index from one store to another byte for byte, so digests are kept. Only blobs the
 * destination lacks are sent (mounted when both are repositories of one registry); manifests go last, children
 * before their index, so a failure never leaves the tag pointing at something incomplete.
 */
export async function copyImage(src: ImageStore, srcId: string | undefined, dst: ImageStore, dstTag: string | undefined, options: CopyOptions = {}): Promise<CopyResult> {
  const result: CopyResult = { digest: '' as Digest, mediaType: '', uploaded: 0, mounted: 0, existing: 0, bytesUploaded: 0 };
  const top = await src.getManifest(srcId);
  await copyTree(top, src, dst, dstTag, options, result);
  result.digest = top.digest;
  result.mediaType = top.mediaType;
  return result;
}

async function copyTree(m: ParsedManifest, src: ImageStore, dst: ImageStore, tag: string | undefined, options: CopyOptions, result: CopyResult): Promise<void> {
  if (m.kind === 'index') {
    for (const child of m.index.manifests) {
      const cm = await src.getManifest(child.digest);
      await copyTree(cm, src, dst, undefined, options, result);
    }
  } else {
    const blobs = [m.manifest.config, ...m.manifest.layers];
    await mapLimit(blobs, options.concurrency ?? 4, async (desc) => {
      if (desc.urls?.length && /foreign|nondistributable/.test(desc.mediaType)) return;
      const outcome = await copyBlob(src, dst, desc, options.progress);
      if (outcome === 'uploaded') {
        result.uploaded++;
        result.bytesUploaded += desc.size;
      } else if (outcome === 'mounted') result.mounted++;
      else result.existing++;
      options.onBlob?.(desc, outcome);
    });
  }
  await dst.putManifest(m.bytes, m.mediaType, tag);
}

/** Whether two stores are one registry repository (layouts never are: their checks are local anyway). */
export function sameRepository(a: ImageStore, b: ImageStore): boolean {
  const x = a.mountHint?.();
  const y = b.mountHint?.();
  return !!x && !!y && x.registry === y.registry && x.repository === y.repository;
}

/**
 * Moves one blob, mounting across repositories of one registry when possible. The source sends raw bytes: every
 * destination verifies the digest itself (a layout as it writes, a registry on the final PUT), so hashing on the
 * way out too would hash each layer twice.
 */
export async function copyBlob(src: ImageStore, dst: ImageStore, desc: Descriptor, progress?: Progress): Promise<'uploaded' | 'mounted' | 'exists'> {
  // The task starts with the first read: a blob that is mounted or already there is never read, and never shown.
  let task: ProgressTask | undefined;
  const open = async (start: number, end: number) => {
    const data = await src.getBlobRange(desc.digest, start, end);
    if (!progress) return data;
    task ??= progress.task(`Copying ${desc.digest.slice(7, 19)} (${(desc.size / 1e6).toFixed(1)} MB)`, desc.size);
    return counted(data, task);
  };
  // Registries retry their own requests; this covers a download that breaks mid-stream, which only a new read cures.
  for (let attempt = 0; ; attempt++) {
    try {
      const outcome = await dst.putBlob(desc, open, src.mountHint?.());
      task?.done();
      return outcome;
    } catch (err) {
      if (isTransient(err) && attempt < 3) {
        await sleep(500 * 2 ** attempt);
        continue;
      }
      if (err instanceof StrataError) throw err;
      throw new StrataError(`copying blob ${desc.digest} from ${src.description} to ${dst.description}: ${(err as Error).message}`, 1, { cause: err });
    }
  }
}
