import { createReadStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { envValue } from '../oci/config.js';
import type { Digest } from '../oci/digest.js';
import { StrataError } from '../oci/errors.js';
import type { ResolvedImage } from '../oci/image.js';
import { NORMALISED_MTIME, parentPaths, writeLayerFile, type LayerEntry } from '../oci/layer.js';
import { copyBlob } from '../oci/copy.js';
import { appendLayers, emptyConfig, emptyManifest, platformImage, writeImage, writePlatformImages, type AddedLayer } from '../oci/mutate.js';
import { hostPlatform, type PlatformWanted } from '../oci/manifest.js';
import type { ImageStore } from '../oci/store.js';
import type { StoreOptions } from '../oci/target.js';
import { LATEST_BUILDPACK_API, LATEST_PLATFORM_API, SUPPORTED_BUILDPACK_APIS, SUPPORTED_PLATFORM_APIS } from '../spec/api.js';
import type { BuilderConfig } from '../spec/buildertoml.js';
import { orderToToml, type Order } from '../spec/order.js';
import { toToml } from '../spec/toml.js';
import { VERSION } from '../version.js';
import { checkOrders, checkPackageTargets, collectExtension, collectSource, flattenBuildpacks, LABEL_EXTENSION_LAYERS, layersLabel, storeBuildpackLayers, type CollectedBuildpack } from './buildpackage.js';
import { LIFECYCLE_CREATED_BY, lifecycleEntries, lifecycleParts, type LifecycleParts } from './lifecycle-layer.js';
import { entriesFingerprint, type OwnLayers } from './ownlayers.js';
import { openByPolicy, requireImage, whereLooked } from '../oci/images.js';
import type { PullPolicy } from '../oci/images.js';

export const LABEL_BUILDER = 'io.buildpacks.builder.metadata';
export const LABEL_ORDER = 'io.buildpacks.buildpack.order';
export const LABEL_ORDER_EXTENSIONS = 'io.buildpacks.buildpack.order-extensions';
export const LABEL_SYSTEM = 'io.buildpacks.buildpack.system';
export const LABEL_LIFECYCLE_VERSION = 'io.buildpacks.lifecycle.version';
export const LABEL_LIFECYCLE_APIS = 'io.buildpacks.lifecycle.apis';

/** What `io.buildpacks.builder.metadata` holds (pack's shape, so other platforms read strata builders). */
export interface BuilderMetadata {
  description: string;
  buildpacks: { id: string; version: string; homepage?: string }[];
  extensions?: { id: string; version: string; homepage?: string }[];
  stack: { runImage: { image: string; mirrors: string[] } };
  images: { image: string; mirrors: string[] }[];
  lifecycle: { version: string; api: { buildpack: string; platform: string }; apis: Apis };
  createdBy: { name: string; version: string };
}

type Apis = { buildpack: { deprecated: string[]; supported: string[] }; platform: { deprecated: string[]; supported: string[] } };

const APIS: Apis = { buildpack: { deprecated: [], supported: [...SUPPORTED_BUILDPACK_APIS] }, platform: { deprecated: [], supported: [...SUPPORTED_PLATFORM_APIS] } };

/** Small files placed at absolute paths, with root-owned parents: order.toml, run.toml, build-config env… */
async function* files(list: { path: string; content: string; mode?: number }[]): AsyncGenerator<LayerEntry> {
  const dirs = new Set<string>();
  for (const f of list) for (const p of parentPaths(f.path)) if (!dirs.has(p)) {
    dirs.add(p);
    yield { type: 'directory', path: p, mode: 0o755, uid: 0, gid: 0 };
  }
  for (const f of list) yield { type: 'file', path: f.path, mode: f.mode ?? 0o644, size: Buffer.byteLength(f.content), source: Buffer.from(f.content), uid: 0, gid: 0 };
}

async function* dirs(uid: number, gid: number): AsyncGenerator<LayerEntry> {
  for (const p of ['cnb', 'cnb/build-config', 'cnb/build-config/env', 'cnb/buildpacks', 'cnb/extensions']) yield { type: 'directory', path: p, mode: 0o755, uid: 0, gid: 0 };
  yield { type: 'directory', path: 'layers', mode: 0o755, uid, gid };
  for (const p of ['platform', 'platform/env']) yield { type: 'directory', path: p, mode: 0o755, uid: 0, gid: 0 };
  yield { type: 'directory', path: 'workspace', mode: 0o755, uid, gid };
}

/** Builder order entries may leave out the version when one version of that buildpack (or extension) is in the builder. */
function completeOrder(order: Order, buildpacks: CollectedBuildpack[], file: string, what: 'buildpacks' | 'extensions' = 'buildpacks'): Order {
  const key = what === 'buildpacks' ? 'order' : 'order-extensions';
  return order.map((g) => ({
    group: g.group.map((e) => {
      if (e.version) {
        if (!buildpacks.some((b) => b.id === e.id && b.version === e.version)) throw new StrataError(`${file}: ${key} names ${e.id}@${e.version}, which is not among the builder's ${what}`);
        return e;
      }
      const versions = buildpacks.filter((b) => b.id === e.id).map((b) => b.version);
      if (versions.length !== 1) throw new StrataError(`${file}: ${key} names ${e.id} ${versions.length ? `without a version, and the builder has ${versions.join(', ')}` : `, which is not among the builder's ${what}`}`);
      return { ...e, version: versions[0]! };
    }),
  }));
}

/** Build and run images must agree on os, arch and distro (spec §13); a run image that cannot be read is not checked. */
async function checkRunImage(config: BuilderConfig, build: ResolvedImage, options: StoreOptions, platform?: PlatformWanted): Promise<void> {
  const name = config.runImages[0]!.image;
  let run: ResolvedImage;
  try {
    run = (await requireImage(name, options, platform)).image;
  } catch {
    return;
  }
  const b = build.config;
  const r = run.config;
  const label = (c: typeof b, k: string) => c.config?.Labels?.[k];
  const mismatch = [
    b.os !== r.os || b.architecture !== r.architecture ? `os/arch ${b.os}/${b.architecture} vs ${r.os}/${r.architecture}` : '',
    ...['io.buildpacks.base.distro.name', 'io.buildpacks.base.distro.version'].map((k) => (label(b, k) && label(r, k) && label(b, k) !== label(r, k) ? `${k} ${label(b, k)} vs ${label(r, k)}` : '')),
  ].filter(Boolean);
  if (mismatch.length) throw new StrataError(`${config.file}: build image ${config.buildImage} and run image ${name} differ: ${mismatch.join('; ')}`);
}

/**
 * strata's lifecycle as a lifecycle image (what kpack's ClusterLifecycle names): one layer with `/cnb/lifecycle`, one
 * with `/cnb/process/rebase` (kpack's rebase container command, so an image carrying this lifecycle and a libc can be
 * kpack's rebase image), and the labels kpack reads: `io.buildpacks.lifecycle.apis`, and the lifecycle's version and
 * APIs in `io.buildpacks.builder.metadata`, as the reference lifecycle image has them. A builder made with it carries
 * the same lifecycle as one made without.
 */
export async function createLifecycleImage(openOutput: () => Promise<{ store: ImageStore; tag: string }>, platforms: PlatformWanted[] = [hostPlatform()]): Promise<{ digest: Digest; version: string }> {
  const parts = platforms.map((p) => lifecycleParts(p));
  const work = await mkdtemp(join(tmpdir(), 'strata-lifecycle-image-'));
  try {
    const output = await openOutput();
    const put = async (file: string, entries: AsyncIterable<LayerEntry>, what: string) => {
      const path = join(work, file);
      const info = await writeLayerFile(entries, path, { mtime: NORMALISED_MTIME });
      const descriptor = { mediaType: info.mediaType, digest: info.digest, size: info.size };
      await output.store.putBlob(descriptor, async (start, end) => createReadStream(path, { start, end: end - 1 }));
      return { descriptor, diffID: info.diffID, history: { created_by: what } };
    };
    const rebaseEntry = async function* (): AsyncGenerator<LayerEntry> {
      yield { type: 'directory', path: 'cnb', mode: 0o755, uid: 0, gid: 0 };
      yield { type: 'directory', path: 'cnb/process', mode: 0o755, uid: 0, gid: 0 };
      yield { type: 'symlink', path: 'cnb/process/rebase', target: '../lifecycle/strata/bin/lifecycle', uid: 0, gid: 0 };
    };
    const rebase = await put('rebase.tar.gz', rebaseEntry(), "kpack's rebase command");
    const lifecycleDescriptor = { lifecycle: { version: VERSION }, api: { buildpack: APIS.buildpack.supported.at(-1), platform: APIS.platform.supported.at(-1) }, apis: APIS };
    const labels = { [LABEL_LIFECYCLE_VERSION]: VERSION, [LABEL_LIFECYCLE_APIS]: JSON.stringify(APIS), [LABEL_BUILDER]: JSON.stringify(lifecycleDescriptor) };
    const digest = await writePlatformImages(output.store, output.tag, [...parts.entries()], async ([n, p], tag) => {
      const lifecycle = await put(`lifecycle-${n}.tar.gz`, lifecycleEntries(p), LIFECYCLE_CREATED_BY);
      const { config, manifest } = appendLayers(emptyConfig(p.platform, NORMALISED_MTIME), emptyManifest(), [lifecycle, rebase]);
      // A user that is not root: kpack's rebase pod runs with runAsNonRoot, and this image can be its rebase image.
      return platformImage(await writeImage(output.store, { ...config, config: { User: '65532:65532', Labels: labels } }, manifest, tag), p.platform);
    });
    return { digest, version: VERSION };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

export interface BuilderResult {
  digest: Digest;
  metadata: BuilderMetadata;
  buildImage: ResolvedImage;
}

/** pack's `builder create` flags beyond builder.toml. */
export interface BuilderExtras {
  /** `--label`: never replaces the builder's own labels. */
  labels?: Record<string, string>;
  /** `--pull-policy` for the build image. */
  policy?: PullPolicy;
  /** `--flatten`: groups of `id@version` that share one layer. */
  flatten?: string[][];
  /**
   * A lifecycle image (what kpack's ClusterLifecycle names: `/cnb/lifecycle` in its layers, the
   * `io.buildpacks.lifecycle.version` and `.apis` labels) to put in the builder instead of strata's own lifecycle.
   */
  lifecycleImage?: string;
  /** Where strata's own lifecycle layer is remembered, so builds on this machine unpack it from the install. */
  ownLayers?: OwnLayers;
}

/** A lifecycle image's layers and what its labels say. */
async function lifecycleFromImage(name: string, options: StoreOptions, platform?: PlatformWanted): Promise<{ image: ResolvedImage; version: string; apis: Apis }> {
  const { image } = await requireImage(name, options, platform);
  const labels = image.config.config?.Labels ?? {};
  const version = labels[LABEL_LIFECYCLE_VERSION];
  if (!version) throw new StrataError(`lifecycle image ${name} has no ${LABEL_LIFECYCLE_VERSION} label; is it a lifecycle image?`);
  let apis: Apis;
  try {
    const parsed = JSON.parse(labels[LABEL_LIFECYCLE_APIS] ?? '') as Partial<Apis>;
    if (!parsed.buildpack?.supported?.length || !parsed.platform?.supported?.length) throw new Error('incomplete');
    apis = { buildpack: { deprecated: parsed.buildpack.deprecated ?? [], supported: parsed.buildpack.supported }, platform: { deprecated: parsed.platform.deprecated ?? [], supported: parsed.platform.supported } };
  } catch {
    throw new StrataError(`lifecycle image ${name}: the ${LABEL_LIFECYCLE_APIS} label does not list the buildpack and platform APIs it supports`);
  }
  return { image, version, apis };
}

/**
 * Assembles a builder the way pack lays one out (spec §15): the build image, then the dirs, strata's lifecycle, one
 * layer per buildpack, order.toml, system.toml, run.toml and stack.toml, and the build-config env — with pack's labels.
 * The output is opened only after the inputs are checked, so a bad builder.toml writes nothing.
 */
/** One platform's inputs of a builder: its build image, build user and lifecycle, checked before anything is written. */
interface PlatformInputs {
  platform?: PlatformWanted;
  build: ResolvedImage;
  uid: number;
  gid: number;
  foreign?: Awaited<ReturnType<typeof lifecycleFromImage>>;
  parts?: LifecycleParts;
}

async function platformInputs(config: BuilderConfig, options: StoreOptions, extras: BuilderExtras, platform: PlatformWanted | undefined): Promise<PlatformInputs> {
  const policy = extras.policy ?? 'if-not-present';
  const file = config.file;
  const found = await openByPolicy(config.buildImage, options, policy, platform);
  if (!found) throw new StrataError(`${file}: build image ${config.buildImage}: not found ${whereLooked(policy)}`);
  const build = found.image;
  // A build image that is no index is the one platform it says, whatever was asked for.
  if (platform && (build.config.os !== platform.os || build.config.architecture !== platform.architecture)) {
    throw new StrataError(`${file}: build image ${config.buildImage} has no ${platform.os}/${platform.architecture} image (it is ${build.config.os}/${build.config.architecture}); for --target ${platform.os}/${platform.architecture} it must be an index holding one`);
  }
  const uidText = envValue(build.config, 'CNB_USER_ID');
  const gidText = envValue(build.config, 'CNB_GROUP_ID');
  if (!uidText || !gidText || !/^\d+$/.test(uidText) || !/^\d+$/.test(gidText)) throw new StrataError(`${file}: build image ${config.buildImage} has no numeric CNB_USER_ID and CNB_GROUP_ID in its env; make it with \`strata base create\``);
  await checkRunImage(config, build, options, platform);
  const foreign = extras.lifecycleImage ? await lifecycleFromImage(extras.lifecycleImage, options, platform) : undefined;
  return { ...(platform ? { platform } : {}), build, uid: Number(uidText), gid: Number(gidText), ...(foreign ? { foreign } : { parts: lifecycleParts(platform) }) };
}

export async function createBuilder(config: BuilderConfig, openOutput: () => Promise<{ store: ImageStore; tag: string }>, options: StoreOptions, extras: BuilderExtras = {}, targets?: PlatformWanted[]): Promise<BuilderResult> {
  const extraLabels = extras.labels;
  const file = config.file;
  // Without --target, this machine's platform as ever; with it, one image per platform in an index.
  const inputs: PlatformInputs[] = [];
  for (const t of targets ?? [undefined]) inputs.push(await platformInputs(config, options, extras, t));
  const foreignLifecycle = inputs[0]!.foreign;
  const lifecycle = foreignLifecycle ? { version: foreignLifecycle.version, apis: foreignLifecycle.apis } : { version: VERSION, apis: APIS };

  const work = await mkdtemp(join(tmpdir(), 'strata-builder-'));
  try {
    const all = new Map<string, CollectedBuildpack>();
    for (const src of config.buildpacks) for (const b of (await collectSource(src, work, options)).buildpacks) all.set(`${b.id}@${b.version}`, b);
    const buildpacks = extras.flatten?.length ? await flattenBuildpacks([...all.values()], extras.flatten, work, file) : [...all.values()];
    checkOrders(buildpacks, file);
    if (targets) checkPackageTargets(buildpacks, targets);
    const order = completeOrder(config.order, buildpacks, file);
    const extMap = new Map<string, CollectedBuildpack>();
    for (const src of config.extensions) {
      const e = await collectExtension(src, work, options);
      extMap.set(`${e.id}@${e.version}`, e);
    }
    const extensions = [...extMap.values()];
    const orderExtensions = completeOrder(config.orderExtensions, extensions, file, 'extensions');
    // Opened only now, once everything has been checked: a bad builder.toml leaves no trace at the destination.
    const output = await openOutput();
    let metadata!: BuilderMetadata;
    const digest = await writePlatformImages(output.store, output.tag, inputs, async ({ platform, build, uid, gid, foreign, parts }, tag) => {
      const added: AddedLayer[] = [];
      let n = 0;
      const layer = async (entries: AsyncIterable<LayerEntry>, createdBy: string): Promise<Digest> => {
        const path = join(work, `layer-${n++}.tar.gz`);
        const info = await writeLayerFile(entries, path, { mtime: NORMALISED_MTIME });
        const descriptor = { mediaType: info.mediaType, digest: info.digest, size: info.size };
        await output.store.putBlob(descriptor, async (start, end) => createReadStream(path, { start, end: end - 1 }));
        added.push({ descriptor, diffID: info.diffID, history: { created_by: createdBy } });
        return info.diffID;
      };
      for (const d of build.manifest.manifest.layers) await copyBlob(build.store, output.store, d);
      await layer(dirs(uid, gid), 'Builder: directories');
      if (foreign) {
        const { manifest, config: c } = foreign.image;
        for (const [i, d] of manifest.manifest.layers.entries()) {
          await copyBlob(foreign.image.store, output.store, d);
          added.push({ descriptor: { mediaType: d.mediaType, digest: d.digest, size: d.size }, diffID: c.rootfs.diff_ids[i]!, history: { created_by: `Lifecycle: ${extras.lifecycleImage} ${foreign.version}` } });
        }
      } else {
        const diffID = await layer(lifecycleEntries(parts, uid), LIFECYCLE_CREATED_BY);
        await extras.ownLayers?.remember(await entriesFingerprint(lifecycleEntries(parts, uid)), diffID);
      }
      added.push(...(await storeBuildpackLayers(buildpacks, output.store)));
      added.push(...(await storeBuildpackLayers(extensions, output.store, 'Extension')));
      const orderToml = { ...orderToToml(order), ...(orderExtensions.length ? orderToToml(orderExtensions, 'order-extensions') : {}) };
      await layer(files([{ path: 'cnb/order.toml', content: toToml(orderToml) }]), 'Builder: order.toml');
      const hasSystem = config.system.pre.length + config.system.post.length > 0;
      if (hasSystem) {
        const sys = (l: typeof config.system.pre) => l.map((e) => ({ id: e.id, version: e.version, optional: e.optional || undefined }));
        await layer(files([{ path: 'cnb/system.toml', content: toToml({ system: { pre: { buildpacks: sys(config.system.pre) }, post: { buildpacks: sys(config.system.post) } } }) }]), 'Builder: system.toml');
      }
      const first = config.runImages[0]!;
      await layer(
        files([
          { path: 'cnb/run.toml', content: toToml({ images: config.runImages.map((r) => ({ image: r.image, ...(r.mirrors.length ? { mirrors: r.mirrors } : {}) })) }) },
          { path: 'cnb/stack.toml', content: toToml({ 'run-image': { image: first.image, ...(first.mirrors.length ? { mirrors: first.mirrors } : {}) } }) },
        ]),
        'Builder: run.toml and stack.toml',
      );
      if (config.buildEnv.length) {
        // `<NAME>.delim` beside an append or prepend value, as the platform spec's env files have it.
        const envFiles = config.buildEnv.flatMap((e) => [
          { path: `cnb/build-config/env/${e.name}${e.suffix ? `.${e.suffix}` : ''}`, content: e.value },
          ...(e.delim !== undefined ? [{ path: `cnb/build-config/env/${e.name}.delim`, content: e.delim }] : []),
        ]);
        await layer(files(envFiles), 'Builder: build-config env');
      }

      metadata = {
        description: config.description ?? '',
        buildpacks: buildpacks.map((b) => ({ id: b.id, version: b.version, ...(b.info.homepage ? { homepage: b.info.homepage } : {}) })),
        ...(extensions.length ? { extensions: extensions.map((b) => ({ id: b.id, version: b.version, ...(b.info.homepage ? { homepage: b.info.homepage } : {}) })) } : {}),
        stack: { runImage: { image: first.image, mirrors: first.mirrors } },
        images: config.runImages.map((r) => ({ image: r.image, mirrors: r.mirrors })),
        lifecycle: { version: lifecycle.version, api: { buildpack: lifecycle.apis.buildpack.supported.at(-1) ?? LATEST_BUILDPACK_API, platform: lifecycle.apis.platform.supported.at(-1) ?? LATEST_PLATFORM_API }, apis: lifecycle.apis },
        createdBy: { name: 'strata', version: VERSION },
      };
      const labels: Record<string, string> = {
        [LABEL_BUILDER]: JSON.stringify(metadata),
        [LABEL_ORDER]: JSON.stringify(order.map((g) => ({ group: g.group.map((e) => ({ id: e.id, version: e.version, ...(e.optional ? { optional: true } : {}) })) }))),
        'io.buildpacks.buildpack.layers': JSON.stringify(layersLabel(buildpacks)),
        ...(extensions.length
          ? { [LABEL_EXTENSION_LAYERS]: JSON.stringify(layersLabel(extensions)), [LABEL_ORDER_EXTENSIONS]: JSON.stringify(orderExtensions.map((g) => ({ group: g.group.map((e) => ({ id: e.id, version: e.version })) }))) }
          : {}),
        [LABEL_LIFECYCLE_VERSION]: lifecycle.version,
        [LABEL_LIFECYCLE_APIS]: JSON.stringify(lifecycle.apis),
        ...(hasSystem ? { [LABEL_SYSTEM]: JSON.stringify(config.system) } : {}),
        ...(config.stack ? { 'io.buildpacks.stack.id': config.stack.id } : {}),
      };
      // A Docker-typed build image keeps Docker media types throughout: writeImage names every layer in one family.
      let { config: imageConfig, manifest } = appendLayers(build.config, build.manifest.manifest, added);
      // The user's --label values never replace the builder's own labels.
      imageConfig = { ...imageConfig, config: { ...(imageConfig.config ?? {}), WorkingDir: '/layers', Labels: { ...(imageConfig.config?.Labels ?? {}), ...(extraLabels ?? {}), ...labels } } };
      return platformImage(await writeImage(output.store, imageConfig, manifest, tag), platform);
    });
    return { digest, metadata, buildImage: inputs[0]!.build };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
