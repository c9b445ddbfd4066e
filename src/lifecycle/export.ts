import { createReadStream } from 'node:fs';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { imageTime, withLabels, type HistoryEntry, type ImageConfig } from '../oci/config.js';
import { copyBlob, sameRepository } from '../oci/copy.js';
import type { Digest } from '../oci/digest.js';
import { StrataError } from '../oci/errors.js';
import type { ResolvedImage } from '../oci/image.js';
import { runImageEntry, type OpenedImage, type RunImageEntry } from '../oci/images.js';
import { layerDiffID, parentPaths, treeEntries, writeLayerFile, type LayerEntry, type LayerInfo, type TreeRoot } from '../oci/layer.js';
import type { Descriptor } from '../oci/manifest.js';
import { appendLayers, writeImage, type AddedLayer } from '../oci/mutate.js';
import type { BlobStream, ImageStore } from '../oci/store.js';
import type { ApiVersion } from '../spec/api.js';
import type { GroupEntry } from '../spec/group.js';
import { checkProcessType } from '../spec/launch.js';
import type { BuildMetadata } from '../spec/metadata.js';
import type { ProjectMetadata } from '../spec/projectmeta.js';
import type { Table } from '../spec/toml.js';
import type { Cache, CacheMetadata, CacheStage } from './cache.js';
import { Exit } from '../spec/exit.js';
import { envEntryTooBig } from './env.js';
import { knownDiffID, rememberDiffID } from './fingerprint.js';
import { LABEL, type LayerRecord, type LifecycleMetadata } from './labels.js';
import type { EarlyLayers, LayerSource } from './earlylayers.js';
import { LayersDir, type BuiltLayer } from './layersdir.js';
import { counted, type Progress, type ProgressTask } from '../oci/progress.js';
import type { Logger } from './log.js';
import { appSlices } from './slices.js';

export interface ExportTarget {
  store: ImageStore;
  tag: string | undefined;
  /** As the user named it, for report.toml. */
  name: string;
}

export interface ExporterInputs {
  group: GroupEntry[];
  layersDir: string;
  appDir: string;
  /** Where the layers and app dirs sit in the image when the host dirs differ (a platform's build dir); default: the same. */
  imageLayersDir?: string;
  imageAppDir?: string;
  /** The launcher binary's bytes (read by the caller from wherever its lifecycle lives). */
  launcher: Buffer;
  runImage: ResolvedImage;
  /** `runImage` as named (tag or digest ref) and the mirrors recorded for rebase. */
  runImageName: string;
  runImageReference: string;
  runImageMirrors: string[];
  /** The previous image, whose layers are reused by diffID. */
  previous?: { image: ResolvedImage; metadata: LifecycleMetadata };
  outputs: ExportTarget[];
  uid: number;
  gid: number;
  platformApi: ApiVersion;
  processType?: string;
  projectMetadata: ProjectMetadata;
  execEnv: string;
  created: Date;
  log: Logger;
  /**
   * Keep each new layer's gzip file in this dir and list it by diffID, so the cache can be fed from the same tar pass
   * instead of tarring the layer dirs again (the caller removes the dir).
   */
  keep?: { dir: string; files: Map<string, KeptLayer> };
  /** Launch layers tarred while the build ran (runSequence's), taken when their dirs are unchanged. */
  early?: Pick<EarlyLayers, 'take'>;
  /** Shows each layer upload as it goes, when drawn live (a log gets the "Adding layer" line either way). */
  progress?: Progress;
}

/** A layer blob written during export, kept for the cache. */
export interface KeptLayer {
  path: string;
  descriptor: Descriptor;
}

export interface ExportResult {
  digest: Digest;
  manifestSize: number;
  tags: string[];
  /** diffIDs reused from the previous image (not uploaded). */
  reused: string[];
  /** Layer dirs whose fingerprint showed them unchanged: not read, not tarred. */
  untouched: string[];
  /** The diffID of every layer dir (by its path in the layers dir) whose record the export confirmed or wrote. */
  recorded: Map<string, string>;
  metadata: LifecycleMetadata;
}

/**
 * The exporter's input from what the earlier phases found: the run image (as analysis opened it, and the run.toml
 * entry it belongs to, whose mirrors the label records), the previous image and its metadata, and the outputs. Every
 * export — the exporter command, the creator, a platform build — builds its input here.
 */
export function exporterInputs(o: Omit<ExporterInputs, 'runImage' | 'runImageName' | 'runImageReference' | 'runImageMirrors' | 'previous'> & {
  run: OpenedImage;
  /** The run image as analysis recorded it (`analyzed.toml`'s image), when it differs from how it was opened. */
  runName?: string;
  runImages: RunImageEntry[];
  previous?: { image: ResolvedImage; metadata?: LifecycleMetadata };
}): ExporterInputs {
  const { run, runName: recorded, runImages, previous, ...rest } = o;
  const runName = recorded || run.name;
  const entry = runImageEntry(runImages, runName);
  return {
    ...rest,
    runImage: run.image,
    runImageName: entry?.image ?? runName,
    runImageReference: run.reference,
    runImageMirrors: entry?.mirrors ?? [],
    ...(previous?.metadata ? { previous: { image: previous.image, metadata: previous.metadata } } : {}),
  };
}

/**
 * Composes the app image on the run image in the order of spec §9.1 — launch layers, SBOM, app slices, launcher,
 * config, process types — with the lifecycle labels, and writes it to every output. A layer whose diffID the previous
 * image already has is taken from there (mounted or already present), never uploaded again.
 */
export async function exportImage(inputs: ExporterInputs): Promise<ExportResult> {
  return LayersDir.with(inputs.layersDir, (layers) => exportFrom(layers, inputs));
}

async function exportFrom(layers: LayersDir, inputs: ExporterInputs): Promise<ExportResult> {
  const { layersDir, log } = inputs;
  const md = layers.metadata();
  const staging = inputs.keep?.dir ?? (await mkdtemp(join(tmpdir(), 'strata-export-')));
  const added: AddedLayer[] = [];
  const reused: string[] = [];
  const untouched: string[] = [];
  const recorded = new Map<string, string>();
  const previousLayers = new Map<string, { desc: Descriptor; store: ImageStore }>();
  if (inputs.previous) {
    const p = inputs.previous.image;
    p.config.rootfs.diff_ids.forEach((d, i) => previousLayers.set(d, { desc: p.manifest.manifest.layers[i]!, store: p.store }));
  }
  let counter = 0;
  // What the previous image's manifest names is in its repository already: an output that is that repository needs
  // no request for it (a rebuild's reused and run-image layers cost nothing, however far away the registry is).
  const prevStore = inputs.previous?.image.store;
  const alreadyThere = new Set<string>(inputs.previous?.image.manifest.manifest.layers.map((l) => l.digest) ?? []);
  const carry = async (from: ImageStore, out: ExportTarget, desc: Descriptor): Promise<void> => {
    if (prevStore && alreadyThere.has(desc.digest) && sameRepository(prevStore, out.store)) return;
    await copyBlob(from, out.store, desc);
  };

  /** The previous image's layer `sha`, put in this image as it is (copied or mounted, never re-read). */
  const reusePrevious = async (sha: string, prev: { desc: Descriptor; store: ImageStore }, createdBy: string): Promise<Digest> => {
    reused.push(sha);
    for (const out of inputs.outputs) await carry(prev.store, out, prev.desc);
    added.push({ descriptor: prev.desc, diffID: sha as Digest, history: history(createdBy) });
    return sha as Digest;
  };

  /**
   * Makes a layer from entries, or reuses the previous image's when the diffID matches. With `hashFirst` (the previous
   * image probably has it), a tar pass that only hashes decides that first, and nothing is compressed for a layer
   * already there; `note` says why in the log line. A buildpack's layer (`send`) goes to the first output that takes
   * a blob while it is made, as it is compressed.
   */
  const streamer = layerStreamer(inputs.outputs);
  const layer = async (entries: () => AsyncIterable<LayerEntry>, createdBy: string, o: { send?: boolean; hashFirst?: boolean; note?: string } = {}): Promise<Digest> => {
    if (o.hashFirst) {
      const diffID = await layerDiffID(entries(), { mtime: inputs.created });
      const prev = previousLayers.get(diffID);
      if (prev) {
        log.info(`Reusing layer ${describe(createdBy)} (${diffID.slice(7, 19)}${o.note ?? ''})`);
        return reusePrevious(diffID, prev, createdBy);
      }
    }
    const file = join(staging, `layer-${counter++}.tar.gz`);
    const sending = o.send ? await streamer?.start() : undefined;
    let info: LayerInfo;
    try {
      info = await writeLayerFile(entries(), file, { mtime: inputs.created, ...(sending ? { copyTo: sending.sink } : {}) });
    } catch (err) {
      sending?.abort();
      throw err;
    }
    const sent = sending && (await sending.finish({ mediaType: info.mediaType, digest: info.digest, size: info.size }));
    return place(file, info, createdBy, sent ? streamer?.to : undefined);
  };
  /** A layer blob made here (now or while the build ran) into every output, unless the previous image has it. */
  const place = async (file: string, info: LayerInfo, createdBy: string, sentTo?: ExportTarget): Promise<Digest> => {
    const prev = previousLayers.get(info.diffID);
    // Named in the OCI family; writeImage renames every layer for a Docker run image.
    const desc: Descriptor = { mediaType: info.mediaType, digest: info.digest, size: info.size };
    if (inputs.keep) inputs.keep.files.set(info.diffID, { path: file, descriptor: desc });
    if (prev) {
      log.info(`Reusing layer ${describe(createdBy)} (${info.diffID.slice(7, 19)})`);
      if (!inputs.keep) await rm(file, { force: true });
      return reusePrevious(info.diffID, prev, createdBy);
    }
    for (const out of inputs.outputs) {
      if (out === sentTo) {
        log.info(`Adding layer ${describe(createdBy)} (${info.diffID.slice(7, 19)}, ${megabytes(desc.size)})`);
        continue;
      }
      // The bar starts with the first read: a blob the registry has already is never read, and never shown.
      let task: ProgressTask | undefined;
      const outcome = await out.store.putBlob(desc, async (start, end) => {
        const data = createReadStream(file, { start, end: end - 1 });
        if (!inputs.progress?.live) return data;
        task ??= inputs.progress.task(`Saving layer ${describe(createdBy)} (${megabytes(desc.size)})`, desc.size);
        return counted(data, task);
      });
      task?.done();
      log.info(`${outcome === 'uploaded' ? 'Adding' : 'Already present:'} layer ${describe(createdBy)} (${info.diffID.slice(7, 19)}, ${megabytes(desc.size)})`);
    }
    added.push({ descriptor: desc, diffID: info.diffID, history: history(createdBy) });
    return info.diffID;
  };
  const history = (createdBy: string): HistoryEntry => ({ created: imageTime(inputs.created), created_by: createdBy });
  const owned = (rel: string, fixedModes = false) => ownedTree({ dir: layers.dir, rel }, toImage(layers.dir.pathOf(rel)), inputs.uid, inputs.gid, fixedModes);
  const toImage = inImagePath(layersDir, inputs.imageLayersDir);
  const source = layerSource(inputs);
  const imageAppDir = inputs.imageAppDir ?? inputs.appDir;

  try {
    const metadata: LifecycleMetadata = { app: [], buildpacks: [], runImage: { topLayer: topLayer(inputs.runImage), reference: inputs.runImageReference, image: inputs.runImageName, mirrors: inputs.runImageMirrors } };
    metadata.stack = { runImage: { image: inputs.runImageName, mirrors: inputs.runImageMirrors } };

    for (const bp of inputs.group) {
      const records: Record<string, LayerRecord> = {};
      for (const l of layers.layers(bp.id)) {
        if (!l.meta.types.launch) continue;
        checkLaunchEnv(layers, l, bp.id);
        const record: LayerRecord = { sha: '', data: l.meta.metadata, build: l.meta.types.build, launch: true, cache: l.meta.types.cache };
        const createdBy = `Layer: '${l.name}', Created by buildpack: ${bp.id}@${bp.version}`;
        const recipe = source(layers, l.rel).recipe;
        const hasDir = layerDirExists(layers, l);
        const known = hasDir ? knownDiffID(layers.dir, l.rel, recipe) : undefined;
        const prev = known ? previousLayers.get(known) : undefined;
        // What the previous image recorded for this layer.
        const oldSha = inputs.previous?.metadata.buildpacks.find((b) => b.key === bp.id)?.layers?.[l.name]?.sha;
        const prevOld = oldSha ? previousLayers.get(oldSha) : undefined;
        if (known && prev) {
          // Unchanged since it was last tarred (or restored): the previous image's layer, without reading the dir.
          untouched.push(`${bp.id}:${l.name}`);
          log.info(`Reusing layer ${describe(createdBy)} (${known.slice(7, 19)}, unchanged: not read)`);
          record.sha = await reusePrevious(known, prev, createdBy);
          recorded.set(l.rel, known);
        } else if (hasDir) {
          const early = inputs.early?.take(layers, l.rel, recipe);
          if (early) {
            log.debug(`Layer ${describe(createdBy)} was tarred while the build ran and is unchanged since`);
            record.sha = await place(early.path, early.info, createdBy, early.sent ? streamer?.to : undefined);
          } else {
            // When the previous image has this layer, the fingerprint moved (a file rewritten with the same bytes,
            // say) but the content may not have: the tar's digest decides, before anything is compressed.
            record.sha = await layer(() => source(layers, l.rel).entries, createdBy, { send: true, hashFirst: prevOld !== undefined, note: ', same content' });
          }
          // An early tar was taken on the fingerprint just read: the record needs no second walk.
          rememberDiffID(layers.dir, l.rel, recipe, record.sha, early?.fingerprint);
          recorded.set(l.rel, record.sha);
        } else {
          // No dir: the buildpack means "keep the layer from the previous image".
          if (!oldSha) throw new StrataError(`buildpack ${bp.id}: launch layer "${l.name}" has no directory and no previous image layer to reuse`, Exit.ExportError);
          if (l.meta.types.cache) throw new StrataError(`buildpack ${bp.id}: launch layer "${l.name}" is cache = true but has no directory to export`, Exit.ExportError);
          if (!prevOld) throw new StrataError(`buildpack ${bp.id}: layer "${l.name}" (${oldSha}) is not in the previous image`, Exit.ExportError);
          log.info(`Reusing layer ${describe(createdBy)} (${oldSha.slice(7, 19)})`);
          record.sha = await reusePrevious(oldSha, prevOld, createdBy);
        }
        records[l.name] = record;
      }
      const store = layers.store(bp.id);
      metadata.buildpacks.push({ key: bp.id, version: bp.version, layers: records, ...(store ? { store: { metadata: store.metadata } } : {}) });
    }

    // The layers the lifecycle makes itself (SBOM, app, launcher, config, process types) are mostly the previous
    // image's again.
    const ownFirst = previousLayers.size > 0;
    if (inputs.platformApi.atLeast('0.8') && layers.isDirectory('sbom/launch')) {
      metadata.sbom = { sha: await layer(() => owned('sbom/launch', true), 'Software Bill-of-Materials', { hashFirst: ownFirst }) };
    }

    const slices = await appSlices(inputs.appDir, md.slices, log);
    for (const [i, slice] of slices.entries()) {
      const sha = await layer(() => sliceEntries(inputs.appDir, imageAppDir, slice, inputs.uid, inputs.gid), i < slices.length - 1 ? `Application Slice: ${i + 1}` : 'Application Layer', { hashFirst: ownFirst });
      metadata.app.push({ sha });
    }

    metadata.launcher = { sha: await layer(() => launcherEntries(inputs.launcher), 'Buildpacks Application Launcher', { hashFirst: ownFirst }) };
    metadata.config = { sha: await layer(() => owned('config', true), 'Buildpacks Launcher Config', { hashFirst: ownFirst }) };
    metadata['process-types'] = { sha: await layer(() => processEntries(md), 'Buildpacks Process Types', { hashFirst: ownFirst }) };

    const base = inputs.runImage;
    // The run image's layers: already there, mounted from its repository, or copied once (a layout run image).
    for (const out of inputs.outputs) for (const desc of base.manifest.manifest.layers) await carry(base.store, out, desc);
    let { config, manifest } = appendLayers(base.config, base.manifest.manifest, added);
    config = finishConfig(config, inputs, md, metadata);
    const tags: string[] = [];
    let digest = '' as Digest;
    let manifestSize = 0;
    // Every output gets the same bytes, so one digest; tags move only after every blob is in place.
    for (const out of inputs.outputs) {
      const w = await writeImage(out.store, config, manifest, out.tag);
      digest = w.digest;
      manifestSize = w.manifestBytes.length;
      tags.push(out.name);
    }
    return { digest, manifestSize, tags, reused, untouched, recorded, metadata };
  } finally {
    if (!inputs.keep) await rm(staging, { recursive: true, force: true });
  }
}


/** `Layer: 'node', Created by buildpack: x@1` → `'x:node'`, as pack's log names layers. */
function describe(createdBy: string): string {
  const m = /^Layer: '(.+)', Created by buildpack: (.+)@/.exec(createdBy);
  return m ? `'${m[2]}:${m[1]}'` : `'${createdBy}'`;
}

function megabytes(n: number): string {
  return n >= 1e6 ? `${(n / 1e6).toFixed(1)} MB` : `${Math.ceil(n / 1e3)} kB`;
}

/** Maps a path under the host layers dir to where it sits in the image. */
function inImagePath(hostLayers: string, imageLayers: string | undefined): (p: string) => string {
  if (!imageLayers || imageLayers === hostLayers) return (p) => p;
  return (p) => (p === hostLayers || p.startsWith(`${hostLayers}/`) ? imageLayers + p.slice(hostLayers.length) : p);
}

/**
 * Where a buildpack layer is sent while it is compressed: the first output that can take a blob that way, and how to
 * start such an upload (undefined when it cannot start: the layer then goes the ordinary way).
 */
export function layerStreamer(outputs: ExportTarget[]): { to: ExportTarget; start(): Promise<BlobStream | undefined> } | undefined {
  const to = outputs.find((o) => o.store.streamBlob);
  return to?.store.streamBlob ? { to, start: () => to.store.streamBlob!().catch(() => undefined) } : undefined;
}

/** How the export tars a buildpack's layer dir (owners, place in the image), early tars included. */
export function layerSource(o: Pick<ExporterInputs, 'layersDir' | 'imageLayersDir' | 'uid' | 'gid' | 'created'>): LayerSource {
  const toImage = inImagePath(o.layersDir, o.imageLayersDir);
  return (layers, rel) => {
    const inImage = toImage(layers.dir.pathOf(rel));
    return { recipe: layerRecipe(inImage, o.uid, o.gid, o.created), entries: ownedTree({ dir: layers.dir, rel }, inImage, o.uid, o.gid) };
  };
}

/** Everything besides the dir's contents that decides a layer tar's bytes. */
export function layerRecipe(dir: string, uid: number, gid: number, created: Date): string {
  return `${dir}|${uid}:${gid}|${created.toISOString()}`;
}


function topLayer(image: ResolvedImage): string {
  const ids = image.config.rootfs.diff_ids;
  return ids[ids.length - 1] ?? '';
}

/**
 * A launch layer's env files become variables the launcher execs the app with: one bigger than a process can be
 * given would export an image that cannot start ("Argument list too long"), so it is refused here, naming it.
 */
function checkLaunchEnv(layers: LayersDir, l: BuiltLayer, bp: string): void {
  if (!layers.dir.isDirectory(l.rel)) return;
  const check = (rel: string): void => {
    for (const name of layers.dir.readdir(rel) ?? []) {
      const st = layers.dir.lstat(`${rel}/${name}`);
      if (st?.isDirectory() && rel.endsWith('env.launch')) check(`${rel}/${name}`);
      if (!st?.isFile()) continue;
      const tooBig = envEntryTooBig(name.split('.')[0]!, st.size);
      if (tooBig) throw new StrataError(`buildpack ${bp}: layer "${l.name}" ${rel.slice(l.rel.length + 1)}/${name}: ${tooBig}; the image could not start`, Exit.ExportError);
    }
  };
  for (const sub of ['env', 'env.launch']) if (layers.dir.isDirectory(`${l.rel}/${sub}`)) check(`${l.rel}/${sub}`);
}

/**
 * Whether a layer's dir is there: absent means "reuse the previous image's layer"; anything but a real directory (a
 * link a buildpack left) is refused rather than taken for either.
 */
function layerDirExists(layers: LayersDir, l: BuiltLayer): boolean {
  const st = layers.dir.lstat(l.rel);
  if (!st) return false;
  if (!st.isDirectory()) throw new StrataError(`${l.dir} is not a directory (a link or file); strata does not follow what buildpacks leave (refused)`, Exit.ExportError);
  return true;
}

/**
 * A directory placed at the same absolute path in the image: parents owned by root, the tree by the build user.
 * `fixedModes` for the lifecycle's own files (config, SBOMs): their modes are the usual ones whatever umask they were
 * written under, so the same build gives the same layer everywhere.
 */
async function* ownedTree(root: TreeRoot, inImage: string, uid: number, gid: number, fixedModes = false): AsyncGenerator<LayerEntry> {
  const prefix = inImage.replace(/^\/+/, '');
  for (const p of parentPaths(prefix)) yield { type: 'directory', path: p, mode: 0o755, uid: 0, gid: 0 };
  for await (const e of treeEntries(root, { prefix, parentDirs: false })) {
    if (fixedModes && e.type === 'directory') yield { ...e, mode: 0o755, uid, gid };
    else if (fixedModes && e.type === 'file') yield { ...e, mode: e.mode & 0o111 ? 0o755 : 0o644, uid, gid };
    else yield { ...e, uid, gid };
  }
}

async function* sliceEntries(appDir: string, imageAppDir: string, files: string[], uid: number, gid: number): AsyncGenerator<LayerEntry> {
  const prefix = imageAppDir.replace(/^\/+/, '');
  for (const p of parentPaths(prefix)) yield { type: 'directory', path: p, mode: 0o755, uid: 0, gid: 0 };
  const st = await stat(appDir);
  yield { type: 'directory', path: prefix, mode: st.mode & 0o7777, uid, gid };
  const wanted = new Set(files);
  for await (const e of treeEntries(appDir, { prefix, parentDirs: false, include: (rel) => wanted.has(rel) })) {
    if (e.path === prefix) continue;
    yield { ...e, uid, gid };
  }
}

async function* launcherEntries(launcher: Buffer): AsyncGenerator<LayerEntry> {
  yield { type: 'directory', path: 'cnb', mode: 0o755, uid: 0, gid: 0 };
  yield { type: 'directory', path: 'cnb/lifecycle', mode: 0o755, uid: 0, gid: 0 };
  yield { type: 'file', path: 'cnb/lifecycle/launcher', mode: 0o755, size: launcher.length, source: launcher, uid: 0, gid: 0 };
}

async function* processEntries(md: BuildMetadata): AsyncGenerator<LayerEntry> {
  yield { type: 'directory', path: 'cnb', mode: 0o755, uid: 0, gid: 0 };
  yield { type: 'directory', path: 'cnb/process', mode: 0o755, uid: 0, gid: 0 };
  for (const p of md.processes) yield { type: 'symlink', path: `cnb/process/${checkProcessType(p.type, 'metadata.toml')}`, target: '/cnb/lifecycle/launcher', uid: 0, gid: 0 };
}

function finishConfig(config: ImageConfig, inputs: ExporterInputs, md: BuildMetadata, metadata: LifecycleMetadata): ImageConfig {
  const types = new Set(md.processes.map((p) => p.type));
  if (inputs.processType && !types.has(inputs.processType)) {
    throw new StrataError(`-process-type "${inputs.processType}" is not one of the processes the buildpacks declared (${[...types].join(', ') || 'none'})`, Exit.ExportError);
  }
  const defaultType = inputs.processType ?? (md.defaultProcess && types.has(md.defaultProcess) ? md.defaultProcess : undefined);
  const env = (config.config?.Env ?? []).filter((e) => !/^(CNB_LAYERS_DIR|CNB_APP_DIR|CNB_PLATFORM_API|CNB_DEPRECATION_MODE)=/.test(e));
  const pathIndex = env.findIndex((e) => e.startsWith('PATH='));
  const basePath = pathIndex >= 0 ? env[pathIndex]!.slice(5) : '/usr/local/bin:/usr/bin:/bin';
  const path = `PATH=/cnb/process:/cnb/lifecycle:${basePath}`;
  if (pathIndex >= 0) env[pathIndex] = path;
  else env.push(path);
  env.push(`CNB_LAYERS_DIR=${inputs.imageLayersDir ?? inputs.layersDir}`, `CNB_APP_DIR=${inputs.imageAppDir ?? inputs.appDir}`, `CNB_PLATFORM_API=${inputs.platformApi}`, 'CNB_DEPRECATION_MODE=quiet');
  const buildMetadata = {
    processes: md.processes.map((p) => ({ type: p.type, command: p.command, args: p.args, direct: p.direct, ...(p.workingDir ? { 'working-dir': p.workingDir } : {}), buildpackID: p.buildpackId, 'exec-env': p.execEnv })),
    buildpacks: md.buildpacks.map((b) => ({ id: b.id, version: b.version, ...(b.homepage ? { homepage: b.homepage } : {}), api: b.api })),
    ...(md.extensions.length ? { extensions: md.extensions.map((b) => ({ id: b.id, version: b.version, ...(b.homepage ? { homepage: b.homepage } : {}), api: b.api })) } : {}),
    launcher: { version: LAUNCHER_VERSION, source: { git: { repository: 'strata', commit: '' } } },
    ...(md.defaultProcess ? { 'buildpack-default-process-type': md.defaultProcess } : {}),
  };
  const labels: Record<string, string> = {};
  for (const l of md.labels) labels[l.key] = l.value;
  labels[LABEL.lifecycle] = JSON.stringify(metadata);
  labels[LABEL.build] = JSON.stringify(buildMetadata);
  labels[LABEL.project] = JSON.stringify(inputs.projectMetadata as Table);
  if (inputs.platformApi.atLeast('0.15')) labels[LABEL.execEnv] = inputs.execEnv;
  const withL = withLabels(config, labels);
  return {
    ...withL,
    created: imageTime(inputs.created),
    config: {
      ...withL.config,
      Env: env,
      Entrypoint: [defaultType ? `/cnb/process/${defaultType}` : '/cnb/lifecycle/launcher'],
      Cmd: null,
      WorkingDir: inputs.imageAppDir ?? inputs.appDir,
    },
  };
}

const LAUNCHER_VERSION = '0.1.0';

/**
 * Writes the `cache = true` layers that have contents into the cache (spec §9.3), keeping committed tars whose
 * diffID did not change. Cache failures warn and never fail the build.
 */
export async function saveCache(options: { group: GroupEntry[]; layersDir: string; imageLayersDir?: string; cache: Cache; uid: number; gid: number; created: Date; log: Logger; kept?: Map<string, KeptLayer>; recorded?: Map<string, string> }): Promise<CacheMetadata | undefined> {
  const { cache, log } = options;
  const toImage = inImagePath(options.layersDir, options.imageLayersDir);
  try {
    return await LayersDir.with(options.layersDir, async (layers) => {
      const writer = await cache.stage();
      try {
        return await fillCache(layers, writer);
      } catch (err) {
        await writer.discard();
        throw err;
      }
    });
  } catch (err) {
    log.warn(`cache ${cache.description} was not saved: ${err instanceof Error ? err.message : String(err)}`);
    return undefined;
  }

  async function fillCache(layers: LayersDir, writer: CacheStage): Promise<CacheMetadata> {
    const owned = (rel: string, fixedModes = false) => ownedTree({ dir: layers.dir, rel }, toImage(layers.dir.pathOf(rel)), options.uid, options.gid, fixedModes);
    const source = layerSource(options);
    const metadata: CacheMetadata = { buildpacks: [] };
    for (const bp of options.group) {
      const records: Record<string, LayerRecord> = {};
      for (const l of layers.layers(bp.id)) {
        if (!l.meta.types.cache || !layerDirExists(layers, l)) continue;
        // The same tar as the image layer, so the diffIDs agree; the restorer leaves existing parent dirs alone.
        const { recipe } = source(layers, l.rel);
        // The export, just before, confirmed or wrote the records of its launch layers: nothing has run since.
        const known = options.recorded?.get(l.rel) ?? knownDiffID(layers.dir, l.rel, recipe);
        let sha: string;
        const fromExport = known ? options.kept?.get(known) : undefined;
        if (known && (await writer.keepLayer(known))) sha = known;
        else if (known && fromExport) {
          // The image's own tar pass made this layer: the cache takes that blob, the dir is not walked again.
          await writer.addCompressed(known, fromExport.path, fromExport.descriptor);
          log.debug(`cache: ${bp.id}:${l.name} taken from the exported layer, not tarred again`);
          sha = known;
        } else {
          sha = await writer.addLayer(source(layers, l.rel).entries, options.created);
          rememberDiffID(layers.dir, l.rel, recipe, sha);
        }
        records[l.name] = { sha, data: l.meta.metadata, build: l.meta.types.build, launch: l.meta.types.launch, cache: true };
      }
      metadata.buildpacks.push({ key: bp.id, version: bp.version, layers: records });
    }
    if (layers.isDirectory('sbom/cache')) metadata.sbom = { sha: await writer.addLayer(owned('sbom/cache', true), options.created) };
    await writer.commit(metadata);
    return metadata;
  }
}
