import { Reference } from '../oci/reference.js';

/**
 * The fleet's declared state, in kpack's own resource shapes (kpack.io/v1alpha2, with v1alpha1 converted on the way
 * in) and the Kubernetes core kinds kpack reads credentials and settings from (Secret, ServiceAccount, ConfigMap):
 * what an operator writes, checked and normalised by parse.ts. Pure types and helpers.
 */

export const KPACK_API = 'kpack.io/v1alpha2';
export const KPACK_KINDS = ['ClusterStack', 'ClusterStore', 'ClusterBuildpack', 'Buildpack', 'ClusterLifecycle', 'ClusterBuilder', 'Builder', 'Image', 'Build'] as const;
export const CORE_KINDS = ['Secret', 'ServiceAccount', 'ConfigMap'] as const;
export const KINDS = [...KPACK_KINDS, ...CORE_KINDS] as const;
export type Kind = (typeof KINDS)[number];
export const NAMESPACED = new Set<Kind>(['Buildpack', 'Builder', 'Image', 'Build', 'Secret', 'ServiceAccount', 'ConfigMap']);

/** The lifecycle a builder names when it names none, as in kpack. */
export const DEFAULT_LIFECYCLE = 'default-lifecycle';

export interface Meta {
  kind: Kind;
  name: string;
  /** '' for cluster-scoped kinds; 'default' when a namespaced resource gives none. */
  namespace: string;
}

/** A ServiceAccount by namespace and name: whose Secrets give a resource its registry and git credentials. */
export interface AccountRef {
  namespace: string;
  name: string;
}

export interface StackSpec {
  id: string;
  buildImage: string;
  runImage: string;
  serviceAccount?: AccountRef;
}

export interface StoreSpec {
  /** Buildpackage images. */
  sources: string[];
  serviceAccount?: AccountRef;
}

/** A ClusterBuildpack or Buildpack: one buildpackage image (or a builder image: anything with buildpack layers). */
export interface BuildpackSpec {
  image: string;
  serviceAccount?: AccountRef;
}

/** A ClusterLifecycle: an image carrying a lifecycle in /cnb/lifecycle, with the lifecycle's version label. */
export interface LifecycleSpec {
  image: string;
  serviceAccount?: AccountRef;
}

/** One entry of a builder's order: a buildpack by id (and version), by a Buildpack resource, by image, or both. */
export interface OrderEntry {
  id?: string;
  version?: string;
  image?: string;
  optional?: boolean;
  /** A Buildpack (Builders only) or ClusterBuildpack resource, with `name`. */
  kind?: 'Buildpack' | 'ClusterBuildpack';
  name?: string;
}

export interface BuilderSpec {
  tag: string;
  stack: string;
  /** kpack makes the store optional: buildpacks may all come from Buildpack resources. */
  store?: string;
  /** The ClusterLifecycle; `default-lifecycle` unless named. When none is declared by that name, strata's own. */
  lifecycle: string;
  order: { group: OrderEntry[] }[];
  additionalLabels: Record<string, string>;
  serviceAccount?: AccountRef;
}

export interface SourceSpec {
  git?: { url: string; revision: string; initializeSubmodules?: boolean };
  blob?: { url: string; stripComponents: number };
  /** A source image; its pull secrets add to the service account's. */
  registry?: { image: string; imagePullSecrets?: string[] };
  subPath?: string;
}

/** A key of a Secret or ConfigMap in the same namespace. */
export interface KeyRef {
  name: string;
  key: string;
  optional?: boolean;
}

/** A build variable: literal, or read from a Secret or ConfigMap when the build runs (never stored with the build). */
export type EnvVar = { name: string; value: string } | { name: string; valueFrom: { secretKeyRef: KeyRef } | { configMapKeyRef: KeyRef } };

/**
 * A binding the buildpacks see under `/platform/bindings/<name>`: a Secret's keys as files (kpack's `services`), or
 * the older CNB layout (`cnbBindings`): `metadata/` from a ConfigMap (kind, provider, tags) and `secret/` from a Secret.
 */
export interface Binding {
  name: string;
  secret?: string;
  /** Set for the older layout: the ConfigMap holding the binding's metadata. */
  metadata?: string;
}

export interface ImageSpec {
  tag: string;
  builder: { kind: 'Builder' | 'ClusterBuilder'; name: string; namespace: string };
  /** In the Image's namespace; `default` unless named. */
  serviceAccountName: string;
  source: SourceSpec;
  env: EnvVar[];
  bindings: Binding[];
  cache?: { registry?: { tag: string }; volume?: Record<string, never> };
  successBuildHistoryLimit: number;
  failedBuildHistoryLimit: number;
  imageTaggingStrategy: 'None' | 'BuildNumber';
  additionalTags: string[];
  defaultProcess?: string;
  projectDescriptorPath?: string;
  /** kpack's `spec.build.buildTimeout`, in minutes. */
  buildTimeoutMinutes?: number;
  /** cosign annotations added to every signature (`spec.cosign.annotations`). */
  cosignAnnotations?: Record<string, string>;
  /** `spec.build.creationTime`: `now`, or seconds since the epoch, for the image's created time. */
  creationTime?: string;
}

/** A Build applied by itself (kpack lets users do this): built once, from a builder image, under its tags. */
export interface BuildSpec {
  tags: string[];
  builderImage: string;
  serviceAccountName: string;
  source: SourceSpec;
  env: EnvVar[];
  bindings: Binding[];
  runImage?: string;
  cacheTag?: string;
  defaultProcess?: string;
  projectDescriptorPath?: string;
  /** `spec.activeDeadlineSeconds`. */
  timeoutSeconds?: number;
}

export type SecretType = 'Opaque' | 'kubernetes.io/basic-auth' | 'kubernetes.io/ssh-auth' | 'kubernetes.io/dockerconfigjson' | 'kubernetes.io/dockercfg' | string;

/**
 * A Secret. Its values (`data`) exist in the clear only between parsing and sealing and inside the process that uses
 * them: the store keeps them sealed in a column of their own (see secrets.ts), and what it lists is the type, the
 * annotations, the key names and a keyed digest of the values (so a changed value is a changed spec).
 */
export interface SecretSpec {
  type: SecretType;
  annotations: Record<string, string>;
  keys: string[];
  /** HMAC of the values under the fleet's key; set when sealed. */
  digest?: string;
  /** The values, on the way in only. */
  data?: Record<string, string>;
}

export interface ServiceAccountSpec {
  secrets: string[];
  imagePullSecrets: string[];
}

export interface ConfigMapSpec {
  data: Record<string, string>;
}

export interface SpecOf {
  ClusterStack: StackSpec;
  ClusterStore: StoreSpec;
  ClusterBuildpack: BuildpackSpec;
  Buildpack: BuildpackSpec;
  ClusterLifecycle: LifecycleSpec;
  ClusterBuilder: BuilderSpec;
  Builder: BuilderSpec;
  Image: ImageSpec;
  Build: BuildSpec;
  Secret: SecretSpec;
  ServiceAccount: ServiceAccountSpec;
  ConfigMap: ConfigMapSpec;
}

export type ResourceOf<K extends Kind> = K extends Kind ? { meta: Meta & { kind: K }; spec: SpecOf[K] } : never;
export type Resource = ResourceOf<Kind>;

/** A resource as parsed, with the warnings it earned (fields accepted and ignored off Kubernetes). */
export interface Parsed {
  resource: Resource;
  warnings: string[];
  /** The document it came from, for messages: `fleet.yaml (document 2) (Image default/app)`. */
  where: string;
}

/** `kind/namespace/name`, the key resources are stored and referred to by. */
export function resourceKey(m: Pick<Meta, 'kind' | 'namespace' | 'name'>): string {
  return `${m.kind}/${m.namespace}/${m.name}`;
}

/** How a user names a resource in messages: `Image default/app`, `ClusterStack base`. */
export function describe(m: Pick<Meta, 'kind' | 'namespace' | 'name'>): string {
  return `${m.kind} ${m.namespace ? `${m.namespace}/` : ''}${m.name}`;
}

/**
 * The tags one build of an image is pushed under: its tag, kpack's BuildNumber tag
 * (`<tag>-b<N>.<yyyymmdd>.<hhmmss>`, UTC; `b<N>.…` for latest), and the additional tags.
 */
export function buildTags(spec: Pick<ImageSpec, 'tag' | 'imageTaggingStrategy' | 'additionalTags'>, buildNumber: number, at: Date = new Date()): string[] {
  const tags = [spec.tag];
  if (spec.imageTaggingStrategy === 'BuildNumber') {
    const ref = Reference.parse(spec.tag);
    const p = (n: number) => String(n).padStart(2, '0');
    const stamp = `${at.getUTCFullYear()}${p(at.getUTCMonth() + 1)}${p(at.getUTCDate())}.${p(at.getUTCHours())}${p(at.getUTCMinutes())}${p(at.getUTCSeconds())}`;
    const prefix = ref.tag && ref.tag !== 'latest' ? `${ref.tag}-` : '';
    tags.push(`${ref.name}:${prefix}b${buildNumber}.${stamp}`);
  }
  return [...tags, ...spec.additionalTags];
}
