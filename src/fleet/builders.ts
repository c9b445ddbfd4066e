import { createHash } from 'node:crypto';
import { NotFoundError, StrataError, errorMessage } from '../oci/errors.js';
import { Reference } from '../oci/reference.js';
import { RegistryRepository } from '../oci/registry/client.js';
import { openRequired } from '../oci/images.js';
import { openTarget, parseTarget, type StoreOptions } from '../oci/target.js';
import { createBuilder } from '../platform/builder.js';
import { LABEL_BUILDPACK_LAYERS, LABEL_BUILDPACKAGE, type BuildpackLayers } from '../platform/buildpackage.js';
import { outputFor } from '../oci/images.js';
import type { BuilderConfig } from '../spec/buildertoml.js';
import type { OrderElement } from '../spec/order.js';
import { VERSION } from '../version.js';
import { canonical } from './canonical.js';
import type { BuildpackRef } from './reasons.js';
import { describe, type BuilderSpec, type BuildpackSpec, type LifecycleSpec, type ResourceOf, type StackSpec, type StoreSpec } from './resources.js';
import type { BuilderStatus, BuildpackStatus, LifecycleStatus, StackStatus, StoreStatus } from './store.js';

/**
 * Keeping stacks, stores and builders true: their images resolved to digests, and a builder image made anew (with
 * strata's own `builder create`, daemonless) whenever what it is made from changes.
 */

/** An image by name, as `name@digest`: one manifest read (a HEAD where the registry gives the digest). */
export async function digestRef(image: string, store: StoreOptions): Promise<string> {
  const target = parseTarget(image);
  if (target.kind !== 'registry') throw new StrataError(`${image}: the fleet needs registry images`);
  const t = await openTarget(target, store);
  if (target.ref.digest) return `${target.ref.name}@${target.ref.digest}`;
  const head = t.store instanceof RegistryRepository ? await t.store.headManifest(t.id ?? 'latest') : undefined;
  if (t.store instanceof RegistryRepository && !head) throw new NotFoundError(`${image}: manifest not found`);
  return `${target.ref.name}@${head?.digest ?? (await t.store.getManifest(t.id)).digest}`;
}

export async function resolveStack(spec: StackSpec, store: StoreOptions): Promise<StackStatus> {
  const [buildImage, runImage] = await Promise.all([digestRef(spec.buildImage, store), digestRef(spec.runImage, store)]);
  return { ready: true, id: spec.id, buildImage, runImage, runImageTag: spec.runImage };
}

/** The buildpacks one buildpackage image holds, from its `io.buildpacks.buildpack.layers` label, and its entry. */
export async function buildpacksOf(ref: string, store: StoreOptions): Promise<{ buildpacks: BuildpackRef[]; entry?: BuildpackRef; roots: BuildpackRef[] }> {
  const labels = (await openRequired(ref, store)).image.config.config?.Labels ?? {};
  const layers = JSON.parse(labels[LABEL_BUILDPACK_LAYERS] ?? '{}') as BuildpackLayers;
  const buildpacks = Object.entries(layers).flatMap(([id, versions]) => Object.keys(versions).map((version) => ({ id, version })));
  if (!buildpacks.length) throw new StrataError(`${ref}: not a buildpackage (no ${LABEL_BUILDPACK_LAYERS} label)`);
  // kpack's "root" buildpacks: those no other buildpack's order names.
  const named = new Set(Object.values(layers).flatMap((versions) => Object.values(versions).flatMap((info) => (info.order ?? []).flatMap((g) => g.group.map((e) => `${e.id}@${e.version ?? ''}`)))));
  const roots = buildpacks.filter((b) => !named.has(`${b.id}@${b.version}`));
  const md = JSON.parse(labels[LABEL_BUILDPACKAGE] ?? '{}') as { id?: string; version?: string };
  return { buildpacks, roots, ...(md.id && md.version ? { entry: { id: md.id, version: md.version } } : {}) };
}

/** Resolves a store's sources; a source whose digest did not move keeps the buildpack list read before. */
export async function resolveStore(spec: StoreSpec, before: StoreStatus | undefined, store: StoreOptions): Promise<StoreStatus> {
  const sources = [];
  for (const image of spec.sources) {
    const digest = await digestRef(image, store);
    const known = before?.sources?.find((s) => s.image === image && s.digest === digest);
    sources.push(known ?? { image, digest, buildpacks: (await buildpacksOf(digest, store)).buildpacks });
  }
  return { ready: true, sources };
}

/** A ClusterBuildpack or Buildpack: its image by digest, the buildpacks in it, and its root (kpack's word). */
export async function resolveBuildpack(spec: BuildpackSpec, before: BuildpackStatus | undefined, store: StoreOptions): Promise<BuildpackStatus> {
  const digest = await digestRef(spec.image, store);
  if (before?.image === digest && before.buildpacks) return { ...before, ready: true };
  const { buildpacks, entry, roots } = await buildpacksOf(digest, store);
  const root = entry ?? (roots.length === 1 ? roots[0] : undefined);
  return { ready: true, image: digest, buildpacks, ...(root ? { root } : {}) };
}

/** A ClusterLifecycle: its image by digest and the lifecycle version its label gives. */
export async function resolveLifecycle(spec: LifecycleSpec, store: StoreOptions): Promise<LifecycleStatus> {
  const image = await digestRef(spec.image, store);
  const labels = (await openRequired(image, store)).image.config.config?.Labels ?? {};
  const version = labels['io.buildpacks.lifecycle.version'];
  if (!version) throw new StrataError(`${spec.image}: not a lifecycle image (no io.buildpacks.lifecycle.version label)`);
  return { ready: true, image, version };
}

/** What a builder image says of itself (for a Build applied by itself): its buildpacks, lifecycle and run image. */
export async function describeBuilderImage(ref: string, store: StoreOptions): Promise<{ buildpacks: BuildpackRef[]; lifecycle: string; runImage: string; stackId?: string }> {
  const labels = (await openRequired(ref, store)).image.config.config?.Labels ?? {};
  const md = JSON.parse(labels['io.buildpacks.builder.metadata'] ?? 'null') as { buildpacks?: BuildpackRef[]; lifecycle?: { version?: string }; stack?: { runImage?: { image?: string } }; images?: { image: string }[] } | null;
  const runImage = md?.images?.[0]?.image ?? md?.stack?.runImage?.image;
  if (!md || !runImage) throw new StrataError(`${ref}: not a builder (no io.buildpacks.builder.metadata label naming a run image)`);
  return { buildpacks: (md.buildpacks ?? []).map((b) => ({ id: b.id, version: b.version })), lifecycle: md.lifecycle?.version ?? labels['io.buildpacks.lifecycle.version'] ?? '', runImage, ...(labels['io.buildpacks.stack.id'] ? { stackId: labels['io.buildpacks.stack.id'] } : {}) };
}

/** Numeric-aware version order (1.10.0 after 1.9.0); pre-releases sort before their release. */
export function compareVersions(a: string, b: string): number {
  const parse = (v: string) => {
    const [core, pre] = v.replace(/^v/, '').split('-', 2) as [string, string | undefined];
    return { nums: core.split('.').map((x) => (/^\d+$/.test(x) ? Number(x) : NaN)), pre };
  };
  const x = parse(a);
  const y = parse(b);
  for (let i = 0; i < Math.max(x.nums.length, y.nums.length); i++) {
    const p = x.nums[i] ?? 0;
    const q = y.nums[i] ?? 0;
    if (Number.isNaN(p) || Number.isNaN(q)) return a < b ? -1 : a > b ? 1 : 0;
    if (p !== q) return p - q;
  }
  if (x.pre === y.pre) return 0;
  if (x.pre === undefined) return 1;
  if (y.pre === undefined) return -1;
  return x.pre < y.pre ? -1 : 1;
}

/** The buildpack resources a builder's order can name: by kind and name, resolved. */
export type BuildpackResources = Map<string, { kind: 'Buildpack' | 'ClusterBuildpack'; name: string; status: BuildpackStatus }>;

/**
 * The builder's order with every entry pinned, as kpack resolves it: an entry naming a Buildpack or ClusterBuildpack
 * takes its id (or its root buildpack) from there; an id alone is looked for in the namespace's Buildpacks, then the
 * ClusterBuildpacks, then the store; a missing version takes the newest offered; an image entry becomes its
 * buildpackage's entry buildpack. Returns the order and every image the builder needs buildpacks from.
 */
export async function pinOrder(spec: BuilderSpec, store: StoreStatus | undefined, resources: BuildpackResources, namespace: string, where: string, storeOptions: StoreOptions): Promise<{ order: { group: OrderElement[] }[]; images: string[] }> {
  const images = new Set<string>();
  const order = [];
  const storeOffers = (store?.sources ?? []).map((s) => ({ image: s.digest, buildpacks: s.buildpacks }));
  const ofKind = (kind: 'Buildpack' | 'ClusterBuildpack') => [...resources.values()].filter((r) => r.kind === kind && (kind === 'ClusterBuildpack' || r.name.startsWith(`${namespace}/`)));
  const resourceOffers = (kind: 'Buildpack' | 'ClusterBuildpack') => ofKind(kind).map((r) => ({ image: r.status.image!, buildpacks: r.status.buildpacks ?? [] }));
  for (const g of spec.order) {
    const group: OrderElement[] = [];
    for (const e of g.group) {
      let id = e.id;
      let version = e.version;
      let offers: { image: string; buildpacks: BuildpackRef[] }[];
      if (e.kind && e.name) {
        const key = e.kind === 'Buildpack' ? `${namespace}/${e.name}` : e.name;
        const r = [...resources.values()].find((x) => x.kind === e.kind && x.name === key);
        if (!r?.status.image) throw new StrataError(`${where}: spec.order names ${e.kind} ${e.name}, which is not ready`);
        offers = [{ image: r.status.image, buildpacks: r.status.buildpacks ?? [] }];
        if (!id) {
          if (!r.status.root) throw new StrataError(`${where}: ${e.kind} ${e.name} holds more than one root buildpack; name one with id`);
          id = r.status.root.id;
          version ??= r.status.root.version;
        }
      } else if (e.image) {
        const ref = await digestRef(e.image, storeOptions);
        const pkg = await buildpacksOf(ref, storeOptions);
        if (!pkg.entry && !id) throw new StrataError(`${where}: spec.order image ${e.image} names no entry buildpack; give its id`);
        id ??= pkg.entry!.id;
        version ??= pkg.buildpacks.find((b) => b.id === id)?.version;
        offers = [{ image: ref, buildpacks: pkg.buildpacks }];
      } else {
        // kpack's search order for an id alone: the namespace's Buildpacks, the ClusterBuildpacks, the store.
        offers = [resourceOffers('Buildpack'), resourceOffers('ClusterBuildpack'), storeOffers].find((list) => list.some((o) => o.buildpacks.some((b) => b.id === id))) ?? [];
      }
      const versions = offers.flatMap((o) => o.buildpacks.filter((b) => b.id === id).map((b) => b.version));
      if (version && !versions.includes(version)) throw new StrataError(`${where}: spec.order names ${id}@${version}, which is not offered${versions.length ? ` (there is ${[...new Set(versions)].join(', ')})` : ''}`);
      if (!versions.length) throw new StrataError(`${where}: spec.order names ${id}, which no Buildpack, ClusterBuildpack or store offers`);
      const chosen = version ?? [...versions].sort(compareVersions).pop()!;
      const from = offers.find((o) => o.buildpacks.some((b) => b.id === id && b.version === chosen))!;
      images.add(from.image);
      group.push({ id: id!, version: chosen, optional: e.optional ?? false });
    }
    order.push({ group });
  }
  // The store's buildpackages all go in, as kpack puts the whole store into its builders.
  for (const o of storeOffers) images.add(o.image);
  return { order, images: [...images] };
}

/** Everything a builder image is made from; while it stays the same, the builder is not made again. */
export function builderFingerprint(input: { spec: BuilderSpec; stackId: string; buildImage: string; runImage: string; images: string[]; lifecycle: string }): string {
  return createHash('sha256').update(canonical({ ...input, images: [...input.images].sort(), strata: VERSION })).digest('hex');
}

export interface BuilderParts {
  stack: { spec: StackSpec; status: StackStatus };
  store?: StoreStatus;
  resources: BuildpackResources;
  /** A ClusterLifecycle's image; absent, strata's own lifecycle. */
  lifecycle?: LifecycleStatus;
}

/**
 * Makes the builder image true: when its fingerprint moved (or it has none yet), a new builder is created from the
 * stack's build image (by digest), the buildpackages its order needs (the whole store among them), the pinned order
 * and the lifecycle, and published to spec.tag.
 */
export async function ensureBuilder(builder: ResourceOf<'Builder' | 'ClusterBuilder'>, inputs: BuilderParts, before: BuilderStatus | undefined, storeOptions: StoreOptions, log: (line: string) => void): Promise<BuilderStatus> {
  const where = describe(builder.meta);
  const spec = builder.spec;
  const { stack } = inputs;
  const { order, images } = await pinOrder(spec, inputs.store, inputs.resources, builder.meta.namespace, where, storeOptions);
  const lifecycle = inputs.lifecycle?.image ?? `strata ${VERSION}`;
  const fingerprint = builderFingerprint({ spec, stackId: stack.spec.id, buildImage: stack.status.buildImage!, runImage: stack.status.runImageTag!, images, lifecycle });
  if (before?.fingerprint === fingerprint && before.image) return { ...before, ready: true, runImage: stack.status.runImage!, stackId: stack.spec.id };
  const config: BuilderConfig = {
    buildpacks: images.map((image) => ({ image })),
    order,
    // kpack's builders carry no image extensions.
    extensions: [],
    orderExtensions: [],
    system: { pre: [], post: [] },
    buildImage: stack.status.buildImage!,
    buildEnv: [],
    runImages: [{ image: stack.status.runImageTag!, mirrors: [] }],
    stack: { id: stack.spec.id },
    targets: [],
    warnings: [],
    file: where,
  };
  log(`${where}: making builder ${spec.tag} (${before?.image ? 'its inputs changed' : 'first time'})`);
  try {
    const r = await createBuilder(config, async () => outputFor(spec.tag, true, storeOptions), storeOptions, { labels: spec.additionalLabels, ...(inputs.lifecycle?.image ? { lifecycleImage: inputs.lifecycle.image } : {}) });
    const image = `${Reference.parse(spec.tag).name}@${r.digest}`;
    log(`${where}: builder ${image} (${r.metadata.buildpacks.map((b) => `${b.id}@${b.version}`).join(', ')})`);
    const version = inputs.lifecycle ? `${r.metadata.lifecycle.version} (${inputs.lifecycle.image})` : r.metadata.lifecycle.version;
    return { ready: true, image, buildpacks: r.metadata.buildpacks.map((b) => ({ id: b.id, version: b.version })), lifecycle: version, fingerprint, runImage: stack.status.runImage!, stackId: stack.spec.id, order };
  } catch (err) {
    throw new StrataError(`cannot make builder ${spec.tag}: ${errorMessage(err)}`, 1, { cause: err });
  }
}
