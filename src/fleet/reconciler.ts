import { join } from 'node:path';
import { errorMessage } from '../oci/errors.js';
import { mapLimit } from '../oci/concurrency.js';
import type { StoreOptions } from '../oci/target.js';
import { canonical } from './canonical.js';
import { describeBuilderImage, digestRef, ensureBuilder, resolveBuildpack, resolveLifecycle, resolveStack, resolveStore, type BuildpackResources } from './builders.js';
import { accountCredentials, NO_CREDENTIALS, type Credentials } from './credentials.js';
import { fleetPaths } from './paths.js';
import { decide, reasonsOf, type BuildInputs, type BuildSettings, type Change } from './reasons.js';
import { buildTags, DEFAULT_LIFECYCLE, describe, resourceKey, type AccountRef, type EnvVar, type Resource, type ResourceOf } from './resources.js';
import { resolveGit, resolveRegistrySource } from './sources.js';
import { pastBuild, type BuilderStatus, type BuildpackStatus, type FleetStore, type ImageStatus, type ResourceStatus, type StoredResource, type StoreStatus } from './store.js';
import { credentialReader, withLogins } from './worker.js';

/**
 * One pass over the declared fleet: stacks, stores, buildpacks and lifecycles resolved to digests, builders made
 * true, and for every image the decision (pure, in reasons.ts) turned into a pending build or rebase with its reasons
 * on record; a Build applied by itself is queued once. Each resource is read with its own service account's
 * credentials. Workers run the builds; this only decides. A no-change pass costs one manifest HEAD per stack, store,
 * buildpack and lifecycle image and one source lookup per image (none with `refreshSources: false`, as after a
 * registry push).
 */

export interface ReconcileOptions {
  storeOptions: StoreOptions;
  home: string;
  log: (line: string) => void;
  /** Look the image sources up again (git ls-remote, source image HEAD); off, the last resolution is used. */
  refreshSources?: boolean;
  concurrency?: number;
}

export interface ReconcileReport {
  created: { image: string; number: number; kind: 'build' | 'rebase'; reasons: string }[];
  errors: string[];
}

/** kpack's priorities: what a developer did (a commit, a config change, a trigger) before what the platform did. */
function priorityOf(changes: Change[]): number {
  return changes.some((c) => c.reason === 'COMMIT' || c.reason === 'CONFIG' || c.reason === 'TRIGGER') ? 2 : 1;
}

/** Writes a status only when it changed: a quiet fleet writes nothing. */
async function saveStatus(store: FleetStore, r: StoredResource, status: ResourceStatus): Promise<void> {
  const next = { ...status, observedGeneration: r.generation };
  const strip = (s: ResourceStatus) => canonical({ ...s, reconciledAt: undefined });
  if (strip(next) === strip(r.status)) return;
  await store.setStatus(r.resource.meta, { ...next, reconciledAt: new Date().toISOString() });
}

/** Several credential sets as one (the first login for a registry wins): a builder reads its stack, store and buildpacks with theirs. */
function merged(list: Credentials[]): Credentials {
  const out: Credentials = { registries: [], git: [], blobs: [], signing: [], values: [] };
  for (const c of list) {
    if (c.account) out.account ??= c.account;
    out.registries.push(...c.registries);
    out.git.push(...c.git);
    out.blobs.push(...c.blobs);
    out.signing.push(...c.signing);
    out.values.push(...c.values);
  }
  return out;
}

export async function reconcile(store: FleetStore, o: ReconcileOptions): Promise<ReconcileReport> {
  const report: ReconcileReport = { created: [], errors: [] };
  const all = await store.list();
  const byKey = new Map(all.map((r) => [resourceKey(r.resource.meta), r]));
  const fail = async (r: StoredResource, err: unknown, extra: ResourceStatus = {}): Promise<void> => {
    const message = errorMessage(err);
    report.errors.push(`${describe(r.resource.meta)}: ${message}`);
    await saveStatus(store, r, { ...extra, ready: false, error: message });
  };
  const of = <K extends Resource['meta']['kind']>(...kinds: K[]) => all.filter((r) => (kinds as string[]).includes(r.resource.meta.kind)) as StoredResource<ResourceOf<K>>[];
  const reader = credentialReader(store);
  const accounts = new Map<string, Promise<Credentials>>();
  const creds = (ref: AccountRef | undefined, extra: string[] = []): Promise<Credentials> => {
    if (!ref && !extra.length) return Promise.resolve(NO_CREDENTIALS);
    const k = `${ref?.namespace}/${ref?.name}/${extra.join(',')}`;
    let c = accounts.get(k);
    if (!c) accounts.set(k, (c = accountCredentials(ref, reader, extra)));
    return c;
  };
  const optionsFor = async (ref: AccountRef | undefined) => withLogins(o.storeOptions, await creds(ref));
  const limit = o.concurrency ?? 8;

  /** Resolves each resource of some kinds with its own account's logins, saving its status or its failure. */
  const resolveEach = async <K extends Resource['meta']['kind'], S extends ResourceStatus>(kinds: K[], resolve: (r: StoredResource<ResourceOf<K>>, store: StoreOptions) => Promise<S>): Promise<Map<string, S>> => {
    const out = new Map<string, S>();
    await mapLimit(of(...kinds), limit, async (r) => {
      try {
        const s = await resolve(r, await optionsFor((r.resource.spec as { serviceAccount?: AccountRef }).serviceAccount));
        out.set(resourceKey(r.resource.meta), s);
        await saveStatus(store, r, s);
      } catch (err) {
        await fail(r, err);
      }
    });
    return out;
  };
  const stacks = await resolveEach(['ClusterStack'], (r, so) => resolveStack(r.resource.spec, so));
  const stores = await resolveEach(['ClusterStore'], (r, so) => resolveStore(r.resource.spec, r.status as StoreStatus, so));
  const bpStatus = await resolveEach(['ClusterBuildpack', 'Buildpack'], (r, so) => resolveBuildpack(r.resource.spec, r.status as BuildpackStatus, so));
  const lifecycleStatus = await resolveEach(['ClusterLifecycle'], (r, so) => resolveLifecycle(r.resource.spec, so));
  const stackStatus = new Map([...stacks].map(([k, v]) => [k.split('/').pop()!, v]));
  const storeStatus = new Map([...stores].map(([k, v]) => [k.split('/').pop()!, v]));
  const lifecycles = new Map([...lifecycleStatus].map(([k, v]) => [k.split('/').pop()!, v]));
  const buildpacks: BuildpackResources = new Map(
    [...bpStatus].map(([k, status]) => {
      const [kind, ns, name] = k.split('/') as ['Buildpack' | 'ClusterBuildpack', string, string];
      return [k, { kind, name: kind === 'Buildpack' ? `${ns}/${name}` : name, status }];
    }),
  );

  const builderStatus = new Map<string, BuilderStatus>();
  for (const r of of('ClusterBuilder', 'Builder')) {
    const spec = r.resource.spec;
    const stack = byKey.get(`ClusterStack//${spec.stack}`) as StoredResource<ResourceOf<'ClusterStack'>> | undefined;
    const st = stackStatus.get(spec.stack);
    const so = spec.store ? storeStatus.get(spec.store) : undefined;
    const lifecycleDeclared = byKey.has(`ClusterLifecycle//${spec.lifecycle}`);
    const lc = lifecycles.get(spec.lifecycle);
    const waitingFor = [
      ...(!stack || !st ? [`ClusterStack ${spec.stack}`] : []),
      ...(spec.store && !so ? [`ClusterStore ${spec.store}`] : []),
      ...((lifecycleDeclared || spec.lifecycle !== DEFAULT_LIFECYCLE) && !lc ? [`ClusterLifecycle ${spec.lifecycle}`] : []),
      ...spec.order.flatMap((g) => g.group.filter((e) => e.kind && e.name && !buildpacks.has(resourceKey({ kind: e.kind, namespace: e.kind === 'Buildpack' ? r.resource.meta.namespace : '', name: e.name }))).map((e) => `${e.kind} ${e.name}`)),
    ];
    if (waitingFor.length) {
      await fail(r, new Error(`waiting for ${waitingFor.join(', ')} to be ready`));
      continue;
    }
    try {
      const ns = r.resource.meta.namespace;
      const refs: (AccountRef | undefined)[] = [spec.serviceAccount, stack!.resource.spec.serviceAccount, spec.store ? (byKey.get(`ClusterStore//${spec.store}`)?.resource.spec as { serviceAccount?: AccountRef } | undefined)?.serviceAccount : undefined];
      for (const b of buildpacks.values()) if (b.kind === 'ClusterBuildpack' || b.name.startsWith(`${ns}/`)) refs.push((byKey.get(resourceKey({ kind: b.kind, namespace: b.kind === 'Buildpack' ? ns : '', name: b.name.split('/').pop()! }))?.resource.spec as { serviceAccount?: AccountRef } | undefined)?.serviceAccount);
      const c = merged(await Promise.all(refs.map((ref) => creds(ref))));
      const s = await ensureBuilder(r.resource, { stack: { spec: stack!.resource.spec, status: st! }, ...(so ? { store: so } : {}), resources: buildpacks, ...(lc ? { lifecycle: lc } : {}) }, r.status as BuilderStatus, withLogins(o.storeOptions, c), o.log);
      builderStatus.set(resourceKey(r.resource.meta), s);
      await saveStatus(store, r, s);
    } catch (err) {
      await fail(r, err);
    }
  }

  const builds = await store.latestBuilds();
  const queue = async (meta: { namespace: string; name: string }, ownerKind: 'Image' | 'Build', decision: { action: string; changes: Change[] }, inputs: BuildInputs, tags: (n: number) => string[]): Promise<string | undefined> => {
    if (decision.action !== 'build' && decision.action !== 'rebase') return undefined;
    const created = await store.createBuild({ ownerKind, namespace: meta.namespace, image: meta.name, kind: decision.action, reasons: reasonsOf(decision.changes), changes: decision.changes, inputs, priority: priorityOf(decision.changes) }, tags);
    if (!created) return undefined;
    report.created.push({ image: `${meta.namespace}/${meta.name}`, number: created.number, kind: created.kind, reasons: created.reasons });
    o.log(`${ownerKind} ${meta.namespace}/${meta.name}: ${created.kind} #${created.number} (${created.reasons})`);
    return `${created.kind} #${created.number} queued (${created.reasons})`;
  };
  const envDigest = async (namespace: string, env: EnvVar[]): Promise<string | undefined> => {
    const values: Record<string, string> = {};
    for (const e of env) {
      if (!('valueFrom' in e)) continue;
      const ref = 'secretKeyRef' in e.valueFrom ? e.valueFrom.secretKeyRef : e.valueFrom.configMapKeyRef;
      const data = 'secretKeyRef' in e.valueFrom ? await store.secretValues(namespace, ref.name) : (byKey.get(`ConfigMap/${namespace}/${ref.name}`)?.resource.spec as { data?: Record<string, string> } | undefined)?.data;
      values[e.name] = data?.[ref.key] ?? '';
    }
    return Object.keys(values).length ? store.digestOf(values) : undefined;
  };

  await mapLimit(of('Image'), o.concurrency ?? 16, async (r) => {
    const { meta, spec } = r.resource;
    const before = r.status as ImageStatus;
    const builder = builderStatus.get(resourceKey(spec.builder));
    if (!builder?.image || !builder.buildpacks || !builder.lifecycle || !builder.runImage) {
      await fail(r, new Error(`waiting for ${describe(spec.builder)} to be ready`), { builderReady: false });
      return;
    }
    let commit: string | undefined;
    let sourceImage: string | undefined;
    let digest: string | undefined;
    try {
      const c = await creds({ namespace: meta.namespace, name: spec.serviceAccountName }, spec.source.registry?.imagePullSecrets ?? []);
      const access = { credentials: c, knownHosts: join(fleetPaths(o.home).dir, 'known_hosts'), scratch: join(fleetPaths(o.home).dir, 'work', 'credentials') };
      if (spec.source.git) commit = o.refreshSources === false && before.commit ? before.commit : await resolveGit(spec.source.git.url, spec.source.git.revision, access);
      if (spec.source.registry) sourceImage = o.refreshSources === false && before.sourceImage ? before.sourceImage : await resolveRegistrySource(spec.source.registry.image, withLogins(o.storeOptions, c));
      digest = await envDigest(meta.namespace, spec.env);
    } catch (err) {
      await fail(r, new Error(`source: ${errorMessage(err)}`), { builderReady: true });
      return;
    }
    const source = spec.source;
    const settings: BuildSettings = {
      serviceAccountName: spec.serviceAccountName,
      ...(source.registry?.imagePullSecrets ? { pullSecrets: source.registry.imagePullSecrets } : {}),
      ...(spec.cache?.registry ? { cacheTag: spec.cache.registry.tag } : {}),
      ...(spec.buildTimeoutMinutes ? { timeoutMinutes: spec.buildTimeoutMinutes } : {}),
      successBuildHistoryLimit: spec.successBuildHistoryLimit,
      failedBuildHistoryLimit: spec.failedBuildHistoryLimit,
      ...(spec.creationTime ? { creationTime: spec.creationTime } : {}),
      ...(source.git?.initializeSubmodules ? { initializeSubmodules: true } : {}),
      ...(spec.cosignAnnotations ? { cosignAnnotations: spec.cosignAnnotations } : {}),
    };
    const desired: BuildInputs = {
      config: {
        env: spec.env,
        ...(digest ? { envDigest: digest } : {}),
        ...(spec.bindings.length ? { bindings: spec.bindings } : {}),
        source: {
          ...(source.git ? { git: { url: source.git.url } } : {}),
          ...(source.blob ? { blob: source.blob } : {}),
          ...(sourceImage ? { registry: { image: sourceImage } } : {}),
          ...(source.subPath ? { subPath: source.subPath } : {}),
        },
        ...(spec.defaultProcess ? { defaultProcess: spec.defaultProcess } : {}),
        ...(spec.projectDescriptorPath ? { projectDescriptorPath: spec.projectDescriptorPath } : {}),
      },
      settings,
      ...(commit ? { commit } : {}),
      builder: builder.image,
      buildpacks: builder.buildpacks,
      runImage: builder.runImage,
      ...(builder.stackId ? { stackId: builder.stackId } : {}),
      lifecycle: builder.lifecycle,
    };
    const past = builds.get(`${meta.namespace}/${meta.name}`);
    const decision = decide({ desired, ...(past?.latest ? { latest: pastBuild(past.latest) } : {}), ...(past?.lastSuccess ? { lastSuccess: pastBuild(past.lastSuccess) } : {}), ...(r.triggeredAt ? { triggeredAt: r.triggeredAt } : {}) });
    const why = (await queue(meta, 'Image', decision, desired, (n) => buildTags(spec, n))) ?? decision.why;
    await saveStatus(store, r, { ready: true, builderReady: true, ...(commit ? { commit } : {}), ...(sourceImage ? { sourceImage } : {}), ...(why ? { why } : {}) });
  });

  // A Build applied by itself runs once (kpack's Build is immutable; a new one has a new name).
  const once = of('Build').length ? await store.latestBuilds('Build') : new Map();
  await mapLimit(of('Build'), limit, async (r) => {
    const { meta, spec } = r.resource;
    if (once.has(`${meta.namespace}/${meta.name}`)) return;
    try {
      const c = await creds({ namespace: meta.namespace, name: spec.serviceAccountName }, spec.source.registry?.imagePullSecrets ?? []);
      const opts = withLogins(o.storeOptions, c);
      const builder = await digestRef(spec.builderImage, opts);
      const about = await describeBuilderImage(builder, opts);
      const runImage = await digestRef(spec.runImage ?? about.runImage, opts);
      const access = { credentials: c, knownHosts: join(fleetPaths(o.home).dir, 'known_hosts'), scratch: join(fleetPaths(o.home).dir, 'work', 'credentials') };
      const commit = spec.source.git ? await resolveGit(spec.source.git.url, spec.source.git.revision, access) : undefined;
      const sourceImage = spec.source.registry ? await resolveRegistrySource(spec.source.registry.image, opts) : undefined;
      const digest = await envDigest(meta.namespace, spec.env);
      const inputs: BuildInputs = {
        config: {
          env: spec.env,
          ...(digest ? { envDigest: digest } : {}),
          ...(spec.bindings.length ? { bindings: spec.bindings } : {}),
          source: { ...(spec.source.git ? { git: { url: spec.source.git.url } } : {}), ...(spec.source.blob ? { blob: spec.source.blob } : {}), ...(sourceImage ? { registry: { image: sourceImage } } : {}), ...(spec.source.subPath ? { subPath: spec.source.subPath } : {}) },
          ...(spec.defaultProcess ? { defaultProcess: spec.defaultProcess } : {}),
          ...(spec.projectDescriptorPath ? { projectDescriptorPath: spec.projectDescriptorPath } : {}),
        },
        settings: {
          serviceAccountName: spec.serviceAccountName,
          ...(spec.source.registry?.imagePullSecrets ? { pullSecrets: spec.source.registry.imagePullSecrets } : {}),
          ...(spec.cacheTag ? { cacheTag: spec.cacheTag } : {}),
          ...(spec.timeoutSeconds ? { timeoutMinutes: Math.max(1, Math.ceil(spec.timeoutSeconds / 60)) } : {}),
          successBuildHistoryLimit: 1,
          failedBuildHistoryLimit: 1,
        },
        ...(commit ? { commit } : {}),
        builder,
        buildpacks: about.buildpacks,
        runImage,
        ...(about.stackId ? { stackId: about.stackId } : {}),
        lifecycle: about.lifecycle,
      };
      const why = await queue(meta, 'Build', { action: 'build', changes: [{ reason: 'CONFIG', old: null, new: inputs.config }] }, inputs, () => spec.tags);
      await saveStatus(store, r, { ready: true, ...(why ? { why } : {}) });
    } catch (err) {
      await fail(r, err);
    }
  });
  return report;
}
