import { TARGET_LABELS } from '../spec/target.js';

/** Image labels the lifecycle reads and writes (spec §13). */
export const LABEL = {
  lifecycle: 'io.buildpacks.lifecycle.metadata',
  build: 'io.buildpacks.build.metadata',
  project: 'io.buildpacks.project.metadata',
  execEnv: 'io.buildpacks.exec-env',
  rebasable: 'io.buildpacks.rebasable',
  stackId: 'io.buildpacks.stack.id',
  ...TARGET_LABELS,
} as const;

export interface LayerRecord {
  sha: string;
  data?: Record<string, unknown>;
  build?: boolean;
  launch?: boolean;
  cache?: boolean;
}

/** `io.buildpacks.lifecycle.metadata`: how the image was put together, for rebuilds and rebases. */
export interface LifecycleMetadata {
  app: { sha: string }[];
  sbom?: { sha: string };
  config?: { sha: string };
  launcher?: { sha: string };
  'process-types'?: { sha: string };
  buildpacks: { key: string; version: string; layers?: Record<string, LayerRecord>; store?: { metadata: Record<string, unknown> } }[];
  runImage: { topLayer: string; reference: string; image?: string; mirrors?: string[] };
  stack?: { runImage: { image?: string; mirrors?: string[] } };
}

/** Reads the label; a missing or undecodable one is treated as no metadata, as the analyzer must. */
export function parseLifecycleMetadata(label: string | undefined): LifecycleMetadata | undefined {
  if (!label) return undefined;
  try {
    const md = JSON.parse(label) as Partial<LifecycleMetadata>;
    if (typeof md !== 'object' || md === null) return undefined;
    return { app: md.app ?? [], buildpacks: md.buildpacks ?? [], runImage: md.runImage ?? { topLayer: '', reference: '' }, ...md } as LifecycleMetadata;
  } catch {
    return undefined;
  }
}
