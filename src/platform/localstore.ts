import { join } from 'node:path';
import { StrataError } from '../oci/errors.js';
import { resolveImage, type ResolvedImage } from '../oci/image.js';
import { OciLayout } from '../oci/layout.js';
import { strataHome } from './home.js';
import { openImage } from '../lifecycle/analyze.js';
import { openTarget, parseTarget, type StoreOptions } from '../oci/target.js';
import type { ImageStore } from '../oci/store.js';
import type { PullPolicy } from './config.js';

export { strataHome } from './home.js';

/** The local image store: one OCI layout whose tags are full image names (`docker.io/library/app:latest`). */
export async function localImages(env: NodeJS.ProcessEnv = process.env): Promise<OciLayout> {
  return OciLayout.open(join(strataHome(env), 'images'), { create: true });
}

/**
 * Where an image name points for writing or reading: `oci:<dir>` layouts as given; with `publish`, the registry;
 * otherwise the local store, under the normalised name.
 */
export async function imageTarget(name: string, publish: boolean, options: StoreOptions = {}): Promise<{ store: ImageStore; id: string | undefined; tag: string; where: string }> {
  const target = parseTarget(name);
  if (target.kind !== 'registry' || publish) {
    const t = await openTarget(target, { ...options, create: true });
    return { store: t.store, id: t.id, tag: t.tag ?? 'latest', where: target.kind === 'registry' ? target.ref.registry : name };
  }
  const tag = (target.ref.tag ? target.ref : target.ref.withTag('latest')).toString();
  return { store: await localImages(), id: tag, tag, where: 'the local store' };
}

/** An image found by name, and where: the local store, or its registry. */
export interface FoundImage {
  name: string;
  image: ResolvedImage;
  /** A digest reference for labels and analyzed.toml. */
  reference: string;
  local: boolean;
}

/**
 * Looks an image up the way strata's commands do: the local store first (images built without --publish, bases made by
 * `strata base create`), then — unless `remote` is false — its registry. Undefined when neither has it.
 */
export async function findImage(name: string, store: StoreOptions = {}, remote = true): Promise<FoundImage | undefined> {
  const local = await imageTarget(name, false, store)
    .then((t) => resolveImage(t.store, t.id))
    .catch(() => undefined);
  if (local) return { name, image: local, reference: `${name.replace(/@sha256:.*$/, '')}@${local.manifest.digest}`, local: true };
  if (!remote) return undefined;
  const o = await openImage(name, store);
  return o ? { name, image: o.image, reference: o.reference, local: false } : undefined;
}

/** findImage, or a one-line error naming the image. */
export async function requireImage(name: string, store: StoreOptions = {}): Promise<FoundImage> {
  const found = await findImage(name, store);
  if (!found) throw new StrataError(`image ${name} not found in the local store or its registry`);
  return found;
}

/** Pull policy: `never` reads only the local store, `always` prefers the registry, `if-not-present` the local store. */
export async function openByPolicy(name: string, store: StoreOptions, policy: PullPolicy): Promise<FoundImage | undefined> {
  if (policy === 'never') return findImage(name, store, false);
  if (policy === 'always' && !name.startsWith('oci:')) {
    const remote = await openImage(name, store).catch(() => undefined);
    if (remote) return { ...remote, local: false };
  }
  return findImage(name, store).catch(() => undefined);
}

/** Where an image was looked for under a pull policy, for the line that says it was not found. */
export function whereLooked(policy: PullPolicy): string {
  return policy === 'never' ? 'in the local store (--pull-policy never)' : 'in the local store or its registry';
}
