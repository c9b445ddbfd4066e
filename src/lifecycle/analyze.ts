import { NotFoundError, StrataError } from '../oci/errors.js';
import { resolveImage, type ResolvedImage } from '../oci/image.js';
import { Reference } from '../oci/reference.js';
import { layoutTarget, mirrored, openTarget, parseTarget, type StoreOptions } from '../oci/target.js';
import type { AnalyzedFile } from '../spec/analyzed.js';
import type { RunImage } from '../spec/run.js';
import type { ImageTarget } from '../spec/target.js';
import { Exit } from '../spec/exit.js';
import { LABEL, parseLifecycleMetadata, type LifecycleMetadata } from './labels.js';
import type { Logger } from './log.js';
import type { EngineClient } from '../oci/engine/client.js';

/** An image opened by name: a registry reference or `oci:<dir>[:tag]`. */
export interface OpenedImage {
  name: string;
  image: ResolvedImage;
  /** What analyzed.toml and the labels record: a digest reference (or the layout path with its digest). */
  reference: string;
}

/** Opens and resolves an image by name; undefined when it does not exist (or cannot be read as an image). */
export async function openImage(name: string, options: StoreOptions, log?: Logger): Promise<OpenedImage | undefined> {
  const parsed = parseTarget(name);
  const viaMirror = parsed.kind === 'registry' && !options.layoutDir ? mirrored(parsed.ref, options.registryMirrors) : undefined;
  if (viaMirror && parsed.kind === 'registry') {
    // The same image under the mirror's name; the reference recorded stays the one asked for (same digest).
    const m = await openImage(viaMirror.toString(), { ...options, registryMirrors: {} }, log).catch(() => undefined);
    if (m) {
      log?.debug(`${name}: read through the registry mirror ${viaMirror.registry}`);
      return { name, image: m.image, reference: `${parsed.ref.name}@${m.image.manifest.digest}` };
    }
    log?.debug(`${name}: not in the registry mirror ${viaMirror.registry}; reading ${parsed.ref.registry}`);
  }
  const target = options.layoutDir && parsed.kind === 'registry' ? layoutTarget(options.layoutDir, parsed.ref) : parsed;
  try {
    const t = await openTarget(target, options);
    const image = await resolveImage(t.store, t.id);
    const reference = target.kind === 'registry' ? `${target.ref.name}@${image.manifest.digest}` : `oci:${target.kind === 'layout' ? target.dir : name}@${image.manifest.digest}`;
    return { name, image, reference };
  } catch (err) {
    if (err instanceof NotFoundError) return undefined;
    log?.debug(`${name}: ${err instanceof Error ? err.message : String(err)}`);
    throw err;
  }
}

function registryOf(name: string): string | undefined {
  try {
    return name.startsWith('oci:') ? undefined : Reference.parse(name).registry;
  } catch {
    return undefined;
  }
}

/**
 * Run image resolution (spec §6.1): of the first run.toml entry's image and mirrors, the first readable one on the
 * output image's registry, else the first readable one.
 */
export async function resolveRunImage(images: RunImage[], output: string, options: StoreOptions, log: Logger): Promise<OpenedImage> {
  const entry = images[0];
  if (!entry) throw new StrataError('no run image: give -run-image or a run.toml with [[images]]', Exit.AnalyzeError);
  const candidates = [entry.image, ...entry.mirrors];
  const outRegistry = registryOf(output);
  const ordered = [...candidates.filter((c) => registryOf(c) === outRegistry), ...candidates.filter((c) => registryOf(c) !== outRegistry)];
  for (const c of ordered) {
    try {
      const opened = await openImage(c, options, log);
      if (opened) return opened;
    } catch (err) {
      log.warn(`run image ${c} is not readable: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  throw new StrataError(`none of the run images can be read: ${candidates.join(', ')}`, Exit.AnalyzeError);
}

/** The run.toml entry a run image name belongs to (tags and digests aside), for the mirrors recorded in the label. */
export function runImageEntry(images: RunImage[], name: string): RunImage | undefined {
  const repo = (n: string) => {
    try {
      return Reference.parse(n).name;
    } catch {
      return n;
    }
  };
  return images.find((i) => [i.image, ...i.mirrors].some((m) => repo(m) === repo(name))) ?? images[0];
}

/** The run image's target data from its config and base labels. */
export function imageTarget(image: ResolvedImage, name: string): ImageTarget {
  const c = image.config;
  if (!c.os) throw new StrataError(`run image ${name} has no os in its config`, Exit.AnalyzeError);
  const labels = c.config?.Labels ?? {};
  const t: ImageTarget = { os: c.os, arch: c.architecture };
  if (c.variant) t.variant = c.variant;
  if (labels[LABEL.baseId]) t.id = labels[LABEL.baseId];
  const name_ = labels[LABEL.distroName];
  const version = labels[LABEL.distroVersion];
  if (name_ || version) t.distro = { ...(name_ ? { name: name_ } : {}), ...(version ? { version } : {}) };
  return t;
}

export interface AnalyzeResult {
  analyzed: AnalyzedFile;
  previous?: OpenedImage;
  previousMetadata?: LifecycleMetadata;
  run: OpenedImage;
}

/** The analyzer (spec §6): previous image and its metadata, the run image and its target, into analyzed.toml. */
export async function analyze(options: { output: string; previous?: string; runImage?: string; runImages: RunImage[]; store: StoreOptions; engine?: EngineClient; log: Logger }): Promise<AnalyzeResult> {
  const { log } = options;
  const previousName = options.previous ?? options.output;
  let previous: OpenedImage | undefined;
  let previousReference: string | undefined;
  let previousMetadata: LifecycleMetadata | undefined;
  if (options.engine) {
    // Daemon mode: the label and the image ID are all analysis needs, and inspect gives both without moving layers.
    const found = await options.engine.inspect(previousName);
    previousReference = found?.Id;
    previousMetadata = parseLifecycleMetadata(found?.Config?.Labels?.[LABEL.lifecycle] ?? undefined);
  } else {
    try {
      previous = await openImage(previousName, options.store, log);
    } catch (err) {
      // Absent is no previous image (openImage says so with undefined); one that cannot be read is an error: building
      // without it would silently lose its layers and metadata.
      throw new StrataError(`previous image ${previousName} cannot be read: ${err instanceof Error ? err.message : String(err)}`, Exit.AnalyzeError, { cause: err });
    }
    previousReference = previous?.reference;
    previousMetadata = previous ? parseLifecycleMetadata(previous.image.config.config?.Labels?.[LABEL.lifecycle]) : undefined;
  }
  const run = options.runImage ? await openImage(options.runImage, options.store, log) : await resolveRunImage(options.runImages, options.output, options.store, log);
  if (!run) throw new StrataError(`run image ${options.runImage} not found`, Exit.AnalyzeError);
  const analyzed: AnalyzedFile = {
    ...(previousReference ? { previousImage: { reference: previousReference } } : {}),
    ...(previousMetadata ? { metadata: JSON.parse(JSON.stringify(previousMetadata)) as Record<string, unknown> } : {}),
    runImage: { reference: run.reference, image: run.name, target: imageTarget(run.image, run.name) },
  };
  return { analyzed, ...(previous ? { previous } : {}), ...(previousMetadata ? { previousMetadata } : {}), run };
}
