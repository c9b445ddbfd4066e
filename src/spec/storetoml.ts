import { Fields, readToml, writeToml, type Table } from './toml.js';

/** `<layers>/<bp>/store.toml`: metadata a buildpack keeps from build to build (through the image label). */
export interface StoreFile {
  metadata: Table;
}

export function parseStore(t: Table, file: string): StoreFile {
  return { metadata: new Fields(t, file).free('metadata') ?? {} };
}

export async function readStore(path: string): Promise<StoreFile | undefined> {
  const t = await readToml(path);
  return t ? parseStore(t, path) : undefined;
}

export async function writeStore(path: string, store: StoreFile): Promise<void> {
  await writeToml(path, { metadata: store.metadata });
}
