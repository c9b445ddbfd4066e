import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { ImageConfig } from '../oci/config.js';
import { cachedDir } from '../oci/fsutil.js';
import { resolveImage, type ResolvedImage } from '../oci/image.js';
import { NORMALISED_MTIME, treeEntries, writeLayerFile, type LayerInfo } from '../oci/layer.js';
import { LayeredStore } from '../oci/layeredstore.js';
import { OciLayout } from '../oci/layout.js';
import { appendLayers, writeImage } from '../oci/mutate.js';
import { changedEntries, withOverlay } from '../oci/overlaymount.js';
import { applyDockerfiles, type ExtendDockerfile } from '../lifecycle/extend.js';
import type { Logger } from '../lifecycle/log.js';
import { RuncExecutor } from './executor.js';
import type { SandboxLimits } from './sandboxlimits.js';
import { unpackedRootfs } from './rootfs.js';
import { lineProgress } from '../oci/progress.js';

/**
 * Image extensions' Dockerfiles applied with no daemon: the base image's tree (unpacked once, shared with every
 * build) under a kernel overlay, each RUN in runc with that overlay as its root, and the overlay's upper dir — exactly
 * what the Dockerfiles changed — made into one layer on top of the base. The result is a small layout (new config,
 * manifest and that layer) read together with the base's own store, so nothing of the base is copied. Results are
 * kept by everything they depend on (the base's digest, each Dockerfile, its args, its context when it copies from
 * one), so an unchanged extension costs nothing on the next build; a Dockerfile that uses `build_id` (the spec's way
 * to say "run again every build") is applied afresh each time.
 */

export interface ExtenderContext {
  home: string;
  stateDir: string;
  /** Where results that are not kept (build_id) go; removed by the caller. */
  scratch: string;
  network: 'host' | 'none';
  limits?: SandboxLimits;
  log: Logger;
}

/** Files a sandbox binds into its root: never part of what a Dockerfile made. */
const LEAVE_OUT = new Set(['etc/resolv.conf', 'etc/hosts']);

/** A digest of a context tree's names, modes, sizes and contents, for the cache key of Dockerfiles that copy from it. */
async function treeDigest(dir: string): Promise<string> {
  const h = createHash('sha256');
  for await (const e of treeEntries(dir)) {
    h.update(`${e.type} ${e.path} ${'mode' in e ? e.mode : ''} ${'target' in e ? e.target : ''}\n`);
    // Streamed: a context may be the whole app dir.
    if (e.type === 'file') {
      if (typeof e.source !== 'string') h.update(e.source);
      else for await (const chunk of createReadStream(e.source)) h.update(chunk as Buffer);
    }
  }
  return h.digest('hex');
}

export async function extendImage(kind: 'build' | 'run', base: ResolvedImage, dockerfiles: ExtendDockerfile[], ctx: ExtenderContext): Promise<ResolvedImage> {
  const copies = dockerfiles.some((f) => f.dockerfile.instructions.some((x) => x.keyword === 'COPY' || x.keyword === 'ADD'));
  const fresh = dockerfiles.some((f) => f.dockerfile.instructions.some((x) => /\bbuild_id\b/.test(x.args)));
  const key = createHash('sha256')
    .update(
      JSON.stringify({
        v: 1,
        kind,
        base: base.manifest.digest,
        files: await Promise.all(dockerfiles.map(async (f) => ({ extension: f.extension, instructions: f.dockerfile.instructions.map((x) => [x.keyword, x.args]), args: f.args, context: copies ? await treeDigest(f.context) : '' }))),
      }),
    )
    .digest('hex');
  const where = fresh ? join(ctx.scratch, `extend-${kind}-${key.slice(0, 16)}`) : join(ctx.home, 'cache', 'extend', key);
  const { dir, made } = await cachedDir(where, '.complete', async (tmp) => {
    const lower = await unpackedRootfs(base, join(ctx.home, 'rootfs'), lineProgress((line) => ctx.log.info(`${kind} image: ${line}`)));
    let config: ImageConfig | undefined;
    let layer: LayerInfo | undefined;
    await withOverlay(lower, join(tmp, 'overlay'), async (o) => {
      const runc = new RuncExecutor(o.merged, ctx.stateDir);
      const applied = await applyDockerfiles({
        kind,
        config: base.config,
        dockerfiles,
        root: o.merged,
        run: (step) => runc.run({ ...step, mounts: [], network: ctx.network, dockerfileStep: true, ...(ctx.limits ? { limits: ctx.limits } : {}) }),
        log: ctx.log,
      });
      config = applied.config;
      layer = await writeLayerFile(changedEntries(o, LEAVE_OUT), join(tmp, 'layer.tar.gz'), { mtime: NORMALISED_MTIME });
    });
    await rm(join(tmp, 'overlay'), { recursive: true, force: true });
    const layout = await OciLayout.open(join(tmp, 'image'), { create: true });
    const descriptor = { mediaType: layer!.mediaType, digest: layer!.digest, size: layer!.size };
    await layout.putBlob(descriptor, async (start, end) => createReadStream(join(tmp, 'layer.tar.gz'), { start, end: end - 1 }));
    const { config: c, manifest } = appendLayers(config!, base.manifest.manifest, [{ descriptor, diffID: layer!.diffID, history: { created_by: `Extension: ${dockerfiles.map((f) => f.extension).join(', ')} (${kind}.Dockerfile)` } }]);
    await writeImage(layout, c, manifest, 'extended');
    await rm(join(tmp, 'layer.tar.gz'));
    await writeFile(join(tmp, 'about.json'), JSON.stringify({ kind, extensions: dockerfiles.map((f) => f.extension), diffID: layer!.diffID }));
  });
  ctx.log.info(made ? `Extended the ${kind} image with ${dockerfiles.map((f) => f.extension).join(', ')}` : `Reused the ${kind} image extended by ${dockerfiles.map((f) => f.extension).join(', ')} (cached)`);
  return resolveImage(new LayeredStore(await OciLayout.open(join(dir, 'image')), base.store), 'extended');
}
