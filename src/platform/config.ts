import { join } from 'node:path';
import { StrataError } from '../oci/errors.js';
import { readToml, writeToml } from '../spec/toml.js';
import { strataHome } from './localstore.js';

/** `$STRATA_HOME/config.toml`: the user's defaults, as pack keeps them in its config. */
export interface StrataConfig {
  'default-builder'?: string;
  'trusted-builders'?: string[];
  'run-image-mirrors'?: Record<string, string[]>;
  'registry-mirrors'?: Record<string, string>;
  'pull-policy'?: PullPolicy;
}

export type PullPolicy = 'always' | 'if-not-present' | 'never';

export const CONFIG_KEYS = ['default-builder', 'trusted-builders', 'run-image-mirrors', 'registry-mirrors', 'pull-policy'] as const;

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
