import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { StrataError } from '../oci/errors.js';
import { pathExists } from '../oci/fsutil.js';
import type { ApiVersion } from '../spec/api.js';
import { descriptorDir, escapeId, readDescriptor, type BuildpackDescriptor } from '../spec/buildpack.js';
import { parseBuildPlan, type BuildPlan } from '../spec/buildplan.js';
import type { GroupEntry } from '../spec/group.js';
import type { Order, OrderElement } from '../spec/order.js';
import type { PlanFile } from '../spec/plan.js';
import type { SystemFile } from '../spec/system.js';
import { anyTargetMatches, type ImageTarget } from '../spec/target.js';
import { parseToml } from '../spec/toml.js';
import { applyEnvDir, applyPlatformEnv, buildpackBaseEnv, type Env } from './env.js';
import { runProgram } from './exec.js';
import { Exit } from '../spec/exit.js';
import type { Logger } from './log.js';
import { resolveGroup, type DetectedElement, type Verdict } from './resolve.js';

/** What both phases that run buildpack code need: the dirs of spec §2, the target and the environments. */
export interface BuildpackRunInputs {
  buildpacksDir: string;
  appDir: string;
  platformDir: string;
  buildConfigDir: string;
  platformApi: ApiVersion;
  /** The run image's target, from analyzed.toml (os and arch at least). */
  target: ImageTarget;
  execEnv: string;
  hostEnv: NodeJS.ProcessEnv;
  log: Logger;
}

export interface DetectorInputs extends BuildpackRunInputs {
  order: Order;
  /** `[[order-extensions]]`: image extensions' groups, tried (all optional) before each buildpack group. */
  orderExtensions?: Order;
  extensionsDir?: string;
  system?: SystemFile;
  /** Where the per-buildpack plan files go; the layers dir, since a build image may have no /tmp. */
  scratchDir?: string;
}

export interface DetectOutput {
  group: GroupEntry[];
  groupExtensions: GroupEntry[];
  plan: PlanFile;
}

/** system.toml's pre and post buildpacks around every group, unless the group already has that id. */
export function withSystem(order: Order, system: SystemFile | undefined): Order {
  if (!system || (!system.pre.length && !system.post.length)) return order;
  return order.map((g) => {
    const has = (e: OrderElement): boolean => g.group.some((x) => x.id === e.id);
    return { group: [...system.pre.filter((e) => !has(e)), ...g.group, ...system.post.filter((e) => !has(e))] };
  });
}

/** The environment a buildpack's detect or build sees (spec §4), before CNB_* variables. */
export async function buildpackEnv(base: Env, desc: BuildpackDescriptor, platformDir: string, buildConfigDir: string): Promise<Env> {
  const env: Env = { ...base };
  if (!desc.clearEnv) await applyPlatformEnv(env, platformDir);
  await applyEnvDir(env, join(buildConfigDir, 'env'), 'default');
  return env;
}

export function targetEnv(env: Env, api: ApiVersion, target: ImageTarget, execEnv: string): void {
  if (api.atLeast('0.10')) {
    env.CNB_TARGET_OS = target.os ?? 'linux';
    env.CNB_TARGET_ARCH = target.arch ?? '';
    if (target.variant) env.CNB_TARGET_ARCH_VARIANT = target.variant;
    if (target.distro?.name) env.CNB_TARGET_DISTRO_NAME = target.distro.name;
    if (target.distro?.version) env.CNB_TARGET_DISTRO_VERSION = target.distro.version;
  }
  if (api.atLeast('0.12')) env.CNB_EXEC_ENV = execEnv;
}

/** Runs detection over the order and returns the first group that passes with its resolved plan (spec §5). */
export class Detector {
  private readonly descriptors = new Map<string, Promise<BuildpackDescriptor>>();
  private readonly runs = new Map<string, Promise<DetectedElement>>();
  /** What each bin/detect printed, and each group's results: shown at info level when no group passes. */
  private readonly outputs: string[] = [];
  private readonly results: string[] = [];
  private tmp?: string;

  constructor(private readonly inputs: DetectorInputs) {}

  private descriptor(el: OrderElement): Promise<BuildpackDescriptor> {
    const key = `${el.extension ? 'extension' : 'buildpack'}:${el.id}@${el.version ?? ''}`;
    let d = this.descriptors.get(key);
    if (!d) {
      if (!el.version) throw new StrataError(`order: ${el.id} has no version`, Exit.DetectError);
      if (el.extension && !this.inputs.extensionsDir) throw new StrataError(`order-extensions names ${el.id}, but there is no extensions dir`, Exit.DetectError);
      d = el.extension ? readDescriptor(descriptorDir(this.inputs.extensionsDir!, el.id, el.version), 'extension') : readDescriptor(descriptorDir(this.inputs.buildpacksDir, el.id, el.version));
      this.descriptors.set(key, d);
    }
    return d;
  }

  /** Reads every descriptor the order can reach, so an unsupported API fails up front (exit 12). */
  private async checkOrder(order: Order, seen: Set<string>): Promise<void> {
    for (const g of order) {
      for (const el of g.group) {
        const key = `${el.extension ? 'extension' : 'buildpack'}:${el.id}@${el.version ?? ''}`;
        if (seen.has(key)) continue;
        seen.add(key);
        const d = await this.descriptor(el);
        if (d.order.length) await this.checkOrder(d.order, seen);
      }
    }
  }

  async run(): Promise<DetectOutput> {
    const order = withSystem(this.inputs.order, this.inputs.system);
    // Extensions are always optional, and their order has no nesting.
    const extensions: Order = (this.inputs.orderExtensions ?? []).map((g) => ({ group: g.group.map((e) => ({ ...e, optional: true, extension: true })) }));
    await this.checkOrder(order, new Set());
    await this.checkOrder(extensions, new Set());
    const scratch = this.inputs.scratchDir ?? tmpdir();
    await mkdir(scratch, { recursive: true });
    this.tmp = await mkdtemp(join(scratch, '.strata-detect-'));
    try {
      const verdict = extensions.length ? await this.detectWithExtensions(order, extensions) : await this.detectOrder(order, [], [], false);
      if (!verdict.ok) {
        // Why it failed, as the reference shows it: at debug level this is already on screen.
        if (this.inputs.log.level !== 'debug') {
          for (const o of this.outputs) this.inputs.log.info(o);
          this.inputs.log.info(`======== Results ========\n${this.results.join('\n')}`);
        }
        if (verdict.error) throw new StrataError('no buildpack group passed detection, and at least one buildpack errored (see its output above)', Exit.DetectBuildpackError);
        throw new StrataError('no buildpack group passed detection', Exit.DetectFailed);
      }
      const entry = (e: DetectedElement): GroupEntry => ({ id: e.id, version: e.version, api: e.api, ...(e.homepage ? { homepage: e.homepage } : {}) });
      const group = verdict.group.filter((e) => !e.extension).map(entry);
      const groupExtensions = verdict.group.filter((e) => e.extension).map(entry);
      const all = [...this.runs.keys()].filter((k) => k.startsWith('buildpack:')).length;
      if (group.length !== all) this.inputs.log.info(`${group.length} of ${all} buildpacks participating`);
      for (const g of group) this.inputs.log.info(`${g.id} ${g.version}`);
      for (const g of groupExtensions) this.inputs.log.info(`${g.id} ${g.version} (extension)`);
      return { group, groupExtensions, plan: { entries: verdict.entries } };
    } finally {
      await rm(this.tmp, { recursive: true, force: true });
    }
  }

  /** The extension order, as an optional nested order, before each buildpack group in turn (platform spec §5). */
  private async detectWithExtensions(order: Order, extensions: Order): Promise<Verdict> {
    let error = false;
    for (const g of order) {
      const v = await this.detectOrder(extensions, [], g.group, true);
      if (v.ok) return v;
      error ||= v.error;
    }
    return { ok: false, error, reason: 'no group passed' };
  }

  private async detectOrder(order: Order, done: OrderElement[], rest: OrderElement[], optional: boolean): Promise<Verdict> {
    let error = false;
    for (const g of order) {
      const v = await this.detectGroup([...g.group, ...rest], done);
      if (v.ok) return v;
      error ||= v.error;
    }
    if (optional) return this.detectGroup(rest, done);
    return { ok: false, error, reason: 'no group passed' };
  }

  private async detectGroup(group: OrderElement[], doneIn: OrderElement[]): Promise<Verdict> {
    const done = [...doneIn];
    for (const [i, el] of group.entries()) {
      // A buildpack met earlier in this expansion runs once, at its first position.
      if (done.some((d) => d.id === el.id && !d.extension === !el.extension)) continue;
      const desc = await this.descriptor(el);
      if (desc.order.length) return this.detectOrder(desc.order, done, group.slice(i + 1), el.optional);
      if (!this.eligible(el, desc)) continue;
      done.push(el);
      // Started now so the group runs in parallel; awaited (and its errors handled) below.
      this.detectElement(el, desc).catch(() => undefined);
    }
    const results = await Promise.all(done.map(async (el) => ({ ...(await this.detectElement(el, await this.descriptor(el))), optional: el.optional })));
    const verdict = resolveGroup(results);
    const lines = results.map((r) => `${r.status === 'pass' ? 'pass' : r.status === 'fail' ? (r.optional ? 'skip' : 'fail') : 'err '}: ${r.id}@${r.version}`);
    if (!verdict.ok) lines.push(`group failed: ${verdict.reason}`);
    for (const l of lines) this.inputs.log.debug(l);
    this.results.push(...lines);
    return verdict;
  }

  /** Platform API 0.15: a buildpack whose exec-env excludes the current one is left out without running. */
  private eligible(el: OrderElement, desc: BuildpackDescriptor): boolean {
    if (!this.inputs.platformApi.atLeast('0.15') || !desc.apiVersion.atLeast('0.12')) return true;
    const envs = el.execEnv?.length ? el.execEnv : desc.execEnv;
    return envs.length === 0 || envs.includes('*') || envs.includes(this.inputs.execEnv);
  }

  /** Runs `bin/detect` once per id@version for the whole detection, however many groups include it. */
  private detectElement(el: OrderElement, desc: BuildpackDescriptor): Promise<DetectedElement> {
    const key = `${desc.kind}:${desc.id}@${desc.version}`;
    let r = this.runs.get(key);
    if (!r) {
      r = this.runDetect(el, desc);
      this.runs.set(key, r);
    }
    return r;
  }

  private async runDetect(el: OrderElement, desc: BuildpackDescriptor): Promise<DetectedElement> {
    const extension = desc.kind === 'extension';
    const base: DetectedElement = { id: desc.id, version: desc.version, api: desc.api, ...(desc.homepage ? { homepage: desc.homepage } : {}), optional: el.optional || extension, extension, status: 'error' };
    const { inputs } = this;
    if (inputs.platformApi.atLeast('0.12') && !el.optional && !anyTargetMatches(desc.targets, inputs.target)) {
      const t = inputs.target;
      inputs.log.info(`${desc.id}@${desc.version}: no target matches the run image (${t.os ?? '?'}/${t.arch ?? '?'}${t.distro?.name ? ` ${t.distro.name} ${t.distro.version ?? ''}` : ''})`);
      return base;
    }
    const dir = join(this.tmp!, `${desc.kind}-${escapeId(desc.id)}`);
    await mkdir(dir, { recursive: true });
    const planPath = join(dir, 'plan.toml');
    const env = await buildpackEnv(buildpackBaseEnv(inputs.hostEnv), desc, inputs.platformDir, inputs.buildConfigDir);
    env[extension ? 'CNB_EXTENSION_DIR' : 'CNB_BUILDPACK_DIR'] = desc.dir;
    if (desc.apiVersion.atLeast('0.8')) {
      env.CNB_PLATFORM_DIR = inputs.platformDir;
      env.CNB_BUILD_PLAN_PATH = planPath;
    }
    targetEnv(env, desc.apiVersion, inputs.target, inputs.execEnv);
    // An extension without bin/detect passes, with its detect/plan.toml (if any) as its output.
    if (extension && !(await pathExists(join(desc.dir, 'bin', 'detect')))) return this.readPlan({ ...base, status: 'pass' }, desc, join(desc.dir, 'detect', 'plan.toml'));
    const result = await runProgram(join(desc.dir, 'bin', 'detect'), [inputs.platformDir, planPath], { cwd: inputs.appDir, env, stream: false });
    const show = (level: 'debug' | 'info'): void => {
      if (!result.output) return;
      const text = `======== Output: ${desc.id}@${desc.version} ========\n${result.output.trimEnd()}`;
      inputs.log[level](text);
      if (level === 'debug') this.outputs.push(text);
    };
    if (result.startError) {
      inputs.log.info(`======== Error: ${desc.id}@${desc.version} ========\n${result.startError}`);
      return base;
    }
    if (result.code === 100) {
      show('debug');
      return { ...base, status: 'fail' };
    }
    if (result.code !== 0) {
      show('info');
      inputs.log.info(`======== Error: ${desc.id}@${desc.version} ========\nbin/detect exited ${result.code}`);
      return base;
    }
    show('debug');
    return this.readPlan(base, desc, planPath);
  }

  /** A passing element with the Build Plan it wrote; an unreadable plan (or an extension's `requires`) is an error. */
  private async readPlan(base: DetectedElement, desc: BuildpackDescriptor, planPath: string): Promise<DetectedElement> {
    let plan: BuildPlan | undefined;
    try {
      const text = await readFile(planPath, 'utf8').catch(() => '');
      plan = text.trim() ? parseBuildPlan(parseToml(text, `${desc.id}@${desc.version} build plan`), `${desc.id}@${desc.version} build plan`, desc.kind === 'extension') : undefined;
    } catch (err) {
      this.inputs.log.info(`======== Error: ${desc.id}@${desc.version} ========\n${(err as Error).message}`);
      return { ...base, status: 'error' };
    }
    return { ...base, status: 'pass', ...(plan ? { plan } : {}) };
  }
}
