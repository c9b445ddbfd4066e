import { createReadStream } from 'node:fs';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { StrataError } from '../oci/errors.js';
import { hostPlatform } from '../oci/manifest.js';
import { NORMALISED_MTIME, treeEntries, writeLayerFile } from '../oci/layer.js';
import { appendLayers, emptyConfig, emptyManifest, writeImage } from '../oci/mutate.js';
import { Reference } from '../oci/reference.js';
import { openTarget, parseTarget, type StoreOptions } from '../oci/target.js';

/**
 * App source as an image (what `kp image create --local-path` uploads): the directory as one reproducible layer on
 * no base, pushed to `ref`. Returns it by digest, for a fleet Image's `source.registry`.
 */
export async function publishSourceImage(dir: string, ref: string, store: StoreOptions): Promise<string> {
  if (!(await stat(dir).catch(() => undefined))?.isDirectory()) throw new StrataError(`--local-path ${dir}: not a directory`);
  const target = parseTarget(ref);
  if (target.kind !== 'registry') throw new StrataError(`${ref}: the source image must go to a registry`);
  const work = await mkdtemp(join(tmpdir(), 'strata-source-'));
  try {
    const file = join(work, 'layer.tar.gz');
    const info = await writeLayerFile(treeEntries(dir, { include: (rel) => rel !== '.git' && !rel.startsWith('.git/') }), file, { mtime: NORMALISED_MTIME, uid: 0, gid: 0 });
    const t = await openTarget(target, { ...store, create: true });
    const descriptor = { mediaType: info.mediaType, digest: info.digest, size: info.size };
    await t.store.putBlob(descriptor, async (start, end) => createReadStream(file, { start, end: end - 1 }));
    const { config, manifest } = appendLayers(emptyConfig(hostPlatform(), NORMALISED_MTIME), emptyManifest(), [{ descriptor, diffID: info.diffID, history: { created_by: 'strata: app source' } }]);
    const { digest } = await writeImage(t.store, config, manifest, t.tag ?? 'latest');
    return `${Reference.parse(ref).name}@${digest}`;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
