import { join } from 'node:path';
import { StrataError } from '../oci/errors.js';
import { parseSize } from '../oci/layerlimits.js';
import { DEFAULT_LIMITS, type SandboxLimits } from './sandboxlimits.js';
import { Fields, readToml, writeToml, type Table } from '../spec/toml.js';
import { strataHome, type PullPolicy } from '../oci/images.js';
import { needHome, userHome } from '../oci/userhome.js';

/**
 * strata's defaults, as pack keeps them in its config: strata's own file, with pack's `config.toml` read as the
 * fallback for every key strata's does not set (a pack user's setup works unchanged).
 */
export interface StrataConfig {
  'default-builder'?: string;
  'trusted-builders'?: string[];
  'run-image-mirrors'?: Record<string, string[]>;
  /** Registry → mirror (`host[/path]`) that images are pulled from instead; `*` for every registry. */
  'registry-mirrors'?: Record<string, string>;
  'pull-policy'?: PullPolicy;
  experimental?: boolean;
  /** Load every local build into the Docker or Podman engine at DOCKER_HOST too, as if --docker were given. */
  docker?: boolean;
  /** pack's lifecycle image; strata's builders carry strata's own lifecycle, so it is kept but not used. */
  'lifecycle-image'?: string;
  /** Processes and threads one sandboxed build step or app may have. */
  'sandbox-pids-limit'?: number;
  /** Memory for one sandboxed build step or app: bytes, or with a k/m/g suffix. */
  'sandbox-memory-limit'?: string;
  /**
   * A PEM bundle of CA certificates every build trusts (behind a TLS-inspecting proxy, say): given to buildpacks as a
   * `ca-certificates` binding (the CNB bindings convention) and through NODE_EXTRA_CA_CERTS and SSL_CERT_FILE.
   */
  'ca-certificates'?: string;
}

export const CONFIG_KEYS = ['default-builder', 'trusted-builders', 'run-image-mirrors', 'registry-mirrors', 'pull-policy', 'experimental', 'docker', 'lifecycle-image', 'sandbox-pids-limit', 'sandbox-memory-limit', 'ca-certificates'] as const;

/**
 * strata's config file: `$STRATA_CONFIG_HOME/config.toml`; else, when `$STRATA_HOME` is set, inside that
 * self-contained home; else `$XDG_CONFIG_HOME/strata/config.toml` (config beside other programs', data in the data dir).
 */
export function configPath(env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (env.STRATA_CONFIG_HOME) return join(env.STRATA_CONFIG_HOME, 'config.toml');
  if (env.STRATA_HOME) return join(env.STRATA_HOME, 'config.toml');
  const base = env.XDG_CONFIG_HOME || (userHome(env) && join(userHome(env)!, '.config'));
  // No home and nothing instead: no config to read, and writing one says what to set.
  return base ? join(base, 'strata', 'config.toml') : undefined;
}

/** How messages name the config file. */
const configName = (env: NodeJS.ProcessEnv = process.env): string => configPath(env) ?? 'config.toml';

/** pack's config file: `$PACK_HOME/config.toml`, else `~/.pack/config.toml`. */
export function packConfigPath(env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (env.PACK_HOME) return join(env.PACK_HOME, 'config.toml');
  const home = userHome(env);
  return home ? join(home, '.pack', 'config.toml') : undefined;
}

/** strata's own settings only: what `strata config` changes and writes back. */
export async function readOwnConfig(env: NodeJS.ProcessEnv = process.env): Promise<StrataConfig> {
  const path = configPath(env);
  if (!path) return {};
  const own = await readToml(path);
  if (own) return own as StrataConfig;
  // Before config moved to the config dir it sat in the data dir.
  if (!env.STRATA_CONFIG_HOME && !env.STRATA_HOME) return ((await readToml(join(strataHome(env), 'config.toml'))) ?? {}) as StrataConfig;
  return {};
}

/** pack's config.toml in strata's terms; keys strata does not know are ignored. */
export function fromPackConfig(t: Table, file: string): StrataConfig {
  const f = new Fields(t, file);
  const out: StrataConfig = {};
  const builder = f.str('default-builder-image');
  if (builder) out['default-builder'] = builder;
  const policy = f.str('pull-policy');
  if (policy) out['pull-policy'] = parsePullPolicy(policy, `${file}: pull-policy`);
  if (f.has('experimental')) out.experimental = f.bool('experimental');
  const lifecycle = f.str('lifecycle-image');
  if (lifecycle) out['lifecycle-image'] = lifecycle;
  const trusted = f.list('trusted-builders').map((b) => b.reqStr('name'));
  if (trusted.length) out['trusted-builders'] = trusted;
  const runImages = f.list('run-images');
  if (runImages.length) out['run-image-mirrors'] = Object.fromEntries(runImages.map((r) => [r.reqStr('image'), r.strArray('mirrors') ?? []]));
  const mirrors = f.free('registry-mirrors');
  if (mirrors) out['registry-mirrors'] = Object.fromEntries(Object.entries(mirrors).filter((e): e is [string, string] => typeof e[1] === 'string'));
  return out;
}

/** The config in effect: strata's own keys, and pack's for any strata's file leaves unset. */
export async function readConfig(env: NodeJS.ProcessEnv = process.env): Promise<StrataConfig> {
  const own = await readOwnConfig(env);
  const packPath = packConfigPath(env);
  const pack = packPath ? await readToml(packPath) : undefined;
  return { ...(pack ? fromPackConfig(pack, packPath!) : {}), ...own };
}

export async function writeConfig(config: StrataConfig, env: NodeJS.ProcessEnv = process.env): Promise<void> {
  const path = configPath(env);
  // Without a path there is no home: needHome says so, naming what to set.
  if (!path) return void needHome('STRATA_CONFIG_HOME', env);
  await writeToml(path, config as Record<string, unknown>);
}

export function parsePullPolicy(text: string, where: string): PullPolicy {
  if (text === 'always' || text === 'if-not-present' || text === 'never') return text;
  throw new StrataError(`${where} "${text}": use always, if-not-present or never`);
}

/** `--pull-policy`, else the config's (strata's or pack's), else if-not-present; a bad value names the flag or file. */
export function pullPolicyOf(flag: string | undefined, config: StrataConfig): PullPolicy {
  return parsePullPolicy(flag ?? config['pull-policy'] ?? 'if-not-present', flag !== undefined ? '--pull-policy' : `${configName()}: pull-policy`);
}

/**
 * What the machine's config says about every build, whoever starts it (`strata build`, a fleet's build child): the
 * pull policy, mirrors, sandbox limits and the CA bundle builds trust.
 */
export function configuredBuild(config: StrataConfig, pullPolicyFlag?: string): { pullPolicy: PullPolicy; runImageMirrors: Record<string, string[]>; limits: SandboxLimits; caCertificates?: string; registryMirrors: Record<string, string> } {
  return {
    pullPolicy: pullPolicyOf(pullPolicyFlag, config),
    runImageMirrors: config['run-image-mirrors'] ?? {},
    limits: sandboxLimits(config),
    ...(config['ca-certificates'] ? { caCertificates: config['ca-certificates'] } : {}),
    registryMirrors: config['registry-mirrors'] ?? {},
  };
}

/** The sandbox limits from the config, else the defaults; a bad value is one line naming the key. */
export function sandboxLimits(config: StrataConfig): SandboxLimits {
  const pids = config['sandbox-pids-limit'];
  if (pids !== undefined && (!Number.isInteger(pids) || pids < 8)) throw new StrataError(`${configName()}: sandbox-pids-limit ${String(pids)}: expected a whole number of at least 8`);
  const mem = config['sandbox-memory-limit'];
  const memoryBytes = mem === undefined ? DEFAULT_LIMITS.memoryBytes : parseSize(String(mem), `${configName()}: sandbox-memory-limit`);
  if (memoryBytes < 64 << 20) throw new StrataError(`${configName()}: sandbox-memory-limit ${String(mem)}: at least 64m`);
  return { pids: pids ?? DEFAULT_LIMITS.pids, memoryBytes };
}

/** The builder strata makes on first use when none is given or configured (`platform/defaultbuilder.ts`). */
export const DEFAULT_BUILDER = 'strata/builder:nodejs';
