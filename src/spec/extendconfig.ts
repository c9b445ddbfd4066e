import { Fields, SpecError, type Table } from './toml.js';

/** extend-config.toml, beside an extension's Dockerfiles: the build args each kind of Dockerfile is given. */
export interface ExtendConfig {
  build: { name: string; value: string }[];
  run: { name: string; value: string }[];
}

/** Build args the lifecycle itself gives; an extension may not set them. */
const RESERVED = new Set(['base_image', 'build_id', 'user_id', 'group_id']);

export function parseExtendConfig(table: Table, file: string): ExtendConfig {
  const f = new Fields(table, file);
  const args = (kind: 'build' | 'run') =>
    f.sub(kind).list('args').map((a) => {
      const name = a.reqStr('name');
      if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) throw new SpecError(`${a.where}: "${name.slice(0, 60)}" is not a build arg name`);
      if (RESERVED.has(name)) throw new SpecError(`${a.where}: ${name} is given by the lifecycle, not by an extension`);
      return { name, value: a.str('value') ?? '' };
    });
  return { build: args('build'), run: args('run') };
}
