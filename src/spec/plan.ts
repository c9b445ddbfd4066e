import { writeFileAtomic } from '../oci/fsutil.js';
import { Fields, SpecError, readToml, writeToml, type Table } from './toml.js';
import type { Require } from './buildplan.js';

export interface Provider {
  id: string;
  version: string;
  extension?: boolean;
}

/** One resolved dependency: who provides a name and what each requirer asked for. */
export interface PlanEntry {
  providers: Provider[];
  requires: Require[];
}

export interface PlanFile {
  entries: PlanEntry[];
}

export function parsePlanFile(table: Table, file: string): PlanFile {
  const f = new Fields(table, file);
  return {
    entries: f.list('entries').map((e) => ({
      providers: e.list('providers').map((p) => ({ id: p.reqStr('id'), version: p.str('version') ?? '', ...(p.bool('extension') ? { extension: true } : {}) })),
      requires: e.list('requires').map((r) => ({ name: r.reqStr('name'), metadata: r.free('metadata') ?? {} })),
    })),
  };
}

export async function readPlanFile(path: string): Promise<PlanFile> {
  const t = await readToml(path);
  if (!t) throw new SpecError(`${path}: plan.toml not found; run the detector first or pass -plan`);
  return parsePlanFile(t, path);
}

export async function writePlanFile(path: string, plan: PlanFile): Promise<void> {
  // No entries: an empty file, as the reference lifecycle writes it (not `entries = []`).
  if (!plan.entries.length) return writeFileAtomic(path, '');
  await writeToml(path, {
    entries: plan.entries.map((e) => ({
      providers: e.providers.map((p) => ({ id: p.id, version: p.version, extension: p.extension || undefined })),
      requires: e.requires.map((r) => ({ name: r.name, ...(Object.keys(r.metadata).length ? { metadata: r.metadata } : {}) })),
    })),
  });
}

/** The Buildpack Plan given to one buildpack's `bin/build` ($CNB_BP_PLAN_PATH). */
export interface BuildpackPlan {
  entries: { name: string; metadata: Table }[];
}

export async function writeBuildpackPlan(path: string, plan: BuildpackPlan): Promise<void> {
  await writeToml(path, { entries: plan.entries.map((e) => ({ name: e.name, ...(Object.keys(e.metadata).length ? { metadata: e.metadata } : {}) })) });
}
