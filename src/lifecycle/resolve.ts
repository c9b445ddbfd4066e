import type { BuildPlan, PlanSection, Require } from '../spec/buildplan.js';
import type { PlanEntry } from '../spec/plan.js';

/** A group element that ran detect, with what it said. */
export interface DetectedElement {
  id: string;
  version: string;
  api: string;
  homepage?: string;
  optional: boolean;
  extension: boolean;
  /** pass: exit 0; fail: exit 100; error: any other exit, a bad plan, or a required target mismatch. */
  status: 'pass' | 'fail' | 'error';
  plan?: BuildPlan;
}

export type Verdict = { ok: true; group: DetectedElement[]; entries: PlanEntry[] } | { ok: false; error: boolean; reason: string };

interface Option {
  el: DetectedElement;
  section: PlanSection;
  /** Only an element's last alternative carries its optional flag, so it is dropped only after all were tried. */
  optional: boolean;
}

interface Dep {
  providers: DetectedElement[];
  requires: Require[];
  /** Providers not yet consumed by a require. */
  extraProvides: DetectedElement[];
  /** Requirers that came before any provider. */
  earlyRequires: DetectedElement[];
}

function depMap(trial: Option[]): Map<string, Dep> {
  const m = new Map<string, Dep>();
  const get = (name: string): Dep => {
    let d = m.get(name);
    if (!d) m.set(name, (d = { providers: [], requires: [], extraProvides: [], earlyRequires: [] }));
    return d;
  };
  for (const o of trial) {
    for (const p of o.section.provides) get(p.name).extraProvides.push(o.el);
    for (const r of o.section.requires) {
      const d = get(r.name);
      d.providers.push(...d.extraProvides);
      d.extraProvides = [];
      if (d.providers.length === 0) d.earlyRequires.push(o.el);
      else d.requires.push(r);
    }
  }
  return m;
}

/**
 * One trial: an unmet require drops its optional element and fails the trial for a required one; an unmet provide
 * does the same, except that extensions are always dropped. Repeats until nothing is unmet.
 */
function runTrial(start: Option[]): { deps: Map<string, Dep>; trial: Option[] } | undefined {
  let trial = start;
  for (;;) {
    const deps = depMap(trial);
    const drop = new Set<string>();
    const optionOf = (el: DetectedElement): Option => trial.find((o) => o.el === el)!;
    for (const d of deps.values()) {
      for (const el of d.earlyRequires) {
        if (!optionOf(el).optional) return undefined;
        drop.add(el.id);
      }
    }
    for (const d of deps.values()) {
      for (const el of d.extraProvides) {
        if (!optionOf(el).optional && !el.extension) return undefined;
        drop.add(el.id);
      }
    }
    if (drop.size === 0) return trial.length ? { deps, trial } : undefined;
    trial = trial.filter((o) => !drop.has(o.el.id));
    if (trial.length === 0) return undefined;
  }
}

function options(el: DetectedElement): Option[] {
  const sections = el.plan?.sections.length ? el.plan.sections : [{ provides: [], requires: [] }];
  return sections.map((section, i) => ({ el, section, optional: el.optional && i === sections.length - 1 }));
}

/** Depth-first over each element's alternatives, first element outermost; the first trial that holds wins. */
function runTrials(results: DetectedElement[], prefix: Option[]): { deps: Map<string, Dep>; trial: Option[] } | undefined {
  if (results.length === 0) return runTrial(prefix);
  for (const o of options(results[0]!)) {
    const r = runTrials(results.slice(1), [...prefix, o]);
    if (r) return r;
  }
  return undefined;
}

/**
 * The verdict on one group whose elements have run detect (spec §5.3–5.4): it fails if a required element did not
 * pass or no buildpack passed; otherwise the build plan is resolved and the surviving elements and entries returned.
 */
export function resolveGroup(done: DetectedElement[]): Verdict {
  let detected = true;
  let anyBuildpack = false;
  let error = false;
  const passed: DetectedElement[] = [];
  for (const el of done) {
    if (el.status === 'pass') {
      passed.push(el);
      if (!el.extension) anyBuildpack = true;
      continue;
    }
    if (el.status === 'error') error = true;
    detected &&= el.optional;
  }
  if (!detected) return { ok: false, error, reason: 'a required buildpack did not pass' };
  if (!anyBuildpack) return { ok: false, error: false, reason: 'no buildpack in the group passed' };
  const r = runTrials(passed, []);
  if (!r) return { ok: false, error: false, reason: 'the build plan could not be resolved' };
  const entries: PlanEntry[] = [];
  for (const d of r.deps.values()) {
    if (d.providers.length === 0 || d.requires.length === 0) continue;
    const providers = [...new Map(d.providers.map((p) => [p.id, p])).values()];
    entries.push({ providers: providers.map((p) => ({ id: p.id, version: p.version, ...(p.extension ? { extension: true } : {}) })), requires: d.requires });
  }
  return { ok: true, group: r.trial.map((o) => o.el), entries };
}
