import { StrataError } from '../oci/errors.js';
import { Exit } from '../spec/exit.js';

export interface FlagDef {
  name: string;
  env?: string;
  kind: 'string' | 'bool' | 'list';
  /** Defaults may depend on other final values (`<layers>/group.toml`), so they are computed last. */
  default?: string | ((v: FlagValues) => string | undefined);
  alias?: string;
}

export type FlagValues = { str(name: string): string | undefined; bool(name: string): boolean; list(name: string): string[]; positional: string[] };

function argsError(msg: string): StrataError {
  return new StrataError(msg, Exit.InvalidArgs);
}

const TRUE = new Set(['1', 't', 'T', 'true', 'TRUE', 'True']);
const FALSE = new Set(['0', 'f', 'F', 'false', 'FALSE', 'False']);

/**
 * Parses the reference lifecycle's Go-style flags (`-name value`, `-name=value`, `--name`; booleans take no value or
 * `=true|false`; parsing stops at the first positional argument or `--`) and resolves each as flag, else a non-empty
 * env var, else its default.
 */
export function parseFlags(phase: string, argv: string[], defs: FlagDef[], env: NodeJS.ProcessEnv): FlagValues {
  const byName = new Map<string, FlagDef>();
  for (const d of defs) {
    byName.set(d.name, d);
    if (d.alias) byName.set(d.alias, d);
  }
  const given = new Map<string, string | boolean | string[]>();
  let i = 0;
  for (; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') {
      i++;
      break;
    }
    if (!a.startsWith('-') || a === '-') break;
    const body = a.replace(/^--?/, '');
    const eq = body.indexOf('=');
    const name = eq < 0 ? body : body.slice(0, eq);
    const def = byName.get(name);
    if (!def) throw argsError(`unknown flag -${name}`);
    let value: string | undefined = eq < 0 ? undefined : body.slice(eq + 1);
    if (def.kind === 'bool') {
      if (value === undefined) given.set(def.name, true);
      else if (TRUE.has(value)) given.set(def.name, true);
      else if (FALSE.has(value)) given.set(def.name, false);
      else throw argsError(`-${name} takes true or false, not "${value}"`);
      continue;
    }
    if (value === undefined) {
      value = argv[++i];
      if (value === undefined) throw argsError(`flag -${name} needs a value`);
    }
    // `-tag=` adds nothing: platforms template flags (Tekton's `-tag=$(params.TAGS)`) and leave some empty.
    if (def.kind === 'list') given.set(def.name, [...((given.get(def.name) as string[] | undefined) ?? []), ...(value ? [value] : [])]);
    else given.set(def.name, value);
  }
  const positional = argv.slice(i);
  const cache = new Map<string, string | undefined>();
  const values: FlagValues = {
    positional,
    str(name) {
      if (cache.has(name)) return cache.get(name);
      const def = byName.get(name);
      if (!def) throw new Error(`flag ${name} is not defined for ${phase}`);
      let v = given.get(def.name) as string | undefined;
      if (v === undefined && def.env && env[def.env]) v = env[def.env];
      if (v === undefined && def.default !== undefined) v = typeof def.default === 'function' ? def.default(values) : def.default;
      cache.set(name, v);
      return v;
    },
    bool(name) {
      const def = byName.get(name);
      const v = given.get(name);
      if (typeof v === 'boolean') return v;
      const e = def?.env ? env[def.env] : undefined;
      if (e) {
        if (TRUE.has(e)) return true;
        if (FALSE.has(e)) return false;
        throw argsError(`${def!.env}="${e}" is not true or false`);
      }
      return false;
    },
    list(name) {
      const def = byName.get(name);
      const v = given.get(name) as string[] | undefined;
      if (v) return v;
      const e = def?.env ? env[def.env] : undefined;
      return e ? e.split(',').map((s) => s.trim()).filter(Boolean) : [];
    },
  };
  return values;
}
