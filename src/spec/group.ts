import { buildpackApi } from './api.js';
import { Fields, SpecError, readToml, writeToml, type Table } from './toml.js';

/** A buildpack or extension that detected: group.toml's entries. */
export interface GroupEntry {
  id: string;
  version: string;
  api: string;
  homepage?: string;
  extension?: boolean;
}

export interface GroupFile {
  group: GroupEntry[];
  groupExtensions: GroupEntry[];
}

function entry(f: Fields, extension: boolean, file: string): GroupEntry {
  const homepage = f.str('homepage');
  const id = f.reqStr('id');
  const version = f.reqStr('version');
  const api = f.reqStr('api');
  // Every phase that reads the group acts on these APIs; one strata cannot speak fails here with the spec's exit 12.
  buildpackApi(api, `${file}: ${extension ? 'extension' : 'buildpack'} ${id}@${version}`);
  return { id, version, api, ...(homepage ? { homepage } : {}), ...(extension ? { extension } : {}) };
}

export function parseGroupFile(table: Table, file: string): GroupFile {
  const f = new Fields(table, file);
  return { group: f.list('group').map((e) => entry(e, false, file)), groupExtensions: f.list('group-extensions').map((e) => entry(e, true, file)) };
}

export async function readGroupFile(path: string): Promise<GroupFile> {
  const t = await readToml(path);
  if (!t) throw new SpecError(`${path}: group.toml not found; run the detector first or pass -group`);
  return parseGroupFile(t, path);
}

const plain = (e: GroupEntry): Table => ({ id: e.id, version: e.version, api: e.api, homepage: e.homepage });

export async function writeGroupFile(path: string, g: GroupFile): Promise<void> {
  await writeToml(path, { group: g.group.map(plain), ...(g.groupExtensions.length ? { 'group-extensions': g.groupExtensions.map(plain) } : {}) });
}
