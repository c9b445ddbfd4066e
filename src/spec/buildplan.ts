import { Fields, SpecError, type Table } from './toml.js';

export interface Provide {
  name: string;
}

export interface Require {
  name: string;
  metadata: Table;
}

/** One alternative of a Build Plan: what an element provides and requires together. */
export interface PlanSection {
  provides: Provide[];
  requires: Require[];
}

/** What `bin/detect` wrote to $CNB_BUILD_PLAN_PATH: a top-level section and `or` alternatives. */
export interface BuildPlan {
  sections: PlanSection[];
}

function section(f: Fields, extension: boolean): PlanSection {
  const provides = f.list('provides').map((p) => ({ name: p.reqStr('name') }));
  const requires = f.list('requires').map((r) => {
    if (r.has('version')) throw new SpecError(`${r.where}: a top-level "version" in requires is not allowed; put it in [requires.metadata] as version`);
    return { name: r.reqStr('name'), metadata: r.free('metadata') ?? {} };
  });
  if (extension && requires.length) throw new SpecError(`${f.where}: an extension may only provide, not require`);
  return { provides, requires };
}

export function parseBuildPlan(table: Table, file: string, extension = false): BuildPlan {
  const f = new Fields(table, file);
  const top = section(f, extension);
  const ors = f.list('or').map((o) => section(o, extension));
  return { sections: [top, ...ors] };
}
