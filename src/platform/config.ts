import { join } from 'node:path';
import { StrataError } from '../oci/errors.js';
import { parseSize } from '../oci/limits.js';
import { DEFAULT_LIMITS, type SandboxLimits } from './executor.js';
import { readToml, writeToml } from '../spec/toml.js';
import { strataHome } from './localstore.js';

/** `$STRATA_HOME/config.toml`: the user's defaults, as pack keeps them in its config. */
export interface StrataConfig {
  'default-builder'?: string;
  'trusted-builders'?: string[];
  'run-image-mirrors'?: Record<string, string[]>;
  'registry-mirrors'?: Record<string, string>;
  'pull-policy'?: PullPolicy;
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

export type PullPolicy = 'always' | 'if-not-present' | 'never';

export const CONFIG_KEYS = ['default-builder', 'trusted-builders', 'run-image-mirrors', 'registry-mirrors', 'pull-policy', 'sandbox-pids-limit', 'sandbox-memory-limit', 'ca-certificates'] as const;

export function configPath(env: NodeJS.ProcessEnv = process.env): string {
  return join(strataHome(env), 'config.toml');
}

export async function readConfig(env: NodeJS.ProcessEnv = process.env): Promise<StrataConfig> {
  return ((await readToml(configPath(env))) ?? {}) as StrataConfig;
}

export async function writeConfig(config: StrataConfig, env: NodeJS.ProcessEnv = process.env): Promise<void> {
  await writeToml(configPath(env), config as Record<string, unknown>);
}

export function parsePullPolicy(text: string, where: string): PullPolicy {
  if (text === 'always' || text === 'if-not-present' || text === 'never') return text;
  throw new StrataError(`${where} "${text}": use always, if-not-present or never`);
}

/** The sandbox limits from the config, else the defaults; a bad value is one line naming the key. */
export function sandboxLimits(config: StrataConfig): SandboxLimits {
  const pids = config['sandbox-pids-limit'];
  if (pids !== undefined && (!Number.isInteger(pids) || pids < 8)) throw new StrataError(`${configPath()}: sandbox-pids-limit ${String(pids)}: expected a whole number of at least 8`);
  const mem = config['sandbox-memory-limit'];
  const memoryBytes = mem === undefined ? DEFAULT_LIMITS.memoryBytes : parseSize(String(mem), `${configPath()}: sandbox-memory-limit`);
  if (memoryBytes < 64 << 20) throw new StrataError(`${configPath()}: sandbox-memory-limit ${String(mem)}: at least 64m`);
  return { pids: pids ?? DEFAULT_LIMITS.pids, memoryBytes };
}
