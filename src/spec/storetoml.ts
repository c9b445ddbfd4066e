import { Fields, type Table } from './toml.js';

/** `<layers>/<bp>/store.toml`: metadata a buildpack keeps from build to build (through the image label). */
export interface StoreFile {
  metadata: Table;
}

export function parseStore(t: Table, file: string): StoreFile {
  return { metadata: new Fields(t, file).free('metadata') ?? {} };
}

