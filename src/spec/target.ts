import { StrataError } from '../oci/errors.js';
import type { ImageConfig } from '../oci/config.js';
import { Exit } from './exit.js';
import { Fields, SpecError } from './toml.js';

/** The labels a base image states its target with (spec §13). */
export const TARGET_LABELS = {
  baseId: 'io.buildpacks.base.id',
  distroName: 'io.buildpacks.base.distro.name',
  distroVersion: 'io.buildpacks.base.distro.version',
} as const;

/** What a buildpack can run on, or what a run image is (`[[targets]]`, `[run-image.target]`). */
export interface Target {
  os?: string;
  arch?: string;
  variant?: string;
  distros?: Distro[];
}

export interface Distro {
  name?: string;
  version?: string;
}

/** A run image's own target: one distro at most. */
export interface ImageTarget {
  id?: string;
  os?: string;
  arch?: string;
  variant?: string;
  distro?: Distro;
}

const eq = (a: string | undefined, b: string | undefined): boolean => !a || !b || a === b;

/** A buildpack target fits an image when os, arch and variant agree (empty matches anything) and a listed distro matches. */
export function targetMatches(bp: Target, image: ImageTarget): boolean {
  if (!eq(bp.os, image.os) || !eq(bp.arch, image.arch) || !eq(bp.variant, image.variant)) return false;
  if (!bp.distros?.length) return true;
  return bp.distros.some((d) => Boolean(image.distro) && eq(d.name, image.distro?.name) && eq(d.version, image.distro?.version));
}

export function anyTargetMatches(targets: Target[], image: ImageTarget): boolean {
  return targets.length === 0 || targets.some((t) => targetMatches(t, image));
}

/** The deprecated stacks that name a known target; `*` and unknown stacks say nothing beyond Linux. */
export function stackTarget(stackId: string): Target {
  if (stackId === '*') return {};
  if (stackId === 'io.buildpacks.stacks.bionic') return { os: 'linux', arch: 'amd64', distros: [{ name: 'ubuntu', version: '18.04' }] };
  return { os: 'linux' };
}

/** A run image's target, from its config (os, arch, variant) and its base labels (id, distro). */
export function imageTargetOf(config: ImageConfig, name: string): ImageTarget {
  if (!config.os) throw new StrataError(`run image ${name} has no os in its config`, Exit.AnalyzeError);
  const labels = config.config?.Labels ?? {};
  const t: ImageTarget = { os: config.os, arch: config.architecture };
  if (config.variant) t.variant = config.variant;
  if (labels[TARGET_LABELS.baseId]) t.id = labels[TARGET_LABELS.baseId];
  const distro = labels[TARGET_LABELS.distroName];
  const version = labels[TARGET_LABELS.distroVersion];
  if (distro || version) t.distro = { ...(distro ? { name: distro } : {}), ...(version ? { version } : {}) };
  return t;
}

/**
 * The image platforms a package.toml or builder.toml `[[targets]]` names (os, arch, variant; distros say nothing
 * about the image's platform): what `--target` defaults to. Each needs an arch.
 */
export function targetPlatforms(f: Fields): { os: string; architecture: string; variant?: string }[] {
  return f.list('targets').map((t) => {
    const arch = t.str('arch');
    if (!arch) throw new SpecError(`${t.where}: a target needs an arch (amd64, arm64, …)`);
    const variant = t.str('variant') ?? t.str('arch-variant');
    return { os: t.str('os') ?? 'linux', architecture: arch, ...(variant ? { variant } : {}) };
  });
}
