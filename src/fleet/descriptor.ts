import { readFile } from 'node:fs/promises';
import { parse } from 'yaml';
import { StrataError } from '../oci/errors.js';
import { openRequired } from '../oci/images.js';
import type { StoreOptions } from '../oci/target.js';
import { DEFAULT_LIFECYCLE, KPACK_API } from './resources.js';
import type { SourceDocument } from './manifests.js';

/**
 * kp's dependency descriptor (`kp import -f`): stores, stacks, buildpacks, lifecycles and cluster builders in one
 * file, in its versions kp.kpack.io/v1alpha1, v1alpha3 and v1, turned into the kpack resources kp would create. As kp
 * does, the default stack, builder and lifecycle are also created under kpack's default names; a stack's id comes from
 * its build image's label. Unlike kp, images are used where they are (not relocated).
 */

interface Source {
  image: string;
}

export interface DependencyDescriptor {
  defaultClusterLifecycle?: string;
  defaultClusterStack?: string;
  defaultClusterBuilder?: string;
  clusterLifecycles: { name: string; image: string }[];
  clusterBuildpacks: { name: string; image: string }[];
  clusterStores: { name: string; sources: Source[] }[];
  clusterStacks: { name: string; buildImage: Source; runImage: Source }[];
  clusterBuilders: { name: string; clusterStack: string; clusterStore?: string; order: unknown[] }[];
  file: string;
}

type Obj = Record<string, unknown>;

function list<T>(v: unknown, where: string, item: (o: Obj, i: number) => T): T[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) throw new StrataError(`${where}: must be a list`);
  return v.map((x, i) => {
    if (typeof x !== 'object' || x === null || Array.isArray(x)) throw new StrataError(`${where}[${i}]: must be a mapping`);
    return item(x as Obj, i);
  });
}

function str(o: Obj, key: string, where: string): string {
  const v = o[key];
  if (typeof v !== 'string' || !v) throw new StrataError(`${where}.${key}: is required (a string)`);
  return v;
}

function image(o: Obj, key: string, where: string): Source {
  const v = o[key];
  if (typeof v !== 'object' || v === null) throw new StrataError(`${where}.${key}: is required ({image: …})`);
  return { image: str(v as Obj, 'image', `${where}.${key}`) };
}

export async function readDependencyDescriptor(path: string): Promise<DependencyDescriptor> {
  let text: string;
  if (path === '-') {
    const chunks: Buffer[] = [];
    for await (const c of process.stdin as AsyncIterable<Buffer>) chunks.push(c);
    text = Buffer.concat(chunks).toString('utf8');
  } else text = await readFile(path, 'utf8').catch(() => Promise.reject(new StrataError(`-f ${path}: no such file`)));
  return parseDependencyDescriptor(text, path === '-' ? '<stdin>' : path);
}

export function parseDependencyDescriptor(text: string, file: string): DependencyDescriptor {
  let doc: unknown;
  try {
    doc = parse(text, { prettyErrors: false });
  } catch (err) {
    throw new StrataError(`${file}: invalid YAML: ${(err as Error).message.split('\n')[0]}`);
  }
  if (typeof doc !== 'object' || doc === null) throw new StrataError(`${file}: not a dependency descriptor`);
  const d = doc as Obj;
  const version = d.apiVersion;
  if (d.kind !== 'DependencyDescriptor') throw new StrataError(`${file}: kind: expected DependencyDescriptor`);
  const stacks = (key: string) => list(d[key], `${file}: ${key}`, (o, i) => ({ name: str(o, 'name', `${key}[${i}]`), buildImage: image(o, 'buildImage', `${key}[${i}]`), runImage: image(o, 'runImage', `${key}[${i}]`) }));
  const stores = (key: string) => list(d[key], `${file}: ${key}`, (o, i) => ({ name: str(o, 'name', `${key}[${i}]`), sources: list(o.sources, `${key}[${i}].sources`, (s, j) => ({ image: str(s, 'image', `${key}[${i}].sources[${j}]`) })) }));
  const builders = (key: string, stack: string, store: string) =>
    list(d[key], `${file}: ${key}`, (o, i) => ({ name: str(o, 'name', `${key}[${i}]`), clusterStack: str(o, stack, `${key}[${i}]`), ...(typeof o[store] === 'string' ? { clusterStore: o[store] as string } : {}), order: Array.isArray(o.order) ? o.order : [] }));
  const named = (key: string) => list(d[key], `${file}: ${key}`, (o, i) => ({ name: str(o, 'name', `${key}[${i}]`), image: str(o, 'image', `${key}[${i}]`) }));
  const opt = (k: string) => (typeof d[k] === 'string' && d[k] ? { [k]: d[k] as string } : {});
  let out: DependencyDescriptor;
  if (version === 'kp.kpack.io/v1alpha1') {
    out = { ...(typeof d.defaultStack === 'string' ? { defaultClusterStack: d.defaultStack } : {}), ...opt('defaultClusterBuilder'), clusterLifecycles: [], clusterBuildpacks: [], clusterStores: stores('stores'), clusterStacks: stacks('stacks'), clusterBuilders: builders('clusterBuilders', 'stack', 'store'), file };
  } else if (version === 'kp.kpack.io/v1alpha3') {
    const lc = d.lifecycle as Obj | undefined;
    const lifecycles = lc && typeof lc.image === 'string' ? [{ name: DEFAULT_LIFECYCLE, image: lc.image }] : [];
    out = { ...opt('defaultClusterStack'), ...opt('defaultClusterBuilder'), clusterLifecycles: lifecycles, clusterBuildpacks: [], clusterStores: stores('clusterStores'), clusterStacks: stacks('clusterStacks'), clusterBuilders: builders('clusterBuilders', 'clusterStack', 'clusterStore'), file };
  } else if (version === 'kp.kpack.io/v1') {
    out = { ...opt('defaultClusterLifecycle'), ...opt('defaultClusterStack'), ...opt('defaultClusterBuilder'), clusterLifecycles: named('clusterLifecycles'), clusterBuildpacks: named('clusterBuildpacks'), clusterStores: stores('clusterStores'), clusterStacks: stacks('clusterStacks'), clusterBuilders: builders('clusterBuilders', 'clusterStack', 'clusterStore'), file };
  } else throw new StrataError(`${file}: apiVersion "${String(version)}" is not kp.kpack.io/v1, v1alpha3 or v1alpha1`);
  const unique = (names: string[], what: string) => {
    const seen = new Set<string>();
    for (const n of names) {
      if (seen.has(n)) throw new StrataError(`${file}: duplicate ${what} name "${n}"`);
      seen.add(n);
    }
  };
  unique(out.clusterStacks.map((s) => s.name), 'cluster stack');
  unique(out.clusterStores.map((s) => s.name), 'store');
  unique(out.clusterBuilders.map((s) => s.name), 'cluster builder');
  unique(out.clusterLifecycles.map((s) => s.name), 'cluster lifecycle');
  unique(out.clusterBuildpacks.map((s) => s.name), 'cluster buildpack');
  for (const [key, names, what] of [['defaultClusterStack', out.clusterStacks, 'stack'], ['defaultClusterBuilder', out.clusterBuilders, 'cluster builder'], ['defaultClusterLifecycle', out.clusterLifecycles, 'cluster lifecycle']] as const) {
    const v = out[key];
    if (v && !names.some((n) => n.name === v)) throw new StrataError(`${file}: ${key}: default ${what} "${v}" not found`);
  }
  return out;
}

/** A stack's id, from its build image's labels (kp reads it there too). */
async function stackId(buildImage: string, store: StoreOptions): Promise<string> {
  const labels = (await openRequired(buildImage, store)).image.config.config?.Labels ?? {};
  const id = labels['io.buildpacks.stack.id'] ?? labels['io.buildpacks.base.id'];
  if (!id) throw new StrataError(`build image ${buildImage} has no io.buildpacks.stack.id label to take the stack's id from`);
  return id;
}

/** The kpack resources a descriptor stands for, as documents for `apply`. */
export async function descriptorDocuments(d: DependencyDescriptor, defaultRepository: string | undefined, store: StoreOptions): Promise<SourceDocument[]> {
  const docs: SourceDocument[] = [];
  const add = (kind: string, name: string, spec: Obj) => docs.push({ where: `${d.file} (${kind} ${name})`, doc: { apiVersion: KPACK_API, kind, metadata: { name }, spec } });
  const withDefault = <T extends { name: string }>(items: T[], def: string | undefined, as: string) => {
    const chosen = items.find((i) => i.name === def);
    return chosen && !items.some((i) => i.name === as) ? [...items, { ...chosen, name: as }] : items;
  };
  for (const l of withDefault(d.clusterLifecycles, d.defaultClusterLifecycle, DEFAULT_LIFECYCLE)) add('ClusterLifecycle', l.name, { image: l.image });
  for (const b of d.clusterBuildpacks) add('ClusterBuildpack', b.name, { image: b.image });
  for (const s of d.clusterStores) add('ClusterStore', s.name, { sources: s.sources });
  for (const s of withDefault(d.clusterStacks, d.defaultClusterStack, 'default')) add('ClusterStack', s.name, { id: await stackId(s.buildImage.image, store), buildImage: s.buildImage, runImage: s.runImage });
  const builders = withDefault(d.clusterBuilders, d.defaultClusterBuilder, 'default');
  if (builders.length && !defaultRepository) throw new StrataError('--default-repository is needed for cluster builders (kp pushes them to <repository>:clusterbuilder-<name>)');
  for (const b of builders) {
    add('ClusterBuilder', b.name, {
      tag: `${defaultRepository}:clusterbuilder-${b.name}`,
      stack: { kind: 'ClusterStack', name: b.clusterStack },
      ...(b.clusterStore ? { store: { kind: 'ClusterStore', name: b.clusterStore } } : {}),
      order: b.order,
    });
  }
  return docs;
}
