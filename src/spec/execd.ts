import { SpecError, parseToml } from './toml.js';

/** What an exec.d program writes on fd 3: NAME = "value" pairs that override the launch env. */
export function parseExecdOutput(text: string, program: string): Record<string, string> {
  const t = parseToml(text, `exec.d ${program} output`);
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(t)) {
    if (typeof v !== 'string') throw new SpecError(`exec.d ${program} output: ${k} must be a string`);
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(k)) throw new SpecError(`exec.d ${program} output: "${k}" is not an environment variable name`);
    out[k] = v;
  }
  return out;
}
