import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { treeEntries, type LayerEntry } from '../oci/layer.js';
import { StrataError } from '../oci/errors.js';
import { ConfinedDir } from '../oci/confined.js';
import { hostPlatform, withVariant, type PlatformWanted } from '../oci/manifest.js';
import { envValue } from '../oci/config.js';
import type { ResolvedImage } from '../oci/image.js';
import { PROJECT_ROOT, VERSION } from '../version.js';

/** Where strata's lifecycle sits in a builder: the phase names, the launcher, and the Node.js runtime they need. */
export const LIFECYCLE_DIR = 'cnb/lifecycle';
export const PHASES = ['analyzer', 'detector', 'restorer', 'builder', 'exporter', 'rebaser', 'creator', 'lifecycle'];

/**
 * What this lifecycle can do beyond the Platform API, for a platform to ask of a builder: `gate`, a phase started
 * ahead of its inputs waits for `go` on its stdin (STRATA_LIFECYCLE_GATE).
 */
export const LIFECYCLE_FEATURES = ['gate'];

/** The packages the lifecycle itself imports; the CLI's and the fleet's (YAML, database, HTTP server) stay out of builders. */
export const LIFECYCLE_DEPENDENCIES = ['smol-toml', 'tar-stream'];

/**
 * The two parts of the lifecycle that are machine code, for one platform: the Node.js it runs on and the static
 * launcher. This machine's own are the Node.js running strata and the launcher the build made; another architecture's
 * come from setup.sh (`.node-linux-<arch>/`, the npm registry's node-linux-<arch>) and the build (the launcher
 * cross-compiled into `dist/platforms/linux-<arch>/`).
 */
export interface LifecycleParts {
  platform: PlatformWanted;
  node: string;
  launcher: string;
}

/** The platforms strata can make its lifecycle for: this machine's, and arm64 from an amd64 machine. */
export const LIFECYCLE_PLATFORMS = ['linux/amd64', 'linux/arm64'];

export function lifecycleParts(platform: PlatformWanted = hostPlatform()): LifecycleParts {
  const host = hostPlatform();
  const text = `${platform.os}/${platform.architecture}`;
  if (platform.os === host.os && platform.architecture === host.architecture) return { platform: host, node: process.execPath, launcher: join(PROJECT_ROOT, 'dist', 'lifecycle', 'launcher') };
  if (platform.os !== 'linux' || !LIFECYCLE_PLATFORMS.includes(text) || host.architecture !== 'amd64') {
    throw new StrataError(`strata's lifecycle for ${text}: this machine (${host.os}/${host.architecture}) makes it for ${host.os}/${host.architecture}${host.architecture === 'amd64' ? ' and linux/arm64' : ''} only`);
  }
  const node = join(PROJECT_ROOT, `.node-linux-${platform.architecture}`, 'bin', 'node');
  const launcher = join(PROJECT_ROOT, 'dist', 'platforms', `linux-${platform.architecture}`, 'launcher');
  for (const [what, path] of [['Node.js', node], ['launcher', launcher]] as const) {
    if (!existsSync(path)) throw new StrataError(`strata's lifecycle for ${text}: no ${what} for it at ${path}; run scripts/setup.sh (it installs Node.js for ${platform.architecture} and the cross compiler), then npm run build`);
  }
  return { platform: withVariant({ os: 'linux', architecture: platform.architecture }), node, launcher };
}

/** The compiled code a builder's lifecycle runs: the lifecycle and what it imports, not the CLI, platform or fleet. */
const LIFECYCLE_CODE = ['lifecycle', 'oci', 'spec', 'version.js'];

/** The packages the compiled lifecycle loads at run time: the closure of its own dependencies, nothing else. */
export function productionModules(root: string = PROJECT_ROOT, roots: string[] = LIFECYCLE_DEPENDENCIES): string[] {
  const seen = new Set<string>();
  const visit = (names: string[]): void => {
    for (const name of names) {
      if (seen.has(name)) continue;
      const dir = join(root, 'node_modules', name);
      if (!existsSync(join(dir, 'package.json'))) continue; // an optional dependency not installed here
      seen.add(name);
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { dependencies?: Record<string, string>; optionalDependencies?: Record<string, string> };
      visit(Object.keys({ ...pkg.dependencies, ...pkg.optionalDependencies }));
    }
  };
  visit(roots);
  return [...seen].sort();
}

function file(path: string, source: string | Buffer, mode = 0o644): LayerEntry {
  const size = typeof source === 'string' ? statSync(source).size : source.length;
  return { type: 'file', path, mode, size, source, uid: 0, gid: 0 };
}

/**
 * Whether a builder's lifecycle is strata's and waits to be told to go (`gate` among the features in its
 * package.json). The rootfs is the builder's, so hostile: the file is read without following links, and anything
 * but a plain small JSON file saying so is a lifecycle that does not wait.
 */
export function lifecycleHolds(rootfs: string, display: string): boolean {
  try {
    const text = ConfinedDir.with(rootfs, (d) => d.readText(`${LIFECYCLE_DIR}/strata/package.json`, 1 << 16), { display });
    const features = (JSON.parse(text ?? '{}') as { features?: unknown }).features;
    return Array.isArray(features) && features.includes('gate');
  } catch {
    return false;
  }
}

/** How a builder's history names the lifecycle layer this strata made. */
export const LIFECYCLE_CREATED_BY = `Lifecycle: strata ${VERSION}`;

/**
 * Layer `i` of a builder as this install would make it, when the builder's history says the layer is this strata's
 * lifecycle for a platform it can make: the biggest layer of a builder made here need not be downloaded and gunzipped.
 * A claim only (history is the image's word): the caller checks what these entries make against the layer's diffID.
 * A function, since the entries are read more than once (fingerprint, diffID, unpack).
 */
export function ownLifecycleLayer(image: ResolvedImage, i: number): (() => AsyncIterable<LayerEntry>) | undefined {
  const layered = (image.config.history ?? []).filter((h) => !h.empty_layer);
  if (layered.length !== image.manifest.manifest.layers.length || layered[i]?.created_by !== LIFECYCLE_CREATED_BY) return undefined;
  const uid = Number(envValue(image.config, 'CNB_USER_ID') ?? NaN);
  try {
    const parts = lifecycleParts({ os: image.config.os, architecture: image.config.architecture, ...(image.config.variant ? { variant: image.config.variant } : {}) });
    return () => lifecycleEntries(parts, Number.isInteger(uid) ? uid : undefined);
  } catch {
    return undefined;
  }
}

/**
 * The lifecycle layer of a builder: `/cnb/lifecycle/{analyzer,detector,…}` as links to one entry script whose
 * interpreter is the Node.js binary shipped beside it (so the build image needs no Node.js, only the glibc and
 * libstdc++ every Debian image has), the compiled lifecycle with its production modules, and the static launcher.
 */
export async function* lifecycleEntries(parts: LifecycleParts = lifecycleParts(), buildUid?: number): AsyncGenerator<LayerEntry> {
  const root = `${LIFECYCLE_DIR}/strata`;
  // Root-owned and world-readable whatever the checkout's umask was: the build user runs these.
  const own = (e: LayerEntry): LayerEntry => {
    if (e.type === 'directory') return { ...e, mode: 0o755, uid: 0, gid: 0 };
    if (e.type === 'file') return { ...e, mode: e.mode & 0o111 ? 0o755 : 0o644, uid: 0, gid: 0 };
    return { ...e, uid: 0, gid: 0 };
  };
  yield own({ type: 'directory', path: 'cnb', mode: 0o755 });
  yield own({ type: 'directory', path: LIFECYCLE_DIR, mode: 0o755 });
  for (const p of [...PHASES].sort()) yield own({ type: 'symlink', path: `${LIFECYCLE_DIR}/${p}`, target: 'strata/bin/lifecycle' });
  yield file(`${LIFECYCLE_DIR}/launcher`, parts.launcher, 0o755);
  yield file(`${LIFECYCLE_DIR}/node`, parts.node, 0o755);
  yield own({ type: 'directory', path: root, mode: 0o755 });
  yield own({ type: 'directory', path: `${root}/bin`, mode: 0o755 });
  const entry = readFileSync(join(PROJECT_ROOT, 'bin', 'lifecycle'), 'utf8').replace(/^#!.*\n/, `#!/${LIFECYCLE_DIR}/node\n`);
  yield file(`${root}/bin/lifecycle`, Buffer.from(entry), 0o755);
  yield file(`${root}/package.json`, Buffer.from(JSON.stringify({ name: 'strata-lifecycle', version: VERSION, type: 'module', private: true, features: LIFECYCLE_FEATURES })));
  const compiled = (rel: string): boolean => !/\.(map|test\.js)$/.test(rel);
  yield own({ type: 'directory', path: `${root}/dist`, mode: 0o755 });
  const wanted = (rel: string): boolean => LIFECYCLE_CODE.some((c) => rel === c || rel.startsWith(`${c}/`));
  for await (const e of treeEntries(join(PROJECT_ROOT, 'dist', 'src'), { prefix: `${root}/dist/src`, parentDirs: false, include: (rel, st) => wanted(rel) && (st.isDirectory() || compiled(rel)) })) yield own(e);
  // The compiled code, for the Node.js shipped here only. Node.js keeps one cache per uid (the last part of the
  // dir's name), so the one made at build time is named for the build user, who reads it and cannot write it.
  const compiledCache = join(PROJECT_ROOT, 'dist', 'compile-cache');
  if (buildUid !== undefined && parts.node === process.execPath && existsSync(compiledCache)) {
    const cachePath = `${root}/dist/compile-cache`;
    const forUser = (path: string): string => cachePath + path.slice(cachePath.length).replace(/^(\/v[^/]*-)\d+(?=\/|$)/, `$1${buildUid}`);
    for await (const e of treeEntries(compiledCache, { prefix: cachePath, parentDirs: false })) yield own({ ...e, path: forUser(e.path) });
  }
  yield own({ type: 'directory', path: `${root}/node_modules`, mode: 0o755 });
  for (const m of productionModules()) {
    if (m.includes('/')) yield own({ type: 'directory', path: `${root}/node_modules/${m.split('/')[0]}`, mode: 0o755 });
    for await (const e of treeEntries(join(PROJECT_ROOT, 'node_modules', m), { prefix: `${root}/node_modules/${m}`, parentDirs: false })) yield own(e);
  }
}
