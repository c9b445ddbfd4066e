import { DEFAULT_LIFECYCLE, describe, resourceKey, type Binding, type EnvVar, type Meta, type Resource, type ResourceOf } from './resources.js';

/**
 * How resources refer to each other, checked over the whole fleet (what is stored plus what is being applied). Two
 * kinds of problem, as kpack and kubectl draw the line: a reference that makes the document itself wrong (a
 * ServiceAccount naming a Secret that does not exist, a variable read from a key a Secret does not have) is an error
 * and nothing is applied; a reference to something not declared yet (an Image's builder, a builder's stack) is a
 * warning, and the resource waits for it, as it would on Kubernetes. Pure.
 */

export interface ReferenceReport {
  errors: string[];
  /** Things a resource waits for. */
  waiting: string[];
}

type Where = (m: Meta) => string;

export function checkReferences(all: Resource[], where: Where = describe): ReferenceReport {
  const byKey = new Map(all.map((r) => [resourceKey(r.meta), r]));
  const has = (kind: Meta['kind'], namespace: string, name: string) => byKey.get(resourceKey({ kind, namespace, name }));
  const errors: string[] = [];
  const waiting: string[] = [];
  const wait = (r: Resource, field: string, kind: Meta['kind'], namespace: string, name: string): void => {
    if (!has(kind, namespace, name)) waiting.push(`${where(r.meta)}: ${field} names ${describe({ kind, namespace, name })}, which is not declared; it waits for it`);
  };
  const account = (r: Resource, field: string, ref: { namespace: string; name: string } | undefined): void => {
    // Every Kubernetes namespace has a `default` ServiceAccount; naming it without declaring it means no credentials.
    if (ref && ref.name !== 'default') wait(r, field, 'ServiceAccount', ref.namespace, ref.name);
  };
  for (const r of all) {
    const ns = r.meta.namespace;
    switch (r.meta.kind) {
      case 'ServiceAccount': {
        const spec = (r as ResourceOf<'ServiceAccount'>).spec;
        for (const [field, names] of [['secrets', spec.secrets], ['imagePullSecrets', spec.imagePullSecrets]] as const) {
          names.forEach((n, i) => {
            if (!has('Secret', ns, n)) errors.push(`${where(r.meta)}: ${field}[${i}].name: Secret ${ns}/${n} is not declared`);
          });
        }
        break;
      }
      case 'Image': {
        const spec = (r as ResourceOf<'Image'>).spec;
        envErrors(r, spec.env, 'spec.build.env', has, where, errors);
        bindingErrors(r, spec.bindings, 'spec.build', has, where, errors);
        wait(r, 'spec.builder', spec.builder.kind, spec.builder.namespace, spec.builder.name);
        account(r, 'spec.serviceAccountName', { namespace: ns, name: spec.serviceAccountName });
        break;
      }
      case 'Build': {
        const spec = (r as ResourceOf<'Build'>).spec;
        envErrors(r, spec.env, 'spec.env', has, where, errors);
        bindingErrors(r, spec.bindings, 'spec', has, where, errors);
        account(r, 'spec.serviceAccountName', { namespace: ns, name: spec.serviceAccountName });
        break;
      }
      case 'Builder':
      case 'ClusterBuilder': {
        const spec = (r as ResourceOf<'Builder' | 'ClusterBuilder'>).spec;
        wait(r, 'spec.stack', 'ClusterStack', '', spec.stack);
        if (spec.store) wait(r, 'spec.store', 'ClusterStore', '', spec.store);
        if (spec.lifecycle !== DEFAULT_LIFECYCLE) wait(r, 'spec.lifecycle', 'ClusterLifecycle', '', spec.lifecycle);
        spec.order.forEach((g, i) =>
          g.group.forEach((e, j) => {
            if (e.kind && e.name) wait(r, `spec.order[${i}].group[${j}]`, e.kind, e.kind === 'Buildpack' ? ns : '', e.name);
          }),
        );
        account(r, 'spec.serviceAccount', spec.serviceAccount);
        break;
      }
      case 'ClusterStack':
      case 'ClusterStore':
      case 'ClusterBuildpack':
      case 'Buildpack':
      case 'ClusterLifecycle':
        account(r, r.meta.kind === 'Buildpack' ? 'spec.serviceAccountName' : 'spec.serviceAccountRef', (r.spec as { serviceAccount?: { namespace: string; name: string } }).serviceAccount);
        break;
      default:
        break;
    }
  }
  return { errors, waiting };
}

type Has = (kind: Meta['kind'], namespace: string, name: string) => Resource | undefined;

/** The keys a Secret or ConfigMap holds, whether it arrives with its values or is stored sealed. */
function keysOf(r: Resource): string[] {
  if (r.meta.kind === 'Secret') return (r as ResourceOf<'Secret'>).spec.keys;
  if (r.meta.kind === 'ConfigMap') return Object.keys((r as ResourceOf<'ConfigMap'>).spec.data);
  return [];
}

function envErrors(r: Resource, env: EnvVar[], at: string, has: Has, where: Where, errors: string[]): void {
  env.forEach((e, i) => {
    if (!('valueFrom' in e)) return;
    const [kind, ref, field] = 'secretKeyRef' in e.valueFrom ? (['Secret', e.valueFrom.secretKeyRef, 'secretKeyRef'] as const) : (['ConfigMap', e.valueFrom.configMapKeyRef, 'configMapKeyRef'] as const);
    if (ref.optional) return;
    const path = `${at}[${i}].valueFrom.${field}`;
    const target = has(kind, r.meta.namespace, ref.name);
    if (!target) errors.push(`${where(r.meta)}: ${path}: ${kind} ${r.meta.namespace}/${ref.name} is not declared (or mark it optional: true)`);
    else if (!keysOf(target).includes(ref.key)) errors.push(`${where(r.meta)}: ${path}: ${kind} ${r.meta.namespace}/${ref.name} has no key "${ref.key}" (it has ${keysOf(target).join(', ') || 'none'})`);
  });
}

function bindingErrors(r: Resource, bindings: Binding[], at: string, has: Has, where: Where, errors: string[]): void {
  bindings.forEach((b) => {
    if (b.secret && !has('Secret', r.meta.namespace, b.secret)) errors.push(`${where(r.meta)}: ${at}: binding ${b.name} names Secret ${r.meta.namespace}/${b.secret}, which is not declared`);
    if (b.metadata && !has('ConfigMap', r.meta.namespace, b.metadata)) errors.push(`${where(r.meta)}: ${at}: binding ${b.name} names ConfigMap ${r.meta.namespace}/${b.metadata}, which is not declared`);
  });
}

/**
 * What deleting `going` would break: resources left behind that name one of them in a way that is an error, or that
 * would lose what they build with. One line each.
 */
export function brokenByDelete(left: Resource[], going: Set<string>): string[] {
  const out: string[] = [];
  const gone = (kind: Meta['kind'], namespace: string, name: string) => going.has(resourceKey({ kind, namespace, name }));
  for (const r of left) {
    const say = (what: string) => out.push(`${describe(r.meta)} uses ${what}`);
    if (r.meta.kind === 'Builder' || r.meta.kind === 'ClusterBuilder') {
      const s = (r as ResourceOf<'Builder'>).spec;
      if (gone('ClusterStack', '', s.stack)) say(`ClusterStack ${s.stack}`);
      if (s.store && gone('ClusterStore', '', s.store)) say(`ClusterStore ${s.store}`);
    } else if (r.meta.kind === 'Image') {
      const s = (r as ResourceOf<'Image'>).spec;
      if (gone(s.builder.kind, s.builder.namespace, s.builder.name)) say(describe(s.builder));
    }
  }
  const { errors } = checkReferences(left.filter((r) => !going.has(resourceKey(r.meta))));
  return [...out, ...errors];
}
