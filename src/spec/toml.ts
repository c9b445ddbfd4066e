import { readFile } from 'node:fs/promises';
import { parse, stringify, TomlError } from 'smol-toml';
import { StrataError } from '../oci/errors.js';
import { writeFileAtomic } from '../oci/fsutil.js';

export type Table = Record<string, unknown>;

/** A problem in a CNB file; phases map it to their own exit code. */
export class SpecError extends StrataError {}

/** smol-toml builds tables without prototypes; models and their consumers expect ordinary objects. */
function ordinary(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(ordinary);
  if (isTable(value)) return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, ordinary(v)]));
  return value;
}

export function parseToml(text: string, file: string): Table {
  try {
    return ordinary(parse(text)) as Table;
  } catch (err) {
    const where = err instanceof TomlError ? ` at line ${err.line}` : '';
    throw new SpecError(`${file}: invalid TOML${where}: ${(err as Error).message.split('\n')[0]}`);
  }
}

/** Reads and parses a TOML file; undefined when it does not exist. */
export async function readToml(path: string): Promise<Table | undefined> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new SpecError(`${path}: cannot read: ${(err as Error).message}`);
  }
  return parseToml(text, path);
}

/** Drops undefined values, which TOML cannot hold, so models can be written as they are. */
function clean(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(clean);
  if (value && typeof value === 'object' && !(value instanceof Date)) {
    return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined).map(([k, v]) => [k, clean(v)]));
  }
  return value;
}

export function toToml(table: Table): string {
  return stringify(clean(table) as Table);
}

export async function writeToml(path: string, table: Table): Promise<void> {
  await writeFileAtomic(path, toToml(table));
}

/**
 * Typed access to one table of a file, with one-line errors naming the file and the key. `where` is the file and,
 * for nested tables, the path to them (`buildpack.toml [[order]][0]`).
 */
export class Fields {
  constructor(
    readonly table: Table,
    readonly where: string,
  ) {}

  static of(value: unknown, where: string): Fields {
    if (value === undefined) return new Fields({}, where);
    if (!isTable(value)) throw new SpecError(`${where}: expected a table`);
    return new Fields(value, where);
  }

  private bad(key: string, expected: string): never {
    throw new SpecError(`${this.where}: "${key}" must be ${expected}`);
  }

  /** Refuses keys other than `known` (a typo in a config file is an error, not a silently ignored setting). */
  only(...known: string[]): this {
    for (const k of Object.keys(this.table)) if (!known.includes(k)) throw new SpecError(`${this.where}: unknown key "${k}" (expected ${known.join(', ')})`);
    return this;
  }

  has(key: string): boolean {
    return this.table[key] !== undefined;
  }

  str(key: string): string | undefined {
    const v = this.table[key];
    if (v === undefined) return undefined;
    if (typeof v !== 'string') this.bad(key, 'a string');
    return v;
  }

  reqStr(key: string): string {
    const v = this.str(key);
    if (v === undefined || v === '') throw new SpecError(`${this.where}: "${key}" is required`);
    return v;
  }

  bool(key: string, fallback = false): boolean {
    const v = this.table[key];
    if (v === undefined) return fallback;
    if (typeof v !== 'boolean') this.bad(key, 'true or false');
    return v;
  }

  strArray(key: string): string[] | undefined {
    const v = this.table[key];
    if (v === undefined) return undefined;
    if (!Array.isArray(v) || v.some((x) => typeof x !== 'string')) this.bad(key, 'an array of strings');
    return v as string[];
  }

  sub(key: string): Fields {
    return Fields.of(this.table[key], `${this.where} [${key}]`);
  }

  /** Free-form table (metadata); kept as it is. */
  free(key: string): Table | undefined {
    const v = this.table[key];
    if (v === undefined) return undefined;
    if (!isTable(v)) this.bad(key, 'a table');
    return v;
  }

  list(key: string): Fields[] {
    const v = this.table[key];
    if (v === undefined) return [];
    if (!Array.isArray(v)) this.bad(key, 'an array of tables ([[' + key + ']])');
    return v.map((x, i) => Fields.of(x, `${this.where} [[${key}]] #${i + 1}`));
  }
}

export function isTable(v: unknown): v is Table {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Date);
}
