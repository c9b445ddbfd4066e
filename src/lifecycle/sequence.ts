import { join } from 'node:path';
import { ConfinedDir } from '../oci/confined.js';
import { StrataError } from '../oci/errors.js';
import { chownTree } from '../oci/fsutil.js';
import type { ApiVersion } from '../spec/api.js';
import { writeAnalyzed } from '../spec/analyzed.js';
import { Exit } from '../spec/exit.js';
import { escapeId } from '../spec/buildpack.js';
import { chooseRunImage, hasInstructions, parseDockerfile } from '../spec/dockerfile.js';
import { parseExtendConfig } from '../spec/extendconfig.js';
import type { OpenedImage } from '../oci/images.js';
import type { ExtendDockerfile } from './extend.js';
import { parseGroupFile, type GroupEntry, type GroupFile } from '../spec/group.js';
import { imageTargetOf } from '../spec/target.js';
import type { ProjectMetadata } from '../spec/projectmeta.js';
import { parseToml } from '../spec/toml.js';
import { analyze, type AnalyzeInputs, type AnalyzeResult } from './analyze.js';
import type { Cache, CacheMetadata } from './cache.js';
import { exporterInputs, exportImage, layerSource, saveCache, layerStreamer, type ExportResult, type ExportTarget, type KeptLayer } from './export.js';
import { EarlyLayers } from './earlylayers.js';
import type { Progress } from '../oci/progress.js';
import type { Logger } from './log.js';
import { restore } from './restore.js';
import { extractSbomLayer } from './sbom.js';
import type { LayerStash } from './stash.js';

/**
 * The phases of a build in their one order — analyze, detect, restore, build, export — driving the lifecycle's own
 * phase functions. The creator and a platform build (`strata build`, a fleet's build) run this same sequence; they
 * differ only in where buildpack code runs (a child process as the build user, or a sandbox), which `BuildpackRunner`
 * says. The trusted parts (analysis, restoring, exporting, the cache) run here, holding the credentials.
 */

/** Runs the detector or builder where buildpacks run; returns its exit code. */
export type BuildpackRunner = (phase: 'detector' | 'builder', started?: () => void) => Promise<number>;

/** A phase whose sandbox was started ahead of its inputs: told to `go` once they are in place, or called off. */
export interface HeldPhase {
  /** Its exit code; `started` is told at once (it runs already) or when its sandbox is up. */
  go(started?: () => void): Promise<number>;
  /** Calls it off and waits for its sandbox to be gone; nothing once it was told to go. */
  cancel(): Promise<void>;
}

/**
 * Starts a phase's sandbox now, holding it before it reads anything: the detector's while the analysis talks to
 * registries, the builder's while detection and the restore run. What it starts must not see the layers dir until
 * `go` (the platform's sandbox shows it an empty dir until then), so the host's writes there cannot be raced.
 */
export type PhaseStarter = (phase: 'detector' | 'builder') => HeldPhase;

export interface SequenceInputs {
  platformApi: ApiVersion;
  layersDir: string;
  appDir: string;
  /** Where the layers and app dirs sit in the image when the host dirs differ (a platform's build dir). */
  imageLayersDir?: string;
  imageAppDir?: string;
  analyze: Omit<AnalyzeInputs, 'log'>;
  cache?: Cache;
  /** Cached layer dirs kept unpacked from the last build (a platform's), renamed into place when unchanged. */
  stash?: LayerStash;
  /** Restore nothing from the cache (the creator's -skip-restore). */
  skipRestore?: boolean;
  /** The launcher the image gets; read when the export needs it. */
  launcher: () => Buffer | Promise<Buffer>;
  outputs: ExportTarget[];
  uid: number;
  gid: number;
  processType?: string;
  projectMetadata: ProjectMetadata;
  execEnv: string;
  created: Date;
  /** A dir of the caller's for the export's layer blobs, which feed the cache (the caller removes it). */
  keepDir: string;
  /** The builder, for the message when nothing detects. */
  builderName?: string;
  /** Applies image extensions' Dockerfiles: to the build image (before the build), to the run image (before the export). */
  extend?: {
    build(files: ExtendDockerfile[]): Promise<void>;
    run(files: ExtendDockerfile[], base: OpenedImage): Promise<OpenedImage>;
  };
  log: Logger;
  /** How the export's uploads show themselves on a terminal. */
  progress?: Progress;
  /** A phase begins (`===> DETECTING`): timed and shown by the caller. */
  phase: (name: string) => void;
}

export interface SequenceResult {
  analysis: AnalyzeResult;
  group: GroupEntry[];
  exported: ExportResult;
  cached?: CacheMetadata;
}

/** What buildpacks may write to belongs to the build user before they run (nothing changes what it owns already). */
function handOver(dirs: string[], uid: number, gid: number, known?: ReadonlySet<string>): void {
  for (const d of dirs) chownTree(d, uid, gid, known);
}

/**
 * Detection ran buildpack code with the layers dir writable, so anything in it may be a link aimed at the host. Only
 * the detector's two outputs are kept (each must be a regular file), with analyzed.toml and the order; everything
 * else is removed before the restore writes there.
 */
export function afterDetection(layersDir: string): GroupFile {
  return ConfinedDir.with(layersDir, (d) => {
    const keep = new Set(['group.toml', 'plan.toml', 'analyzed.toml', 'order.toml', 'generated']);
    d.clear('', keep);
    for (const f of ['group.toml', 'plan.toml']) if (!d.lstat(f)?.isFile()) throw new StrataError(`the detector left no ${f} (or not a regular file) in the layers dir`);
    if (d.lstat('generated') && !d.isDirectory('generated')) d.remove('generated');
    const text = d.readText('group.toml', 1 << 20) ?? '';
    return parseGroupFile(parseToml(text, d.pathOf('group.toml')), d.pathOf('group.toml'));
  });
}

/**
 * What the extensions generated, read again here (the detector ran beside buildpack code, so its files are only
 * hints): each extension's Dockerfiles from `<layers>/generated/<id>/`, its extend-config.toml args and its build
 * context, through the confined reader, checked again.
 */
export function generatedDockerfiles(layersDir: string, appDir: string, extensions: GroupEntry[]): ExtendDockerfile[] {
  return ConfinedDir.with(layersDir, (d) => {
    const out: ExtendDockerfile[] = [];
    for (const e of extensions) {
      const dir = `generated/${escapeId(e.id)}`;
      const configText = d.readText(`${dir}/extend-config.toml`, 1 << 20);
      const config = configText === undefined ? undefined : parseExtendConfig(parseToml(configText, `${e.id} extend-config.toml`), `${e.id} extend-config.toml`);
      for (const kind of ['build', 'run'] as const) {
        const text = d.readText(`${dir}/${kind}.Dockerfile`, 1 << 20);
        if (text === undefined) continue;
        const context = [`${dir}/context.${kind}`, `${dir}/context`].find((c) => d.isDirectory(c));
        out.push({
          extension: e.id,
          dockerfile: parseDockerfile(text, `${e.id}@${e.version} ${kind}.Dockerfile`, kind),
          args: Object.fromEntries((config?.[kind] ?? []).map((a) => [a.name, a.value])),
          context: context ? d.pathOf(context) : appDir,
        });
      }
    }
    return out;
  });
}

/**
 * The extensions' Dockerfiles, put to use: the run image they chose, opened (analysis opened the one it resolved);
 * the build image extended before the build, and the run image before the export, by the caller's extender. A
 * caller without one (the creator, which runs no sandbox of its own) refuses them in one line with the extender's
 * exit code, before any build runs. Returns whether the run image was switched.
 */
async function applyExtensions(i: SequenceInputs, analysis: AnalyzeResult, extensions: GroupEntry[]): Promise<boolean> {
  if (!extensions.length) return false;
  const files = generatedDockerfiles(i.layersDir, i.appDir, extensions);
  const builds = files.filter((f) => f.dockerfile.kind === 'build');
  const runs = files.filter((f) => f.dockerfile.kind === 'run');
  const choice = chooseRunImage(runs.map((f) => f.dockerfile));
  if ((builds.length || choice.extend) && !i.extend) {
    const f = builds[0] ?? runs.find((r) => hasInstructions(r.dockerfile))!;
    throw new StrataError(`extension ${f.extension}: its ${f.dockerfile.kind}.Dockerfile changes the ${f.dockerfile.kind} image, and this platform cannot apply Dockerfiles (strata build can)`, Exit.ExtendError);
  }
  let switched = false;
  if (choice.image && choice.image !== analysis.analyzed.runImage?.image) {
    const run = await i.analyze.readRun(choice.image);
    if (!run) throw new StrataError(`run image ${choice.image}, chosen by an image extension, not found`, Exit.AnalyzeError);
    analysis.run = run;
    analysis.analyzed.runImage = { reference: run.reference, image: choice.image, target: imageTargetOf(run.image.config, choice.image) };
    i.log.info(`Run image ${run.reference} (chosen by an extension)`);
    switched = true;
  }
  if (builds.length) await i.extend!.build(builds);
  if (choice.extend) {
    analysis.run = await i.extend!.run(runs.filter((_, n) => !choice.ignored.includes(n)), analysis.run);
    analysis.analyzed.runImage = { ...analysis.analyzed.runImage!, extend: true };
  }
  if (switched || choice.extend) await writeAnalyzed(join(i.layersDir, 'analyzed.toml'), analysis.analyzed);
  return switched;
}

/**
 * The detector, with the stash checked against its records meanwhile (it is outside the sandbox): from when the
 * detector has started, or after it with a runner that does not say. A failure is the detector's to report.
 */
async function detectCheckingStash(i: SequenceInputs, runBuildpacks: BuildpackRunner): Promise<number> {
  let started!: () => void;
  const running = new Promise<void>((resolve) => (started = resolve));
  const detecting = runBuildpacks('detector', started);
  detecting.catch(() => undefined);
  await Promise.race([running, detecting.then(() => undefined, () => undefined)]);
  await i.stash?.verify();
  return detecting;
}

/** The builder, with the launch layers of buildpacks that are done tarred (and sent) meanwhile. */
async function buildTarringEarly(i: SequenceInputs, group: GroupEntry[], runBuildpacks: BuildpackRunner): Promise<{ built: number; early: EarlyLayers }> {
  const streamer = layerStreamer(i.outputs);
  const early = new EarlyLayers({
    layersDir: i.layersDir,
    group,
    dir: i.keepDir,
    source: layerSource({ layersDir: i.layersDir, ...(i.imageLayersDir ? { imageLayersDir: i.imageLayersDir } : {}), uid: i.uid, gid: i.gid, created: i.created }),
    created: i.created,
    log: i.log,
    ...(streamer ? { stream: streamer.start } : {}),
  });
  early.start();
  try {
    return { built: await runBuildpacks('builder'), early };
  } finally {
    await early.stop();
  }
}

export async function runSequence(i: SequenceInputs, runBuildpacks: BuildpackRunner, prestart?: PhaseStarter): Promise<SequenceResult> {
  const { log } = i;
  i.phase('ANALYZING');
  // Before any sandbox starts: a held one sees the app dir already, and nothing may change a tree while it is walked.
  if (prestart) handOver([i.layersDir, i.appDir], i.uid, i.gid);
  const heldDetector = prestart?.('detector');
  let analysis: AnalyzeResult;
  try {
    analysis = await analyze({ ...i.analyze, log });
    await writeAnalyzed(join(i.layersDir, 'analyzed.toml'), analysis.analyzed);
  } catch (err) {
    await heldDetector?.cancel();
    throw err;
  }
  log.info(analysis.previous ? `Previous image ${analysis.previous.reference}` : 'No previous image');
  log.info(`Run image ${analysis.run.reference}`);

  i.phase('DETECTING');
  if (!prestart) handOver([i.layersDir, i.appDir], i.uid, i.gid);
  const heldBuilder = prestart?.('builder');
  try {
    return await detectToExport(i, analysis, heldDetector ? (_phase, started) => heldDetector.go(started) : runBuildpacks, heldBuilder ? (_phase, started) => heldBuilder.go(started) : runBuildpacks);
  } finally {
    await heldBuilder?.cancel();
  }
}

async function detectToExport(i: SequenceInputs, analysis: AnalyzeResult, runDetector: BuildpackRunner, runBuilder: BuildpackRunner): Promise<SequenceResult> {
  const { log } = i;
  const detected = await detectCheckingStash(i, runDetector);
  if (detected !== 0) throw new StrataError(detected === Exit.DetectFailed ? `no buildpack ${i.builderName ? `in ${i.builderName} ` : ''}detected this app (exit ${Exit.DetectFailed})` : `detection failed (exit ${detected})`, detected);
  const { group, groupExtensions } = afterDetection(i.layersDir);
  const runChosenByExtension = await applyExtensions(i, analysis, groupExtensions);

  i.phase('RESTORING');
  // What the analyzer writes into the layers dir is written only now, after detection had its turn at that dir.
  const prevMd = analysis.previousMetadata;
  if (analysis.previous && prevMd?.sbom?.sha && !i.skipRestore) await extractSbomLayer(analysis.previous.image, prevMd.sbom.sha, analysis.previous.name, log, i.layersDir);
  const r = await restore({ group, layersDir: i.layersDir, ...(prevMd ? { previous: prevMd } : {}), ...(i.cache ? { cache: i.cache } : {}), ...(i.stash ? { stash: i.stash } : {}), platformApi: i.platformApi, skipLayers: i.skipRestore ?? false, ...(i.imageLayersDir ? { imageLayersDir: i.imageLayersDir } : {}), log });
  for (const l of r.restored) log.info(`Restored ${l} from the cache`);
  for (const l of r.removed) log.info(`Removed layer ${l}: the cache holds a different version`);

  i.phase('BUILDING');
  handOver([i.layersDir], i.uid, i.gid, new Set(i.stash?.ownedBy(i.uid, i.gid).map((rel) => join(i.layersDir, rel))));
  const { built, early } = await buildTarringEarly(i, group, runBuilder);
  if (built !== 0) throw new StrataError(`the build failed (exit ${built}); see the buildpack output above`, built);

  i.phase('EXPORTING');
  const keep = { dir: i.keepDir, files: new Map<string, KeptLayer>() };
  const exported = await exportImage(
    exporterInputs({
      group,
      layersDir: i.layersDir,
      appDir: i.appDir,
      ...(i.imageLayersDir ? { imageLayersDir: i.imageLayersDir } : {}),
      ...(i.imageAppDir ? { imageAppDir: i.imageAppDir } : {}),
      launcher: await i.launcher(),
      run: analysis.run,
      // A run image an extension chose is recorded by its own name, not as an entry of run.toml.
      runImages: runChosenByExtension ? [] : i.analyze.runImages,
      ...(analysis.previous ? { previous: { image: analysis.previous.image, ...(prevMd ? { metadata: prevMd } : {}) } } : {}),
      outputs: i.outputs,
      uid: i.uid,
      gid: i.gid,
      platformApi: i.platformApi,
      ...(i.processType ? { processType: i.processType } : {}),
      projectMetadata: i.projectMetadata,
      execEnv: i.execEnv,
      created: i.created,
      log,
      keep,
      early,
      ...(i.progress ? { progress: i.progress } : {}),
    }),
  );
  for (const t of exported.tags) log.info(`Saved ${t}`);
  if (exported.reused.length) log.info(`Reused ${exported.reused.length} layer(s) from the previous image (not uploaded)`);
  const cached = i.cache ? await saveCache({ group, layersDir: i.layersDir, ...(i.imageLayersDir ? { imageLayersDir: i.imageLayersDir } : {}), cache: i.cache, uid: i.uid, gid: i.gid, created: i.created, log, kept: keep.files, recorded: exported.recorded }) : undefined;
  // The cached layers stay unpacked for the next build, which then renames them into place instead of extracting.
  if (cached && i.stash) i.stash.keep(i.layersDir, cached.buildpacks.map((b) => ({ bp: b.key, names: Object.keys(b.layers) })));
  return { analysis, group, exported, ...(cached ? { cached } : {}) };
}
