import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { StrataError } from '../../oci/errors.js';
import { layerTime } from '../../oci/layer.js';
import { hostPlatform } from '../../oci/manifest.js';
import { Reference } from '../../oci/reference.js';
import { openTarget, parseTarget, type StoreOptions } from '../../oci/target.js';
import type { ApiVersion } from '../../spec/api.js';
import { readAnalyzed } from '../../spec/analyzed.js';
import { Exit } from '../../spec/exit.js';
import { readRunImages, type RunImage } from '../../spec/run.js';
import type { ImageTarget } from '../../spec/target.js';
import { DirCache, ImageCache, type Cache } from '../cache.js';
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

export function storeOptions(v: FlagValues, env: NodeJS.ProcessEnv = process.env): StoreOptions {
  if (!v.bool('layout')) return { insecureRegistries: v.list('insecure-registry') };
  // Layout mode is experimental in the Platform API: allowed only when CNB_EXPERIMENTAL_MODE says so.
  const mode = env.CNB_EXPERIMENTAL_MODE || 'error';
  if (mode === 'error') throw new StrataError('-layout is experimental; set CNB_EXPERIMENTAL_MODE=warn (or quiet) to use it', Exit.InvalidArgs);
  const layoutDir = v.str('layout-dir');
  if (!layoutDir) throw new StrataError('-layout needs -layout-dir (or CNB_LAYOUT_DIR)', Exit.InvalidArgs);
  return { insecureRegistries: v.list('insecure-registry'), layoutDir };
}

export function numeric(v: FlagValues, name: string): number {
  const text = v.str(name)!;
  if (!/^\d+$/.test(text)) throw new StrataError(`-${name} "${text}" is not a numeric id`, Exit.InvalidArgs);
  return Number(text);
}

/**
 * The output names: positional images plus -tag, each with a tag (a digest names nothing to write), all on one
 * registry (the spec's rule unless exporting to a daemon).
 */
export function outputNames(v: FlagValues): string[] {
  const names = [...v.positional, ...v.list('tag')];
  if (!names.length) throw new StrataError('an output image name is required (positional argument)', Exit.InvalidArgs);
  if (v.bool('daemon')) return names;
  for (const name of names) {
    const t = parseTarget(name);
    if ((t.kind === 'registry' && t.ref.digest && !t.ref.tag) || (t.kind === 'layout' && t.digest)) throw new StrataError(`${name}: an output image needs a tag, not a digest`, Exit.InvalidArgs);
  }
  const registries = new Set(names.filter((n) => !n.startsWith('oci:')).map((n) => Reference.parse(n).registry));
  if (registries.size > 1) throw new StrataError(`writing to multiple registries (${[...registries].join(', ')}) is not allowed; keep every tag on one registry`, Exit.InvalidArgs);
  return names;
}

/** `-cache-image` (a registry or oci: image) or `-cache-dir`; none means no cache. */
export async function openCache(v: FlagValues, log: Logger): Promise<Cache | undefined> {
  const image = v.str('cache-image');
  if (image) {
    const t = await openTarget(parseTarget(image), { ...storeOptions(v), create: true });
    return new ImageCache(t.store, t.tag ?? 'latest', image, log);
  }
  const dir = v.str('cache-dir');
  return dir ? DirCache.open(dir, log) : undefined;
}

export function createdTime(env: NodeJS.ProcessEnv): Date {
  try {
    return layerTime(env);
  } catch (err) {
    throw new StrataError((err as Error).message, Exit.InvalidArgs);
  }
}

/** run.toml from Platform API 0.12, stack.toml before it. */
export async function runImagesOf(v: FlagValues, api: ApiVersion): Promise<RunImage[]> {
  return api.atLeast('0.12') ? readRunImages(v.str('run')!) : readRunImages(v.str('stack')!, true);
}
