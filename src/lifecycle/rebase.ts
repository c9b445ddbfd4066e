import { envValue, type HistoryEntry, type ImageConfig } from '../oci/config.js';
import { copyBlob, sameRepository } from '../oci/copy.js';
import { mapLimit } from '../oci/concurrency.js';
import type { Digest } from '../oci/digest.js';
import type { ImageStore } from '../oci/store.js';
import { StrataError } from '../oci/errors.js';
import { resolveImage, type ResolvedImage } from '../oci/image.js';
import { encodeJson, type Descriptor, type ParsedManifest, type PlatformWanted } from '../oci/manifest.js';
import { writeImage } from '../oci/mutate.js';
import { Reference } from '../oci/reference.js';
import { ApiVersion } from '../spec/api.js';
import { Exit } from '../spec/exit.js';
import type { ExportTarget } from './export.js';
import { LABEL, parseLifecycleMetadata, type LifecycleMetadata } from './labels.js';

export interface RebaseInputs {
  app: ResolvedImage;
  /** How the app image was named, for messages. */
  appName: string;
  newRun: ResolvedImage;
  /** The new run image as named, and a digest reference to record. */
  newRunName: string;
  newRunReference: string;
  outputs: ExportTarget[];
  force: boolean;
}

export interface RebaseResult {
  digest: Digest;
  manifestSize: number;
  mediaType: string;
  tags: string[];
  metadata: LifecycleMetadata;
}

const BASE_LABEL = /^io\.buildpacks\.(base|stack)\./;

function fail(msg: string): never {
  throw new StrataError(msg, Exit.RebaseError);
}

/** `registry/repository` of a name, so tags and digests do not matter when comparing run images (lifecycle#1642). */
function repositoryOf(name: string): string {
  try {
    return Reference.parse(name).name;
  } catch {
    return name;
  }
}

/** Platform 0.12+ target check: os and arch equal; variant and distro only where both images say. */
function checkTargets(app: ImageConfig, run: ImageConfig, appName: string, runName: string): string | undefined {
  if (app.os !== run.os || app.architecture !== run.architecture) return `${runName} is ${run.os}/${run.architecture}, but ${appName} is ${app.os}/${app.architecture}`;
  if (app.variant && run.variant && app.variant !== run.variant) return `${runName} has variant ${run.variant}, ${appName} has ${app.variant}`;
  const al = app.config?.Labels ?? {};
  const rl = run.config?.Labels ?? {};
  for (const k of [LABEL.distroName, LABEL.distroVersion]) {
    if (al[k] && rl[k] && al[k] !== rl[k]) return `${runName} has ${k}=${rl[k]}, ${appName} has ${al[k]}`;
  }
  return undefined;
}

/** Splits history at the end of the first `n` layers: what belongs to the base, and what came after. */
function splitHistory(history: HistoryEntry[], n: number): HistoryEntry[] {
  let layers = 0;
  for (let i = 0; i < history.length; i++) {
    if (layers === n) return history.slice(i);
    if (!history[i]!.empty_layer) layers++;
  }
  return [];
}

/**
 * Swaps the run-image layers under an app image for a new run image's (spec §11): only manifests and configs are
 * read, and only a config and a manifest are written — the app's own layers stay where they are, and the new base's
 * layers are mounted or already present.
 */
export async function rebase(inputs: RebaseInputs): Promise<RebaseResult> {
  const { app, newRun } = inputs;
  const labels = app.config.config?.Labels ?? {};
  const md = parseLifecycleMetadata(labels[LABEL.lifecycle]);
  if (!md?.runImage?.topLayer) fail(`${inputs.appName} has no ${LABEL.lifecycle} label with runImage.topLayer: it was not built by a CNB lifecycle`);
  const platformApi = envValue(app.config, 'CNB_PLATFORM_API');
  const modern = platformApi !== undefined && ApiVersion.parse(platformApi, `${inputs.appName} CNB_PLATFORM_API`).atLeast('0.12');
  const runLabels = newRun.config.config?.Labels ?? {};
  if (modern) {
    if (labels[LABEL.rebasable] === 'false' && !inputs.force) fail(`${inputs.appName} is labelled ${LABEL.rebasable}=false; use -force to rebase it anyway`);
    const mismatch = checkTargets(app.config, newRun.config, inputs.appName, inputs.newRunName);
    if (mismatch && !inputs.force) fail(`${mismatch}; use -force to rebase anyway`);
    const known = [md.runImage.image, ...(md.runImage.mirrors ?? [])].filter((x): x is string => Boolean(x)).map(repositoryOf);
    if (!inputs.force && known.length && !known.includes(repositoryOf(inputs.newRunName))) {
      fail(`${inputs.newRunName} is not the run image ${inputs.appName} was built on (${known.join(', ')}) nor one of its mirrors; use --force (the rebaser's -force) to switch run images`);
    }
  } else if (!inputs.force) {
    const a = labels[LABEL.stackId];
    const r = runLabels[LABEL.stackId];
    if (a && r && a !== r) fail(`${inputs.newRunName} has stack ${r}, ${inputs.appName} has ${a}; use -force to rebase anyway`);
  }

  const ids = app.config.rootfs.diff_ids;
  const top = ids.indexOf(md.runImage.topLayer as Digest);
  if (top < 0) fail(`${inputs.appName}: runImage.topLayer ${md.runImage.topLayer} is not one of its layers`);
  const upperIds = ids.slice(top + 1);
  const upperLayers = app.manifest.manifest.layers.slice(top + 1);
  const baseIds = newRun.config.rootfs.diff_ids;

  const newLabels: Record<string, string> = Object.fromEntries(Object.entries(labels).filter(([k]) => !BASE_LABEL.test(k)));
  for (const [k, v] of Object.entries(runLabels)) if (BASE_LABEL.test(k)) newLabels[k] = v;
  const runImage = {
    ...md.runImage,
    topLayer: baseIds[baseIds.length - 1] ?? '',
    reference: inputs.newRunReference,
    ...(inputs.force && modern ? { image: inputs.newRunName, mirrors: [] } : {}),
  };
  const metadata: LifecycleMetadata = { ...md, runImage, ...(md.stack ? { stack: { runImage: { image: runImage.image, mirrors: runImage.mirrors } } } : {}) };
  newLabels[LABEL.lifecycle] = JSON.stringify(metadata);

  const history = app.config.history && newRun.config.history ? [...newRun.config.history, ...splitHistory(app.config.history, top + 1)] : undefined;
  const config: ImageConfig = {
    ...app.config,
    ...(inputs.force ? { os: newRun.config.os, architecture: newRun.config.architecture, ...(newRun.config.variant ? { variant: newRun.config.variant } : {}) } : {}),
    config: { ...app.config.config, Labels: newLabels },
    rootfs: { type: 'layers', diff_ids: [...baseIds, ...upperIds] },
    ...(history ? { history } : {}),
  };
  const manifest = { ...app.manifest.manifest, layers: [...newRun.manifest.manifest.layers, ...upperLayers] };

  const tags: string[] = [];
  let digest = '' as Digest;
  let manifestSize = 0;
  let mediaType = '';
  const written: ImageStore[] = [];
  for (const out of inputs.outputs) {
    // Written back into the app's own repository, the blobs its manifest names are there already (a registry keeps
    // what a manifest names): the app's layers, and the run layers a patched run image shares with the old one.
    const there = sameRepository(app.store, out.store) ? new Set(app.manifest.manifest.layers.map((d) => d.digest)) : new Set<string>();
    // Each other blob is a round trip or two (is it there? mount it): all at once, a few at a time.
    await mapLimit(newRun.manifest.manifest.layers.filter((d) => !there.has(d.digest)), 4, (d) => copyBlob(newRun.store, out.store, d));
    if (!sameRepository(app.store, out.store)) await mapLimit(upperLayers, 4, (d) => copyBlob(app.store, out.store, d));
    // The config is this rebase's own: no repository has it until this rebase writes it (or ran before).
    const w = await writeImage(out.store, config, manifest, out.tag, !written.some((s) => sameRepository(s, out.store)));
    written.push(out.store);
    digest = w.digest;
    manifestSize = w.manifestBytes.length;
    mediaType = w.mediaType;
    tags.push(out.name);
  }
  return { digest, manifestSize, mediaType, tags, metadata };
}

export interface IndexRebaseInputs {
  /** The app's index, and the store it and its images are in. */
  index: Extract<ParsedManifest, { kind: 'index' }>;
  store: ImageStore;
  appName: string;
  /** The new run image for one platform (a run image index is read for the matching one). */
  runFor: (platform: PlatformWanted) => Promise<{ image: ResolvedImage; reference: string }>;
  newRunName: string;
  outputs: ExportTarget[];
  force: boolean;
}

export interface IndexRebaseResult {
  digest: Digest;
  manifestSize: number;
  tags: string[];
  /** Each platform's image as rebased, and the run image it now stands on. */
  images: { platform: string; digest: Digest; runReference: string }[];
}

/**
 * Rebases every image of an app's index onto the run image of its own platform, then writes the index again with
 * only those entries changed: each image is a rebase as above (a config and a manifest, stored by digest), and the
 * tags move last, once every image is in place. An entry for a platform the run image lacks fails the whole rebase.
 */
export async function rebaseIndex(inputs: IndexRebaseInputs): Promise<IndexRebaseResult> {
  const images: IndexRebaseResult['images'] = [];
  const manifests: Descriptor[] = [];
  const byDigest = inputs.outputs.map((o) => ({ ...o, tag: undefined }));
  for (const d of inputs.index.index.manifests) {
    if (!d.platform) fail(`${inputs.appName}: index entry ${d.digest} names no platform; rebase its images one by one`);
    const platform = `${d.platform.os}/${d.platform.architecture}${d.platform.variant ? `/${d.platform.variant}` : ''}`;
    const app = await resolveImage(inputs.store, d.digest);
    const run = await inputs.runFor({ os: d.platform.os, architecture: d.platform.architecture, ...(d.platform.variant ? { variant: d.platform.variant } : {}) });
    const r = await rebase({ app, appName: `${inputs.appName} (${platform})`, newRun: run.image, newRunName: inputs.newRunName, newRunReference: run.reference, outputs: byDigest, force: inputs.force });
    manifests.push({ ...d, mediaType: r.mediaType, digest: r.digest, size: r.manifestSize });
    images.push({ platform, digest: r.digest, runReference: run.reference });
  }
  const bytes = encodeJson({ ...inputs.index.index, manifests });
  const tags: string[] = [];
  let digest = '' as Digest;
  for (const out of inputs.outputs) {
    digest = await out.store.putManifest(bytes, inputs.index.mediaType, out.tag);
    tags.push(out.name);
  }
  return { digest, manifestSize: bytes.length, tags, images };
}
