import { layerTime } from '../../oci/layer.js';
import { Reference } from '../../oci/reference.js';
import { openTarget, parseTarget, type StoreOptions } from '../../oci/target.js';
import { StrataError } from '../../oci/errors.js';
import { Exit } from '../../spec/exit.js';
import { DirCache, ImageCache, type Cache } from '../cache.js';
import type { FlagValues } from '../flags.js';
import type { Logger } from '../log.js';

/*
 * The readings of flags that name images, caches and times: only the phases that touch a registry, a layout or a
 * cache load this (and the registry client with it), not the detector and builder that every sandbox starts.
 */

export function storeOptions(v: FlagValues, env: NodeJS.ProcessEnv = process.env): StoreOptions {
  if (!v.bool('layout')) return { insecureRegistries: v.list('insecure-registry') };
  // Layout mode is experimental in the Platform API: allowed only when CNB_EXPERIMENTAL_MODE says so.
  const mode = env.CNB_EXPERIMENTAL_MODE || 'error';
  if (mode === 'error') throw new StrataError('-layout is experimental; set CNB_EXPERIMENTAL_MODE=warn (or quiet) to use it', Exit.InvalidArgs);
  const layoutDir = v.str('layout-dir');
  if (!layoutDir) throw new StrataError('-layout needs -layout-dir (or CNB_LAYOUT_DIR)', Exit.InvalidArgs);
  return { insecureRegistries: v.list('insecure-registry'), layoutDir };
}

/**
 * The output names: positional images plus -tag, each with a tag (a digest names nothing to write), all on one
 * registry (the spec's rule unless exporting to a daemon).
 */
export function outputNames(v: FlagValues): string[] {
  const names = [...v.positional, ...v.list('tag')];
  if (!names.length) throw new StrataError('an output image name is required (positional argument)', Exit.InvalidArgs);
  if (v.bool('daemon')) return names;
  for (const name of names) {
    const t = parseTarget(name);
    if ((t.kind === 'registry' && t.ref.digest && !t.ref.tag) || (t.kind === 'layout' && t.digest)) throw new StrataError(`${name}: an output image needs a tag, not a digest`, Exit.InvalidArgs);
  }
  const registries = new Set(names.filter((n) => !n.startsWith('oci:')).map((n) => Reference.parse(n).registry));
  if (registries.size > 1) throw new StrataError(`writing to multiple registries (${[...registries].join(', ')}) is not allowed; keep every tag on one registry`, Exit.InvalidArgs);
  return names;
}

/** `-cache-image` (a registry or oci: image) or `-cache-dir`; none means no cache. */
export async function openCache(v: FlagValues, log: Logger): Promise<Cache | undefined> {
  const image = v.str('cache-image');
  if (image) {
    const t = await openTarget(parseTarget(image), { ...storeOptions(v), create: true });
    return new ImageCache(t.store, t.tag ?? 'latest', image, log);
  }
  const dir = v.str('cache-dir');
  return dir ? DirCache.open(dir, log) : undefined;
}

export function createdTime(env: NodeJS.ProcessEnv): Date {
  try {
    return layerTime(env);
  } catch (err) {
    throw new StrataError((err as Error).message, Exit.InvalidArgs);
  }
}
