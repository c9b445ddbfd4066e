import { Fields, type Table } from './toml.js';

export interface LayerTypes {
  launch: boolean;
  build: boolean;
  cache: boolean;
}

/** `<layers>/<bp>/<layer>.toml`: what a layer is for, and the buildpack's own metadata about it. */
export interface LayerMetadata {
  types: LayerTypes;
  metadata: Table;
  /** Set when the file is in the pre-0.6 format: the layer then has no types, and is ignored. */
  warning?: string;
}

/** Names that are buildpack files, never layers. */
export const NOT_LAYERS = new Set(['launch', 'build', 'store']);

export function parseLayerToml(table: Table, file: string): LayerMetadata {
  const f = new Fields(table, file);
  const t = f.sub('types');
  const types = { launch: t.bool('launch'), build: t.bool('build'), cache: t.bool('cache') };
  const metadata = f.free('metadata') ?? {};
  // The pre-0.6 format (top-level flags), still written by old buildpacks: as the reference lifecycle does, the flags
  // are not read (only [types] is), so such a layer is neither exported nor cached, and the build goes on with a warning.
  const old = ['launch', 'build', 'cache'].filter((k) => f.has(k));
  if (old.length) return { types, metadata, warning: `${file}: ${old.map((k) => `"${k}"`).join(', ')} at the top level is the old format and is ignored; put the flags under [types]` };
  return { types, metadata };
}
