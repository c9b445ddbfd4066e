import { StrataError } from './errors.js';

/**
 * How much a layer from elsewhere may expand into on disk. Pulled layers are hostile input: a few MB of gzip can
 * inflate to many GB (a "bomb"), and a tar of millions of empty files exhausts inodes. Each cap is an environment
 * setting so an operator with unusual images can raise it.
 */
export interface ExtractLimits {
  /** Uncompressed bytes one layer may hold. */
  maxBytes: number;
  /** Uncompressed bytes per compressed byte, enforced once a layer passes `ratioFloor` bytes. */
  maxRatio: number;
  ratioFloor: number;
  /** Tar entries one layer may hold. */
  maxEntries: number;
}

export const LIMIT_VARS = {
  maxBytes: 'STRATA_MAX_LAYER_BYTES',
  maxRatio: 'STRATA_MAX_LAYER_RATIO',
  maxEntries: 'STRATA_MAX_LAYER_ENTRIES',
} as const;

const DEFAULTS: ExtractLimits = { maxBytes: 16 * 2 ** 30, maxRatio: 100, ratioFloor: 64 << 20, maxEntries: 1_000_000 };

/** Sizes may be given as bytes or with a k/m/g/t suffix (powers of 1024). */
export function parseSize(text: string, what: string): number {
  const m = /^(\d+)([kmgt]i?b?)?$/i.exec(text.trim());
  if (!m) throw new StrataError(`${what}="${text}": expected a number of bytes, optionally with k, m, g or t (e.g. 4g)`);
  const unit = (m[2] ?? '').charAt(0).toLowerCase();
  const scale = { '': 1, k: 2 ** 10, m: 2 ** 20, g: 2 ** 30, t: 2 ** 40 }[unit] ?? 1;
  return Number(m[1]) * scale;
}

function positive(env: NodeJS.ProcessEnv, name: string, fallback: number, size: boolean): number {
  const v = env[name];
  if (v === undefined || v === '') return fallback;
  const n = size ? parseSize(v, name) : Number(v);
  if (!Number.isFinite(n) || n <= 0 || !Number.isInteger(n)) throw new StrataError(`${name}="${v}": expected a positive whole number`);
  return n;
}

export function extractLimits(env: NodeJS.ProcessEnv = process.env): ExtractLimits {
  return {
    maxBytes: positive(env, LIMIT_VARS.maxBytes, DEFAULTS.maxBytes, true),
    maxRatio: positive(env, LIMIT_VARS.maxRatio, DEFAULTS.maxRatio, false),
    ratioFloor: DEFAULTS.ratioFloor,
    maxEntries: positive(env, LIMIT_VARS.maxEntries, DEFAULTS.maxEntries, false),
  };
}
