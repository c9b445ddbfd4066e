import { join } from 'node:path';
import { copyImage } from '../oci/copy.js';
import type { Digest } from '../oci/digest.js';
import { StrataError } from '../oci/errors.js';
import { strataHome } from '../oci/images.js';
import { parseConfig } from '../oci/config.js';
import type { Descriptor, ParsedManifest } from '../oci/manifest.js';
import { indexOf, ManifestLists, type ListEntry, type ManifestList } from '../oci/manifestlist.js';
import { openTarget, parseTarget, type ImageLocation, type StoreOptions } from '../oci/target.js';
import type { ImageStore } from '../oci/store.js';

/**
 * pack's `manifest` verbs underneath the CLI: index entries read from images in registries and OCI layouts, lists
 * kept under strata's home until pushed, and the push that brings every image into the index's repository before the
 * index itself goes up (so a tag never names an index whose images are missing).
 */

export function localLists(env: NodeJS.ProcessEnv = process.env): ManifestLists {
  return new ManifestLists(join(strataHome(env), 'manifests'));
}

/** The name an image is recorded under with its digest: where a push reads it from later. */
function sourceName(loc: ImageLocation, digest: Digest): string {
  if (loc.kind === 'layout') return `oci:${loc.dir}@${digest}`;
  if (loc.kind === 'registry') return `${loc.ref.name}@${digest}`;
  throw new StrataError(`${loc.text}: an engine image cannot be put in an index; push it to a registry first`);
}

/** One entry per image: an image's own, or each of an index's (an index added is taken apart into its images). */
export async function entriesFrom(name: string, options: StoreOptions): Promise<ListEntry[]> {
  const loc = parseTarget(name);
  const t = await openTarget(loc, options);
  const top = await t.store.getManifest(t.id);
  if (top.kind === 'index') {
    return Promise.all(top.index.manifests.map(async (d) => (d.platform ? { source: sourceName(loc, d.digest), descriptor: entryDescriptor(d) } : entryOf(t.store, await t.store.getManifest(d.digest), loc))));
  }
  return [await entryOf(t.store, top, loc)];
}

function entryDescriptor(d: Descriptor): Descriptor {
  return { mediaType: d.mediaType, digest: d.digest, size: d.size, ...(d.platform ? { platform: d.platform } : {}), ...(d.annotations ? { annotations: d.annotations } : {}) };
}

/** An image manifest's entry, its platform read from its config (os, architecture, variant, os.version). */
async function entryOf(store: ImageStore, m: ParsedManifest, loc: ImageLocation): Promise<ListEntry> {
  if (m.kind !== 'manifest') throw new StrataError(`${loc.text}: a nested index cannot be put in an index`);
  const config = parseConfig(await store.getBlobBytes(m.manifest.config), `${loc.text} config`);
  const c = config as unknown as { os?: string; architecture?: string; variant?: string; 'os.version'?: string };
  if (!c.os || !c.architecture) throw new StrataError(`${loc.text}: its config names no os and architecture; set them with \`strata manifest annotate\` after adding it`);
  const platform = { os: c.os, architecture: c.architecture, ...(c.variant ? { variant: c.variant } : {}), ...(c['os.version'] ? { 'os.version': c['os.version'] } : {}) };
  return { source: sourceName(loc, m.digest), descriptor: { mediaType: m.mediaType, digest: m.digest, size: m.bytes.length, platform } };
}

/** A list as it is in its registry (or layout), its entries sourced from there: for `add` to a list not kept here. */
export async function remoteList(name: string, options: StoreOptions): Promise<ManifestList | undefined> {
  const loc = parseTarget(name);
  let top: ParsedManifest;
  try {
    const t = await openTarget(loc, options);
    top = await t.store.getManifest(t.id);
  } catch {
    return undefined;
  }
  if (top.kind !== 'index') throw new StrataError(`${name} is an image, not an index; make one with \`strata manifest create ${name} <image>…\``);
  const format = /docker/.test(top.mediaType) ? 'docker' : 'oci';
  return { name, format, entries: top.index.manifests.map((d) => ({ source: sourceName(loc, d.digest), descriptor: entryDescriptor(d) })), ...(top.index.annotations ? { annotations: top.index.annotations } : {}) };
}

export interface PushResult {
  digest: Digest;
  /** Images copied into the index's repository (the others were there already). */
  copied: number;
}

/** Pushes a list: each image into the list's repository first (blobs mounted or skipped when there), then the index. */
export async function pushList(list: ManifestList, options: StoreOptions): Promise<PushResult> {
  if (!list.entries.length) throw new StrataError(`manifest list ${list.name} is empty; add an image with \`strata manifest add ${list.name} <image>\``);
  const dst = await openTarget(parseTarget(list.name), { ...options, create: true });
  let copied = 0;
  for (const e of list.entries) {
    const there = await dst.store.getManifest(e.descriptor.digest).then(() => true, () => false);
    if (there) continue;
    const src = await openTarget(parseTarget(e.source), options);
    await copyImage(src.store, e.descriptor.digest, dst.store, undefined);
    copied++;
  }
  const { bytes, mediaType } = indexOf(list);
  const digest = await dst.store.putManifest(bytes, mediaType, dst.tag ?? 'latest');
  return { digest, copied };
}
