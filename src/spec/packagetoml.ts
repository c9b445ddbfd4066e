import { dirname, isAbsolute, resolve } from 'node:path';
import { Fields, SpecError, readToml, type Table } from './toml.js';
import { targetPlatforms } from './target.js';

/** Where a buildpack comes from in package.toml or builder.toml: a dir, a .tgz, a .cnb file, or an image. */
export interface BuildpackSource {
  uri?: string;
  image?: string;
}

/** pack's package.toml: the entry buildpack (or one image extension) and the buildpackages its order needs. */
export interface PackageConfig {
  buildpack: BuildpackSource;
  /** `[extension]` instead of `[buildpack]`: an extension package (no dependencies). */
  kind?: 'buildpack' | 'extension';
  dependencies: BuildpackSource[];
  os: string;
  /** `[[targets]]`: the platforms to package for when `--target` gives none. */
  targets: { os: string; architecture: string; variant?: string }[];
  file: string;
}

const KNOWN_TOP = new Set(['buildpack', 'extension', 'dependencies', 'platform', 'targets']);

/** A uri relative to the config file's dir; `docker://`, `http(s)://` and `file://` forms as pack writes them. */
export function resolveUri(uri: string, configFile: string): string {
  if (uri.startsWith('docker://') || /^https?:\/\//.test(uri)) return uri;
  const path = uri.startsWith('file://') ? uri.slice('file://'.length) : uri;
  return isAbsolute(path) ? path : resolve(dirname(configFile), path);
}

function source(f: Fields, file: string): BuildpackSource {
  const uri = f.str('uri');
  const image = f.str('image');
  if (!uri && !image) throw new SpecError(`${f.where}: give a uri or an image`);
  if (uri && image) throw new SpecError(`${f.where}: give a uri or an image, not both`);
  return uri ? { uri: resolveUri(uri, file) } : { image: image! };
}

function packageOs(os: string, file: string): string {
  if (os !== 'linux' && os !== 'windows') throw new SpecError(`${file}: [platform] os "${os}" is not linux or windows`);
  return os;
}

export function parsePackageConfig(table: Table, file: string): PackageConfig {
  for (const k of Object.keys(table)) if (!KNOWN_TOP.has(k)) throw new SpecError(`${file}: unknown key "${k}" (expected buildpack, extension, dependencies, platform, targets)`);
  const f = new Fields(table, file);
  if (f.has('buildpack') && f.has('extension')) throw new SpecError(`${file}: [buildpack] and [extension] both given; a package holds one of them`);
  if (f.has('extension')) {
    if (f.list('dependencies').length) throw new SpecError(`${file}: an extension package has no [[dependencies]]`);
    return { buildpack: source(f.sub('extension'), file), kind: 'extension', dependencies: [], os: packageOs(f.sub('platform').str('os') ?? 'linux', file), targets: targetPlatforms(f), file };
  }
  if (!f.has('buildpack')) throw new SpecError(`${file}: [buildpack] (or [extension]) with a uri is required`);
  return {
    buildpack: source(f.sub('buildpack'), file),
    dependencies: f.list('dependencies').map((d) => source(d, file)),
    os: packageOs(f.sub('platform').str('os') ?? 'linux', file),
    targets: targetPlatforms(f),
    file,
  };
}

export async function readPackageConfig(path: string): Promise<PackageConfig> {
  const t = await readToml(path);
  if (!t) throw new SpecError(`${path}: not found; pass the package.toml with --config`);
  return parsePackageConfig(t, path);
}
