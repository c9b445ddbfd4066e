import { Fields, SpecError, type Table } from './toml.js';

export interface LayerTypes {
  launch: boolean;
  build: boolean;
  cache: boolean;
}

/** `<layers>/<bp>/<layer>.toml`: what a layer is for, and the buildpack's own metadata about it. */
export interface LayerMetadata {
  types: LayerTypes;
  metadata: Table;
}

/** Names that are buildpack files, never layers. */
export const NOT_LAYERS = new Set(['launch', 'build', 'store']);

export function parseLayerToml(table: Table, file: string): LayerMetadata {
  const f = new Fields(table, file);
  for (const k of ['launch', 'build', 'cache']) {
    if (f.has(k)) throw new SpecError(`${file}: "${k}" at the top level is the old format; put it under [types]`);
  }
  const t = f.sub('types');
  return { types: { launch: t.bool('launch'), build: t.bool('build'), cache: t.bool('cache') }, metadata: f.free('metadata') ?? {} };
}
