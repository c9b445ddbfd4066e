import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { StrataError } from '../../oci/errors.js';
import { hostPlatform } from '../../oci/manifest.js';
import type { ApiVersion } from '../../spec/api.js';
import { readAnalyzed } from '../../spec/analyzed.js';
import { Exit } from '../../spec/exit.js';
import { readRunImages, type RunImage } from '../../spec/run.js';
import type { ImageTarget } from '../../spec/target.js';
import type { BuildpackRunInputs } from '../detect.js';
import type { FlagDef, FlagValues } from '../flags.js';
import type { Logger } from '../log.js';

/**
 * What the phase commands share: the Platform API's flags (each with its CNB_* variable and default) and the readings
 * of them that several phases make. Each phase's own flags, arguments and exit code are in its file here.
 */

/** One phase command: its flags, what it may take, the exit code its failures get, and what it does. */
export interface Phase {
  flags: FlagDef[];
  /** Detect and build run buildpack code; the spec's reference refuses to do that as root. */
  refuseRoot: boolean;
  /** Takes image names as positional arguments (analyzer, exporter, creator, rebaser); the rest take none. */
  images?: boolean;
  errorCode: number;
  /** A command outside the Platform API (kpack's rebase) runs without CNB_PLATFORM_API, as the latest. */
  ownApi?: boolean;
  run(v: FlagValues, ctx: PhaseContext): Promise<void>;
}

export interface PhaseContext {
  api: ApiVersion;
  env: NodeJS.ProcessEnv;
  log: Logger;
}

export const inLayers = (file: string) => (v: FlagValues) => join(v.str('layers')!, file);

export const COMMON: FlagDef[] = [
  { name: 'layers', env: 'CNB_LAYERS_DIR', kind: 'string', default: '/layers' },
  { name: 'log-level', env: 'CNB_LOG_LEVEL', kind: 'string', default: 'info' },
  { name: 'no-color', env: 'CNB_NO_COLOR', kind: 'bool' },
];

export const BUILDPACK_PHASE: FlagDef[] = [
  { name: 'app', env: 'CNB_APP_DIR', kind: 'string', default: '/workspace' },
  { name: 'platform', env: 'CNB_PLATFORM_DIR', kind: 'string', default: '/platform' },
  { name: 'buildpacks', env: 'CNB_BUILDPACKS_DIR', kind: 'string', default: '/cnb/buildpacks' },
  { name: 'build-config', env: 'CNB_BUILD_CONFIG_DIR', kind: 'string', default: '/cnb/build-config' },
  { name: 'group', env: 'CNB_GROUP_PATH', kind: 'string', default: inLayers('group.toml') },
  { name: 'plan', env: 'CNB_PLAN_PATH', kind: 'string', default: inLayers('plan.toml') },
  { name: 'analyzed', env: 'CNB_ANALYZED_PATH', kind: 'string', default: inLayers('analyzed.toml') },
];

export const REGISTRY_PHASE: FlagDef[] = [
  { name: 'insecure-registry', env: 'CNB_INSECURE_REGISTRIES', kind: 'list' },
  { name: 'uid', env: 'CNB_USER_ID', kind: 'string', default: () => String(process.getuid?.() ?? 0) },
  { name: 'gid', env: 'CNB_GROUP_ID', kind: 'string', default: () => String(process.getgid?.() ?? 0) },
  { name: 'tag', kind: 'list' },
  { name: 'daemon', env: 'CNB_USE_DAEMON', kind: 'bool' },
  { name: 'layout', env: 'CNB_USE_LAYOUT', kind: 'bool' },
  { name: 'layout-dir', env: 'CNB_LAYOUT_DIR', kind: 'string' },
  { name: 'cache-dir', env: 'CNB_CACHE_DIR', kind: 'string' },
  { name: 'cache-image', env: 'CNB_CACHE_IMAGE', kind: 'string' },
  { name: 'launch-cache', env: 'CNB_LAUNCH_CACHE_DIR', kind: 'string' },
];

export const RUN_TOML: FlagDef = { name: 'run', env: 'CNB_RUN_PATH', kind: 'string', default: '/cnb/run.toml' };
export const RUN_IMAGE: FlagDef = { name: 'run-image', env: 'CNB_RUN_IMAGE', kind: 'string', alias: 'image' };
export const PREVIOUS_IMAGE: FlagDef = { name: 'previous-image', env: 'CNB_PREVIOUS_IMAGE', kind: 'string' };
export const LAUNCHER: FlagDef = { name: 'launcher', kind: 'string', default: '/cnb/lifecycle/launcher' };
export const PROCESS_TYPE: FlagDef = { name: 'process-type', env: 'CNB_PROCESS_TYPE', kind: 'string' };
export const STACK_TOML: FlagDef = { name: 'stack', env: 'CNB_STACK_PATH', kind: 'string', default: '/cnb/stack.toml' };

/** The run image's target from analyzed.toml, falling back to this machine (linux, its arch, /etc/os-release). */
export async function buildTarget(analyzedPath: string): Promise<ImageTarget> {
  const analyzed = await readAnalyzed(analyzedPath);
  const t: ImageTarget = { os: 'linux', arch: hostPlatform().architecture, ...(analyzed?.runImage?.target ?? {}) };
  if (!t.distro) {
    const osRelease = await readFile('/etc/os-release', 'utf8').catch(() => '');
    const field = (k: string) => new RegExp(`^${k}="?([^"\\n]*)"?$`, 'm').exec(osRelease)?.[1];
    const name = field('ID');
    const version = field('VERSION_ID');
    if (name) t.distro = { name, ...(version ? { version } : {}) };
  }
  return t;
}

export function execEnv(env: NodeJS.ProcessEnv): string {
  const v = env.CNB_EXEC_ENV || 'production';
  if (v.includes('/')) throw new StrataError(`CNB_EXEC_ENV="${v}" must not contain "/"`, Exit.InvalidArgs);
  return v;
}

export async function runInputs(v: FlagValues, { api, env, log }: PhaseContext): Promise<BuildpackRunInputs> {
  return {
    buildpacksDir: v.str('buildpacks')!,
    appDir: v.str('app')!,
    platformDir: v.str('platform')!,
    buildConfigDir: v.str('build-config')!,
    platformApi: api,
    target: await buildTarget(v.str('analyzed')!),
    execEnv: execEnv(env),
    hostEnv: env,
    log,
  };
}

export function numeric(v: FlagValues, name: string): number {
  const text = v.str(name)!;
  if (!/^\d+$/.test(text)) throw new StrataError(`-${name} "${text}" is not a numeric id`, Exit.InvalidArgs);
  return Number(text);
}

/** run.toml from Platform API 0.12, stack.toml before it. */
export async function runImagesOf(v: FlagValues, api: ApiVersion): Promise<RunImage[]> {
  return api.atLeast('0.12') ? readRunImages(v.str('run')!) : readRunImages(v.str('stack')!, true);
}
