import { createHash } from 'node:crypto';
import { NotFoundError, StrataError, errorMessage } from '../oci/errors.js';
import { RegistryRepository } from '../oci/registry/client.js';
import { resolveImage } from '../oci/image.js';
import { openTarget, parseTarget, type StoreOptions } from '../oci/target.js';
import { createBuilder } from '../platform/builder.js';
import { LABEL_BUILDPACK_LAYERS, LABEL_BUILDPACKAGE, type BuildpackLayers } from '../platform/buildpackage.js';
import { imageTarget } from '../platform/localstore.js';
import type { BuilderConfig } from '../spec/buildertoml.js';
import type { OrderElement } from '../spec/order.js';
import { VERSION } from '../version.js';
import { canonical } from './canonical.js';
import type { BuildpackRef } from './reasons.js';
import { describe, type BuilderSpec, type ResourceOf, type StackSpec, type StoreSpec } from './resources.js';
import type { BuilderStatus, StackStatus, StoreStatus } from './store.js';

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
  return { ready: true, buildImage, runImage, runImageTag: spec.runImage };
}

/** The buildpacks one buildpackage image holds, from its `io.buildpacks.buildpack.layers` label. */
async function buildpacksOf(ref: string, store: StoreOptions): Promise<{ buildpacks: BuildpackRef[]; entry?: BuildpackRef }> {
  const t = await openTarget(parseTarget(ref), store);
  const image = await resolveImage(t.store, t.id);
  const labels = image.config.config?.Labels ?? {};
  const layers = JSON.parse(labels[LABEL_BUILDPACK_LAYERS] ?? '{}') as BuildpackLayers;
  const buildpacks = Object.entries(layers).flatMap(([id, versions]) => Object.keys(versions).map((version) => ({ id, version })));
  if (!buildpacks.length) throw new StrataError(`${ref}: not a buildpackage (no ${LABEL_BUILDPACK_LAYERS} label)`);
  const md = JSON.parse(labels[LABEL_BUILDPACKAGE] ?? '{}') as { id?: string; version?: string };
  return { buildpacks, ...(md.id && md.version ? { entry: { id: md.id, version: md.version } } : {}) };
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

/**
 * The builder's order with every entry pinned: an id without a version takes the newest version the store (or the
 * order's own images) offers, as kpack does; an image entry becomes its buildpackage's entry buildpack.
 */
export async function pinOrder(spec: BuilderSpec, offered: BuildpackRef[], where: string, store: StoreOptions): Promise<{ order: { group: OrderElement[] }[]; images: string[] }> {
  const images: string[] = [];
  const order = [];
  for (const g of spec.order) {
    const group: OrderElement[] = [];
    for (const e of g.group) {
      let id = e.id;
      let version = e.version;
      if (e.image) {
        const ref = await digestRef(e.image, store);
        images.push(ref);
        const pkg = await buildpacksOf(ref, store);
        if (!pkg.entry && !id) throw new StrataError(`${where}: spec.order image ${e.image} names no entry buildpack; give its id`);
        id ??= pkg.entry!.id;
        version ??= pkg.buildpacks.find((b) => b.id === id)?.version;
        offered = [...offered, ...pkg.buildpacks];
      }
      const versions = offered.filter((b) => b.id === id).map((b) => b.version);
      if (version && !versions.includes(version)) throw new StrataError(`${where}: spec.order names ${id}@${version}, which the store does not have${versions.length ? ` (it has ${versions.join(', ')})` : ''}`);
      if (!versions.length) throw new StrataError(`${where}: spec.order names ${id}, which is in no buildpackage of the store`);
      group.push({ id: id!, version: version ?? versions.sort(compareVersions).pop()!, optional: e.optional ?? false });
    }
    order.push({ group });
  }
  return { order, images };
}

/** Everything a builder image is made from; while it stays the same, the builder is not made again. */
export function builderFingerprint(spec: BuilderSpec, stack: { id: string; status: StackStatus }, store: StoreStatus, orderImages: string[]): string {
  const input = { spec, stackId: stack.id, buildImage: stack.status.buildImage, runImage: stack.status.runImageTag, sources: (store.sources ?? []).map((s) => s.digest), orderImages, lifecycle: VERSION };
  return createHash('sha256').update(canonical(input)).digest('hex');
}

/**
 * Makes the builder image true: when its fingerprint moved (or it has none yet), a new builder is created from the
 * stack's build image (by digest), every store buildpackage and the pinned order, and published to spec.tag.
 */
export async function ensureBuilder(
  builder: ResourceOf<'Builder' | 'ClusterBuilder'>,
  stack: { spec: StackSpec; status: StackStatus },
  storeStatus: StoreStatus,
  before: BuilderStatus | undefined,
  storeOptions: StoreOptions,
  log: (line: string) => void,
): Promise<BuilderStatus> {
  const where = describe(builder.meta);
  const spec = builder.spec;
  const offered = (storeStatus.sources ?? []).flatMap((s) => s.buildpacks);
  const { order, images } = await pinOrder(spec, offered, where, storeOptions);
  const fingerprint = builderFingerprint(spec, { id: stack.spec.id, status: stack.status }, storeStatus, images);
  if (before?.fingerprint === fingerprint && before.image) return { ...before, ready: true };
  const config: BuilderConfig = {
    buildpacks: [...(storeStatus.sources ?? []).map((s) => ({ image: s.digest })), ...images.map((image) => ({ image }))],
    order,
    system: { pre: [], post: [] },
    buildImage: stack.status.buildImage!,
    buildEnv: [],
    runImages: [{ image: stack.status.runImageTag!, mirrors: [] }],
    stack: { id: stack.spec.id },
    warnings: [],
    file: where,
  };
  log(`${where}: making builder ${spec.tag} (${before?.image ? 'its inputs changed' : 'first time'})`);
  let tag = '';
  try {
    const r = await createBuilder(
      config,
      async () => {
        const out = await imageTarget(spec.tag, true, storeOptions);
        tag = out.tag;
        return out;
      },
      storeOptions,
    );
    const name = parseTarget(spec.tag);
    const image = `${name.kind === 'registry' ? name.ref.name : spec.tag}@${r.digest}`;
    log(`${where}: builder ${image} (${r.metadata.buildpacks.map((b) => `${b.id}@${b.version}`).join(', ')})`);
    return { ready: true, image, buildpacks: r.metadata.buildpacks.map((b) => ({ id: b.id, version: b.version })), lifecycle: r.metadata.lifecycle.version, fingerprint };
  } catch (err) {
    throw new StrataError(`${where}: cannot make builder ${spec.tag || tag}: ${errorMessage(err)}`, 1, { cause: err });
  }
}
