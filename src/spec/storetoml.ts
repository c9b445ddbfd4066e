import { Fields, readToml, writeToml, type Table } from './toml.js';

/** `<layers>/<bp>/store.toml`: metadata a buildpack keeps from build to build (through the image label). */
export interface StoreFile {
  metadata: Table;
}

export async function readStore(path: string): Promise<StoreFile | undefined> {
  const t = await readToml(path);
  return t ? { metadata: new Fields(t, path).free('metadata') ?? {} } : undefined;
}

export async function writeStore(path: string, store: StoreFile): Promise<void> {
  await writeToml(path, { metadata: store.metadata });
}
