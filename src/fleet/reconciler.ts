import { errorMessage } from '../oci/errors.js';
import { mapLimit } from '../oci/limit.js';
import type { StoreOptions } from '../oci/target.js';
import { canonical } from './canonical.js';
import { ensureBuilder, resolveStack, resolveStore } from './builders.js';
import { decide, reasonsOf, type BuildInputs, type Change } from './reasons.js';
import { buildTags, describe, resourceKey, type Resource, type ResourceOf } from './resources.js';
import { resolveGit, resolveRegistrySource } from './sources.js';
import { pastBuild, type BuilderStatus, type FleetStore, type ImageStatus, type ResourceStatus, type StackStatus, type StoreStatus, type StoredResource } from './store.js';

/**
 * One pass over the declared fleet: stacks and stores resolved to digests, builders made true, and for every image
 * the decision (pure, in reasons.ts) turned into a pending build or rebase with its reasons on record. Workers run
 * the builds; this only decides. A no-change pass costs one manifest HEAD per stack and store image and one source
 * lookup per image (none with `refreshSources: false`, as after a registry push).
 */

export interface ReconcileOptions {
  storeOptions: StoreOptions;
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

export async function reconcile(store: FleetStore, o: ReconcileOptions): Promise<ReconcileReport> {
  const report: ReconcileReport = { created: [], errors: [] };
  const all = await store.list();
  const byKey = new Map(all.map((r) => [resourceKey(r.resource.meta), r]));
  const fail = async (r: StoredResource, err: unknown, extra: ResourceStatus = {}): Promise<void> => {
    const message = errorMessage(err);
    report.errors.push(`${describe(r.resource.meta)}: ${message}`);
    await saveStatus(store, r, { ...r.status, ...extra, ready: false, error: message });
  };
  const of = <K extends Resource['meta']['kind']>(kind: K) => all.filter((r) => r.resource.meta.kind === kind) as StoredResource<ResourceOf<K>>[];

  const stackStatus = new Map<string, StackStatus>();
  await mapLimit(of('ClusterStack'), o.concurrency ?? 8, async (r) => {
    try {
      const s = await resolveStack(r.resource.spec, o.storeOptions);
      stackStatus.set(r.resource.meta.name, s);
      await saveStatus(store, r, s);
    } catch (err) {
      await fail(r, err);
    }
  });
  const storeStatus = new Map<string, StoreStatus>();
  await mapLimit(of('ClusterStore'), o.concurrency ?? 8, async (r) => {
    try {
      const s = await resolveStore(r.resource.spec, r.status as StoreStatus, o.storeOptions);
      storeStatus.set(r.resource.meta.name, s);
      await saveStatus(store, r, s);
    } catch (err) {
      await fail(r, err);
    }
  });
  const builderStatus = new Map<string, BuilderStatus & { runImage: string }>();
  for (const r of [...of('ClusterBuilder'), ...of('Builder')]) {
    const spec = r.resource.spec;
    const stack = byKey.get(`ClusterStack//${spec.stack}`) as StoredResource<ResourceOf<'ClusterStack'>> | undefined;
    const st = stackStatus.get(spec.stack);
    const so = storeStatus.get(spec.store);
    if (!stack || !st || !so) {
      await fail(r, new Error(`waiting for ClusterStack ${spec.stack} and ClusterStore ${spec.store} to be ready`));
      continue;
    }
    try {
      const s = await ensureBuilder(r.resource, { spec: stack.resource.spec, status: st }, so, r.status as BuilderStatus, o.storeOptions, o.log);
      builderStatus.set(resourceKey(r.resource.meta), { ...s, runImage: st.runImage! });
      await saveStatus(store, r, s);
    } catch (err) {
      await fail(r, err);
    }
  }

  const builds = await store.latestBuilds();
  await mapLimit(of('Image'), o.concurrency ?? 16, async (r) => {
    const { meta, spec } = r.resource;
    const before = r.status as ImageStatus;
    const builder = builderStatus.get(resourceKey(spec.builder));
    if (!builder?.image || !builder.buildpacks || !builder.lifecycle) {
      await fail(r, new Error(`waiting for ${describe(spec.builder)} to be ready`));
      return;
    }
    let commit: string | undefined;
    let sourceImage: string | undefined;
    try {
      if (spec.source.git) commit = o.refreshSources === false && before.commit ? before.commit : await resolveGit(spec.source.git.url, spec.source.git.revision);
      if (spec.source.registry) sourceImage = o.refreshSources === false && before.sourceImage ? before.sourceImage : await resolveRegistrySource(spec.source.registry.image, o.storeOptions);
    } catch (err) {
      await fail(r, new Error(`source: ${errorMessage(err)}`));
      return;
    }
    const source = spec.source;
    const desired: BuildInputs = {
      config: {
        env: spec.env,
        source: {
          ...(source.git ? { git: { url: source.git.url } } : {}),
          ...(source.blob ? { blob: source.blob } : {}),
          ...(sourceImage ? { registry: { image: sourceImage } } : {}),
          ...(source.subPath ? { subPath: source.subPath } : {}),
        },
        ...(spec.defaultProcess ? { defaultProcess: spec.defaultProcess } : {}),
        ...(spec.projectDescriptorPath ? { projectDescriptorPath: spec.projectDescriptorPath } : {}),
      },
      ...(commit ? { commit } : {}),
      builder: builder.image,
      buildpacks: builder.buildpacks,
      runImage: builder.runImage,
      lifecycle: builder.lifecycle,
    };
    const past = builds.get(`${meta.namespace}/${meta.name}`);
    const decision = decide({ desired, ...(past?.latest ? { latest: pastBuild(past.latest) } : {}), ...(past?.lastSuccess ? { lastSuccess: pastBuild(past.lastSuccess) } : {}), ...(r.triggeredAt ? { triggeredAt: r.triggeredAt } : {}) });
    let why = decision.why;
    if (decision.action === 'build' || decision.action === 'rebase') {
      const created = await store.createBuild({ namespace: meta.namespace, image: meta.name, kind: decision.action, reasons: reasonsOf(decision.changes), changes: decision.changes, inputs: desired, priority: priorityOf(decision.changes) }, (n) => buildTags(spec, n));
      if (created) {
        report.created.push({ image: `${meta.namespace}/${meta.name}`, number: created.number, kind: created.kind, reasons: created.reasons });
        o.log(`${describe(meta)}: ${created.kind} #${created.number} (${created.reasons})`);
        why = `${created.kind} #${created.number} queued (${created.reasons})`;
      }
    }
    await saveStatus(store, r, {
      ready: Boolean(past?.lastSuccess),
      ...(commit ? { commit } : {}),
      ...(sourceImage ? { sourceImage } : {}),
      ...(past?.lastSuccess?.result?.image ? { latestImage: past.lastSuccess.result.image, latestReason: past.lastSuccess.reasons } : {}),
      ...(why ? { why } : {}),
    });
  });
  return report;
}
