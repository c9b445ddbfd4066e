import { stringify as toToml } from 'smol-toml';
import { StrataError } from '../oci/errors.js';

export const FORMATS = ['human', 'json', 'yaml', 'toml'] as const;
export type Format = (typeof FORMATS)[number];

/** `-o/--output`, checked up front: an unknown format is an error, never the human one printed instead. */
export function parseFormat(text: string, flag = '-o/--output'): Format {
  if ((FORMATS as readonly string[]).includes(text)) return text as Format;
  throw new StrataError(`${flag} "${text}": use ${FORMATS.join(', ')}`);
}

/** Drops undefined (TOML has no null: those keys are left out there too). */
function plain(data: unknown, nulls: boolean): unknown {
  return JSON.parse(JSON.stringify(data, (_k, v: unknown) => (v === null && !nulls ? undefined : v))) as unknown;
}

/** Structured output with pack's field names as given; `human` is the caller's. The YAML library loads only for yaml. */
export async function writeStructured(data: Record<string, unknown>, format: Exclude<Format, 'human'>): Promise<void> {
  if (format === 'json') process.stdout.write(`${JSON.stringify(plain(data, true), null, 2)}\n`);
  else if (format === 'yaml') process.stdout.write((await import('yaml')).stringify(plain(data, true)));
  else process.stdout.write(`${toToml(plain(data, false) as Record<string, unknown>)}\n`);
}
