import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { resolveImage } from '../oci/image.js';
import { hostPlatform, withVariant, type PlatformWanted } from '../oci/manifest.js';
import { writePlatformImages } from '../oci/mutate.js';
import type { Logger } from '../lifecycle/log.js';
import { readBuilderConfig } from '../spec/buildertoml.js';
import { baseImage, debootstrapTree, hostMirror } from './base.js';
import type { Progress } from '../oci/progress.js';
import { createBuilder } from './builder.js';
import { DEFAULT_BUILDER, readOwnConfig, writeConfig } from './config.js';
import { outputFor, strataHome } from '../oci/images.js';
import { assembleNodeBuildpacks, makeNodeMirror, nodeBuilderToml } from './nodejs.js';
import { OwnLayers } from './ownlayers.js';

export { DEFAULT_BUILDER };
/** What the default builder carries: Node.js LTS lines (22 by default), yarn 1 and npm — pinned, so it is reproducible. */
export const DEFAULT_VERSIONS = { node: ['20.20.2', '22.23.3'], defaultNode: '22', yarn: '1.22.19', npm: '10.9.2' };

/**
 * The builder `strata build` uses when none is given or configured: strata's Node.js buildpacks, offline (their
 * dependencies inside them, fetched once through the npm client), on Debian bookworm base images made with
 * debootstrap — all in the local store, made on first use and then recorded as the default.
 */
export async function ensureDefaultBuilder(log: Logger, progress?: Progress, platforms: PlatformWanted[] = []): Promise<string> {
  // This machine's architecture always; another only when a build asks for it (`--platform`): then the builder, its
  // bases and its Node.js are made for both, and the default builder becomes an index.
  const host = hostPlatform();
  const arches = [...new Set([host.architecture, ...platforms.map((p) => p.architecture)])];
  const targets = arches.map((architecture) => withVariant({ os: 'linux', architecture }));
  const has = async (p: PlatformWanted): Promise<boolean> =>
    outputFor(DEFAULT_BUILDER, false)
      .then((t) => resolveImage(t.store, t.id, p))
      .then((img) => img.config.architecture === p.architecture, () => false);
  if ((await Promise.all(targets.map(has))).every(Boolean)) return DEFAULT_BUILDER;
  log.info(`No builder given (--builder), in project.toml, or configured (strata config default-builder, or pack's default-builder-image).`);
  log.info(`Making ${DEFAULT_BUILDER} once: strata's Node.js buildpacks on Debian bookworm made with debootstrap, about 740 MB, typically 2-5 minutes. \`strata builder suggest\` lists builders to use instead.`);
  const home = strataHome();
  const work = await mkdtemp(join(tmpdir(), 'strata-default-builder-'));
  try {
    const mirror = join(home, 'cache', 'node-mirror');
    const multi = targets.length > 1;
    const deps = await makeNodeMirror(mirror, { node: DEFAULT_VERSIONS.node, yarn: DEFAULT_VERSIONS.yarn, npm: DEFAULT_VERSIONS.npm, arches }, (l) => log.info(l));
    const dirs = await assembleNodeBuildpacks(join(work, 'buildpacks'), deps, { defaultNode: DEFAULT_VERSIONS.defaultNode, mirror });
    const baseOpts = { distro: 'bookworm', buildPackages: [], runPackages: [], uid: 1000, gid: 1000, mirror: await hostMirror(), cacheDir: process.env.STRATA_DEBOOTSTRAP_CACHE || join(home, 'cache', 'debootstrap'), log, ...(progress ? { progress } : {}) };
    for (const kind of ['build', 'run'] as const) {
      const t = await outputFor(`strata/base:${kind}-bookworm`, false);
      await writePlatformImages(t.store, t.tag, targets, async (platform, tag) => {
        const opts = multi ? { ...baseOpts, platform } : baseOpts;
        return { digest: await baseImage(kind, await debootstrapTree('bookworm', [], opts), opts, t.store, tag, work), platform };
      });
    }
    await writeFile(join(work, 'builder.toml'), nodeBuilderToml(dirs, 'strata/base:build-bookworm', 'strata/base:run-bookworm', "strata's Node.js builder (offline: Node.js, yarn and npm inside)"));
    const config = await readBuilderConfig(join(work, 'builder.toml'));
    await createBuilder(config, () => outputFor(DEFAULT_BUILDER, false), {}, { ownLayers: OwnLayers.in(home) }, multi ? targets : undefined);
    const cfg = await readOwnConfig();
    if (!cfg['default-builder']) await writeConfig({ ...cfg, 'default-builder': DEFAULT_BUILDER });
    log.info(`Made ${DEFAULT_BUILDER}; it is now the default builder (strata config default-builder)`);
    return DEFAULT_BUILDER;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
