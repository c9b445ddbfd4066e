import { chmod, mkdir } from 'node:fs/promises';
import { cachedDir } from '../oci/fsutil.js';
import { join } from 'node:path';
import { digestHex } from '../oci/digest.js';
import { extractLayer } from '../oci/extract.js';
import type { ResolvedImage } from '../oci/image.js';

const MARKER = '.complete';

/**
 * An image's filesystem unpacked once per manifest digest under `dir` and reused by every build after: whiteouts
 * applied, owners kept (we run as root), made in a temp dir and renamed in so a half-unpacked tree is never used.
 * Sandboxes mount it read-only, so builds cannot change it; the usual mount points are made up front for that reason.
 */
export async function unpackedRootfs(image: ResolvedImage, dir: string, progress?: (line: string) => void): Promise<string> {
  const target = join(dir, digestHex(image.manifest.digest));
  const rootfs = join(target, 'rootfs');
  await cachedDir(target, MARKER, async (tmp) => {
    await mkdir(join(tmp, 'rootfs'), { mode: 0o755 });
    const layers = image.manifest.manifest.layers;
    for (const [i, desc] of layers.entries()) {
      progress?.(`Pulling and unpacking layer ${i + 1}/${layers.length} (${desc.digest.slice(7, 19)}, ${(desc.size / 1e6).toFixed(1)} MB)`);
      // The blob's digest is checked as it streams; its content must also be the diffID the config promises.
      await extractLayer(await image.store.getBlob(desc), join(tmp, 'rootfs'), { label: `${image.store.description} layer ${i + 1}`, diffID: image.config.rootfs.diff_ids[i]! });
    }
    // Mount points a sandbox needs on a read-only root, which small images may lack.
    for (const d of ['proc', 'dev', 'sys', 'tmp', 'home/cnb']) await mkdir(join(tmp, 'rootfs', d), { recursive: true }).catch(() => undefined);
    // runc gives the tmpfs on /tmp the mode of the dir under it, whatever `mode=` says: it must be sticky and
    // world-writable, as on any Linux system, or the build user and non-root apps cannot use it.
    await chmod(join(tmp, 'rootfs', 'tmp'), 0o1777).catch(() => undefined);
    await chmod(join(tmp, 'rootfs'), 0o755);
  });
  return rootfs;
}
