import { DEFAULT_LIFECYCLE, KPACK_API, type AccountRef, type Binding, type BuilderSpec, type BuildSpec, type EnvVar, type ImageSpec, type Meta, type Resource, type ResourceOf, type SourceSpec } from './resources.js';

/**
 * Resources back into kpack's own documents (kpack.io/v1alpha2, and core v1 for ServiceAccounts and ConfigMaps): what
 * `fleet image create --output` prints, what `fleet image patch` edits and sends, and what `fleet export --kpack`
 * writes. parse.ts reads each back to the same resource. Pure.
 */

type Doc = Record<string, unknown>;

function env(e: EnvVar): Doc {
  return 'value' in e ? { name: e.name, value: e.value } : { name: e.name, valueFrom: e.valueFrom };
}

function bindings(list: Binding[]): Doc {
  const services = list.filter((b) => !b.metadata).map((b) => ({ kind: 'Secret', apiVersion: 'v1', name: b.secret ?? b.name }));
  const cnb = list.filter((b) => b.metadata).map((b) => ({ name: b.name, metadataRef: { name: b.metadata }, ...(b.secret ? { secretRef: { name: b.secret } } : {}) }));
  return { ...(services.length ? { services } : {}), ...(cnb.length ? { cnbBindings: cnb } : {}) };
}

function sourceDocument(s: SourceSpec): Doc {
  return {
    ...(s.git ? { git: { url: s.git.url, revision: s.git.revision, ...(s.git.initializeSubmodules ? { initializeSubmodules: true } : {}) } } : {}),
    ...(s.blob ? { blob: { url: s.blob.url, ...(s.blob.stripComponents ? { stripComponents: s.blob.stripComponents } : {}) } } : {}),
    ...(s.registry ? { registry: { image: s.registry.image, ...(s.registry.imagePullSecrets ? { imagePullSecrets: s.registry.imagePullSecrets.map((name) => ({ name })) } : {}) } } : {}),
    ...(s.subPath ? { subPath: s.subPath } : {}),
  };
}

const accountRef = (a: AccountRef | undefined): Doc => (a ? { serviceAccountRef: { name: a.name, namespace: a.namespace } } : {});
const accountName = (a: AccountRef | undefined): Doc => (a ? { serviceAccountName: a.name } : {});

function kpack(r: Resource, spec: Doc): Doc {
  return { apiVersion: KPACK_API, kind: r.meta.kind, metadata: { name: r.meta.name, ...(r.meta.namespace ? { namespace: r.meta.namespace } : {}) }, spec };
}

function builderDocument(r: ResourceOf<'Builder' | 'ClusterBuilder'>): Doc {
  const b: BuilderSpec = r.spec;
  return kpack(r, {
    tag: b.tag,
    stack: { kind: 'ClusterStack', name: b.stack },
    ...(b.store ? { store: { kind: 'ClusterStore', name: b.store } } : {}),
    ...(b.lifecycle !== DEFAULT_LIFECYCLE ? { lifecycle: { kind: 'ClusterLifecycle', name: b.lifecycle } } : {}),
    order: b.order.map((g) => ({ group: g.group.map((e) => ({ ...e })) })),
    ...(Object.keys(b.additionalLabels).length ? { additionalLabels: b.additionalLabels } : {}),
    ...(r.meta.kind === 'Builder' ? accountName(b.serviceAccount) : accountRef(b.serviceAccount)),
  });
}

function buildDocument(r: ResourceOf<'Build'>): Doc {
  const b: BuildSpec = r.spec;
  return kpack(r, {
    tags: b.tags,
    builder: { image: b.builderImage },
    ...(b.serviceAccountName !== 'default' ? { serviceAccountName: b.serviceAccountName } : {}),
    source: sourceDocument(b.source),
    ...(b.env.length ? { env: b.env.map(env) } : {}),
    ...bindings(b.bindings),
    ...(b.runImage ? { runImage: { image: b.runImage } } : {}),
    ...(b.cacheTag ? { cache: { registry: { tag: b.cacheTag } } } : {}),
    ...(b.defaultProcess ? { defaultProcess: b.defaultProcess } : {}),
    ...(b.projectDescriptorPath ? { projectDescriptorPath: b.projectDescriptorPath } : {}),
    ...(b.timeoutSeconds ? { activeDeadlineSeconds: b.timeoutSeconds } : {}),
  });
}

/**
 * Any resource as the document that declares it; undefined for a Secret, whose values are never written out (the
 * caller says which Secrets to apply from where they are kept).
 */
export function resourceDocument(r: Resource): Doc | undefined {
  const core = (extra: Doc): Doc => ({ apiVersion: 'v1', kind: r.meta.kind, metadata: { name: r.meta.name, namespace: r.meta.namespace }, ...extra });
  switch (r.meta.kind) {
    case 'Secret':
      return undefined;
    case 'ServiceAccount': {
      const a = (r as ResourceOf<'ServiceAccount'>).spec;
      return core({ ...(a.secrets.length ? { secrets: a.secrets.map((name) => ({ name })) } : {}), ...(a.imagePullSecrets.length ? { imagePullSecrets: a.imagePullSecrets.map((name) => ({ name })) } : {}) });
    }
    case 'ConfigMap':
      return core({ data: (r as ResourceOf<'ConfigMap'>).spec.data });
    case 'ClusterStack': {
      const st = (r as ResourceOf<'ClusterStack'>).spec;
      return kpack(r, { id: st.id, buildImage: { image: st.buildImage }, runImage: { image: st.runImage }, ...accountRef(st.serviceAccount) });
    }
    case 'ClusterStore': {
      const st = (r as ResourceOf<'ClusterStore'>).spec;
      return kpack(r, { sources: st.sources.map((image) => ({ image })), ...accountRef(st.serviceAccount) });
    }
    case 'ClusterBuildpack':
    case 'ClusterLifecycle': {
      const st = (r as ResourceOf<'ClusterBuildpack'>).spec;
      return kpack(r, { image: st.image, ...accountRef(st.serviceAccount) });
    }
    case 'Buildpack': {
      const st = (r as ResourceOf<'Buildpack'>).spec;
      return kpack(r, { image: st.image, ...accountName(st.serviceAccount) });
    }
    case 'ClusterBuilder':
    case 'Builder':
      return builderDocument(r as ResourceOf<'Builder' | 'ClusterBuilder'>);
    case 'Image':
      return imageDocument(r.meta, (r as ResourceOf<'Image'>).spec);
    case 'Build':
      return buildDocument(r as ResourceOf<'Build'>);
  }
}

export function imageDocument(meta: Pick<Meta, 'namespace' | 'name'>, spec: ImageSpec): Doc {
  const build = {
    ...(spec.env.length ? { env: spec.env.map(env) } : {}),
    ...bindings(spec.bindings),
    ...(spec.buildTimeoutMinutes ? { buildTimeout: spec.buildTimeoutMinutes } : {}),
    ...(spec.creationTime ? { creationTime: spec.creationTime } : {}),
  };
  return {
    apiVersion: KPACK_API,
    kind: 'Image',
    metadata: { name: meta.name, namespace: meta.namespace },
    spec: {
      tag: spec.tag,
      ...(spec.additionalTags.length ? { additionalTags: spec.additionalTags } : {}),
      builder: { kind: spec.builder.kind, name: spec.builder.name, ...(spec.builder.kind === 'Builder' && spec.builder.namespace !== meta.namespace ? { namespace: spec.builder.namespace } : {}) },
      ...(spec.serviceAccountName !== 'default' ? { serviceAccountName: spec.serviceAccountName } : {}),
      source: sourceDocument(spec.source),
      ...(Object.keys(build).length ? { build } : {}),
      ...(spec.cache ? { cache: spec.cache.registry ? { registry: { tag: spec.cache.registry.tag } } : { volume: {} } } : {}),
      successBuildHistoryLimit: spec.successBuildHistoryLimit,
      failedBuildHistoryLimit: spec.failedBuildHistoryLimit,
      imageTaggingStrategy: spec.imageTaggingStrategy,
      ...(spec.defaultProcess ? { defaultProcess: spec.defaultProcess } : {}),
      ...(spec.projectDescriptorPath ? { projectDescriptorPath: spec.projectDescriptorPath } : {}),
      ...(spec.cosignAnnotations ? { cosign: { annotations: Object.entries(spec.cosignAnnotations).map(([name, value]) => ({ name, value })) } } : {}),
    },
  };
}

/** The order kubectl would want them in: what others refer to first. */
const EXPORT_ORDER = ['ServiceAccount', 'ConfigMap', 'ClusterLifecycle', 'ClusterStack', 'ClusterStore', 'ClusterBuildpack', 'Buildpack', 'ClusterBuilder', 'Builder', 'Image', 'Build'];

/**
 * A whole fleet as kpack resources (`fleet export --kpack`), ready for `kubectl apply -f` or `strata fleet apply -f`:
 * the same fleet again, once its Secrets are applied from where they are kept. Secrets are named in the header and
 * never written, values or not, so an export is safe to commit or share.
 */
export function kpackExport(resources: Resource[], toYaml: (doc: Doc) => string): string {
  const secrets = resources.filter((r) => r.meta.kind === 'Secret').map((r) => `${r.meta.namespace}/${r.meta.name} (${(r as ResourceOf<'Secret'>).spec.type}: ${(r as ResourceOf<'Secret'>).spec.keys.join(', ')})`);
  const docs = [...resources]
    .sort((a, b) => EXPORT_ORDER.indexOf(a.meta.kind) - EXPORT_ORDER.indexOf(b.meta.kind) || a.meta.namespace.localeCompare(b.meta.namespace) || a.meta.name.localeCompare(b.meta.name))
    .map(resourceDocument)
    .filter((d): d is Doc => d !== undefined);
  const head = ['# The fleet as kpack resources (strata fleet export --kpack).', ...(secrets.length ? ['# Secrets are not exported; apply these from where they are kept:', ...secrets.map((x) => `#   Secret ${x}`)] : [])];
  return `${head.join('\n')}\n${docs.map((d) => `---\n${toYaml(d)}`).join('')}`;
}
