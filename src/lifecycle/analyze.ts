import type { EngineClient } from '../oci/engine/client.js';
import { StrataError, errorMessage } from '../oci/errors.js';
import { resolveRunImage as resolveFromRunToml, type ImageReader, type OpenedImage } from '../oci/images.js';
import type { AnalyzedFile } from '../spec/analyzed.js';
import { Exit } from '../spec/exit.js';
import type { RunImage } from '../spec/run.js';
import { imageTargetOf } from '../spec/target.js';
import { LABEL, parseLifecycleMetadata, type LifecycleMetadata } from './labels.js';
import type { Logger } from './log.js';

export interface AnalyzeResult {
  analyzed: AnalyzedFile;
  previous?: OpenedImage;
  previousMetadata?: LifecycleMetadata;
  run: OpenedImage;
}

export interface AnalyzeInputs {
  /** The image being built (the first output name): its previous version, and the registry run images prefer. */
  output: string;
  previous?: string;
  runImage?: string;
  runImages: RunImage[];
  /** How the previous image is read (a registry; a platform's local store) and how run images are. */
  readPrevious: ImageReader;
  readRun: ImageReader;
  /** Daemon mode: the previous image's label and ID come from the engine. */
  engine?: EngineClient;
  log: Logger;
}

/** The analyzer (spec §6): previous image and its metadata, the run image and its target, into analyzed.toml. */
export async function analyze(i: AnalyzeInputs): Promise<AnalyzeResult> {
  const { log } = i;
  const previousName = i.previous ?? i.output;
  let previous: OpenedImage | undefined;
  let previousReference: string | undefined;
  let previousMetadata: LifecycleMetadata | undefined;
  if (i.engine) {
    // Daemon mode: the label and the image ID are all analysis needs, and inspect gives both without moving layers.
    const found = await i.engine.inspect(previousName);
    previousReference = found?.Id;
    previousMetadata = parseLifecycleMetadata(found?.Config?.Labels?.[LABEL.lifecycle] ?? undefined);
  } else {
    try {
      previous = await i.readPrevious(previousName);
    } catch (err) {
      // Absent is no previous image (the reader says so with undefined); one that cannot be read is an error:
      // building without it would silently lose its layers and metadata.
      throw new StrataError(`previous image ${previousName} cannot be read: ${errorMessage(err)}`, Exit.AnalyzeError, { cause: err });
    }
    previousReference = previous?.reference;
    previousMetadata = previous ? parseLifecycleMetadata(previous.image.config.config?.Labels?.[LABEL.lifecycle]) : undefined;
  }
  let run: OpenedImage | undefined;
  try {
    run = i.runImage ? await i.readRun(i.runImage) : await resolveFromRunToml(i.runImages, i.output, i.readRun, log);
  } catch (err) {
    throw new StrataError(errorMessage(err), Exit.AnalyzeError, { cause: err });
  }
  if (!run) throw new StrataError(`run image ${i.runImage} not found`, Exit.AnalyzeError);
  const analyzed: AnalyzedFile = {
    ...(previousReference ? { previousImage: { reference: previousReference } } : {}),
    ...(previousMetadata ? { metadata: JSON.parse(JSON.stringify(previousMetadata)) as Record<string, unknown> } : {}),
    runImage: { reference: run.reference, image: run.name, target: imageTargetOf(run.image.config, run.name) },
  };
  return { analyzed, ...(previous ? { previous } : {}), ...(previousMetadata ? { previousMetadata } : {}), run };
}

/**
 * A run image named without a digest or target (an image extension switched to it; the detector clears both): opened
 * by name, with its digest and target put back into analyzed.toml's record, as the restorer does (spec §7).
 */
export async function resolveRunImage(analyzed: AnalyzedFile, readRun: ImageReader): Promise<OpenedImage | undefined> {
  const r = analyzed.runImage;
  // The analyzer always records a target (Platform API 0.12+): only a switched run image comes without one.
  if (!r || r.target) return undefined;
  const name = r.image ?? r.reference;
  let run: OpenedImage | undefined;
  try {
    run = await readRun(name);
  } catch (err) {
    throw new StrataError(`run image ${name}: ${errorMessage(err)}`, Exit.RestoreError, { cause: err });
  }
  if (!run) throw new StrataError(`run image ${name} not found`, Exit.RestoreError);
  analyzed.runImage = { reference: run.reference, image: name, ...(r.extend ? { extend: true } : {}), target: imageTargetOf(run.image.config, name) };
  return run;
}
