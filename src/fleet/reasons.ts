import { canonical } from './canonical.js';
import type { Binding, EnvVar } from './resources.js';

/**
 * Why an image needs a build: the old state (its past builds) and the new state (what its source, config and builder
 * resolve to now) in, reasons with old → new out. Pure, as kpack's buildchange is, so every rule is a table test.
 */

export const REASONS = ['TRIGGER', 'COMMIT', 'CONFIG', 'BUILDPACK', 'STACK', 'LIFECYCLE'] as const;
export type Reason = (typeof REASONS)[number];

export interface BuildpackRef {
  id: string;
  version: string;
}

/** What an image's build is made from, every part resolved (digests, commits), so equal inputs mean an equal build. */
export interface BuildInputs {
  /** What the operator declared that shapes the build, the git revision aside. */
  config: {
    /** As declared: literal values, and `valueFrom` references (never the values they read). */
    env: EnvVar[];
    /** A keyed digest of the values `valueFrom` reads, so a changed Secret value rebuilds without being recorded. */
    envDigest?: string;
    bindings?: Binding[];
    source: { git?: { url: string }; blob?: { url: string; stripComponents: number }; registry?: { image: string }; subPath?: string };
    defaultProcess?: string;
    projectDescriptorPath?: string;
  };
  /** How the build runs, snapshotted when it is queued; a change here is no reason to build. */
  settings?: BuildSettings;
  /** The stack's id: a new id cannot be rebased onto (kpack rebuilds). */
  stackId?: string;
  /** The git commit the revision resolved to. */
  commit?: string;
  /** The builder image, by digest. */
  builder: string;
  /** Every buildpack the builder offers. */
  buildpacks: BuildpackRef[];
  /** The run image, by digest. */
  runImage: string;
  lifecycle: string;
}

export interface BuildSettings {
  serviceAccountName: string;
  /** A source image's own pull secrets. */
  pullSecrets?: string[];
  cacheTag?: string;
  timeoutMinutes?: number;
  successBuildHistoryLimit: number;
  failedBuildHistoryLimit: number;
  creationTime?: string;
  initializeSubmodules?: boolean;
  cosignAnnotations?: Record<string, string>;
}

export type BuildStatus = 'pending' | 'running' | 'succeeded' | 'failed' | 'interrupted';

/** A past build as far as deciding the next one goes. */
export interface PastBuild {
  number: number;
  status: BuildStatus;
  inputs: BuildInputs;
  /** The buildpacks that took part (from the image's build metadata), for a succeeded build. */
  usedBuildpacks?: BuildpackRef[];
  /** The image it produced, by digest, for a succeeded build. */
  image?: string;
  createdAt: string;
}

export interface Change {
  reason: Reason;
  old: unknown;
  new: unknown;
}

export interface Decision {
  action: 'none' | 'build' | 'rebase' | 'wait';
  changes: Change[];
  /** One line for logs and status when nothing is done. */
  why?: string;
}

export interface DecideInput {
  desired: BuildInputs;
  /** The newest build of any status. */
  latest?: PastBuild;
  /** The newest succeeded build: what the image now is. */
  lastSuccess?: PastBuild;
  /** When a build was asked for by hand (`fleet trigger`), if after the latest build was made. */
  triggeredAt?: string;
}

const key = (b: BuildpackRef): string => `${b.id}@${b.version}`;

export function sameInputs(a: BuildInputs, b: BuildInputs): boolean {
  const norm = (x: BuildInputs) => canonical({ ...x, buildpacks: [...x.buildpacks].map(key).sort() });
  return norm(a) === norm(b);
}

/**
 * The buildpacks the last build used that the builder no longer has at that version: only those images whose
 * buildpacks changed rebuild when a store gains a version of some other buildpack.
 */
function buildpackChange(used: BuildpackRef[], offered: BuildpackRef[]): Change | undefined {
  const have = new Set(offered.map(key));
  const gone = used.filter((b) => !have.has(key(b)));
  if (!gone.length) return undefined;
  const now = offered.filter((b) => gone.some((g) => g.id === b.id));
  return { reason: 'BUILDPACK', old: gone, new: now };
}

/**
 * Decides the next step for one image (kpack's order of reasons: TRIGGER, COMMIT, CONFIG, BUILDPACK, STACK,
 * LIFECYCLE). Changes are measured against the last *succeeded* build, what the image is now, so a failed build
 * in between never hides them (kpack#1198). A failed build is not repeated for the same inputs unless triggered,
 * so a broken app does not loop; an interrupted one is. Only STACK alone is a rebase.
 */
export function decide(input: DecideInput): Decision {
  const { desired, latest, lastSuccess, triggeredAt } = input;
  if (latest && (latest.status === 'pending' || latest.status === 'running')) return { action: 'wait', changes: [], why: `build #${latest.number} is ${latest.status}` };
  const changes: Change[] = [];
  const triggered = triggeredAt !== undefined && (!latest || triggeredAt > latest.createdAt);
  if (triggered) changes.push({ reason: 'TRIGGER', old: '', new: `a build was asked for at ${triggeredAt}` });
  if (!lastSuccess) {
    changes.push({ reason: 'CONFIG', old: null, new: desired.config });
  } else {
    const was = lastSuccess.inputs;
    if (was.commit !== undefined && desired.commit !== undefined && was.commit !== desired.commit) changes.push({ reason: 'COMMIT', old: was.commit, new: desired.commit });
    if (canonical(was.config) !== canonical(desired.config)) changes.push({ reason: 'CONFIG', old: was.config, new: desired.config });
    const bp = buildpackChange(lastSuccess.usedBuildpacks ?? was.buildpacks, desired.buildpacks);
    if (bp) changes.push(bp);
    if (was.runImage !== desired.runImage || (was.stackId !== undefined && desired.stackId !== undefined && was.stackId !== desired.stackId)) {
      changes.push({ reason: 'STACK', old: was.stackId !== desired.stackId ? `${was.stackId} ${was.runImage}` : was.runImage, new: was.stackId !== desired.stackId ? `${desired.stackId} ${desired.runImage}` : desired.runImage });
    }
    if (was.lifecycle !== desired.lifecycle) changes.push({ reason: 'LIFECYCLE', old: was.lifecycle, new: desired.lifecycle });
  }
  if (!changes.length) return { action: 'none', changes, why: 'up to date' };
  if (!triggered && latest?.status === 'failed' && sameInputs(latest.inputs, desired)) {
    return { action: 'none', changes: [], why: `build #${latest.number} failed with these same inputs; change something or trigger a build` };
  }
  // kpack's rule: a stack whose id changed is another OS, which the app is built for again, not rebased onto.
  const sameStack = lastSuccess?.inputs.stackId === undefined || desired.stackId === undefined || lastSuccess.inputs.stackId === desired.stackId;
  const rebase = changes.every((c) => c.reason === 'STACK') && lastSuccess?.image !== undefined && sameStack;
  return { action: rebase ? 'rebase' : 'build', changes };
}

/** The reasons of a decision as kpack writes them: `COMMIT,STACK`. */
export function reasonsOf(changes: Change[]): string {
  return changes.map((c) => c.reason).join(',');
}
