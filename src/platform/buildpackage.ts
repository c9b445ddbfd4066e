import { createReadStream } from 'node:fs';
import { chmod, mkdir, mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkPathComponent } from '../oci/confined.js';
import { copyBlob } from '../oci/copy.js';
import type { Digest } from '../oci/digest.js';
import { StrataError } from '../oci/errors.js';
import { extractLayer } from '../oci/extract.js';
import { resolveImage, type ResolvedImage } from '../oci/image.js';
import { NORMALISED_MTIME, parentPaths, treeEntries, writeLayerFile, writeTarFile, type LayerEntry } from '../oci/layer.js';
import { OciLayout } from '../oci/layout.js';
import { hostPlatform, type Descriptor, type PlatformWanted } from '../oci/manifest.js';
import { appendLayers, emptyConfig, emptyManifest, platformImage, writeImage, writePlatformImages, type AddedLayer } from '../oci/mutate.js';
import type { ImageStore } from '../oci/store.js';
import { openTarget, parseTarget, type StoreOptions } from '../oci/target.js';
import { escapeId, readDescriptor, type BuildpackDescriptor } from '../spec/buildpack.js';
import type { Order } from '../spec/order.js';
import type { BuildpackSource, PackageConfig } from '../spec/packagetoml.js';
import { anyTargetMatches, type Target } from '../spec/target.js';
import { downloaded, isRemoteUri } from './download.js';

export const LABEL_BUILDPACKAGE = 'io.buildpacks.buildpackage.metadata';
export const LABEL_BUILDPACK_LAYERS = 'io.buildpacks.buildpack.layers';
export const LABEL_EXTENSION_LAYERS = 'io.buildpacks.extension.layers';

/** One entry of `io.buildpacks.buildpack.layers`. */
export interface BuildpackLayerInfo {
  api: string;
  layerDiffID: string;
  order?: Order;
  stacks?: { id: string; mixins?: string[] }[];
  targets?: Target[];
  homepage?: string;
  name?: string;
}

export type BuildpackLayers = Record<string, Record<string, BuildpackLayerInfo>>;

/** A buildpack ready to go into an image: its layer (a file made here, or a blob in another image) and its label entry. */
export interface CollectedBuildpack {
  id: string;
  version: string;
  info: BuildpackLayerInfo;
  layer: { descriptor: Descriptor; diffID: Digest; file?: string; from?: ImageStore };
}

/** The entries of one buildpack's (or extension's) layer: `/cnb/buildpacks/<escaped id>/<version>/…`, root-owned, normalised. */
async function* buildpackEntries(desc: BuildpackDescriptor): AsyncGenerator<LayerEntry> {
  const prefix = `cnb/${desc.kind === 'extension' ? 'extensions' : 'buildpacks'}/${escapeId(desc.id)}/${desc.version}`;
  for (const p of parentPaths(prefix)) yield { type: 'directory', path: p, mode: 0o755 };
  // Readable (and where executable, runnable) by the build user, whatever umask the buildpack was written with.
  for await (const e of treeEntries(desc.dir, { prefix, parentDirs: false })) {
    if (e.type === 'directory') yield { ...e, mode: 0o755 };
    else if (e.type === 'file') yield { ...e, mode: e.mode & 0o111 ? 0o755 : 0o644 };
    else yield e;
  }
}

function layerInfo(desc: BuildpackDescriptor, diffID: string): BuildpackLayerInfo {
  return {
    api: desc.api,
    layerDiffID: diffID,
    ...(desc.order.length ? { order: desc.order } : {}),
    ...(desc.stacks.length ? { stacks: desc.stacks } : {}),
    ...(desc.targets.length ? { targets: desc.targets } : {}),
    ...(desc.homepage ? { homepage: desc.homepage } : {}),
    ...(desc.name ? { name: desc.name } : {}),
  };
}

/** Finds the dir holding buildpack.toml (or extension.toml) in an unpacked archive: its root, or its single top-level dir. */
async function buildpackRoot(dir: string, kind: 'buildpack' | 'extension'): Promise<string> {
  if (await stat(join(dir, `${kind}.toml`)).catch(() => undefined)) return dir;
  const entries = await readdir(dir);
  if (entries.length === 1 && (await stat(join(dir, entries[0]!, `${kind}.toml`)).catch(() => undefined))) return join(dir, entries[0]!);
  throw new StrataError(`${dir}: no ${kind}.toml at the root of the archive`);
}

/** Reads a buildpackage from an image reference or a `.cnb` file (an OCI layout in a plain tar). */
export async function openBuildpackage(ref: string, work: string, options: StoreOptions): Promise<ResolvedImage> {
  if (ref.endsWith('.cnb')) {
    const dir = await mkdtemp(join(work, 'cnb-'));
    await extractLayer(createReadStream(ref), dir, { label: ref, chown: false, whiteouts: false, links: false });
    return resolveImage(await OciLayout.open(dir), undefined);
  }
  const t = await openTarget(parseTarget(ref.replace(/^docker:\/\//, '')), options);
  return resolveImage(t.store, t.id);
}

/** The buildpacks (or extensions) a package image holds, with their layers by reference (copied blob for blob, never re-made). */
export function packagedBuildpacks(image: ResolvedImage, what: string, layersLabelName: string = LABEL_BUILDPACK_LAYERS): CollectedBuildpack[] {
  const label = image.config.config?.Labels?.[layersLabelName];
  if (!label) throw new StrataError(`${what}: not a ${layersLabelName === LABEL_BUILDPACK_LAYERS ? 'buildpackage' : 'extension package'} (no ${layersLabelName} label)`);
  const layers = JSON.parse(label) as BuildpackLayers;
  const out: CollectedBuildpack[] = [];
  for (const [id, versions] of Object.entries(layers)) {
    // The label comes from an image: its ids and versions become directory names, so each must be one.
    checkPathComponent(escapeId(id), `${what}: ${LABEL_BUILDPACK_LAYERS}: buildpack id`);
    for (const [version, info] of Object.entries(versions)) {
      checkPathComponent(version, `${what}: ${LABEL_BUILDPACK_LAYERS}: version of ${id}`);
      const i = image.config.rootfs.diff_ids.indexOf(info.layerDiffID as Digest);
      if (i < 0) throw new StrataError(`${what}: ${id}@${version} names layer ${info.layerDiffID}, which the image does not have`);
      out.push({ id, version, info, layer: { descriptor: image.manifest.manifest.layers[i]!, diffID: info.layerDiffID as Digest, from: image.store } });
    }
  }
  return out;
}

/** A buildpack (or an image extension) from a directory or a `.tgz`, made into its layer in `work`. */
export async function buildpackFromSource(uri: string, work: string, kind: 'buildpack' | 'extension' = 'buildpack'): Promise<{ desc: BuildpackDescriptor; collected: CollectedBuildpack }> {
  let dir = uri;
  if (/\.(tgz|tar\.gz|tar)$/.test(uri)) {
    const into = await mkdtemp(join(work, 'tgz-'));
    await extractLayer(createReadStream(uri), into, { label: uri, chown: false, whiteouts: false });
    dir = await buildpackRoot(into, kind);
  }
  const desc = await readDescriptor(dir, kind);
  // An extension's programs are optional (its detect/ and generate/ dirs stand in for them); a buildpack's are not.
  if (kind === 'buildpack' && !desc.order.length) {
    // A component buildpack is its two programs; one without them would only fail at detection, on someone else's build.
    for (const bin of ['detect', 'build']) {
      const st = await stat(join(dir, 'bin', bin)).catch(() => undefined);
      if (!st?.isFile()) throw new StrataError(`${join(dir, 'buildpack.toml')}: ${desc.id}@${desc.version} has no bin/${bin} (a buildpack needs bin/detect and bin/build)`);
      if (!(st.mode & 0o111)) throw new StrataError(`${join(dir, 'bin', bin)} is not executable (chmod +x it)`);
    }
  }
  const file = join(work, `${escapeId(desc.id)}-${desc.version}.tar.gz`);
  const info = await writeLayerFile(buildpackEntries(desc), file, { mtime: NORMALISED_MTIME });
  return { desc, collected: { id: desc.id, version: desc.version, info: layerInfo(desc, info.diffID), layer: { descriptor: { mediaType: info.mediaType, digest: info.digest, size: info.size }, diffID: info.diffID, file } } };
}

/** Gathers the buildpacks of a source (a dir/.tgz buildpack, or every buildpack of a package image or .cnb). */
export async function collectSource(src: BuildpackSource, work: string, options: StoreOptions): Promise<{ entry?: BuildpackDescriptor; buildpacks: CollectedBuildpack[] }> {
  const ref = src.image ?? (src.uri && isRemoteUri(src.uri) ? await downloaded(src.uri) : src.uri!);
  if (src.image || ref.endsWith('.cnb') || ref.startsWith('docker://')) {
    const image = await openBuildpackage(ref, work, options);
    return { buildpacks: packagedBuildpacks(image, ref) };
  }
  const { desc, collected } = await buildpackFromSource(ref, work);
  return { entry: desc, buildpacks: [collected] };
}

/** An image extension: a directory or `.tgz` holding extension.toml, or an extension package (image or `.cnb`). */
export async function collectExtension(src: BuildpackSource, work: string, options: StoreOptions = {}): Promise<CollectedBuildpack> {
  const ref = src.image ?? (src.uri && isRemoteUri(src.uri) ? await downloaded(src.uri) : src.uri!);
  if (src.image || ref.endsWith('.cnb') || ref.startsWith('docker://')) {
    const found = packagedBuildpacks(await openBuildpackage(ref, work, options), ref, LABEL_EXTENSION_LAYERS);
    if (found.length !== 1) throw new StrataError(`${ref}: an extension package holds one extension, not ${found.length}`);
    return found[0]!;
  }
  return (await buildpackFromSource(ref, work, 'extension')).collected;
}

/** Every id@version an order can reach must be present, and no composite may contain itself. */
export function checkOrders(buildpacks: CollectedBuildpack[], where: string): void {
  const byKey = new Map(buildpacks.map((b) => [`${b.id}@${b.version}`, b]));
  const visit = (b: CollectedBuildpack, path: string[]): void => {
    for (const g of b.info.order ?? []) {
      for (const el of g.group) {
        const key = `${el.id}@${el.version ?? ''}`;
        if (path.includes(key)) throw new StrataError(`${where}: composite order cycle ${[...path, key].join(' → ')}`);
        const dep = byKey.get(key);
        if (!dep) throw new StrataError(`${where}: buildpack ${key} (in the order of ${b.id}@${b.version}) is not packaged; add it to [[dependencies]]`);
        visit(dep, [...path, key]);
      }
    }
  };
  for (const b of buildpacks) visit(b, [`${b.id}@${b.version}`]);
}

export interface Buildpackage {
  entry: BuildpackDescriptor;
  buildpacks: CollectedBuildpack[];
}

/** Reads package.toml's buildpack and dependencies into one deduplicated, checked set. */
export async function assemblePackage(config: PackageConfig, work: string, options: StoreOptions): Promise<Buildpackage> {
  if (config.kind === 'extension') {
    if (!config.buildpack.uri || config.buildpack.uri.endsWith('.cnb') || config.buildpack.uri.startsWith('docker://')) throw new StrataError(`${config.file}: [extension] must be a directory or .tgz`);
    const { desc, collected } = await buildpackFromSource(config.buildpack.uri, work, 'extension');
    return { entry: desc, buildpacks: [collected] };
  }
  const { entry, buildpacks } = await collectSource(config.buildpack, work, options);
  if (!entry) throw new StrataError(`${config.file}: [buildpack] must be a directory or .tgz, not a package`);
  const all = new Map<string, CollectedBuildpack>();
  for (const dep of config.dependencies) for (const b of (await collectSource(dep, work, options)).buildpacks) all.set(`${b.id}@${b.version}`, b);
  for (const b of buildpacks) all.set(`${b.id}@${b.version}`, b);
  const list = [...all.values()];
  checkOrders(list, config.file);
  return { entry, buildpacks: list };
}

export function layersLabel(buildpacks: CollectedBuildpack[]): BuildpackLayers {
  const out: BuildpackLayers = {};
  for (const b of buildpacks) (out[b.id] ??= {})[b.version] = b.info;
  return out;
}

/** Puts each buildpack's layer into `store`: uploaded from its file, or copied blob for blob from its package. */
export async function storeBuildpackLayers(buildpacks: CollectedBuildpack[], store: ImageStore, what: 'Buildpack' | 'Extension' = 'Buildpack'): Promise<AddedLayer[]> {
  const added: AddedLayer[] = [];
  const seen = new Set<string>();
  for (const b of buildpacks) {
    const { descriptor, diffID, file, from } = b.layer;
    // Flattened buildpacks share one layer: it goes in once.
    if (seen.has(diffID)) continue;
    seen.add(diffID);
    if (file) await store.putBlob(descriptor, async (start, end) => createReadStream(file, { start, end: end - 1 }));
    else if (from) await copyBlob(from, store, descriptor);
    added.push({ descriptor, diffID, history: { created_by: `${what}: ${b.id}@${b.version}` } });
  }
  return added;
}

/**
 * pack's `--flatten`: the buildpacks of each group (`id@version` keys) put into one layer together, and every one of
 * them recorded with that layer's diffID. Their layers are unpacked (as any buildpack layer: their own tree only, no
 * whiteouts) into one dir and written again as one reproducible layer.
 */
export async function flattenBuildpacks(buildpacks: CollectedBuildpack[], groups: string[][], work: string, where: string): Promise<CollectedBuildpack[]> {
  const byKey = new Map(buildpacks.map((b) => [`${b.id}@${b.version}`, b]));
  const replaced = new Map<string, CollectedBuildpack>();
  for (const [n, group] of groups.entries()) {
    const members = group.map((key) => {
      const b = byKey.get(key);
      if (!b) throw new StrataError(`${where}: --flatten ${group.join(',')}: ${key} is not one of the buildpacks (${[...byKey.keys()].join(', ')})`);
      if (replaced.has(key)) throw new StrataError(`${where}: --flatten: ${key} is in two groups`);
      return b;
    });
    const dir = await mkdtemp(join(work, `flat-${n}-`));
    for (const b of members) {
      const rel = `cnb/buildpacks/${checkPathComponent(escapeId(b.id), 'buildpack id')}/${checkPathComponent(b.version, `version of ${b.id}`)}`;
      const into = join(dir, rel);
      await mkdir(into, { recursive: true });
      const stream = b.layer.file ? createReadStream(b.layer.file) : await b.layer.from!.getBlob(b.layer.descriptor);
      await extractLayer(stream, into, { label: `${b.id}@${b.version}`, strip: rel, whiteouts: false, diffID: b.layer.diffID });
    }
    // Parents made here get the usual mode whatever the umask, so the layer is the same everywhere.
    for (const p of ['cnb', 'cnb/buildpacks', ...members.map((b) => `cnb/buildpacks/${escapeId(b.id)}`)]) await chmod(join(dir, p), 0o755);
    const file = join(work, `flat-${n}.tar.gz`);
    const info = await writeLayerFile(treeEntries(dir, { owners: true }), file, { mtime: NORMALISED_MTIME });
    const layer = { descriptor: { mediaType: info.mediaType, digest: info.digest, size: info.size }, diffID: info.diffID, file };
    for (const b of members) replaced.set(`${b.id}@${b.version}`, { ...b, info: { ...b.info, layerDiffID: info.diffID }, layer });
  }
  return buildpacks.map((b) => replaced.get(`${b.id}@${b.version}`) ?? b);
}

function packageLabels(pkg: Buildpackage): Record<string, string> {
  const e = pkg.entry;
  return {
    [LABEL_BUILDPACKAGE]: JSON.stringify({ id: e.id, version: e.version, ...(e.name ? { name: e.name } : {}), ...(e.homepage ? { homepage: e.homepage } : {}), stacks: e.stacks.map((s) => ({ id: s.id, mixins: s.mixins })) }),
    [e.kind === 'extension' ? LABEL_EXTENSION_LAYERS : LABEL_BUILDPACK_LAYERS]: JSON.stringify(layersLabel(pkg.buildpacks)),
  };
}

/**
 * The platforms a package is made for, each one every buildpack in it declares (spec: `[[targets]]`; none declared
 * means any); one line naming the buildpack that does not.
 */
export function checkPackageTargets(buildpacks: CollectedBuildpack[], platforms: PlatformWanted[]): void {
  for (const p of platforms) {
    const image = { os: p.os, arch: p.architecture, ...(p.variant ? { variant: p.variant } : {}) };
    for (const b of buildpacks) {
      const targets = b.info.targets ?? [];
      if (anyTargetMatches(targets, image)) continue;
      const named = targets.map((t) => [t.os ?? '*', t.arch ?? '*', ...(t.variant ? [t.variant] : [])].join('/')).join(', ');
      throw new StrataError(`${b.id}@${b.version} is for ${named} only, not ${p.os}/${p.architecture}${p.variant ? `/${p.variant}` : ''}: add that target to [[targets]] in its buildpack.toml, or leave out --target ${p.os}/${p.architecture}`);
    }
  }
}

/**
 * Writes a buildpackage image: one layer per buildpack and the two labels of spec §15. Several platforms make an
 * index of one image each, sharing the buildpacks' layers (uploaded once).
 */
export async function writeBuildpackageImage(pkg: Buildpackage, store: ImageStore, tag: string, extraLabels: Record<string, string> = {}, targets?: PlatformWanted[]): Promise<Digest> {
  // Asked for (`--target`), each platform must be one the buildpacks declare; otherwise this machine's, as ever.
  if (targets) checkPackageTargets(pkg.buildpacks, targets);
  const platforms = targets ?? [hostPlatform()];
  const added = await storeBuildpackLayers(pkg.buildpacks, store, pkg.entry.kind === 'extension' ? 'Extension' : 'Buildpack');
  return writePlatformImages(store, tag, platforms, async (platform, tagged) => {
    const { config, manifest } = appendLayers(emptyConfig(platform, NORMALISED_MTIME), emptyManifest(), added);
    return platformImage(await writeImage(store, { ...config, config: { ...(config.config ?? {}), Labels: { ...extraLabels, ...packageLabels(pkg) } } }, manifest, tagged), platform);
  });
}

/** Writes a `.cnb`: the package as an OCI layout in an uncompressed tar, under a temp name until complete. */
export async function writeBuildpackageFile(pkg: Buildpackage, path: string, targets?: PlatformWanted[]): Promise<Digest> {
  const dir = await mkdtemp(join(tmpdir(), 'strata-cnb-'));
  try {
    const digest = await writeBuildpackageImage(pkg, await OciLayout.open(dir, { create: true }), 'latest', {}, targets);
    await writeTarFile(treeEntries(dir), path);
    return digest;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
