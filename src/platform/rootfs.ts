import { closeSync, fchmodSync } from 'node:fs';
import { chmod, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { ConfinedDir, makeMountPoints } from '../oci/confined.js';
import { digestHex } from '../oci/digest.js';
import { extractLayer } from '../oci/extract.js';
import { layerTar, NORMALISED_MTIME } from '../oci/layer.js';
import { mapLimit } from '../oci/concurrency.js';
import { cachedDir } from '../oci/fsutil.js';
import type { ResolvedImage } from '../oci/image.js';
import { overlayLayers, type LayerTree } from '../oci/overlay.js';
import { counted, type Progress } from '../oci/progress.js';
import { ownLifecycleLayer } from './lifecycle-layer.js';
import type { OwnLayers } from './ownlayers.js';

const MARKER = '.complete';
/** How many layers of one image unpack at once. */
const UNPACK_CONCURRENCY = 3;

/**
 * One image layer unpacked on its own under `dir/layers/<diffID>`, once for every image that has it (a builder v2
 * that shares its OS layer with v1 does not unpack it again). Keyed by diffID, which the extraction checks, so the
 * cache holds only content that hashes to its name. Whiteouts stay as markers for `overlayLayers`.
 */
async function unpackedLayer(image: ResolvedImage, i: number, dir: string, progress?: Progress, own?: OwnLayers): Promise<LayerTree> {
  const desc = image.manifest.manifest.layers[i]!;
  const diffID = image.config.rootfs.diff_ids[i]!;
  const count = image.manifest.manifest.layers.length;
  const { dir: cached } = await cachedDir(join(dir, 'layers', digestHex(diffID)), MARKER, async (tmp) => {
    const tree = join(tmp, 'tree');
    const label = `${image.store.description} layer ${i + 1}`;
    await mkdir(tree, { mode: 0o755 });
    const unpack = async (layer: Readable): Promise<void> => {
      const { implicitDirs } = await extractLayer(layer, tree, { label, diffID, whiteoutMarkers: true });
      await writeFile(join(tmp, 'implicit.json'), JSON.stringify(implicitDirs));
    };
    const make = own ? ownLifecycleLayer(image, i) : undefined;
    if (make && (await own!.diffID(make).catch(() => undefined)) === diffID) {
      // Made from this install's own files and checked against the diffID again as it is unpacked (the record is a
      // hint); one that turns out different after all is unpacked from the registry.
      const task = progress?.task(`Unpacking layer ${i + 1}/${count} (${desc.digest.slice(7, 19)}, strata's lifecycle, from this install)`, 1, 'steps');
      try {
        return await unpack(layerTar(make(), { mtime: NORMALISED_MTIME }));
      } catch {
        await rm(tree, { recursive: true, force: true });
        await mkdir(tree, { mode: 0o755 });
      } finally {
        task?.done();
      }
    }
    const task = progress?.task(`Pulling and unpacking layer ${i + 1}/${count} (${desc.digest.slice(7, 19)}, ${(desc.size / 1e6).toFixed(1)} MB)`, desc.size);
    // The blob's digest is checked as it streams; its content must also be the diffID the config promises.
    const blob = await image.store.getBlob(desc);
    await unpack(task ? counted(blob, task) : blob);
    task?.done();
  });
  return { dir: join(cached, 'tree'), implicitDirs: new Set(JSON.parse(await readFile(join(cached, 'implicit.json'), 'utf8')) as string[]) };
}

/**
 * An image's filesystem assembled once per manifest digest under `dir` and reused by every build after: its layers
 * (each unpacked once, shared) laid over one another with hard links, owners kept (we run as root), made in a temp
 * dir and renamed in so a half-made tree is never used. Sandboxes mount it read-only, so builds cannot change it
 * (nor, through it, the shared layer files); the usual mount points are made up front for that reason. With `own`,
 * a lifecycle layer this install makes (as its record says) is unpacked from the install's files, not the registry.
 */
export async function unpackedRootfs(image: ResolvedImage, dir: string, progress?: Progress, own?: OwnLayers): Promise<string> {
  const target = join(dir, digestHex(image.manifest.digest));
  const rootfs = join(target, 'rootfs');
  await cachedDir(target, MARKER, async (tmp) => {
    // Layers unpack side by side (each into its own dir, each its download, gunzip and writes in one stream): one
    // waits on the network or the disk while another uses a core.
    const trees = await mapLimit([...image.manifest.manifest.layers.keys()], UNPACK_CONCURRENCY, (i) => unpackedLayer(image, i, dir, progress, own));
    await mkdir(join(tmp, 'rootfs'), { mode: 0o755 });
    overlayLayers(trees, join(tmp, 'rootfs'));
    // Mount points a sandbox needs on a read-only root, which small images may lack.
    makeMountPoints(join(tmp, 'rootfs'), ['/proc', '/dev', '/sys', '/tmp', '/home/cnb'], `${image.store.description} rootfs`);
    ConfinedDir.with(join(tmp, 'rootfs'), (root) => {
      // runc gives the tmpfs on /tmp the mode of the dir under it, whatever `mode=` says: it must be sticky and
      // world-writable, as on any Linux system, or the build user and non-root apps cannot use it.
      try {
        const fd = root.openDir('tmp');
        fchmodSync(fd, 0o1777);
        closeSync(fd);
      } catch {
        // Not a directory of the image's own: nothing to mode.
      }
    }, { display: `${image.store.description} rootfs` });
    // A container's / is 0755 whatever umask made the dir: the build user must be able to walk it.
    await chmod(join(tmp, 'rootfs'), 0o755);
  });
  return rootfs;
}
