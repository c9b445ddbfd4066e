import type { Command } from 'commander';
import { StrataError } from '../oci/errors.js';
import { CONFIG_KEYS, configPath, parsePullPolicy, readConfig, sandboxLimits, writeConfig, type StrataConfig } from '../platform/config.js';
import { printJson } from './output.js';

/**
 * `strata config [key] [value…]`: show or set the defaults. Lists (trusted-builders) take several values; maps take
 * `KEY=VALUE` pairs (run-image-mirrors `image=mirror`, registry-mirrors `registry=mirror`); `--unset` removes.
 */
export function registerConfigCommand(program: Command): void {
  program
    .command('config [key] [values...]')
    .description(`show or set strata's defaults (${CONFIG_KEYS.join(', ')})`)
    .option('--unset', 'remove the key')
    .action(async (key: string | undefined, values: string[], opts: { unset?: boolean }) => {
      const config = await readConfig();
      if (!key) return printJson({ path: configPath(), ...config });
      if (!(CONFIG_KEYS as readonly string[]).includes(key)) throw new StrataError(`unknown config key "${key}"; keys: ${CONFIG_KEYS.join(', ')}`);
      const k = key as keyof StrataConfig;
      if (opts.unset) {
        delete config[k];
      } else if (!values.length) {
        return printJson(config[k] ?? null);
      } else if (k === 'default-builder') {
        config[k] = values[0]!;
      } else if (k === 'pull-policy') {
        config[k] = parsePullPolicy(values[0]!, 'pull-policy');
      } else if (k === 'sandbox-pids-limit') {
        config[k] = Number(values[0]);
        sandboxLimits(config);
      } else if (k === 'ca-certificates') {
        const { resolve } = await import('node:path');
        const { readFile } = await import('node:fs/promises');
        const path = resolve(values[0]!);
        const text = await readFile(path, 'utf8').catch(() => undefined);
        if (!text?.includes('-----BEGIN CERTIFICATE-----')) throw new StrataError(`ca-certificates ${values[0]}: not a readable PEM file of certificates`);
        config[k] = path;
      } else if (k === 'sandbox-memory-limit') {
        config[k] = values[0]!;
        sandboxLimits(config);
      } else if (k === 'trusted-builders') {
        config[k] = [...new Set([...(config[k] ?? []), ...values])];
      } else {
        const pairs = values.map((v) => {
          const eq = v.indexOf('=');
          if (eq <= 0) throw new StrataError(`${key} value "${v}": expected NAME=MIRROR`);
          return [v.slice(0, eq), v.slice(eq + 1)] as const;
        });
        if (k === 'run-image-mirrors') {
          const m = { ...(config[k] ?? {}) };
          for (const [image, mirror] of pairs) m[image] = [...new Set([...(m[image] ?? []), mirror])];
          config[k] = m;
        } else {
          config['registry-mirrors'] = { ...(config['registry-mirrors'] ?? {}), ...Object.fromEntries(pairs) };
        }
      }
      await writeConfig(config);
      process.stdout.write(`${opts.unset ? 'Unset' : 'Set'} ${key} in ${configPath()}\n`);
    });
}
