import { KPACK_API, type Binding, type EnvVar, type ImageSpec, type Meta } from './resources.js';

/**
 * Resources back into kpack's own documents (kpack.io/v1alpha2): what `fleet image create --output` prints and what
 * `fleet image patch` edits and sends. parse.ts reads them back to the same resource. Pure.
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

export function imageDocument(meta: Pick<Meta, 'namespace' | 'name'>, spec: ImageSpec): Doc {
  const s = spec.source;
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
      source: {
        ...(s.git ? { git: { url: s.git.url, revision: s.git.revision, ...(s.git.initializeSubmodules ? { initializeSubmodules: true } : {}) } } : {}),
        ...(s.blob ? { blob: { url: s.blob.url, ...(s.blob.stripComponents ? { stripComponents: s.blob.stripComponents } : {}) } } : {}),
        ...(s.registry ? { registry: { image: s.registry.image, ...(s.registry.imagePullSecrets ? { imagePullSecrets: s.registry.imagePullSecrets.map((name) => ({ name })) } : {}) } } : {}),
        ...(s.subPath ? { subPath: s.subPath } : {}),
      },
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
