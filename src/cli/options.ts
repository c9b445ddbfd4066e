import { StrataError } from '../oci/errors.js';
import { copyImage } from '../oci/copy.js';
import type { PlatformWanted } from '../oci/manifest.js';
import type { ImageStore } from '../oci/store.js';
import type { StoreOptions } from '../oci/target.js';
import { outputFor } from '../oci/images.js';
/** Commander accumulators for options given more than once: each value kept as it is. */
export function repeatable(value: string, previous: string[]): string[] {
  return [...previous, value];
}

/** Like `repeatable`, also splitting comma-separated values (`--insecure-registry a,b`, `--build-packages p,q`). */
export function commaList(value: string, previous: string[]): string[] {
  return [...previous, ...value.split(',').map((s) => s.trim()).filter(Boolean)];
}

/** `--label KEY=VALUE` (repeatable; or another such flag) into a map; a value without `=` is one line naming the flag. */
export function labelMap(items: string[], flag = '--label'): Record<string, string> {
  const out: Record<string, string> = {};
  for (const item of items) {
    const eq = item.indexOf('=');
    if (eq <= 0) throw new StrataError(`${flag} "${item}": expected KEY=VALUE`);
    out[item.slice(0, eq)] = item.slice(eq + 1);
  }
  return out;
}

/** Writes the image at `digest` in `from` under each of `names` too (`--tag`): blobs shared, mounted or skipped. */
export async function tagAlso(from: ImageStore, digest: string, names: string[], publish: boolean, options: StoreOptions): Promise<void> {
  for (const n of names) {
    const t = await outputFor(n, publish, options);
    await copyImage(from, digest, t.store, t.tag);
  }
}

/** `os/arch[/variant]` as a flag's value (`--platform`, `--target`); one line naming the flag when it is not one. */
export function platformFlag(text: string, flag: string): PlatformWanted {
  const [os, architecture, variant, extra] = text.split('/');
  if (!os || !architecture || extra !== undefined) throw new StrataError(`${flag} "${text}": expected os/arch[/variant], e.g. linux/arm64`);
  return { os, architecture, ...(variant ? { variant } : {}) };
}

/** Platforms from repeated or comma-separated flag values, each once; undefined when none was given. */
export function platformList(values: string[], flag: string): PlatformWanted[] | undefined {
  const list = [...new Set(values.flatMap((v) => v.split(',')).map((x) => x.trim()).filter(Boolean))];
  return list.length ? list.map((x) => platformFlag(x, flag)) : undefined;
}
