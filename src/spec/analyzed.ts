import type { ImageTarget } from './target.js';
import { Fields, readToml, writeToml, type Table } from './toml.js';

/** analyzed.toml: what the analyzer learned about the previous image and the run image. */
export interface AnalyzedFile {
  previousImage?: { reference: string };
  /** The previous image's io.buildpacks.lifecycle.metadata label, as a table. */
  metadata?: Table;
  runImage?: { reference: string; image?: string; extend?: boolean; target?: ImageTarget };
  buildImage?: { reference: string };
}

function parseTarget(f: Fields): ImageTarget | undefined {
  if (!Object.keys(f.table).length) return undefined;
  const distro = f.sub('distro');
  const variant = f.str('variant') ?? f.str('arch-variant');
  const t: ImageTarget = {};
  for (const k of ['id', 'os', 'arch'] as const) {
    const v = f.str(k);
    if (v) t[k] = v;
  }
  if (variant) t.variant = variant;
  if (distro.str('name') || distro.str('version')) t.distro = { ...(distro.str('name') ? { name: distro.str('name') } : {}), ...(distro.str('version') ? { version: distro.str('version') } : {}) };
  return t;
}

export function parseAnalyzed(table: Table, file: string): AnalyzedFile {
  const f = new Fields(table, file);
  const out: AnalyzedFile = {};
  const prev = f.sub('image');
  if (prev.str('reference')) out.previousImage = { reference: prev.str('reference')! };
  const md = f.free('metadata');
  if (md) out.metadata = md;
  const run = f.sub('run-image');
  const target = parseTarget(run.sub('target'));
  // A platform may give only the target (no image yet): it still decides CNB_TARGET_* for detect and build.
  if (run.str('reference') || run.str('image') || target) {
    out.runImage = { reference: run.str('reference') ?? '', ...(run.str('image') ? { image: run.str('image') } : {}), ...(run.bool('extend') ? { extend: true } : {}), ...(target ? { target } : {}) };
  }
  const build = f.sub('build-image');
  if (build.str('reference')) out.buildImage = { reference: build.str('reference')! };
  return out;
}

export async function readAnalyzed(path: string): Promise<AnalyzedFile | undefined> {
  const t = await readToml(path);
  return t ? parseAnalyzed(t, path) : undefined;
}

export async function writeAnalyzed(path: string, a: AnalyzedFile): Promise<void> {
  const t = a.runImage?.target;
  await writeToml(path, {
    ...(a.previousImage ? { image: a.previousImage } : {}),
    ...(a.metadata ? { metadata: a.metadata } : {}),
    ...(a.runImage
      ? { 'run-image': { reference: a.runImage.reference, image: a.runImage.image, extend: a.runImage.extend, ...(t ? { target: { id: t.id, os: t.os, arch: t.arch, variant: t.variant, ...(t.distro ? { distro: t.distro } : {}) } } : {}) } }
      : {}),
    ...(a.buildImage ? { 'build-image': a.buildImage } : {}),
  });
}
