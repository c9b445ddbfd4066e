import { Fields, SpecError, readToml, type Table } from './toml.js';

/** A run image and the mirrors it can also be pulled from. */
export interface RunImage {
  image: string;
  mirrors: string[];
}

function runImage(f: Fields): RunImage {
  const image = f.str('image');
  const mirrors = f.strArray('mirrors') ?? [];
  if (!image) {
    if (mirrors.length) throw new SpecError(`${f.where}: mirrors need an image`);
    throw new SpecError(`${f.where}: "image" is required`);
  }
  return { image, mirrors };
}

/** run.toml (Platform API 0.12+): `[[images]]`. */
export function parseRunToml(table: Table, file: string): RunImage[] {
  return new Fields(table, file).list('images').map(runImage);
}

/** stack.toml (before Platform API 0.12): `[run-image]`. */
export function parseStackToml(table: Table, file: string): RunImage[] {
  const f = new Fields(table, file);
  return f.has('run-image') ? [runImage(f.sub('run-image'))] : [];
}

export async function readRunImages(path: string, legacy = false): Promise<RunImage[]> {
  const t = await readToml(path);
  if (!t) return [];
  return legacy ? parseStackToml(t, path) : parseRunToml(t, path);
}

