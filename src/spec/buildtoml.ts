import { Fields, SpecError, type Table } from './toml.js';

/** build.toml: the Buildpack Plan entries a buildpack leaves for a later provider. */
export interface BuildFile {
  unmet: string[];
  bom: Table[];
}

export function parseBuildToml(table: Table, file: string): BuildFile {
  const f = new Fields(table, file);
  const unmet = f.list('unmet').map((u) => {
    const name = u.str('name');
    if (!name) throw new SpecError(`${u.where}: unmet entries need a name`);
    return name;
  });
  return { unmet, bom: f.list('bom').map((b) => b.table) };
}
