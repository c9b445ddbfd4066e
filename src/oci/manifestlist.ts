import { createHash } from 'node:crypto';
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { StrataError } from './errors.js';
import { writeFileAtomic } from './fsutil.js';
import { encodeJson, type Descriptor, type Platform } from './manifest.js';
import { MediaType } from './mediatype.js';

/**
 * A manifest list (image index) put together on this machine before it is pushed, as pack's and docker's `manifest`
 * verbs keep one: its entries, and for each where its image was read from, so a push can first bring every image
 * into the index's own repository (an index may only name manifests its repository holds).
 */

export type IndexFormat = 'oci' | 'docker';

export interface ListEntry {
  /** Where the image was read from: a registry reference or `oci:<dir>`, with its digest. */
  source: string;
  /** The entry as the index names it: media type, digest, size, platform, annotations. */
  descriptor: Descriptor;
}

export interface ManifestList {
  name: string;
  format: IndexFormat;
  entries: ListEntry[];
  /** Annotations of the index itself. */
  annotations?: Record<string, string>;
}

export function parseFormat(text: string | undefined, flag = '--format'): IndexFormat {
  const f = (text ?? 'oci').toLowerCase();
  if (f !== 'oci' && f !== 'docker') throw new StrataError(`${flag} "${text}": expected oci or docker`);
  return f;
}

/** The index a list becomes, byte for byte: the same list always gives the same digest. */
export function indexOf(list: ManifestList): { bytes: Buffer; mediaType: string } {
  const mediaType = list.format === 'docker' ? MediaType.DockerManifestList : MediaType.OciIndex;
  const doc = { schemaVersion: 2, mediaType, manifests: list.entries.map((e) => e.descriptor), ...(list.annotations && Object.keys(list.annotations).length ? { annotations: list.annotations } : {}) };
  return { bytes: encodeJson(doc), mediaType };
}

/** The list with these entries added; an entry with a digest the list has already replaces it (a re-add refreshes). */
export function withEntries(list: ManifestList, added: ListEntry[]): ManifestList {
  const digests = new Set(added.map((e) => e.descriptor.digest));
  return { ...list, entries: [...list.entries.filter((e) => !digests.has(e.descriptor.digest)), ...added] };
}

/** The entries `which` names, by digest or by the source they were added from; one line naming what is missing. */
export function findEntries(list: ManifestList, which: string): ListEntry[] {
  const digest = /sha256:[0-9a-f]{64}$/.exec(which)?.[0];
  const found = list.entries.filter((e) => (digest ? e.descriptor.digest === digest : e.source === which || e.source.startsWith(`${which}@`)));
  if (!found.length) throw new StrataError(`manifest list ${list.name} has no entry ${which} (it has: ${list.entries.map((e) => e.descriptor.digest).join(', ') || 'none'})`);
  return found;
}

export function withoutEntries(list: ManifestList, which: string[]): ManifestList {
  const gone = new Set(which.flatMap((w) => findEntries(list, w).map((e) => e.descriptor.digest)));
  return { ...list, entries: list.entries.filter((e) => !gone.has(e.descriptor.digest)) };
}

export interface Annotation {
  os?: string;
  arch?: string;
  variant?: string;
  annotations?: Record<string, string>;
}

/** The list with the platform and annotations of the entries `which` names changed. */
export function annotated(list: ManifestList, which: string, change: Annotation): ManifestList {
  const targets = new Set(findEntries(list, which).map((e) => e.descriptor.digest));
  return {
    ...list,
    entries: list.entries.map((e) => {
      if (!targets.has(e.descriptor.digest)) return e;
      const was: Platform = e.descriptor.platform ?? { os: '', architecture: '' };
      const platform: Platform = { ...was, ...(change.os ? { os: change.os } : {}), ...(change.arch ? { architecture: change.arch } : {}), ...(change.variant ? { variant: change.variant } : {}) };
      const annotations = { ...e.descriptor.annotations, ...change.annotations };
      return { ...e, descriptor: { ...e.descriptor, platform, ...(Object.keys(annotations).length ? { annotations } : {}) } };
    }),
  };
}

/** Platforms as people write them: `linux/arm64/v8`. */
export function platformText(p: Platform | undefined): string {
  return p ? `${p.os}/${p.architecture}${p.variant ? `/${p.variant}` : ''}` : 'unknown';
}

/** The lists kept on this machine: one JSON file each under `<strata home>/manifests`, written atomically. */
export class ManifestLists {
  constructor(readonly dir: string) {}

  private file(name: string): string {
    return join(this.dir, `${createHash('sha256').update(name).digest('hex').slice(0, 32)}.json`);
  }

  async get(name: string): Promise<ManifestList | undefined> {
    let text: string;
    try {
      text = await readFile(this.file(name), 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
    try {
      const list = JSON.parse(text) as ManifestList;
      if (list.name !== name || !Array.isArray(list.entries)) throw new Error('not a manifest list');
      return list;
    } catch (err) {
      throw new StrataError(`${this.file(name)}: the local manifest list ${name} is unreadable (${(err as Error).message}); remove it with \`strata manifest remove ${name}\``);
    }
  }

  async put(list: ManifestList): Promise<void> {
    await writeFileAtomic(this.file(list.name), `${JSON.stringify(list, null, 2)}\n`);
  }

  /** Whether there was one to remove. */
  async remove(name: string): Promise<boolean> {
    const f = this.file(name);
    const there = await readFile(f).then(() => true, () => false);
    await rm(f, { force: true });
    return there;
  }
}
