import { StrataError } from '../oci/errors.js';
import { Reference } from '../oci/reference.js';

/**
 * The fleet's declared state, in kpack's own resource shapes (apiVersion kpack.io/v1alpha2): what an operator
 * writes, checked and normalised. Pure: parsing YAML text into documents happens at the edge (manifests.ts).
 */

export const API_VERSION = 'kpack.io/v1alpha2';
export const KINDS = ['ClusterStack', 'ClusterStore', 'ClusterBuilder', 'Builder', 'Image'] as const;
export type Kind = (typeof KINDS)[number];
/** Kinds kpack has that make no sense here, or not yet: named in the error so a user knows it is not a typo. */
const KPACK_ONLY = ['ClusterBuildpack', 'Buildpack', 'ClusterLifecycle', 'ClusterExtension', 'Extension', 'SourceResolver', 'Build'];
const NAMESPACED = new Set<Kind>(['Builder', 'Image']);

export interface Meta {
  kind: Kind;
  name: string;
  /** '' for cluster-scoped kinds; 'default' when a namespaced resource gives none. */
  namespace: string;
}

export interface StackSpec {
  id: string;
  buildImage: string;
  runImage: string;
}

export interface StoreSpec {
  /** Buildpackage images. */
  sources: string[];
}

export interface OrderEntry {
  id?: string;
  version?: string;
  image?: string;
  optional?: boolean;
}

export interface BuilderSpec {
  tag: string;
  stack: string;
  store: string;
  order: { group: OrderEntry[] }[];
}

export interface SourceSpec {
  git?: { url: string; revision: string };
  blob?: { url: string; stripComponents: number };
  registry?: { image: string };
  subPath?: string;
}

export interface EnvVar {
  name: string;
  value: string;
}

export interface ImageSpec {
  tag: string;
  builder: { kind: 'Builder' | 'ClusterBuilder'; name: string; namespace: string };
  source: SourceSpec;
  env: EnvVar[];
  cache?: { registry?: { tag: string }; volume?: Record<string, never> };
  successBuildHistoryLimit: number;
  failedBuildHistoryLimit: number;
  imageTaggingStrategy: 'None' | 'BuildNumber';
  additionalTags: string[];
  defaultProcess?: string;
  projectDescriptorPath?: string;
  /** kpack's `spec.build.buildTimeout`, in minutes. */
  buildTimeoutMinutes?: number;
}

export type Resource =
  | { meta: Meta & { kind: 'ClusterStack' }; spec: StackSpec }
  | { meta: Meta & { kind: 'ClusterStore' }; spec: StoreSpec }
  | { meta: Meta & { kind: 'ClusterBuilder' | 'Builder' }; spec: BuilderSpec }
  | { meta: Meta & { kind: 'Image' }; spec: ImageSpec };

/** The resource type of a kind (Builder and ClusterBuilder share one shape). */
export type ResourceOf<K extends Kind> = Resource extends infer R ? (R extends { meta: { kind: infer X } } ? ([Extract<X, K>] extends [never] ? never : R) : never) : never;

/** A resource as parsed, with the warnings it earned (fields accepted and ignored off Kubernetes). */
export interface Parsed {
  resource: Resource;
  warnings: string[];
}

/** `kind/namespace/name`, the key resources are stored and referred to by. */
export function resourceKey(m: Pick<Meta, 'kind' | 'namespace' | 'name'>): string {
  return `${m.kind}/${m.namespace}/${m.name}`;
}

/** How a user names a resource in messages: `Image default/app`, `ClusterStack base`. */
export function describe(m: Pick<Meta, 'kind' | 'namespace' | 'name'>): string {
  return `${m.kind} ${m.namespace ? `${m.namespace}/` : ''}${m.name}`;
}

type Obj = Record<string, unknown>;

const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Reads one YAML document's fields with errors naming the document and the field path. */
class Doc {
  readonly warnings: string[] = [];
  constructor(private readonly where: string) {}

  fail(path: string, problem: string): never {
    throw new StrataError(`${this.where}: ${path}: ${problem}`);
  }

  obj(v: unknown, path: string, required = false): Obj | undefined {
    if (v === undefined || v === null) {
      if (required) this.fail(path, 'is required');
      return undefined;
    }
    if (!isObj(v)) this.fail(path, 'must be a mapping');
    return v;
  }

  str(o: Obj, key: string, path: string, required = false): string | undefined {
    const v = o[key];
    if (v === undefined || v === null || v === '') {
      if (required) this.fail(`${path}.${key}`, 'is required');
      return undefined;
    }
    if (typeof v !== 'string') this.fail(`${path}.${key}`, 'must be a string');
    return v;
  }

  int(o: Obj, key: string, path: string, min: number): number | undefined {
    const v = o[key];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min) this.fail(`${path}.${key}`, `must be a whole number of at least ${min}`);
    return v;
  }

  list(o: Obj, key: string, path: string): unknown[] {
    const v = o[key];
    if (v === undefined || v === null) return [];
    if (!Array.isArray(v)) this.fail(`${path}.${key}`, 'must be a list');
    return v;
  }

  /**
   * Every key of `o` must be known (a typo is an error, not a silently ignored setting); keys kpack has for
   * Kubernetes only are accepted and collected for one warning.
   */
  keys(o: Obj, path: string, known: string[], ignored: string[] = []): void {
    for (const k of Object.keys(o)) {
      if (known.includes(k)) continue;
      if (ignored.includes(k)) {
        this.warnings.push(`${path}.${k}`);
        continue;
      }
      this.fail(`${path}.${k}`, `unknown field (expected ${[...known].join(', ')})`);
    }
  }

  imageRef(v: string, path: string): string {
    try {
      Reference.parse(v);
    } catch (err) {
      this.fail(path, (err as Error).message);
    }
    return v;
  }
}

const NAME_RE = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;

/**
 * One kpack document (already parsed from YAML) into a resource. `where` names the file and document for errors,
 * e.g. `fleet.yaml (document 2)`.
 */
export function parseResource(doc: unknown, where: string): Parsed {
  const d = new Doc(where);
  const top = d.obj(doc, 'document', true)!;
  const apiVersion = d.str(top, 'apiVersion', '', true)!;
  const kindText = d.str(top, 'kind', '', true)!;
  if (!(KINDS as readonly string[]).includes(kindText)) {
    const hint = KPACK_ONLY.includes(kindText) ? `kpack's ${kindText} is not supported by strata fleet` : `unknown kind "${kindText}"`;
    d.fail('kind', `${hint} (supported: ${KINDS.join(', ')})`);
  }
  const kind = kindText as Kind;
  if (apiVersion !== API_VERSION) d.fail('apiVersion', `"${apiVersion}" is not ${API_VERSION}`);
  d.keys(top, '', ['apiVersion', 'kind', 'metadata', 'spec', 'status']);
  const md = d.obj(top.metadata, 'metadata', true)!;
  const name = d.str(md, 'name', 'metadata', true)!;
  if (!NAME_RE.test(name)) d.fail('metadata.name', `"${name}" must be lowercase letters, digits, "-" and "." (as in Kubernetes)`);
  const ns = d.str(md, 'namespace', 'metadata');
  if (ns !== undefined && !NAME_RE.test(ns)) d.fail('metadata.namespace', `"${ns}" must be lowercase letters, digits, "-" and "."`);
  const namespace = NAMESPACED.has(kind) ? (ns ?? 'default') : '';
  const meta = { kind, name, namespace };
  const where2 = `${where} (${describe(meta)})`;
  const dd = new Doc(where2);
  const spec = dd.obj(top.spec, 'spec', true)!;
  let resource: Resource;
  switch (kind) {
    case 'ClusterStack':
      resource = { meta: { ...meta, kind }, spec: parseStack(dd, spec) };
      break;
    case 'ClusterStore':
      resource = { meta: { ...meta, kind }, spec: parseStore(dd, spec) };
      break;
    case 'ClusterBuilder':
    case 'Builder':
      resource = { meta: { ...meta, kind }, spec: parseBuilder(dd, spec, kind) };
      break;
    case 'Image':
      resource = { meta: { ...meta, kind }, spec: parseImage(dd, spec, namespace) };
      break;
  }
  const warnings = dd.warnings.length ? [`${where2}: ignored off Kubernetes: ${dd.warnings.join(', ')}`] : [];
  return { resource, warnings };
}

function parseStack(d: Doc, spec: Obj): StackSpec {
  d.keys(spec, 'spec', ['id', 'buildImage', 'runImage'], ['serviceAccountRef']);
  const image = (key: string): string => {
    const o = d.obj(spec[key], `spec.${key}`, true)!;
    d.keys(o, `spec.${key}`, ['image']);
    return d.imageRef(d.str(o, 'image', `spec.${key}`, true)!, `spec.${key}.image`);
  };
  return { id: d.str(spec, 'id', 'spec', true)!, buildImage: image('buildImage'), runImage: image('runImage') };
}

function parseStore(d: Doc, spec: Obj): StoreSpec {
  d.keys(spec, 'spec', ['sources'], ['serviceAccountRef']);
  const sources = d.list(spec, 'sources', 'spec').map((s, i) => {
    const o = d.obj(s, `spec.sources[${i}]`, true)!;
    d.keys(o, `spec.sources[${i}]`, ['image']);
    return d.imageRef(d.str(o, 'image', `spec.sources[${i}]`, true)!, `spec.sources[${i}].image`);
  });
  if (!sources.length) d.fail('spec.sources', 'needs at least one buildpackage image');
  return { sources };
}

function ref(d: Doc, v: unknown, path: string, kinds: string[]): { kind: string; name: string; namespace?: string } {
  const o = d.obj(v, path, true)!;
  d.keys(o, path, ['kind', 'name', 'namespace', 'apiVersion']);
  const kind = d.str(o, 'kind', path, true)!;
  if (!kinds.includes(kind)) d.fail(`${path}.kind`, `must be ${kinds.join(' or ')}`);
  const namespace = d.str(o, 'namespace', path);
  return { kind, name: d.str(o, 'name', path, true)!, ...(namespace ? { namespace } : {}) };
}

function parseBuilder(d: Doc, spec: Obj, kind: 'Builder' | 'ClusterBuilder'): BuilderSpec {
  d.keys(spec, 'spec', ['tag', 'stack', 'store', 'order'], kind === 'Builder' ? ['serviceAccountName', 'serviceAccount', 'additionalLabels', 'lifecycle'] : ['serviceAccountRef', 'additionalLabels', 'lifecycle']);
  const tag = d.imageRef(d.str(spec, 'tag', 'spec', true)!, 'spec.tag');
  const stack = ref(d, spec.stack, 'spec.stack', ['ClusterStack']).name;
  const store = ref(d, spec.store, 'spec.store', ['ClusterStore']).name;
  const order = d.list(spec, 'order', 'spec').map((g, i) => {
    const go = d.obj(g, `spec.order[${i}]`, true)!;
    d.keys(go, `spec.order[${i}]`, ['group']);
    const group = d.list(go, 'group', `spec.order[${i}]`).map((e, j) => {
      const path = `spec.order[${i}].group[${j}]`;
      const eo = d.obj(e, path, true)!;
      if (eo.kind !== undefined) d.fail(`${path}.kind`, `buildpack references by ${String(eo.kind)} are not supported; name the buildpack by id (from the store) or by image`);
      d.keys(eo, path, ['id', 'version', 'image', 'optional']);
      const id = d.str(eo, 'id', path);
      const image = d.str(eo, 'image', path);
      if (!id && !image) d.fail(path, 'needs an id (a buildpack of the store) or an image');
      const version = d.str(eo, 'version', path);
      const optional = eo.optional === true;
      return { ...(id ? { id } : {}), ...(version ? { version } : {}), ...(image ? { image: d.imageRef(image, `${path}.image`) } : {}), ...(optional ? { optional } : {}) };
    });
    if (!group.length) d.fail(`spec.order[${i}].group`, 'needs at least one buildpack');
    return { group };
  });
  if (!order.length) d.fail('spec.order', 'needs at least one group');
  return { tag, stack, store, order };
}

function parseImage(d: Doc, spec: Obj, namespace: string): ImageSpec {
  d.keys(
    spec,
    'spec',
    ['tag', 'builder', 'source', 'build', 'cache', 'successBuildHistoryLimit', 'failedBuildHistoryLimit', 'imageTaggingStrategy', 'additionalTags', 'defaultProcess', 'projectDescriptorPath'],
    ['serviceAccountName', 'notary', 'cosign'],
  );
  const tag = d.imageRef(d.str(spec, 'tag', 'spec', true)!, 'spec.tag');
  const b = ref(d, spec.builder, 'spec.builder', ['Builder', 'ClusterBuilder']);
  const builder = { kind: b.kind as 'Builder' | 'ClusterBuilder', name: b.name, namespace: b.kind === 'Builder' ? (b.namespace ?? namespace) : '' };
  const src = d.obj(spec.source, 'spec.source', true)!;
  d.keys(src, 'spec.source', ['git', 'blob', 'registry', 'subPath']);
  const source: SourceSpec = {};
  const given = ['git', 'blob', 'registry'].filter((k) => src[k] !== undefined);
  if (given.length !== 1) d.fail('spec.source', `needs exactly one of git, blob or registry${given.length ? ` (has ${given.join(', ')})` : ''}`);
  if (src.git !== undefined) {
    const g = d.obj(src.git, 'spec.source.git', true)!;
    d.keys(g, 'spec.source.git', ['url', 'revision'], ['initializeSubmodules']);
    source.git = { url: d.str(g, 'url', 'spec.source.git', true)!, revision: d.str(g, 'revision', 'spec.source.git', true)! };
  }
  if (src.blob !== undefined) {
    const bl = d.obj(src.blob, 'spec.source.blob', true)!;
    d.keys(bl, 'spec.source.blob', ['url', 'stripComponents'], ['auth']);
    const url = d.str(bl, 'url', 'spec.source.blob', true)!;
    if (!/^(https?|file):\/\//.test(url)) d.fail('spec.source.blob.url', `"${url}" must be an http(s):// or file:// URL`);
    source.blob = { url, stripComponents: d.int(bl, 'stripComponents', 'spec.source.blob', 0) ?? 0 };
  }
  if (src.registry !== undefined) {
    const r = d.obj(src.registry, 'spec.source.registry', true)!;
    d.keys(r, 'spec.source.registry', ['image'], ['imagePullSecrets']);
    source.registry = { image: d.imageRef(d.str(r, 'image', 'spec.source.registry', true)!, 'spec.source.registry.image') };
  }
  const subPath = d.str(src, 'subPath', 'spec.source');
  if (subPath !== undefined) {
    if (subPath.startsWith('/') || subPath.split('/').includes('..')) d.fail('spec.source.subPath', `"${subPath}" must be a path inside the source, without ".."`);
    source.subPath = subPath.replace(/\/+$/, '');
  }
  const build = d.obj(spec.build, 'spec.build') ?? {};
  d.keys(build, 'spec.build', ['env', 'buildTimeout'], ['services', 'cnbBindings', 'resources', 'tolerations', 'nodeSelector', 'affinity', 'runtimeClassName', 'schedulerName', 'creationTime']);
  const env = d.list(build, 'env', 'spec.build').map((e, i) => {
    const path = `spec.build.env[${i}]`;
    const eo = d.obj(e, path, true)!;
    d.keys(eo, path, ['name', 'value'], ['valueFrom']);
    const name = d.str(eo, 'name', path, true)!;
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) d.fail(`${path}.name`, `"${name}" is not a variable name`);
    const value = eo.value === undefined || eo.value === null ? '' : eo.value;
    if (typeof value !== 'string') d.fail(`${path}.value`, 'must be a string (quote numbers and booleans in YAML)');
    return { name, value };
  });
  const buildTimeoutMinutes = d.int(build, 'buildTimeout', 'spec.build', 1);
  let cache: ImageSpec['cache'];
  const c = d.obj(spec.cache, 'spec.cache');
  if (c) {
    d.keys(c, 'spec.cache', ['registry', 'volume']);
    if (c.registry !== undefined) {
      const r = d.obj(c.registry, 'spec.cache.registry', true)!;
      d.keys(r, 'spec.cache.registry', ['tag']);
      cache = { registry: { tag: d.imageRef(d.str(r, 'tag', 'spec.cache.registry', true)!, 'spec.cache.registry.tag') } };
    } else if (c.volume !== undefined) {
      const v = d.obj(c.volume, 'spec.cache.volume') ?? {};
      d.keys(v, 'spec.cache.volume', [], ['size', 'storageClassName']);
      cache = { volume: {} };
    }
  }
  const strategy = d.str(spec, 'imageTaggingStrategy', 'spec') ?? 'BuildNumber';
  if (strategy !== 'None' && strategy !== 'BuildNumber') d.fail('spec.imageTaggingStrategy', `"${strategy}" is not None or BuildNumber`);
  const additionalTags = d.list(spec, 'additionalTags', 'spec').map((t, i) => {
    if (typeof t !== 'string') d.fail(`spec.additionalTags[${i}]`, 'must be a string');
    return d.imageRef(t, `spec.additionalTags[${i}]`);
  });
  const defaultProcess = d.str(spec, 'defaultProcess', 'spec');
  const projectDescriptorPath = d.str(spec, 'projectDescriptorPath', 'spec');
  return {
    tag,
    builder,
    source,
    env,
    ...(cache ? { cache } : {}),
    successBuildHistoryLimit: d.int(spec, 'successBuildHistoryLimit', 'spec', 1) ?? 10,
    failedBuildHistoryLimit: d.int(spec, 'failedBuildHistoryLimit', 'spec', 1) ?? 10,
    imageTaggingStrategy: strategy,
    additionalTags,
    ...(defaultProcess ? { defaultProcess } : {}),
    ...(projectDescriptorPath ? { projectDescriptorPath } : {}),
    ...(buildTimeoutMinutes ? { buildTimeoutMinutes } : {}),
  };
}

/**
 * Checks that a set of resources (what is stored plus what is being applied) refer only to each other: an Image's
 * builder, a builder's stack and store. Returns one line per dangling reference.
 */
export function danglingReferences(all: Resource[]): string[] {
  const keys = new Set(all.map((r) => resourceKey(r.meta)));
  const out: string[] = [];
  for (const r of all) {
    if (r.meta.kind === 'Builder' || r.meta.kind === 'ClusterBuilder') {
      const s = r.spec as BuilderSpec;
      if (!keys.has(`ClusterStack//${s.stack}`)) out.push(`${describe(r.meta)}: spec.stack names ClusterStack ${s.stack}, which is not declared`);
      if (!keys.has(`ClusterStore//${s.store}`)) out.push(`${describe(r.meta)}: spec.store names ClusterStore ${s.store}, which is not declared`);
    } else if (r.meta.kind === 'Image') {
      const b = (r.spec as ImageSpec).builder;
      if (!keys.has(resourceKey(b))) out.push(`${describe(r.meta)}: spec.builder names ${describe(b)}, which is not declared`);
    }
  }
  return out;
}

/** The tags one build of an image is pushed under: its tag, `tag-b<N>` (kpack's BuildNumber strategy), extras. */
export function buildTags(spec: ImageSpec, buildNumber: number): string[] {
  const tags = [spec.tag];
  if (spec.imageTaggingStrategy === 'BuildNumber') {
    const ref = Reference.parse(spec.tag);
    const suffix = ref.tag && ref.tag !== 'latest' ? `${ref.tag}-b${buildNumber}` : `b${buildNumber}`;
    tags.push(`${ref.name}:${suffix}`);
  }
  return [...tags, ...spec.additionalTags];
}
