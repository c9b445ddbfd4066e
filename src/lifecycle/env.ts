import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';

/** An environment as the lifecycle builds it: ordered name → value. */
export type Env = Record<string, string>;

/**
 * The most one environment variable (`NAME=value` and its NUL) may be for Linux to start a process with it
 * (MAX_ARG_STRLEN, 32 pages); a bigger one fails the exec with E2BIG, long after it was declared.
 */
export const MAX_ENV_ENTRY = 128 * 1024;

/** Undefined when a process can be given `name=value`; else why not, in words. */
export function envEntryTooBig(name: string, bytes: number): string | undefined {
  const size = Buffer.byteLength(name) + 1 + bytes + 1;
  return size > MAX_ENV_ENTRY ? `${Math.ceil(size / 1024)} KiB; a process can be given at most ${MAX_ENV_ENTRY / 1024} KiB per variable` : undefined;
}

/** Variables that hold search paths; layer dirs and user env files prepend to them with `:`. */
export const PATH_VARS = ['PATH', 'LD_LIBRARY_PATH', 'LIBRARY_PATH', 'CPATH', 'PKG_CONFIG_PATH'] as const;

const PASSED = new Set(['HOME', 'HOSTNAME', 'CNB_STACK_ID', 'HTTP_PROXY', 'HTTPS_PROXY', 'NO_PROXY', 'http_proxy', 'https_proxy', 'no_proxy', ...PATH_VARS]);

/**
 * What the creator passes to the phases that run buildpack code (detector, builder): the settings they read and the
 * variables buildpacks may see; never credentials. A buildpack can read its parent's environment from
 * /proc/$PPID/environ, so anything secret must not be in the phase's environment at all.
 */
export function buildpackPhaseEnv(host: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(host)) {
    if (v === undefined || CREDENTIAL_VARS.has(k)) continue;
    if (PASSED.has(k) || k.startsWith('CNB_') || k === 'SOURCE_DATE_EPOCH' || k === 'STRATA_DEBUG' || k === 'LANG' || k.startsWith('LC_') || k === 'TZ') env[k] = v;
  }
  return env;
}

/** Variables that carry registry credentials or point at them. */
const CREDENTIAL_VARS = new Set(['CNB_REGISTRY_AUTH', 'DOCKER_CONFIG', 'REGISTRY_AUTH_FILE', 'DOCKER_AUTH_CONFIG']);

/** The lifecycle's own environment, cut down to what buildpacks may see (no credentials, no CNB_* settings). */
export function buildpackBaseEnv(host: NodeJS.ProcessEnv): Env {
  const env: Env = {};
  for (const [k, v] of Object.entries(host)) if (v !== undefined && PASSED.has(k)) env[k] = v;
  return env;
}

export type EnvAction = 'override' | 'default' | 'append' | 'prepend';

function apply(env: Env, name: string, action: EnvAction, value: string, delim: string): void {
  const current = env[name] ?? '';
  switch (action) {
    case 'override':
      env[name] = value;
      break;
    case 'default':
      if (current === '') env[name] = value;
      break;
    case 'append':
      env[name] = current === '' ? value : `${current}${delim}${value}`;
      break;
    case 'prepend':
      env[name] = current === '' ? value : `${value}${delim}${current}`;
      break;
  }
}

async function files(dir: string): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return [];
  }
  const out: string[] = [];
  for (const n of names.sort()) {
    // Directories (and links to them) are process-specific subdirs or noise, never variables.
    const st = await stat(join(dir, n)).catch(() => undefined);
    if (st?.isFile()) out.push(n);
  }
  return out;
}

/**
 * Applies an env dir (`env/`, `env.build/`, `env.launch/`, `env.launch/<process>/`, build-config `env/`): each file
 * is `NAME[.action]` holding the value verbatim. Files apply in name order; `.delim` sets the separator for append
 * and prepend of that name within the dir, and without one values are joined directly. `fallback` is what a file
 * without a suffix does: override for buildpack layers, default for the operator's build-config.
 */
export async function applyEnvDir(env: Env, dir: string, fallback: 'override' | 'default' = 'override'): Promise<void> {
  const names = await files(dir);
  const delims = new Map<string, string>();
  for (const n of names) if (n.endsWith('.delim')) delims.set(n.slice(0, -'.delim'.length), await readFile(join(dir, n), 'utf8'));
  for (const n of names) {
    const dot = n.indexOf('.');
    const name = dot < 0 ? n : n.slice(0, dot);
    const suffix = dot < 0 ? '' : n.slice(dot + 1);
    if (suffix === 'delim') continue;
    const action: EnvAction | undefined = suffix === '' ? fallback : suffix === 'override' || suffix === 'default' || suffix === 'append' || suffix === 'prepend' ? suffix : undefined;
    if (!action) continue;
    apply(env, name, action, await readFile(join(dir, n), 'utf8'), delims.get(name) ?? '');
  }
}

/** User env from `<platform>/env/`: path variables are prepended with `:`, everything else replaced. */
export async function applyPlatformEnv(env: Env, platformDir: string): Promise<void> {
  const dir = join(platformDir, 'env');
  for (const n of await files(dir)) {
    const value = await readFile(join(dir, n), 'utf8');
    if ((PATH_VARS as readonly string[]).includes(n)) apply(env, n, 'prepend', value, ':');
    else env[n] = value;
  }
}

const BUILD_DIRS: [string, string[]][] = [
  ['bin', ['PATH']],
  ['lib', ['LD_LIBRARY_PATH', 'LIBRARY_PATH']],
  ['include', ['CPATH']],
  ['pkgconfig', ['PKG_CONFIG_PATH']],
];

/** A build layer's well-known dirs, prepended to their search paths (only those that exist). */
export async function applyLayerRoot(env: Env, layerDir: string): Promise<void> {
  for (const [sub, vars] of BUILD_DIRS) {
    const st = await stat(join(layerDir, sub)).catch(() => undefined);
    if (!st?.isDirectory()) continue;
    for (const v of vars) apply(env, v, 'prepend', join(layerDir, sub), ':');
  }
}

