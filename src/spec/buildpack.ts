import { checkPathComponent } from '../oci/confined.js';
import { pathExists } from '../oci/fsutil.js';
import { join } from 'node:path';
import { ApiVersion, buildpackApi } from './api.js';
import { parseOrder, type Order } from './order.js';
import { stackTarget, type Target } from './target.js';
import { Fields, SpecError, readToml, type Table } from './toml.js';

export const SBOM_MEDIA_TYPES: Record<string, string> = {
  'application/vnd.cyclonedx+json': 'cdx.json',
  'application/spdx+json': 'spdx.json',
  'application/vnd.syft+json': 'syft.json',
};

const RESERVED_IDS = new Set(['app', 'config', 'generated', 'sbom']);

/** A buildpack.toml or extension.toml, read and checked. */
export interface BuildpackDescriptor {
  kind: 'buildpack' | 'extension';
  api: string;
  apiVersion: ApiVersion;
  id: string;
  version: string;
  name?: string;
  homepage?: string;
  description?: string;
  clearEnv: boolean;
  sbomFormats: string[];
  licenses: { type?: string; uri?: string }[];
  /** Empty means every exec env. */
  execEnv: string[];
  order: Order;
  targets: Target[];
  stacks: { id: string; mixins: string[] }[];
  metadata?: Table;
  /** The directory holding the descriptor. */
  dir: string;
}

/** The directory name form of an id: every `/` becomes `_`. */
export function escapeId(id: string): string {
  return id.replace(/\//g, '_');
}

export function checkId(id: string, where: string): void {
  // The spec names letters, digits, ".", "/" and "-"; the reference lifecycle also takes "_", and real buildpacks use
  // it. Anything else (spaces, "..", other punctuation) could reach a path or a label unescaped.
  if (!/^[A-Za-z0-9._/-]+$/.test(id) || id.split('/').some((p) => p === '' || p === '.' || p === '..')) {
    throw new SpecError(`${where}: id "${id}" may hold only letters, digits, ".", "_", "/" and "-", with no empty, "." or ".." part`);
  }
  if (RESERVED_IDS.has(id)) throw new SpecError(`${where}: id "${id}" is reserved (app, config, generated and sbom are)`);
}

/** Reads both spellings of exec-env: `exec-env = [..]` and the spec's `[[buildpack.exec-env]] name = ..`. */
function execEnvOf(f: Fields): string[] {
  const v = f.table['exec-env'];
  if (v === undefined) return [];
  if (Array.isArray(v) && v.every((x) => typeof x === 'string')) return v as string[];
  return f.list('exec-env').map((e) => e.reqStr('name'));
}

function parseTarget(t: Fields): Target {
  const os = t.str('os');
  const arch = t.str('arch');
  const variant = t.str('variant') ?? t.str('arch-variant');
  const distros = t.list('distros').map((d) => {
    const name = d.str('name');
    const version = d.str('version');
    return { ...(name ? { name } : {}), ...(version ? { version } : {}) };
  });
  return { ...(os ? { os } : {}), ...(arch ? { arch } : {}), ...(variant ? { variant } : {}), ...(distros.length ? { distros } : {}) };
}

export function parseDescriptor(table: Table, file: string, dir: string, kind: 'buildpack' | 'extension', hasBuild: boolean): BuildpackDescriptor {
  const top = new Fields(table, file);
  const api = top.str('api') ?? '';
  const apiVersion = buildpackApi(api, file);
  const bp = top.sub(kind);
  const id = bp.reqStr('id');
  checkId(id, file);
  const version = bp.reqStr('version');
  // The version names a directory (`/cnb/buildpacks/<id>/<version>`) and a file when packaged.
  checkPathComponent(version, `${file}: [${kind}] version`);
  const order = kind === 'buildpack' ? parseOrder(top.list('order'), true) : [];
  const stacks = top.list('stacks').map((s) => ({ id: s.reqStr('id'), mixins: s.strArray('mixins') ?? [] }));
  let targets = top.list('targets').map(parseTarget);
  if (targets.length === 0 && stacks.length > 0 && (apiVersion.atLeast('0.10') || stacks.length === 1)) targets = stacks.map((s) => stackTarget(s.id));
  if (targets.length === 0 && hasBuild) targets = [{ os: 'linux' }];
  const sbomFormats = bp.strArray('sbom-formats') ?? [];
  for (const f of sbomFormats) if (!SBOM_MEDIA_TYPES[f]) throw new SpecError(`${file}: sbom-formats: "${f}" is not one of ${Object.keys(SBOM_MEDIA_TYPES).join(', ')}`);
  if (order.length && stacks.length) throw new SpecError(`${file}: a composite buildpack (with [[order]]) must not declare [[stacks]]`);
  const name = bp.str('name');
  const homepage = bp.str('homepage');
  const description = bp.str('description');
  const metadata = top.free('metadata');
  return {
    kind,
    api,
    apiVersion,
    id,
    version,
    ...(name ? { name } : {}),
    ...(homepage ? { homepage } : {}),
    ...(description ? { description } : {}),
    clearEnv: bp.bool('clear-env'),
    sbomFormats,
    licenses: bp.list('licenses').map((l) => ({ ...(l.str('type') ? { type: l.str('type') } : {}), ...(l.str('uri') ? { uri: l.str('uri') } : {}) })),
    execEnv: execEnvOf(bp),
    order,
    targets,
    stacks,
    ...(metadata ? { metadata } : {}),
    dir,
  };
}


/** Reads `<dir>/buildpack.toml` (or extension.toml). */
export async function readDescriptor(dir: string, kind: 'buildpack' | 'extension' = 'buildpack'): Promise<BuildpackDescriptor> {
  const file = join(dir, `${kind}.toml`);
  const table = await readToml(file);
  if (!table) throw new SpecError(`${file}: not found`);
  const hasBin = await pathExists(join(dir, 'bin', kind === 'buildpack' ? 'build' : 'generate'));
  const hasDetect = kind === 'extension' && (await pathExists(join(dir, 'bin', 'detect')));
  return parseDescriptor(table, file, dir, kind, hasBin || hasDetect);
}

/** Where a buildpack lives in a buildpacks dir: `<dir>/<escaped id>/<version>`. */
export function descriptorDir(buildpacksDir: string, id: string, version: string): string {
  return join(buildpacksDir, checkPathComponent(escapeId(id), 'buildpack id'), checkPathComponent(version, `version of ${id}`));
}
