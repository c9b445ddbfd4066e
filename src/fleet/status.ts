import type { BuildRecord, ImageStatus, ResourceStatus } from './store.js';

/**
 * Status the way kpack shows it: conditions with a status (True, False, Unknown), a reason and a message. Computed
 * when asked from what the last pass found and from the build records, so no two writers ever race for one field.
 * Pure.
 */

export interface Condition {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  reason?: string;
  message?: string;
}

const cond = (type: string, status: Condition['status'], reason?: string, message?: string): Condition => ({ type, status, ...(reason ? { reason } : {}), ...(message ? { message } : {}) });

/** Ready for a stack, store, buildpack, lifecycle or builder (builders add UpToDate, as kpack's do). */
export function resourceConditions(kind: string, s: ResourceStatus): Condition[] {
  const ready = s.observedGeneration === undefined && s.ready === undefined ? cond('Ready', 'Unknown', 'NotReconciled', 'not reconciled yet') : s.error ? cond('Ready', 'False', 'ReconcileFailed', s.error) : cond('Ready', s.ready ? 'True' : 'Unknown');
  if (kind !== 'Builder' && kind !== 'ClusterBuilder') return [ready];
  return [ready, cond('UpToDate', ready.status, ready.reason, ready.message)];
}

/** An Image's Ready (its latest build), BuilderReady and UpToDate (whether it is what its spec asks for now). */
export function imageConditions(s: ImageStatus, latest?: BuildRecord): Condition[] {
  const building = latest && (latest.status === 'pending' || latest.status === 'running');
  let ready: Condition;
  if (!latest) ready = s.error ? cond('Ready', 'False', 'NoBuild', s.error) : cond('Ready', 'Unknown', 'NoBuild', 'no build yet');
  else if (building) ready = cond('Ready', 'Unknown', 'Building', `${latest.kind} #${latest.number} is ${latest.status}`);
  else if (latest.status === 'succeeded') ready = cond('Ready', 'True');
  else ready = cond('Ready', 'False', latest.status === 'interrupted' ? 'BuildInterrupted' : 'BuildFailed', `${latest.kind} #${latest.number} ${latest.status}${latest.message ? `: ${latest.message}` : ''}`);
  const builderReady = s.builderReady === undefined ? cond('BuilderReady', 'Unknown', 'NotReconciled') : s.builderReady ? cond('BuilderReady', 'True') : cond('BuilderReady', 'False', 'BuilderNotReady', s.error);
  let upToDate: Condition;
  if (s.error) upToDate = cond('UpToDate', 'False', 'ReconcileFailed', s.error);
  else if (building) upToDate = cond('UpToDate', 'Unknown', 'Building', ready.message);
  else if (latest && latest.status !== 'succeeded') upToDate = cond('UpToDate', 'False', ready.reason, ready.message);
  else if (s.why === 'up to date') upToDate = cond('UpToDate', 'True');
  else upToDate = cond('UpToDate', 'Unknown', undefined, s.why);
  return [ready, builderReady, upToDate];
}

/** `True`, `False` or `Unknown` for a listing's READY column. */
export function readyOf(conditions: Condition[]): Condition['status'] {
  return conditions.find((c) => c.type === 'Ready')?.status ?? 'Unknown';
}
