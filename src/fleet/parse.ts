import { StrataError } from '../oci/errors.js';
import { Reference } from '../oci/reference.js';
import { envEntryTooBig } from '../lifecycle/env.js';
import {
  DEFAULT_LIFECYCLE,
  KINDS,
  KPACK_API,
  NAMESPACED,
  describe,
  type AccountRef,
  type Binding,
  type BuilderSpec,
  type BuildpackSpec,
  type BuildSpec,
  type ConfigMapSpec,
  type EnvVar,
  type ImageSpec,
  type Kind,
  type KeyRef,
  type LifecycleSpec,
  type OrderEntry,
  type Parsed,
  type Resource,
  type SecretSpec,
  type ServiceAccountSpec,
  type SourceSpec,
  type StackSpec,
  type StoreSpec,
} from './resources.js';

/**
 * One document (already parsed from YAML or JSON) into a checked, normalised resource. This is the one validator:
 * the CLI's files and the HTTP API's bodies both come through here, so nothing reaches the store that the CLI would
 * refuse. kpack.io/v1alpha1 documents are converted as kpack converts them. Errors are one line naming the document
 * and the field; fields that mean something only on Kubernetes are accepted with one warning per resource.
 */

const V1ALPHA1 = 'kpack.io/v1alpha1';
const V1ALPHA1_KINDS = new Set<Kind>(['ClusterStack', 'ClusterStore', 'ClusterBuilder', 'Builder', 'Image', 'Build']);
const CORE = new Set<Kind>(['Secret', 'ServiceAccount', 'ConfigMap']);

type Obj = Record<string, unknown>;

const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Kubernetes object names (DNS-1123 subdomains) and namespaces (DNS-1123 labels). */
export const NAME_RE = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;
export const NAMESPACE_RE = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
/** Keys of a Secret or ConfigMap: they become file names in bindings, so one safe path component each. */
const DATA_KEY_RE = /^(?!\.{1,2}$)[-._a-zA-Z0-9]{1,253}$/;
const ENV_NAME_RE = /^[A-Za-z_][A-Za-z0-9_]*$/;
export function checkName(name: string, what: string): void {
  if (!NAME_RE.test(name) || name.includes('..')) throw new StrataError(`${what} "${name}" must be lowercase letters, digits, "-" and "." (as in Kubernetes)`);
}

export function checkNamespace(ns: string, what: string): void {
  if (!NAMESPACE_RE.test(ns)) throw new StrataError(`${what} "${ns}" must be lowercase letters, digits and "-" (as in Kubernetes)`);
}

/** Reads one document's fields with errors naming the document and the field path. */
class Doc {
  readonly warnings: string[] = [];
  constructor(readonly where: string) {}

  fail(path: string, problem: string): never {
    throw new StrataError(`${this.where}: ${path ? `${path}: ` : ''}${problem}`);
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
    const at = path ? `${path}.${key}` : key;
    if (v === undefined || v === null || v === '') {
      if (required) this.fail(at, 'is required');
      return undefined;
    }
    if (typeof v !== 'string') this.fail(at, 'must be a string');
    if (v.length > 4096) this.fail(at, 'is longer than 4096 characters');
    return v;
  }

  int(o: Obj, key: string, path: string, min: number): number | undefined {
    const v = o[key];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > 1e9) this.fail(`${path}.${key}`, `must be a whole number of at least ${min}`);
    return v;
  }

  bool(o: Obj, key: string, path: string): boolean | undefined {
    const v = o[key];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'boolean') this.fail(`${path}.${key}`, 'must be true or false');
    return v;
  }

  list(o: Obj, key: string, path: string): unknown[] {
    const v = o[key];
    if (v === undefined || v === null) return [];
    if (!Array.isArray(v)) this.fail(`${path}.${key}`, 'must be a list');
    return v;
  }

  /** A map of strings (labels, annotations, ConfigMap data). */
  strings(v: unknown, path: string): Record<string, string> {
    const o = this.obj(v, path) ?? {};
    const out: Record<string, string> = {};
    for (const [k, x] of Object.entries(o)) {
      if (typeof x !== 'string') this.fail(`${path}.${k}`, 'must be a string (quote numbers and booleans in YAML)');
      out[k] = x;
    }
    return out;
  }

  /**
   * Every key of `o` must be known (a typo is an error, not a silently ignored setting); keys kpack has for
   * Kubernetes only are accepted and collected for one warning.
   */
  keys(o: Obj, path: string, known: string[], ignored: string[] = []): void {
    for (const k of Object.keys(o)) {
      if (known.includes(k)) continue;
      const at = path ? `${path}.${k}` : k;
      if (ignored.includes(k)) {
        if (o[k] !== undefined && o[k] !== null) this.warnings.push(at);
        continue;
      }
      this.fail(at, `unknown field (expected ${[...known].join(', ')})`);
    }
  }

  /** A registry reference (never `oci:` or `docker-daemon:`: the fleet writes only to registries). */
  imageRef(v: string, path: string): string {
    try {
      Reference.parse(v);
    } catch (err) {
      this.fail(path, (err as Error).message);
    }
    return v;
  }

  name(v: string, path: string): string {
    if (!NAME_RE.test(v) || v.includes('..')) this.fail(path, `"${v}" must be lowercase letters, digits, "-" and "." (as in Kubernetes)`);
    return v;
  }
}

/**
 * One document into a resource. `where` names the file and document for errors, e.g. `fleet.yaml (document 2)`.
 */
export function parseResource(doc: unknown, where: string): Parsed {
  const d = new Doc(where);
  const top = d.obj(doc, 'document', true)!;
  const apiVersion = d.str(top, 'apiVersion', '', true)!;
  const kindText = d.str(top, 'kind', '', true)!;
  if (!(KINDS as readonly string[]).includes(kindText)) d.fail('kind', `unknown kind "${kindText}" (strata fleet takes ${KINDS.join(', ')})`);
  const kind = kindText as Kind;
  const legacy = apiVersion === V1ALPHA1 && V1ALPHA1_KINDS.has(kind);
  const expected = CORE.has(kind) ? 'v1' : KPACK_API;
  if (apiVersion !== expected && !legacy) d.fail('apiVersion', `"${apiVersion}" is not ${expected}${V1ALPHA1_KINDS.has(kind) ? ` or ${V1ALPHA1}` : ''}`);
  const core = CORE.has(kind);
  d.keys(top, '', core ? ['apiVersion', 'kind', 'metadata', 'type', 'data', 'stringData', 'secrets', 'imagePullSecrets'] : ['apiVersion', 'kind', 'metadata', 'spec', 'status'], core ? ['immutable', 'binaryData', 'automountServiceAccountToken'] : []);
  const md = d.obj(top.metadata, 'metadata', true)!;
  d.keys(md, 'metadata', ['name', 'namespace', 'annotations', 'labels'], ['uid', 'resourceVersion', 'generation', 'creationTimestamp', 'managedFields', 'finalizers', 'ownerReferences', 'selfLink', 'deletionTimestamp', 'deletionGracePeriodSeconds', 'generateName']);
  const name = d.name(d.str(md, 'name', 'metadata', true)!, 'metadata.name');
  const ns = d.str(md, 'namespace', 'metadata');
  if (ns !== undefined && !NAMESPACE_RE.test(ns)) d.fail('metadata.namespace', `"${ns}" must be lowercase letters, digits and "-" (as in Kubernetes)`);
  const namespace = NAMESPACED.has(kind) ? (ns ?? 'default') : '';
  const annotations = d.strings(md.annotations, 'metadata.annotations');
  d.strings(md.labels, 'metadata.labels');
  const meta = { kind, name, namespace };
  const dd = new Doc(`${where} (${describe(meta)})`);
  let spec: Resource['spec'];
  if (core) {
    spec = kind === 'Secret' ? parseSecret(dd, top, annotations) : kind === 'ServiceAccount' ? parseServiceAccount(dd, top) : parseConfigMap(dd, top);
  } else {
    const s = dd.obj(top.spec, 'spec', true)!;
    switch (kind) {
      case 'ClusterStack':
        spec = parseStack(dd, s, legacy);
        break;
      case 'ClusterStore':
        spec = parseStore(dd, s, legacy);
        break;
      case 'ClusterBuildpack':
      case 'Buildpack':
        spec = parseBuildpack(dd, s, kind, namespace);
        break;
      case 'ClusterLifecycle':
        spec = parseLifecycle(dd, s);
        break;
      case 'ClusterBuilder':
      case 'Builder':
        spec = parseBuilder(dd, s, kind, namespace, legacy);
        break;
      case 'Image':
        spec = parseImage(dd, s, namespace, legacy, annotations);
        break;
      default:
        spec = parseBuild(dd, s, legacy);
    }
  }
  const warnings = dd.warnings.length ? [`${dd.where}: ignored off Kubernetes: ${dd.warnings.join(', ')}`] : [];
  return { resource: { meta, spec } as Resource, warnings, where: dd.where };
}

/** A cluster-scoped resource's `serviceAccountRef`: kpack requires both name and namespace. */
function accountRef(d: Doc, v: unknown, path: string): AccountRef | undefined {
  const o = d.obj(v, path);
  if (!o) return undefined;
  d.keys(o, path, ['name', 'namespace'], ['kind', 'apiVersion', 'uid', 'resourceVersion', 'fieldPath']);
  return { name: d.name(d.str(o, 'name', path, true)!, `${path}.name`), namespace: d.str(o, 'namespace', path, true)! };
}

function image(d: Doc, spec: Obj, key: string, path = 'spec'): string {
  const o = d.obj(spec[key], `${path}.${key}`, true)!;
  d.keys(o, `${path}.${key}`, ['image']);
  return d.imageRef(d.str(o, 'image', `${path}.${key}`, true)!, `${path}.${key}.image`);
}

function parseStack(d: Doc, spec: Obj, legacy: boolean): StackSpec {
  d.keys(spec, 'spec', ['id', 'buildImage', 'runImage', ...(legacy ? [] : ['serviceAccountRef'])]);
  const serviceAccount = accountRef(d, spec.serviceAccountRef, 'spec.serviceAccountRef');
  return { id: d.str(spec, 'id', 'spec', true)!, buildImage: image(d, spec, 'buildImage'), runImage: image(d, spec, 'runImage'), ...(serviceAccount ? { serviceAccount } : {}) };
}

function parseStore(d: Doc, spec: Obj, legacy: boolean): StoreSpec {
  d.keys(spec, 'spec', ['sources', ...(legacy ? [] : ['serviceAccountRef'])]);
  const sources = d.list(spec, 'sources', 'spec').map((s, i) => {
    const o = d.obj(s, `spec.sources[${i}]`, true)!;
    d.keys(o, `spec.sources[${i}]`, ['image']);
    return d.imageRef(d.str(o, 'image', `spec.sources[${i}]`, true)!, `spec.sources[${i}].image`);
  });
  if (!sources.length) d.fail('spec.sources', 'needs at least one buildpackage image');
  const serviceAccount = accountRef(d, spec.serviceAccountRef, 'spec.serviceAccountRef');
  return { sources, ...(serviceAccount ? { serviceAccount } : {}) };
}

function parseBuildpack(d: Doc, spec: Obj, kind: 'ClusterBuildpack' | 'Buildpack', namespace: string): BuildpackSpec {
  d.keys(spec, 'spec', ['image', kind === 'Buildpack' ? 'serviceAccountName' : 'serviceAccountRef']);
  const img = d.imageRef(d.str(spec, 'image', 'spec', true)!, 'spec.image');
  const sa = kind === 'Buildpack' ? d.str(spec, 'serviceAccountName', 'spec') : undefined;
  const serviceAccount = kind === 'Buildpack' ? (sa ? { namespace, name: d.name(sa, 'spec.serviceAccountName') } : undefined) : accountRef(d, spec.serviceAccountRef, 'spec.serviceAccountRef');
  return { image: img, ...(serviceAccount ? { serviceAccount } : {}) };
}

function parseLifecycle(d: Doc, spec: Obj): LifecycleSpec {
  d.keys(spec, 'spec', ['image', 'serviceAccountRef']);
  const serviceAccount = accountRef(d, spec.serviceAccountRef, 'spec.serviceAccountRef');
  return { image: d.imageRef(d.str(spec, 'image', 'spec', true)!, 'spec.image'), ...(serviceAccount ? { serviceAccount } : {}) };
}

function ref(d: Doc, v: unknown, path: string, kinds: string[], required = true): { kind: string; name: string; namespace?: string } | undefined {
  const o = d.obj(v, path, required);
  if (!o) return undefined;
  d.keys(o, path, ['kind', 'name', 'namespace', 'apiVersion']);
  const kind = d.str(o, 'kind', path) ?? kinds[0]!;
  if (!kinds.includes(kind)) d.fail(`${path}.kind`, `must be ${kinds.join(' or ')}`);
  const namespace = d.str(o, 'namespace', path);
  return { kind, name: d.name(d.str(o, 'name', path, true)!, `${path}.name`), ...(namespace ? { namespace } : {}) };
}

function parseOrder(d: Doc, spec: Obj, kind: 'Builder' | 'ClusterBuilder'): BuilderSpec['order'] {
  const kinds = kind === 'Builder' ? ['Buildpack', 'ClusterBuildpack'] : ['ClusterBuildpack'];
  const order = d.list(spec, 'order', 'spec').map((g, i) => {
    const go = d.obj(g, `spec.order[${i}]`, true)!;
    d.keys(go, `spec.order[${i}]`, ['group']);
    const group = d.list(go, 'group', `spec.order[${i}]`).map((e, j): OrderEntry => {
      const path = `spec.order[${i}].group[${j}]`;
      const eo = d.obj(e, path, true)!;
      d.keys(eo, path, ['id', 'version', 'image', 'optional', 'kind', 'name', 'apiVersion', 'namespace']);
      const id = d.str(eo, 'id', path);
      const img = d.str(eo, 'image', path);
      const refKind = d.str(eo, 'kind', path);
      const refName = d.str(eo, 'name', path);
      if (refKind !== undefined && !kinds.includes(refKind)) d.fail(`${path}.kind`, `"${refKind}" must be ${kinds.join(' or ')}${kind === 'ClusterBuilder' && refKind === 'Buildpack' ? ' (a ClusterBuilder cannot use a namespaced Buildpack)' : ''}`);
      if (refKind && !refName) d.fail(`${path}.name`, `is required with kind ${refKind}`);
      if (refName && !refKind) d.fail(`${path}.kind`, 'is required with name (Buildpack or ClusterBuildpack)');
      if (!id && !img && !refKind) d.fail(path, 'needs an id (a buildpack of the store), a kind and name (a Buildpack resource), or an image');
      const version = d.str(eo, 'version', path);
      const optional = d.bool(eo, 'optional', path) ?? false;
      return {
        ...(id ? { id } : {}),
        ...(version ? { version } : {}),
        ...(img ? { image: d.imageRef(img, `${path}.image`) } : {}),
        ...(optional ? { optional } : {}),
        ...(refKind ? { kind: refKind as OrderEntry['kind'], name: d.name(refName!, `${path}.name`) } : {}),
      };
    });
    if (!group.length) d.fail(`spec.order[${i}].group`, 'needs at least one buildpack');
    return { group };
  });
  if (!order.length) d.fail('spec.order', 'needs at least one group');
  return order;
}

function parseBuilder(d: Doc, spec: Obj, kind: 'Builder' | 'ClusterBuilder', namespace: string, legacy: boolean): BuilderSpec {
  const accountKeys = kind === 'Builder' ? ['serviceAccountName', 'serviceAccount'] : ['serviceAccountRef'];
  d.keys(spec, 'spec', ['tag', 'stack', 'store', 'order', ...accountKeys, ...(legacy ? [] : ['lifecycle', 'additionalLabels'])]);
  const tag = d.imageRef(d.str(spec, 'tag', 'spec', true)!, 'spec.tag');
  const stack = ref(d, spec.stack, 'spec.stack', ['ClusterStack'])!.name;
  const store = ref(d, spec.store, 'spec.store', ['ClusterStore'], false)?.name;
  const lifecycle = ref(d, spec.lifecycle, 'spec.lifecycle', ['ClusterLifecycle'], false)?.name ?? DEFAULT_LIFECYCLE;
  let serviceAccount: AccountRef | undefined;
  if (kind === 'Builder') {
    const sa = d.str(spec, 'serviceAccountName', 'spec') ?? d.str(spec, 'serviceAccount', 'spec');
    if (sa) serviceAccount = { namespace, name: d.name(sa, 'spec.serviceAccountName') };
  } else serviceAccount = accountRef(d, spec.serviceAccountRef, 'spec.serviceAccountRef');
  return { tag, stack, ...(store ? { store } : {}), lifecycle, order: parseOrder(d, spec, kind), additionalLabels: d.strings(spec.additionalLabels, 'spec.additionalLabels'), ...(serviceAccount ? { serviceAccount } : {}) };
}

/** A git URL git may fetch: no remote helpers (`ext::…` runs commands), no options in disguise. */
function gitUrl(d: Doc, url: string, path: string): string {
  const ok = /^(https?|ssh|git|file):\/\/[^\s]+$/.test(url) || /^[\w.-]+@[\w.-]+:[^\s]*$/.test(url) || /^\/[^\s]*$/.test(url);
  if (!ok || url.includes('::')) d.fail(path, `"${url}" is not a git URL (https://, ssh://, git://, file://, user@host:path or an absolute path)`);
  return url;
}

function parseSource(d: Doc, spec: Obj): SourceSpec {
  const src = d.obj(spec.source, 'spec.source', true)!;
  d.keys(src, 'spec.source', ['git', 'blob', 'registry', 'subPath']);
  const source: SourceSpec = {};
  const given = ['git', 'blob', 'registry'].filter((k) => src[k] !== undefined && src[k] !== null);
  if (given.length !== 1) d.fail('spec.source', `needs exactly one of git, blob or registry${given.length ? ` (has ${given.join(', ')})` : ''}`);
  if (src.git !== undefined && src.git !== null) {
    const g = d.obj(src.git, 'spec.source.git', true)!;
    d.keys(g, 'spec.source.git', ['url', 'revision', 'initializeSubmodules']);
    const revision = d.str(g, 'revision', 'spec.source.git', true)!;
    if (revision.startsWith('-') || /\s/.test(revision)) d.fail('spec.source.git.revision', `"${revision}" is not a branch, tag or commit`);
    const submodules = d.bool(g, 'initializeSubmodules', 'spec.source.git') ?? false;
    source.git = { url: gitUrl(d, d.str(g, 'url', 'spec.source.git', true)!, 'spec.source.git.url'), revision, ...(submodules ? { initializeSubmodules: true } : {}) };
  }
  if (src.blob !== undefined && src.blob !== null) {
    const bl = d.obj(src.blob, 'spec.source.blob', true)!;
    d.keys(bl, 'spec.source.blob', ['url', 'stripComponents', 'auth']);
    const url = d.str(bl, 'url', 'spec.source.blob', true)!;
    if (!/^(https?|file):\/\/\S+$/.test(url)) d.fail('spec.source.blob.url', `"${url}" must be an http(s):// or file:// URL`);
    source.blob = { url, stripComponents: d.int(bl, 'stripComponents', 'spec.source.blob', 0) ?? 0 };
  }
  if (src.registry !== undefined && src.registry !== null) {
    const r = d.obj(src.registry, 'spec.source.registry', true)!;
    d.keys(r, 'spec.source.registry', ['image', 'imagePullSecrets']);
    const pull = d.list(r, 'imagePullSecrets', 'spec.source.registry').map((s, i) => d.name(d.str(d.obj(s, `spec.source.registry.imagePullSecrets[${i}]`, true)!, 'name', `spec.source.registry.imagePullSecrets[${i}]`, true)!, `spec.source.registry.imagePullSecrets[${i}].name`));
    source.registry = { image: d.imageRef(d.str(r, 'image', 'spec.source.registry', true)!, 'spec.source.registry.image'), ...(pull.length ? { imagePullSecrets: pull } : {}) };
  }
  const subPath = d.str(src, 'subPath', 'spec.source');
  if (subPath !== undefined) source.subPath = relativePath(d, subPath, 'spec.source.subPath');
  return source;
}

/** A path inside the source: never absolute, never `..`, so a build cannot be pointed at a host file. */
function relativePath(d: Doc, p: string, path: string): string {
  if (p.startsWith('/') || p.split('/').includes('..') || p.includes('\0')) d.fail(path, `"${p}" must be a path inside the source, without ".."`);
  return p.replace(/\/+$/, '');
}

function keyRef(d: Doc, v: unknown, path: string): KeyRef {
  const o = d.obj(v, path, true)!;
  d.keys(o, path, ['name', 'key', 'optional']);
  const key = d.str(o, 'key', path, true)!;
  if (!DATA_KEY_RE.test(key)) d.fail(`${path}.key`, `"${key}" is not a valid key`);
  const optional = d.bool(o, 'optional', path);
  return { name: d.name(d.str(o, 'name', path, true)!, `${path}.name`), key, ...(optional ? { optional } : {}) };
}

function parseEnv(d: Doc, list: unknown[], at: string): EnvVar[] {
  const seen = new Set<string>();
  return list.map((e, i): EnvVar => {
    const path = `${at}[${i}]`;
    const eo = d.obj(e, path, true)!;
    d.keys(eo, path, ['name', 'value', 'valueFrom']);
    const name = d.str(eo, 'name', path, true)!;
    if (!ENV_NAME_RE.test(name)) d.fail(`${path}.name`, `"${name}" is not a variable name`);
    if (seen.has(name)) d.fail(`${path}.name`, `${name} is set twice`);
    seen.add(name);
    if (eo.valueFrom !== undefined && eo.valueFrom !== null) {
      if (eo.value !== undefined && eo.value !== null) d.fail(path, 'has both value and valueFrom');
      const vf = d.obj(eo.valueFrom, `${path}.valueFrom`, true)!;
      const from = Object.keys(vf);
      if (from.length !== 1 || (from[0] !== 'secretKeyRef' && from[0] !== 'configMapKeyRef')) {
        d.fail(`${path}.valueFrom`, `needs exactly one of secretKeyRef or configMapKeyRef${from.some((f) => f === 'fieldRef' || f === 'resourceFieldRef') ? ' (fieldRef and resourceFieldRef describe a pod, and strata runs none)' : ''}`);
      }
      const r = keyRef(d, vf[from[0]!], `${path}.valueFrom.${from[0]}`);
      return { name, valueFrom: from[0] === 'secretKeyRef' ? { secretKeyRef: r } : { configMapKeyRef: r } };
    }
    const value = eo.value === undefined || eo.value === null ? '' : eo.value;
    if (typeof value !== 'string') d.fail(`${path}.value`, 'must be a string (quote numbers and booleans in YAML)');
    // A value is passed to the build as it is, newlines included; its size is what a process environment takes.
    if (envEntryTooBig(name, Buffer.byteLength(value))) d.fail(`${path}.value`, 'is longer than 128 KiB');
    if (value.includes('\0')) d.fail(`${path}.value`, 'holds a NUL character');
    return { name, value };
  });
}

/** kpack's `services` (Secrets as bindings) and the older CNB bindings (a metadata ConfigMap and a Secret). */
function parseBindings(d: Doc, build: Obj, services: string | undefined, legacyKey: string | undefined, path: string): Binding[] {
  const out: Binding[] = [];
  if (services) {
    for (const [i, s] of d.list(build, services, path).entries()) {
      const p = `${path}.${services}[${i}]`;
      const r = ref(d, s, p, ['Secret'])!;
      out.push({ name: r.name, secret: r.name });
    }
  }
  if (legacyKey) {
    for (const [i, s] of d.list(build, legacyKey, path).entries()) {
      const p = `${path}.${legacyKey}[${i}]`;
      const o = d.obj(s, p, true)!;
      d.keys(o, p, ['name', 'metadataRef', 'secretRef']);
      const local = (k: string) => {
        const lo = d.obj(o[k], `${p}.${k}`);
        if (!lo) return undefined;
        d.keys(lo, `${p}.${k}`, ['name']);
        return d.name(d.str(lo, 'name', `${p}.${k}`, true)!, `${p}.${k}.name`);
      };
      const metadata = local('metadataRef');
      if (!metadata) d.fail(`${p}.metadataRef`, 'is required (a ConfigMap with the binding\'s kind and provider)');
      const secret = local('secretRef');
      out.push({ name: d.name(d.str(o, 'name', p, true)!, `${p}.name`), metadata, ...(secret ? { secret } : {}) });
    }
  }
  const names = new Set<string>();
  for (const b of out) {
    if (names.has(b.name)) d.fail(path, `binding ${b.name} is declared twice`);
    names.add(b.name);
  }
  return out;
}

/** kpack's `creationTime`: `now`, or seconds since the epoch. */
function creationTime(d: Doc, build: Obj, path: string): string | undefined {
  const v = d.str(build, 'creationTime', path);
  if (v !== undefined && v !== 'now' && !/^\d{1,12}$/.test(v)) d.fail(`${path}.creationTime`, `"${v}" must be "now" or seconds since the epoch`);
  return v;
}

const POD_FIELDS = ['resources', 'tolerations', 'nodeSelector', 'affinity', 'runtimeClassName', 'schedulerName', 'priorityClassName'];

function parseImage(d: Doc, spec: Obj, namespace: string, legacy: boolean, annotations: Record<string, string>): ImageSpec {
  if (legacy) {
    d.keys(spec, 'spec', ['tag', 'builder', 'serviceAccount', 'source', 'cacheSize', 'failedBuildHistoryLimit', 'successBuildHistoryLimit', 'imageTaggingStrategy', 'build'], ['notary']);
  } else {
    d.keys(spec, 'spec', ['tag', 'builder', 'serviceAccountName', 'source', 'build', 'cache', 'successBuildHistoryLimit', 'failedBuildHistoryLimit', 'imageTaggingStrategy', 'additionalTags', 'defaultProcess', 'projectDescriptorPath', 'cosign'], ['notary']);
  }
  const tag = d.imageRef(d.str(spec, 'tag', 'spec', true)!, 'spec.tag');
  const b = ref(d, spec.builder, 'spec.builder', ['ClusterBuilder', 'Builder'])!;
  const builder = { kind: b.kind as 'Builder' | 'ClusterBuilder', name: b.name, namespace: b.kind === 'Builder' ? (b.namespace ?? namespace) : '' };
  const sa = d.str(spec, legacy ? 'serviceAccount' : 'serviceAccountName', 'spec');
  const serviceAccountName = sa ? d.name(sa, `spec.${legacy ? 'serviceAccount' : 'serviceAccountName'}`) : 'default';
  const source = parseSource(d, spec);
  const build = d.obj(spec.build, 'spec.build') ?? {};
  if (legacy) d.keys(build, 'spec.build', ['env', 'bindings'], ['resources']);
  else d.keys(build, 'spec.build', ['env', 'buildTimeout', 'services', 'cnbBindings', 'creationTime'], POD_FIELDS);
  const env = parseEnv(d, d.list(build, 'env', 'spec.build'), 'spec.build.env');
  const bindings = parseBindings(d, build, legacy ? undefined : 'services', legacy ? 'bindings' : 'cnbBindings', 'spec.build');
  let buildTimeoutMinutes = d.int(build, 'buildTimeout', 'spec.build', 1);
  let cache: ImageSpec['cache'];
  if (legacy) {
    // v1alpha1 had only a volume cache (cacheSize) and kept newer fields in annotations when converted down.
    if (spec.cacheSize !== undefined && spec.cacheSize !== null) cache = { volume: {} };
    const reg = annotations['kpack.io/cache.registry.tag'];
    if (reg) cache = { registry: { tag: d.imageRef(reg, 'metadata.annotations.kpack.io/cache.registry.tag') } };
    const t = annotations['kpack.io/buildTimeout'];
    if (t) buildTimeoutMinutes = /^\d+$/.test(t) && Number(t) > 0 ? Number(t) : d.fail('metadata.annotations.kpack.io/buildTimeout', `"${t}" is not a number of minutes`);
  } else {
    const c = d.obj(spec.cache, 'spec.cache');
    if (c) {
      d.keys(c, 'spec.cache', ['registry', 'volume']);
      if (c.registry !== undefined && c.registry !== null) {
        const r = d.obj(c.registry, 'spec.cache.registry', true)!;
        d.keys(r, 'spec.cache.registry', ['tag']);
        cache = { registry: { tag: d.imageRef(d.str(r, 'tag', 'spec.cache.registry', true)!, 'spec.cache.registry.tag') } };
      } else if (c.volume !== undefined) {
        const v = d.obj(c.volume, 'spec.cache.volume') ?? {};
        d.keys(v, 'spec.cache.volume', [], ['size', 'storageClassName', 'request']);
        cache = { volume: {} };
      }
    }
  }
  const strategy = d.str(spec, 'imageTaggingStrategy', 'spec') ?? 'BuildNumber';
  if (strategy !== 'None' && strategy !== 'BuildNumber') d.fail('spec.imageTaggingStrategy', `"${strategy}" is not None or BuildNumber`);
  const additionalTags = d.list(spec, 'additionalTags', 'spec').map((t, i) => {
    if (typeof t !== 'string') d.fail(`spec.additionalTags[${i}]`, 'must be a string');
    return d.imageRef(t, `spec.additionalTags[${i}]`);
  });
  const defaultProcess = d.str(spec, 'defaultProcess', 'spec') ?? (legacy ? annotations['kpack.io/defaultProcess'] : undefined);
  if (defaultProcess !== undefined && !/^[A-Za-z0-9_.-]+$/.test(defaultProcess)) d.fail('spec.defaultProcess', `"${defaultProcess}" is not a process type`);
  const descriptor = d.str(spec, 'projectDescriptorPath', 'spec') ?? (legacy ? annotations['kpack.io/projectDescriptorPath'] : undefined);
  const projectDescriptorPath = descriptor === undefined ? undefined : relativePath(d, descriptor, 'spec.projectDescriptorPath');
  const cosign = d.obj(spec.cosign, 'spec.cosign');
  let cosignAnnotations: Record<string, string> | undefined;
  if (cosign) {
    d.keys(cosign, 'spec.cosign', ['annotations']);
    cosignAnnotations = {};
    for (const [i, a] of d.list(cosign, 'annotations', 'spec.cosign').entries()) {
      const ao = d.obj(a, `spec.cosign.annotations[${i}]`, true)!;
      d.keys(ao, `spec.cosign.annotations[${i}]`, ['name', 'value']);
      cosignAnnotations[d.str(ao, 'name', `spec.cosign.annotations[${i}]`, true)!] = d.str(ao, 'value', `spec.cosign.annotations[${i}]`) ?? '';
    }
  }
  const created = creationTime(d, build, 'spec.build');
  return {
    tag,
    builder,
    serviceAccountName,
    source,
    env,
    bindings,
    ...(cache ? { cache } : {}),
    successBuildHistoryLimit: d.int(spec, 'successBuildHistoryLimit', 'spec', 1) ?? 10,
    failedBuildHistoryLimit: d.int(spec, 'failedBuildHistoryLimit', 'spec', 1) ?? 10,
    imageTaggingStrategy: strategy,
    additionalTags,
    ...(defaultProcess ? { defaultProcess } : {}),
    ...(projectDescriptorPath ? { projectDescriptorPath } : {}),
    ...(buildTimeoutMinutes ? { buildTimeoutMinutes } : {}),
    ...(cosignAnnotations ? { cosignAnnotations } : {}),
    ...(created ? { creationTime: created } : {}),
  };
}

function parseBuild(d: Doc, spec: Obj, legacy: boolean): BuildSpec {
  if (legacy) d.keys(spec, 'spec', ['tags', 'builder', 'serviceAccount', 'source', 'cacheName', 'bindings', 'env'], ['resources', 'lastBuild', 'notary']);
  else d.keys(spec, 'spec', ['tags', 'builder', 'serviceAccountName', 'source', 'cache', 'runImage', 'activeDeadlineSeconds', 'services', 'cnbBindings', 'env', 'projectDescriptorPath', 'defaultProcess', 'cosign', 'creationTime'], [...POD_FIELDS, 'lastBuild', 'notary']);
  const tags = d.list(spec, 'tags', 'spec').map((t, i) => {
    if (typeof t !== 'string') d.fail(`spec.tags[${i}]`, 'must be a string');
    return d.imageRef(t, `spec.tags[${i}]`);
  });
  if (!tags.length) d.fail('spec.tags', 'needs at least one tag');
  const b = d.obj(spec.builder, 'spec.builder', true)!;
  d.keys(b, 'spec.builder', ['image', 'imagePullSecrets'], ['ref']);
  const builderImage = d.imageRef(d.str(b, 'image', 'spec.builder', true)!, 'spec.builder.image');
  const sa = d.str(spec, legacy ? 'serviceAccount' : 'serviceAccountName', 'spec');
  const env = parseEnv(d, d.list(spec, 'env', 'spec'), 'spec.env');
  const bindings = parseBindings(d, spec, legacy ? undefined : 'services', legacy ? 'bindings' : 'cnbBindings', 'spec');
  let cacheTag: string | undefined;
  const c = d.obj(spec.cache, 'spec.cache');
  if (c) {
    d.keys(c, 'spec.cache', ['registry'], ['volume']);
    const r = d.obj(c.registry, 'spec.cache.registry');
    if (r) {
      d.keys(r, 'spec.cache.registry', ['tag']);
      cacheTag = d.imageRef(d.str(r, 'tag', 'spec.cache.registry', true)!, 'spec.cache.registry.tag');
    }
  }
  const run = d.obj(spec.runImage, 'spec.runImage');
  if (run) d.keys(run, 'spec.runImage', ['image']);
  const runImage = run ? d.imageRef(d.str(run, 'image', 'spec.runImage', true)!, 'spec.runImage.image') : undefined;
  const timeoutSeconds = d.int(spec, 'activeDeadlineSeconds', 'spec', 1);
  const defaultProcess = d.str(spec, 'defaultProcess', 'spec');
  const descriptor = d.str(spec, 'projectDescriptorPath', 'spec');
  return {
    tags,
    builderImage,
    serviceAccountName: sa ? d.name(sa, 'spec.serviceAccountName') : 'default',
    source: parseSource(d, spec),
    env,
    bindings,
    ...(runImage ? { runImage } : {}),
    ...(cacheTag ? { cacheTag } : {}),
    ...(defaultProcess ? { defaultProcess } : {}),
    ...(descriptor ? { projectDescriptorPath: relativePath(d, descriptor, 'spec.projectDescriptorPath') } : {}),
    ...(timeoutSeconds ? { timeoutSeconds } : {}),
  };
}

const SECRET_NEEDS: Record<string, string[]> = {
  'kubernetes.io/basic-auth': [],
  'kubernetes.io/ssh-auth': ['ssh-privatekey'],
  'kubernetes.io/dockerconfigjson': ['.dockerconfigjson'],
  'kubernetes.io/dockercfg': ['.dockercfg'],
};

function parseSecret(d: Doc, top: Obj, annotations: Record<string, string>): SecretSpec {
  const type = d.str(top, 'type', '') ?? 'Opaque';
  const data: Record<string, string> = {};
  const raw = d.obj(top.data, 'data') ?? {};
  for (const [k, v] of Object.entries(raw)) {
    if (!DATA_KEY_RE.test(k)) d.fail(`data.${k}`, 'is not a valid key');
    if (typeof v !== 'string' || !/^[A-Za-z0-9+/\s]*={0,2}\s*$/.test(v)) d.fail(`data.${k}`, 'must be base64 (or put the value under stringData)');
    data[k] = Buffer.from(v, 'base64').toString('utf8');
  }
  for (const [k, v] of Object.entries(d.obj(top.stringData, 'stringData') ?? {})) {
    if (!DATA_KEY_RE.test(k)) d.fail(`stringData.${k}`, 'is not a valid key');
    if (typeof v !== 'string') d.fail(`stringData.${k}`, 'must be a string (quote numbers and booleans in YAML)');
    data[k] = v;
  }
  for (const need of SECRET_NEEDS[type] ?? []) if (data[need] === undefined) d.fail('stringData', `a ${type} Secret needs ${need}`);
  if (type === 'kubernetes.io/basic-auth' && data.username === undefined && data.password === undefined) d.fail('stringData', 'a kubernetes.io/basic-auth Secret needs username and password');
  const kpack = Object.keys(annotations).filter((a) => /^kpack\.io\/(git|docker|blob)$/.test(a));
  if ((type === 'kubernetes.io/basic-auth' || type === 'kubernetes.io/ssh-auth') && !kpack.length) {
    d.fail('metadata.annotations', `a ${type} Secret is used by the fleet only with a kpack.io/git: URL${type === 'kubernetes.io/basic-auth' ? ' or kpack.io/docker: REGISTRY' : ''} annotation saying where`);
  }
  if (type === 'kubernetes.io/ssh-auth' && annotations['kpack.io/docker']) d.fail('metadata.annotations.kpack.io/docker', 'an ssh key gives no registry credentials; annotate it kpack.io/git');
  for (const k of ['.dockerconfigjson', '.dockercfg']) {
    if (data[k] === undefined || !type.endsWith(k.slice(1))) continue;
    try {
      const parsed: unknown = JSON.parse(data[k]!);
      if (!isObj(parsed)) throw new Error('not an object');
    } catch {
      d.fail(`data.${k}`, 'is not JSON (the contents of a Docker config file)');
    }
  }
  return { type, annotations, keys: Object.keys(data).sort(), data };
}

function parseServiceAccount(d: Doc, top: Obj): ServiceAccountSpec {
  const names = (key: string): string[] =>
    d.list(top, key, '').map((s, i) => {
      const o = d.obj(s, `${key}[${i}]`, true)!;
      d.keys(o, `${key}[${i}]`, ['name'], ['namespace', 'kind', 'apiVersion']);
      return d.name(d.str(o, 'name', `${key}[${i}]`, true)!, `${key}[${i}].name`);
    });
  return { secrets: names('secrets'), imagePullSecrets: names('imagePullSecrets') };
}

function parseConfigMap(d: Doc, top: Obj): ConfigMapSpec {
  const data = d.strings(top.data, 'data');
  for (const k of Object.keys(data)) if (!DATA_KEY_RE.test(k)) d.fail(`data.${k}`, 'is not a valid key');
  return { data };
}
