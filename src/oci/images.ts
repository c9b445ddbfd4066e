import { join } from 'node:path';
import { StrataError, NotFoundError, errorMessage } from './errors.js';
import { resolveImage, type ResolvedImage } from './image.js';
import type { PlatformWanted } from './manifest.js';
import { OciLayout } from './layout.js';
import { Reference } from './reference.js';
import { RegistryRepository } from './registry/client.js';
import type { ImageStore } from './store.js';
import { needHome } from './userhome.js';
import { layoutTarget, mirrored, openTarget, parseTarget, type StoreOptions } from './target.js';

/**
 * Images by name: the one place a name becomes an image to read (the local store, a registry through its mirrors, an
 * OCI layout, under a pull policy), a run image is chosen from its mirrors, and names become outputs to write. The
 * lifecycle's phases, `strata build`, the CLI and the fleet all come here; target.ts below it parses names and opens
 * the store behind one.
 */

export type PullPolicy = 'always' | 'if-not-present' | 'never';

/** An image opened by name. */
export interface OpenedImage {
  name: string;
  image: ResolvedImage;
  /** What analyzed.toml and the labels record: a digest reference (or the layout path with its digest). */
  reference: string;
  /** Found in the local store (an image built without --publish, a base made here). */
  local: boolean;
}

/** Reads an image by name, or says it is not there (undefined); how it looks depends on who made it. */
export type ImageReader = (name: string) => Promise<OpenedImage | undefined>;

/** What opening images may tell along the way. */
export interface ImageLog {
  debug(line: string): void;
  warn(line: string): void;
}

/** `$STRATA_HOME`, else the user's data dir: where strata keeps its local image store, caches and the fleet. */
export function strataHome(env: NodeJS.ProcessEnv = process.env): string {
  return env.STRATA_HOME || join(env.XDG_DATA_HOME || join(needHome('STRATA_HOME', env), '.local', 'share'), 'strata');
}

/** The local image store: one OCI layout whose tags are full image names (`docker.io/library/app:latest`). */
export async function localImages(env: NodeJS.ProcessEnv = process.env): Promise<OciLayout> {
  return OciLayout.open(join(strataHome(env), 'images'), { create: true });
}

/** Opens an image in its registry (through a mirror when one is set) or layout; undefined when it does not exist. */
export async function openImage(name: string, options: StoreOptions, log?: Pick<ImageLog, 'debug'>, platform?: PlatformWanted): Promise<OpenedImage | undefined> {
  // Layout mode records images as `<layout path>@<digest>` (the reference lifecycle's form): such a name is that layout.
  const parsed = parseTarget(options.layoutDir && name.startsWith('/') ? `oci:${name}` : name);
  const viaMirror = parsed.kind === 'registry' && !options.layoutDir ? mirrored(parsed.ref, options.registryMirrors) : undefined;
  if (viaMirror && parsed.kind === 'registry') {
    // The same image under the mirror's name; the reference recorded stays the one asked for (same digest).
    const m = await openImage(viaMirror.toString(), { ...options, registryMirrors: {} }, log, platform).catch(() => undefined);
    if (m) {
      log?.debug(`${name}: read through the registry mirror ${viaMirror.registry}`);
      return { name, image: m.image, reference: `${parsed.ref.name}@${m.image.manifest.digest}`, local: false };
    }
    log?.debug(`${name}: not in the registry mirror ${viaMirror.registry}; reading ${parsed.ref.registry}`);
  }
  const target = options.layoutDir && parsed.kind === 'registry' ? layoutTarget(options.layoutDir, parsed.ref) : parsed;
  try {
    const t = await openTarget(target, options);
    const image = await resolveImage(t.store, t.id, platform);
    // A name layout mode mapped to a path is recorded as that path (no `oci:`), as the reference lifecycle records it.
    const reference =
      target.kind === 'registry' ? `${target.ref.name}@${image.manifest.digest}` : target.kind === 'layout' && target !== parsed ? `${target.dir}@${image.manifest.digest}` : `oci:${target.kind === 'layout' ? target.dir : name}@${image.manifest.digest}`;
    return { name, image, reference, local: false };
  } catch (err) {
    if (err instanceof NotFoundError) return undefined;
    log?.debug(`${name}: ${errorMessage(err)}`);
    throw err;
  }
}

/**
 * Looks an image up the way strata's commands do: the local store first, then — unless `remote` is false — its
 * registry (or layout). Undefined when neither has it.
 */
export async function findImage(name: string, options: StoreOptions = {}, remote = true, platform?: PlatformWanted): Promise<OpenedImage | undefined> {
  const local = await outputFor(name, false, options)
    .then((t) => resolveImage(t.store, t.id, platform))
    .catch(() => undefined);
  if (local) return { name, image: local, reference: `${name.replace(/@sha256:.*$/, '')}@${local.manifest.digest}`, local: true };
  if (!remote) return undefined;
  return openImage(name, options, undefined, platform);
}

/** openImage, or a one-line error naming the image: for images that must be there (a builder, a buildpackage). */
export async function openRequired(name: string, options: StoreOptions, log?: Pick<ImageLog, 'debug'>): Promise<OpenedImage> {
  const found = await openImage(name, options, log);
  if (!found) throw new NotFoundError(`${name}: not found`);
  return found;
}

/** findImage, or a one-line error naming the image. */
export async function requireImage(name: string, options: StoreOptions = {}, platform?: PlatformWanted): Promise<OpenedImage> {
  const found = await findImage(name, options, true, platform);
  if (!found) throw new StrataError(`image ${name} not found in the local store or its registry`);
  return found;
}

/** Pull policy: `never` reads only the local store, `always` prefers the registry, `if-not-present` the local store. */
export async function openByPolicy(name: string, options: StoreOptions, policy: PullPolicy, platform?: PlatformWanted): Promise<OpenedImage | undefined> {
  if (policy === 'never') return findImage(name, options, false, platform);
  if (policy === 'always' && !name.startsWith('oci:')) {
    const remote = await openImage(name, options, undefined, platform).catch(() => undefined);
    if (remote) return remote;
  }
  return findImage(name, options, true, platform).catch(() => undefined);
}

/** Where an image was looked for under a pull policy, for the line that says it was not found. */
export function whereLooked(policy: PullPolicy): string {
  return policy === 'never' ? 'in the local store (--pull-policy never)' : 'in the local store or its registry';
}

/** Readers for the three ways images are looked up. */
export const readers = {
  /** Registries (through mirrors) and layouts: what the lifecycle's phases read. */
  remote: (options: StoreOptions, log?: ImageLog, platform?: PlatformWanted): ImageReader => (name) => openImage(name, options, log, platform),
  /** The local store only: a local build's previous image. */
  local: (options: StoreOptions, platform?: PlatformWanted): ImageReader => (name) => findImage(name, options, false, platform),
  /** Under a pull policy: builders and run images of a platform build. */
  byPolicy: (options: StoreOptions, policy: PullPolicy, platform?: PlatformWanted): ImageReader => (name) => openByPolicy(name, options, policy, platform),
};

function registryOf(name: string): string | undefined {
  try {
    return name.startsWith('oci:') ? undefined : Reference.parse(name).registry;
  } catch {
    return undefined;
  }
}

/** One run.toml (or stack.toml) entry: an image and its mirrors. */
export interface RunImageEntry {
  image: string;
  mirrors: string[];
}

/**
 * Run image resolution (spec §6.1): of the first entry's image and mirrors, the first readable one on the output
 * image's registry, else the first readable one. Unreadable candidates are passed over with a warning.
 */
export async function resolveRunImage(images: RunImageEntry[], output: string, read: ImageReader, log: ImageLog): Promise<OpenedImage> {
  const entry = images[0];
  if (!entry) throw new StrataError('no run image: give one, or a run.toml with [[images]]');
  const candidates = [entry.image, ...entry.mirrors];
  const outRegistry = registryOf(output);
  const ordered = [...candidates.filter((c) => registryOf(c) === outRegistry), ...candidates.filter((c) => registryOf(c) !== outRegistry)];
  for (const c of ordered) {
    try {
      const opened = await read(c);
      if (opened) return opened;
    } catch (err) {
      log.warn(`run image ${c} is not readable: ${errorMessage(err)}`);
    }
  }
  throw new StrataError(`none of the run images can be read: ${candidates.join(', ')}; check the names, or copy one in with \`strata image copy\``);
}

/** The entry a run image name belongs to (tags and digests aside), for the mirrors recorded in the label. */
export function runImageEntry<E extends RunImageEntry>(images: E[], name: string): E | undefined {
  const repo = (n: string) => {
    try {
      return Reference.parse(n).name;
    } catch {
      return n;
    }
  };
  return images.find((i) => [i.image, ...i.mirrors].some((m) => repo(m) === repo(name))) ?? images[0];
}

/** Where a name is written. */
export interface ImageOutput {
  store: ImageStore;
  /** What a read of it names (tag or digest); the tag a write names. */
  id: string | undefined;
  tag: string;
  /** As the user named it. */
  name: string;
  /** For messages: the registry, the layout, or the local store. */
  where: string;
}

/**
 * Where an image name points for writing: `oci:<dir>` layouts as given; with `publish`, its registry; otherwise the
 * local store, under the normalised name.
 */
export async function outputFor(name: string, publish: boolean, options: StoreOptions = {}): Promise<ImageOutput> {
  const target = parseTarget(name);
  if (target.kind !== 'registry' || publish) {
    const t = await openTarget(target, { ...options, create: true });
    return { store: t.store, id: t.id, tag: t.tag ?? 'latest', name, where: target.kind === 'registry' ? target.ref.registry : name };
  }
  const tag = (target.ref.tag ? target.ref : target.ref.withTag('latest')).toString();
  return { store: await localImages(), id: tag, tag, name, where: 'the local store' };
}

/** Every name as an output (an image and its extra tags). A digest names no place to write: refused. */
export async function outputsFor(names: string[], publish: boolean, options: StoreOptions = {}): Promise<ImageOutput[]> {
  const out: ImageOutput[] = [];
  for (const name of names) {
    const t = parseTarget(name);
    if ((t.kind === 'registry' && t.ref.digest && !t.ref.tag) || (t.kind === 'layout' && t.digest)) throw new StrataError(`${name}: an output image needs a tag, not a digest`);
    out.push(await outputFor(name, publish, options));
  }
  return out;
}

/** Fails at once, naming the image, when a registry output takes no pushes: no build runs only to fail at export. */
export async function checkWriteAccess(outputs: ImageOutput[]): Promise<void> {
  for (const o of outputs) {
    if (!(o.store instanceof RegistryRepository)) continue;
    try {
      await o.store.checkPushAccess();
    } catch (err) {
      throw new StrataError(`no write access to ${o.name}: ${errorMessage(err)}`, 1, { cause: err });
    }
  }
}
