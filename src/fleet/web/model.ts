import type { ImageConfig } from '../../oci/config.js';
import type { ImageManifest } from '../../oci/manifest.js';
import { LABEL, parseLifecycleMetadata } from '../../lifecycle/labels.js';
import { canonical } from '../canonical.js';
import type { Change } from '../reasons.js';

/**
 * What the dashboard computes from the fleet's records and images before it draws anything: base coverage, the
 * builds per hour by reason, build durations, which layer of an app image is whose, and how two builds' layers
 * differ. Pure functions of their inputs.
 */

/** One image as the fleet page lists it. */
export interface FleetRow {
  namespace: string;
  name: string;
  builder: string;
  stack?: string;
  ready: 'True' | 'False' | 'Unknown';
  why?: string;
  /** The image as last built or rebased, name@digest. */
  image?: string;
  /** The run image it sits on, name@digest. */
  runImage?: string;
  lastReason?: string;
  lastAt?: string;
  /** The newest build's status when it is still going. */
  building?: 'pending' | 'running';
}

export const digestOf = (ref: string | undefined): string | undefined => (ref && ref.includes('@') ? ref.slice(ref.lastIndexOf('@') + 1) : undefined);
export const shortDigest = (ref: string | undefined): string => (digestOf(ref) ?? ref ?? '').replace(/^sha256:/, '').slice(0, 12);

export interface CoverageRow {
  stack: string;
  /** The stack's run image now, name@digest. */
  current?: string;
  total: number;
  onCurrent: number;
  digests: { digest: string; count: number; current: boolean }[];
}

/** For each stack: how many of its images sit on its current run image, and on which others the rest sit. */
export function coverage(rows: Pick<FleetRow, 'stack' | 'runImage'>[], stacks: Map<string, string | undefined>): CoverageRow[] {
  const out: CoverageRow[] = [];
  for (const [stack, current] of [...stacks].sort(([a], [b]) => a.localeCompare(b))) {
    const mine = rows.filter((r) => r.stack === stack);
    const counts = new Map<string, number>();
    for (const r of mine) {
      const d = digestOf(r.runImage) ?? 'not built yet';
      counts.set(d, (counts.get(d) ?? 0) + 1);
    }
    const now = digestOf(current);
    const digests = [...counts].map(([digest, count]) => ({ digest, count, current: digest === now })).sort((a, b) => Number(b.current) - Number(a.current) || b.count - a.count);
    out.push({ stack, ...(current ? { current } : {}), total: mine.length, onCurrent: counts.get(now ?? '') ?? 0, digests });
  }
  return out;
}

/** Builds started in each of the last `hours` hours, by reason (a build with two reasons counts under both). */
export function buildsPerHour(builds: { createdAt: string; reasons: string }[], now: Date, hours = 24): { hours: number[]; series: Record<string, number[]> } {
  const hour = 3600_000;
  const end = Math.floor(now.getTime() / hour) * hour;
  const start = end - (hours - 1) * hour;
  const series: Record<string, number[]> = {};
  for (const b of builds) {
    const t = Date.parse(b.createdAt);
    if (!(t >= start && t < end + hour)) continue;
    const i = Math.floor((t - start) / hour);
    for (const reason of b.reasons.split(',').filter(Boolean)) (series[reason] ??= new Array<number>(hours).fill(0))[i]! += 1;
  }
  return { hours: Array.from({ length: hours }, (_, i) => (start + i * hour) / 1000), series };
}

/**
 * Succeeded builds' durations, oldest first, the newest `limit` of them: when each started (epoch seconds, whole) and
 * how long it took (to a tenth of a second; a chart shows no finer, and the page stays small).
 */
export function buildDurations(builds: { startedAt?: string; finishedAt?: string; kind: string; status: string }[], limit = Infinity): { at: number[]; build: (number | null)[]; rebase: (number | null)[] } {
  const all = builds.filter((b) => b.startedAt && b.finishedAt && b.status === 'succeeded').sort((a, b) => Date.parse(a.startedAt!) - Date.parse(b.startedAt!));
  const done = all.slice(Math.max(0, all.length - limit));
  const secs = (b: (typeof done)[number]) => Math.round((Date.parse(b.finishedAt!) - Date.parse(b.startedAt!)) / 100) / 10;
  return { at: done.map((b) => Math.floor(Date.parse(b.startedAt!) / 1000)), build: done.map((b) => (b.kind === 'build' ? secs(b) : null)), rebase: done.map((b) => (b.kind === 'rebase' ? secs(b) : null)) };
}

export function filterRows(rows: FleetRow[], q: string | undefined): FleetRow[] {
  const needle = (q ?? '').trim().toLowerCase();
  if (!needle) return rows;
  return rows.filter((r) => [`${r.namespace}/${r.name}`, r.builder, r.stack ?? '', r.ready, r.lastReason ?? ''].some((f) => f.toLowerCase().includes(needle)));
}

export const SORTS = ['name', 'ready', 'reason', 'time', 'base'] as const;
export type SortKey = (typeof SORTS)[number];

export function sortRows(rows: FleetRow[], key: SortKey): FleetRow[] {
  const name = (r: FleetRow) => `${r.namespace}/${r.name}`;
  const order: Record<SortKey, (a: FleetRow, b: FleetRow) => number> = {
    name: (a, b) => name(a).localeCompare(name(b)),
    // Not ready first: what needs a look.
    ready: (a, b) => ['False', 'Unknown', 'True'].indexOf(a.ready) - ['False', 'Unknown', 'True'].indexOf(b.ready) || name(a).localeCompare(name(b)),
    reason: (a, b) => (a.lastReason ?? '').localeCompare(b.lastReason ?? '') || name(a).localeCompare(name(b)),
    time: (a, b) => (b.lastAt ?? '').localeCompare(a.lastAt ?? '') || name(a).localeCompare(name(b)),
    base: (a, b) => (a.runImage ?? '').localeCompare(b.runImage ?? '') || name(a).localeCompare(name(b)),
  };
  return [...rows].sort(order[key]);
}

/** One layer of an app image and what put it there. */
export interface LayerFact {
  diffID: string;
  size: number;
  role: 'run image' | 'buildpack' | 'app' | 'launcher' | 'launch config' | 'process types' | 'SBOM' | 'other';
  /** The buildpack, for its layers. */
  owner?: string;
  /** The layer's name (a buildpack's layer), or its position (run image layers, app slices). */
  name: string;
}

/** Which layer of a CNB-built app image is whose, from its lifecycle metadata label. */
export function layerFacts(config: ImageConfig, manifest: ImageManifest): LayerFact[] {
  const md = parseLifecycleMetadata(config.config?.Labels?.[LABEL.lifecycle]);
  const ids = config.rootfs.diff_ids;
  const who = new Map<string, Omit<LayerFact, 'diffID' | 'size'>>();
  if (md) {
    for (const bp of md.buildpacks) for (const [name, l] of Object.entries(bp.layers ?? {})) if (typeof l?.sha === 'string') who.set(l.sha, { role: 'buildpack', owner: bp.key, name });
    md.app.forEach((a, i) => who.set(a.sha, { role: 'app', name: md.app.length > 1 ? `slice ${i + 1}` : 'app' }));
    if (md.launcher?.sha) who.set(md.launcher.sha, { role: 'launcher', name: 'launcher' });
    if (md.config?.sha) who.set(md.config.sha, { role: 'launch config', name: 'config' });
    if (md['process-types']?.sha) who.set(md['process-types'].sha, { role: 'process types', name: 'process types' });
    if (md.sbom?.sha) who.set(md.sbom.sha, { role: 'SBOM', name: 'sbom' });
  }
  const top = md?.runImage?.topLayer ? ids.indexOf(md.runImage.topLayer as never) : -1;
  return ids.map((diffID, i) => ({ diffID, size: manifest.layers[i]?.size ?? 0, ...(i <= top ? { role: 'run image' as const, name: `layer ${i + 1}` } : (who.get(diffID) ?? { role: 'other' as const, name: `layer ${i + 1}` })) }));
}

export interface LayerChange {
  role: LayerFact['role'];
  owner?: string;
  name: string;
  a?: LayerFact;
  b?: LayerFact;
  /** `reused`: the same layer in both (not uploaded again); `changed`: the same place, new content. */
  state: 'reused' | 'changed' | 'added' | 'removed';
}

/** Two builds' layers side by side, matched by what put them there. */
export function layerDiff(a: LayerFact[], b: LayerFact[]): LayerChange[] {
  const key = (l: LayerFact) => `${l.role}|${l.owner ?? ''}|${l.name}`;
  const left = new Map(a.map((l) => [key(l), l]));
  const out: LayerChange[] = [];
  const seen = new Set<string>();
  for (const l of b) {
    const k = key(l);
    seen.add(k);
    const old = left.get(k);
    out.push({ role: l.role, ...(l.owner ? { owner: l.owner } : {}), name: l.name, ...(old ? { a: old } : {}), b: l, state: !old ? 'added' : old.diffID === l.diffID ? 'reused' : 'changed' });
  }
  for (const l of a) if (!seen.has(key(l))) out.push({ role: l.role, ...(l.owner ? { owner: l.owner } : {}), name: l.name, a: l, state: 'removed' });
  return out;
}

/** A build reason's change as the pages show it: old → new, or for CONFIG what differs, named (never env values). */
export type ChangeView = { reason: string; old: string; new: string } | { reason: string; what: string[] };

const brief = (v: unknown): string => {
  if (v === null || v === undefined || v === '') return '∅';
  const s = typeof v === 'string' ? v : JSON.stringify(v);
  return s.length > 90 ? `${s.slice(0, 87)}…` : s;
};

const fields = (v: unknown): Record<string, unknown> => (typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : {});

export function changeView(c: Change): ChangeView {
  if (c.reason !== 'CONFIG') return { reason: c.reason, old: brief(c.old), new: brief(c.new) };
  const [was, now] = [fields(c.old), fields(c.new)];
  const env = (cfg: Record<string, unknown>) => new Map((Array.isArray(cfg.env) ? (cfg.env as { name?: unknown }[]) : []).map((e) => [String(e.name), canonical(e)]));
  const [a, b] = [env(was), env(now)];
  const what: string[] = [];
  if (c.old === null || c.old === undefined) {
    what.push('first build');
    if (b.size) what.push(`env ${[...b.keys()].join(', ')}`);
  } else {
    for (const [k, v] of b) if (!a.has(k)) what.push(`env ${k} added`);
    else if (a.get(k) !== v) what.push(`env ${k} changed`);
    for (const k of a.keys()) if (!b.has(k)) what.push(`env ${k} removed`);
    if (was.envDigest !== now.envDigest) what.push('a value read from a Secret or ConfigMap changed');
  }
  for (const k of [...new Set([...Object.keys(was), ...Object.keys(now)])].sort()) {
    if (k === 'env' || k === 'envDigest' || canonical(was[k]) === canonical(now[k])) continue;
    const src = fields(now[k]);
    const where = k === 'source' ? brief(fields(src.git).url ?? fields(src.blob).url ?? fields(src.registry).image) : '';
    what.push(`${k}${where && where !== '∅' ? ` ${where}` : ''}${c.old === null || c.old === undefined ? '' : ' changed'}`);
  }
  return { reason: c.reason, what };
}
