import type { Command } from 'commander';
import { StrataError } from '../oci/errors.js';
import { CONFIG_KEYS, configPath, packConfigPath, parsePullPolicy, readConfig, readOwnConfig, sandboxLimits, writeConfig, type StrataConfig } from '../platform/config.js';
import { printJson } from './output.js';

/** pack's spellings of the list keys. */
const ALIASES: Record<string, string> = {
  'trusted-builder': 'trusted-builders',
  'trust-builder': 'trusted-builders',
  'trust-builders': 'trusted-builders',
  'registry-mirror': 'registry-mirrors',
  'run-image-mirror': 'run-image-mirrors',
};

type Key = (typeof CONFIG_KEYS)[number];

interface Options {
  unset?: boolean;
  mirror: string[];
}

function mirrorsFrom(opts: Options, key: string): string[] {
  if (!opts.mirror.length) throw new StrataError(`config ${key} add: name at least one mirror with -m/--mirror`);
  return opts.mirror;
}

/** `trusted-builders [list|add B…|remove B…]`, as pack takes them. */
function trustedBuilders(config: StrataConfig, verb: string | undefined, args: string[]): string | undefined {
  const list = config['trusted-builders'] ?? [];
  if (!verb || verb === 'list') return list.length ? list.join('\n') : 'No trusted builders (strata runs every builder the same way: buildpacks never see registry credentials)';
  if (!args.length) throw new StrataError(`config trusted-builders ${verb}: name a builder`);
  if (verb === 'add') config['trusted-builders'] = [...new Set([...list, ...args])];
  else if (verb === 'remove') config['trusted-builders'] = list.filter((b) => !args.includes(b));
  else throw new StrataError(`config trusted-builders ${verb}: use list, add or remove`);
  return undefined;
}

/** `run-image-mirrors [list [IMG]|add IMG -m M…|remove IMG [-m M…]]`; `IMG=MIRROR` pairs too. */
function runImageMirrors(config: StrataConfig, verb: string | undefined, args: string[], opts: Options): string | undefined {
  const all = { ...(config['run-image-mirrors'] ?? {}) };
  if (!verb || verb === 'list') {
    const shown = args[0] ? { [args[0]]: all[args[0]] ?? [] } : all;
    return Object.keys(shown).length ? Object.entries(shown).map(([img, ms]) => `${img}:\n${ms.map((m) => `  ${m}`).join('\n')}`).join('\n') : 'No run image mirrors';
  }
  if (verb === 'add' || verb === 'remove') {
    const image = args[0];
    if (!image) throw new StrataError(`config run-image-mirrors ${verb}: name the run image`);
    if (verb === 'add') all[image] = [...new Set([...(all[image] ?? []), ...mirrorsFrom(opts, 'run-image-mirrors')])];
    else if (opts.mirror.length) all[image] = (all[image] ?? []).filter((m) => !opts.mirror.includes(m));
    else delete all[image];
    if (all[image]?.length === 0) delete all[image];
  } else {
    for (const v of [verb, ...args]) {
      const eq = v.indexOf('=');
      if (eq <= 0) throw new StrataError(`config run-image-mirrors "${v}": use add IMAGE -m MIRROR (or IMAGE=MIRROR)`);
      const image = v.slice(0, eq);
      all[image] = [...new Set([...(all[image] ?? []), v.slice(eq + 1)])];
    }
  }
  config['run-image-mirrors'] = all;
  return undefined;
}

/** `registry-mirrors [list|add REG -m M|remove REG]`; `REG=MIRROR` pairs too. */
function registryMirrors(config: StrataConfig, verb: string | undefined, args: string[], opts: Options): string | undefined {
  const all = { ...(config['registry-mirrors'] ?? {}) };
  if (!verb || verb === 'list') return Object.keys(all).length ? Object.entries(all).map(([r, m]) => `${r}: ${m}`).join('\n') : 'No registry mirrors';
  if (verb === 'add') {
    if (!args[0]) throw new StrataError('config registry-mirrors add: name the registry (or *)');
    const mirrors = mirrorsFrom(opts, 'registry-mirrors');
    all[args[0]] = mirrors[mirrors.length - 1]!;
  } else if (verb === 'remove') {
    if (!args.length) throw new StrataError('config registry-mirrors remove: name the registry');
    for (const r of args) delete all[r];
  } else {
    for (const v of [verb, ...args]) {
      const eq = v.indexOf('=');
      if (eq <= 0) throw new StrataError(`config registry-mirrors "${v}": use add REGISTRY -m MIRROR (or REGISTRY=MIRROR)`);
      all[v.slice(0, eq)] = v.slice(eq + 1);
    }
  }
  config['registry-mirrors'] = all;
  return undefined;
}

/** One scalar key set from its value, checked. */
async function setScalar(config: StrataConfig, k: Key, value: string): Promise<void> {
  if (k === 'pull-policy') config[k] = parsePullPolicy(value, 'pull-policy');
  else if (k === 'experimental' || k === 'docker') {
    if (value !== 'true' && value !== 'false') throw new StrataError(`config ${k} "${value}": use true or false`);
    config[k] = value === 'true';
  } else if (k === 'sandbox-pids-limit') {
    config[k] = Number(value);
    sandboxLimits(config);
  } else if (k === 'sandbox-memory-limit') {
    config[k] = value;
    sandboxLimits(config);
  } else if (k === 'ca-certificates') {
    const { resolve } = await import('node:path');
    const { readFile } = await import('node:fs/promises');
    const path = resolve(value);
    const text = await readFile(path, 'utf8').catch(() => undefined);
    if (!text?.includes('-----BEGIN CERTIFICATE-----')) throw new StrataError(`ca-certificates ${value}: not a readable PEM file of certificates`);
    config[k] = path;
  } else if (k === 'default-builder' || k === 'lifecycle-image') config[k] = value;
}

/**
 * `strata config [key] [args…]`: pack's `config` forms (`trusted-builders add|list|remove`, `run-image-mirrors add IMG
 * -m M`, `registry-mirrors add R -m M`, `default-builder`, `pull-policy`, `experimental`, `lifecycle-image`, each with
 * `--unset`) plus strata's own keys. Changes go to strata's file; pack's config.toml is read, never written.
 */
export function registerConfigCommand(program: Command): void {
  program
    .command('config [key] [args...]')
    .description(`show or set defaults (${CONFIG_KEYS.join(', ')}); pack's config.toml is read for any key not set here`)
    .option('-u, --unset', 'remove the key')
    .option('-m, --mirror <mirror>', 'a mirror, for run-image-mirrors and registry-mirrors add/remove (repeatable, comma list)', (v: string, prev: string[]) => [...prev, ...v.split(',').filter(Boolean)], [] as string[])
    .action(async (rawKey: string | undefined, args: string[], opts: Options) => {
      if (!rawKey) return printJson({ path: configPath() ?? null, packConfig: packConfigPath() ?? null, ...(await readConfig()) });
      const key = ALIASES[rawKey] ?? rawKey;
      if (!(CONFIG_KEYS as readonly string[]).includes(key)) throw new StrataError(`unknown config key "${rawKey}"; keys: ${CONFIG_KEYS.join(', ')}`);
      const k = key as Key;
      const own = await readOwnConfig();
      let shown: string | undefined;
      if (opts.unset) {
        if (args.length) throw new StrataError(`config ${key}: give a value or --unset, not both`);
        delete own[k];
      } else if (k === 'trusted-builders') {
        // The list a build sees includes pack's; changes start from it so that `remove` can drop one of pack's.
        const merged = { ...own, 'trusted-builders': (await readConfig())['trusted-builders'] ?? [] };
        shown = trustedBuilders(merged, args[0], args.slice(1));
        own['trusted-builders'] = merged['trusted-builders'];
      } else if (k === 'run-image-mirrors') {
        const merged = { ...own, 'run-image-mirrors': (await readConfig())['run-image-mirrors'] ?? {} };
        shown = runImageMirrors(merged, args[0], args.slice(1), opts);
        own['run-image-mirrors'] = merged['run-image-mirrors'];
      } else if (k === 'registry-mirrors') {
        const merged = { ...own, 'registry-mirrors': (await readConfig())['registry-mirrors'] ?? {} };
        shown = registryMirrors(merged, args[0], args.slice(1), opts);
        own['registry-mirrors'] = merged['registry-mirrors'];
      } else if (!args.length) {
        return printJson((await readConfig())[k] ?? null);
      } else {
        await setScalar(own, k, args[0]!);
      }
      if (shown !== undefined) return void process.stdout.write(`${shown}\n`);
      await writeConfig(own);
      if (k === 'lifecycle-image' && !opts.unset) process.stdout.write('Note: strata builders carry strata\'s own lifecycle; lifecycle-image is kept for pack and not used by strata\n');
      process.stdout.write(`${opts.unset ? 'Unset' : 'Set'} ${key} in ${configPath()}\n`);
    });
}
