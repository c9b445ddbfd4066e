import type { Digest } from './digest.js';
import { StrataError } from './errors.js';

export interface HistoryEntry {
  created?: string;
  created_by?: string;
  author?: string;
  comment?: string;
  empty_layer?: boolean;
  [key: string]: unknown;
}

export interface ContainerConfig {
  User?: string;
  ExposedPorts?: Record<string, object>;
  Env?: string[];
  Entrypoint?: string[] | null;
  Cmd?: string[] | null;
  Volumes?: Record<string, object>;
  WorkingDir?: string;
  Labels?: Record<string, string> | null;
  StopSignal?: string;
  [key: string]: unknown;
}

/**
 * The image configuration. It is kept as the parsed object it was read as, so any field this type does not name
 * is written back unchanged.
 */
export interface ImageConfig {
  architecture: string;
  os: string;
  variant?: string;
  'os.version'?: string;
  created?: string;
  author?: string;
  config?: ContainerConfig;
  rootfs: { type: 'layers'; diff_ids: Digest[] };
  history?: HistoryEntry[];
  [key: string]: unknown;
}

export function parseConfig(bytes: Buffer, where: string): ImageConfig {
  let doc: unknown;
  try {
    doc = JSON.parse(bytes.toString('utf8'));
  } catch {
    throw new StrataError(`${where}: image config is not valid JSON`);
  }
  if (typeof doc !== 'object' || doc === null) throw new StrataError(`${where}: image config is not a JSON object`);
  const c = doc as Record<string, unknown>;
  const rootfs = c.rootfs as Record<string, unknown> | undefined;
  if (!rootfs || !Array.isArray(rootfs.diff_ids)) throw new StrataError(`${where}: image config has no rootfs.diff_ids`);
  return c as unknown as ImageConfig;
}

/** Returns a copy with the labels merged in; everything else, known or not, is carried over. */
export function withLabels(config: ImageConfig, labels: Record<string, string>): ImageConfig {
  const inner: ContainerConfig = { ...(config.config ?? {}) };
  inner.Labels = { ...(inner.Labels ?? {}), ...labels };
  return { ...config, config: inner };
}

export function envValue(config: ImageConfig, name: string): string | undefined {
  const entry = (config.config?.Env ?? []).find((e) => e.startsWith(`${name}=`));
  return entry?.slice(name.length + 1);
}

/**
 * A time as image configs write it: RFC 3339 in UTC with no trailing zeros in the fraction (`1980-01-01T00:00:01Z`),
 * as Go's JSON encoding gives it and so the reference lifecycle and every registry tool.
 */
export function imageTime(d: Date): string {
  return d.toISOString().replace(/\.(\d*?)0*Z$/, (_m, frac: string) => (frac ? `.${frac}Z` : 'Z'));
}
