import { stat } from 'node:fs/promises';
import { dirname, isAbsolute, resolve } from 'node:path';
import { ApiVersion } from './api.js';
import type { ProjectMetadata } from './projectmeta.js';
import { Fields, SpecError, readToml, type Table } from './toml.js';

/** A buildpack reference in project.toml: by id (and version), by uri, or an inline script. */
export interface ProjectBuildpack {
  id?: string;
  version?: string;
  uri?: string;
  script?: { api: string; shell: string; inline: string };
}

/** project.toml as the platform reads it (Project Descriptor 0.2, and the older unversioned form). */
export interface ProjectDescriptor {
  schemaVersion: string;
  id?: string;
  name?: string;
  version?: string;
  sourceUrl?: string;
  licenses: { type?: string; uri?: string }[];
  metadata?: Table;
  builder?: string;
  include: string[];
  exclude: string[];
  group: ProjectBuildpack[];
  pre: ProjectBuildpack[];
  post: ProjectBuildpack[];
  env: { name: string; value: string }[];
  /** Keys this schema version does not define, and deprecated forms: each a line to show, as pack warns. */
  warnings: string[];
}

const KNOWN_META = new Set(['schema-version', 'id', 'name', 'version', 'authors', 'licenses', 'documentation-url', 'source-url', 'metadata']);
const KNOWN_IO = new Set(['include', 'exclude', 'group', 'build', 'builder', 'pre', 'post']);

/** Keys of `table` outside `known`, as dotted names under `prefix`. */
function unknownKeys(table: Table, known: Set<string>, prefix: string): string[] {
  return Object.keys(table).filter((k) => !known.has(k)).map((k) => `${prefix}${k}`);
}

function buildpackRef(f: Fields): ProjectBuildpack {
  const id = f.str('id');
  const version = f.str('version');
  const uri = f.str('uri');
  const script = f.has('script') ? f.sub('script') : undefined;
  const kinds = [version, uri, script].filter((x) => x !== undefined).length;
  if (kinds > 1) throw new SpecError(`${f.where}: use one of version, uri or script`);
  if (!id && !uri) throw new SpecError(`${f.where}: a buildpack needs an id or a uri`);
  if (script && !id) throw new SpecError(`${f.where}: an inline script buildpack needs an id`);
  return {
    ...(id ? { id } : {}),
    ...(version ? { version } : {}),
    ...(uri ? { uri } : {}),
    ...(script ? { script: { api: script.reqStr('api'), shell: script.str('shell') ?? '/bin/sh', inline: script.reqStr('inline') } } : {}),
  };
}

export function parseProject(table: Table, file: string): ProjectDescriptor {
  const f = new Fields(table, file);
  const meta = f.sub('_');
  const schemaVersion = meta.str('schema-version') ?? '0.1';
  if (ApiVersion.parse(schemaVersion, `${file}: schema-version`).compare('0.3') > 0) throw new SpecError(`${file}: schema-version ${schemaVersion} is not supported (0.1, 0.2 and 0.3 are)`);
  // 0.1 keeps project data under [project] and build settings under [build]; 0.2 under [_] and [io.buildpacks].
  const legacy = schemaVersion === '0.1' && !f.has('_');
  const project = legacy ? f.sub('project') : meta;
  const io = legacy ? f.sub('build') : f.sub('io').sub('buildpacks');
  const include = io.strArray('include') ?? [];
  const exclude = io.strArray('exclude') ?? [];
  if (include.length && exclude.length) throw new SpecError(`${file}: set include or exclude, not both`);
  const groupKey = legacy ? 'buildpacks' : 'group';
  const metadata = legacy ? f.free('metadata') : meta.free('metadata');
  const str = (k: string) => project.str(k);
  const warnings: string[] = [];
  let env = io.sub('build').list('env').concat(legacy ? io.list('env') : []);
  if (!legacy) {
    // The [[io.buildpacks.env.build]] form pack still reads in 0.2 (gone in 0.3).
    const old = io.sub('env').list('build');
    if (old.length && schemaVersion === '0.2') {
      warnings.push(`${file}: [[io.buildpacks.env.build]] is deprecated; use [[io.buildpacks.build.env]]`);
      env = [...old, ...env];
    }
    const unknown = [...unknownKeys(meta.table, KNOWN_META, '_.'), ...unknownKeys(io.table, new Set([...KNOWN_IO, ...(schemaVersion === '0.2' ? ['env'] : [])]), 'io.buildpacks.'), ...unknownKeys(io.sub('build').table, new Set(['env']), 'io.buildpacks.build.')];
    if (unknown.length) warnings.push(`${file}: not part of schema-version ${schemaVersion}, ignored: ${unknown.join(', ')}`);
  }
  return {
    warnings,
    schemaVersion,
    ...(str('id') ? { id: str('id') } : {}),
    ...(str('name') ? { name: str('name') } : {}),
    ...(str('version') ? { version: str('version') } : {}),
    ...(str('source-url') ? { sourceUrl: str('source-url') } : {}),
    licenses: project.list('licenses').map((l) => ({ ...(l.str('type') ? { type: l.str('type') } : {}), ...(l.str('uri') ? { uri: l.str('uri') } : {}) })),
    ...(metadata ? { metadata } : {}),
    ...(io.str('builder') ? { builder: io.str('builder') } : {}),
    include,
    exclude,
    group: io.list(groupKey).map(buildpackRef),
    pre: io.sub('pre').list('group').map(buildpackRef),
    post: io.sub('post').list('group').map(buildpackRef),
    env: env.map((e) => {
      const name = e.reqStr('name');
      // pack sets an entry without a value to nothing; that is more likely a mistake than a wish, so it is one line.
      const value = e.str('value');
      if (value === undefined) throw new SpecError(`${e.where}: env ${name} has no value; give value = "" to set it empty`);
      return { name, value };
    }),
  };
}

/**
 * A buildpack uri with no scheme is a path relative to project.toml's own dir (as pack reads it), not to wherever
 * strata was started; a name that is no file there stays as written (an image or id).
 */
async function resolveUri(ref: ProjectBuildpack, dir: string): Promise<ProjectBuildpack> {
  if (!ref.uri || /^[A-Za-z][A-Za-z0-9+.-]*:\/\//.test(ref.uri) || ref.uri.startsWith('urn:') || isAbsolute(ref.uri)) return ref;
  const path = resolve(dir, ref.uri.replace(/^file:/, ''));
  return (await stat(path).catch(() => undefined)) ? { ...ref, uri: path } : ref;
}

export async function readProject(path: string): Promise<ProjectDescriptor | undefined> {
  const t = await readToml(path);
  if (!t) return undefined;
  const d = parseProject(t, path);
  const dir = dirname(resolve(path));
  const all = (refs: ProjectBuildpack[]) => Promise.all(refs.map((r) => resolveUri(r, dir)));
  return { ...d, group: await all(d.group), pre: await all(d.pre), post: await all(d.post) };
}

/** The io.buildpacks.project.metadata label pack writes from project.toml: its declared version and source URL. */
export function projectSource(d: ProjectDescriptor | undefined): ProjectMetadata {
  if (!d?.version && !d?.sourceUrl) return {};
  return { source: { type: 'project', version: { declared: d.version ?? '' }, metadata: { url: d.sourceUrl ?? '' } } };
}
