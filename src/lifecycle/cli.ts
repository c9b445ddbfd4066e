import { hostPlatform } from '../oci/manifest.js';
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { chownTree, pathExists } from '../oci/fsutil.js';
import { tmpdir } from 'node:os';
import { EngineClient } from '../oci/engine/client.js';
import { RegistryRepository } from '../oci/registry/client.js';
import { loadIntoEngine, openEngineImage } from '../oci/engine/transfer.js';
import { OciLayout } from '../oci/layout.js';
import { resolveImage } from '../oci/image.js';
import { PROJECT_ROOT } from '../version.js';
import { basename, join } from 'node:path';
import { StrataError, errorMessage } from '../oci/errors.js';
import { platformApi, type ApiVersion } from '../spec/api.js';
import { readAnalyzed, writeAnalyzed } from '../spec/analyzed.js';
import { readGroupFile, writeGroupFile } from '../spec/group.js';
import { readOrderFile } from '../spec/order.js';
import { readPlanFile, writePlanFile } from '../spec/plan.js';
import { readSystemFile } from '../spec/system.js';
import type { ImageTarget } from '../spec/target.js';
import { build } from './build.js';
import { analyze, openImage, resolveRunImage, runImageEntry } from './analyze.js';
import { exportImage, saveCache, type ExportTarget, type KeptLayer } from './export.js';
import { DirCache, ImageCache, type Cache } from './cache.js';
import { restore } from './restore.js';
import { extractSbomLayer } from './sbom.js';
import { LABEL, parseLifecycleMetadata } from './labels.js';
import { rebase } from './rebase.js';
import { layerTime } from '../oci/layer.js';
import { Reference } from '../oci/reference.js';
import { openTarget, parseTarget, type StoreOptions } from '../oci/target.js';
import { readRunImages } from '../spec/run.js';
import { writeReport } from '../spec/report.js';
import { readProjectMetadata } from '../spec/projectmeta.js';
import { Detector, type BuildpackRunInputs } from './detect.js';
import { Exit } from '../spec/exit.js';
import { phaseError } from './exit.js';
import { parseFlags, type FlagDef, type FlagValues } from './flags.js';
import { createLogger, parseLogLevel, type Logger } from './log.js';
import { buildpackPhaseEnv } from './env.js';

const inLayers = (file: string) => (v: FlagValues) => join(v.str('layers')!, file);

const COMMON: FlagDef[] = [
  { name: 'layers', env: 'CNB_LAYERS_DIR', kind: 'string', default: '/layers' },
  { name: 'log-level', env: 'CNB_LOG_LEVEL', kind: 'string', default: 'info' },
  { name: 'no-color', env: 'CNB_NO_COLOR', kind: 'bool' },
];

const BUILDPACK_PHASE: FlagDef[] = [
  { name: 'app', env: 'CNB_APP_DIR', kind: 'string', default: '/workspace' },
  { name: 'platform', env: 'CNB_PLATFORM_DIR', kind: 'string', default: '/platform' },
  { name: 'buildpacks', env: 'CNB_BUILDPACKS_DIR', kind: 'string', default: '/cnb/buildpacks' },
  { name: 'build-config', env: 'CNB_BUILD_CONFIG_DIR', kind: 'string', default: '/cnb/build-config' },
  { name: 'group', env: 'CNB_GROUP_PATH', kind: 'string', default: inLayers('group.toml') },
  { name: 'plan', env: 'CNB_PLAN_PATH', kind: 'string', default: inLayers('plan.toml') },
  { name: 'analyzed', env: 'CNB_ANALYZED_PATH', kind: 'string', default: inLayers('analyzed.toml') },
];

interface Phase {
  flags: FlagDef[];
  /** Detect and build run buildpack code; the spec's reference refuses to do that as root. */
  refuseRoot: boolean;
  /** Takes image names as positional arguments (analyzer, exporter, creator, rebaser); the rest take none. */
  images?: boolean;
  errorCode: number;
  run(v: FlagValues, ctx: PhaseContext): Promise<void>;
}

interface PhaseContext {
  api: ApiVersion;
  env: NodeJS.ProcessEnv;
  log: Logger;
}



/** The run image's target from analyzed.toml, falling back to this machine (linux, its arch, /etc/os-release). */
async function runTarget(analyzedPath: string): Promise<ImageTarget> {
  const analyzed = await readAnalyzed(analyzedPath);
  const t: ImageTarget = { os: 'linux', arch: hostPlatform().architecture, ...(analyzed?.runImage?.target ?? {}) };
  if (!t.distro) {
    const osRelease = await readFile('/etc/os-release', 'utf8').catch(() => '');
    const field = (k: string) => new RegExp(`^${k}="?([^"\\n]*)"?$`, 'm').exec(osRelease)?.[1];
    const name = field('ID');
    const version = field('VERSION_ID');
    if (name) t.distro = { name, ...(version ? { version } : {}) };
  }
  return t;
}

function execEnv(env: NodeJS.ProcessEnv): string {
  const v = env.CNB_EXEC_ENV || 'production';
  if (v.includes('/')) throw new StrataError(`CNB_EXEC_ENV="${v}" must not contain "/"`, Exit.InvalidArgs);
  return v;
}

async function runInputs(v: FlagValues, { api, env, log }: PhaseContext): Promise<BuildpackRunInputs> {
  return {
    buildpacksDir: v.str('buildpacks')!,
    appDir: v.str('app')!,
    platformDir: v.str('platform')!,
    buildConfigDir: v.str('build-config')!,
    platformApi: api,
    target: await runTarget(v.str('analyzed')!),
    execEnv: execEnv(env),
    hostEnv: env,
    log,
  };
}

const RUN_TOML: FlagDef = { name: 'run', env: 'CNB_RUN_PATH', kind: 'string', default: '/cnb/run.toml' };
const RUN_IMAGE: FlagDef = { name: 'run-image', env: 'CNB_RUN_IMAGE', kind: 'string', alias: 'image' };
const PREVIOUS_IMAGE: FlagDef = { name: 'previous-image', env: 'CNB_PREVIOUS_IMAGE', kind: 'string' };
const LAUNCHER: FlagDef = { name: 'launcher', kind: 'string', default: '/cnb/lifecycle/launcher' };
const PROCESS_TYPE: FlagDef = { name: 'process-type', env: 'CNB_PROCESS_TYPE', kind: 'string' };
const STACK_TOML: FlagDef = { name: 'stack', env: 'CNB_STACK_PATH', kind: 'string', default: '/cnb/stack.toml' };

const REGISTRY_PHASE: FlagDef[] = [
  { name: 'insecure-registry', env: 'CNB_INSECURE_REGISTRIES', kind: 'list' },
  { name: 'uid', env: 'CNB_USER_ID', kind: 'string', default: () => String(process.getuid?.() ?? 0) },
  { name: 'gid', env: 'CNB_GROUP_ID', kind: 'string', default: () => String(process.getgid?.() ?? 0) },
  { name: 'tag', kind: 'list' },
  { name: 'daemon', env: 'CNB_USE_DAEMON', kind: 'bool' },
  { name: 'layout', env: 'CNB_USE_LAYOUT', kind: 'bool' },
  { name: 'layout-dir', env: 'CNB_LAYOUT_DIR', kind: 'string' },
  { name: 'cache-dir', env: 'CNB_CACHE_DIR', kind: 'string' },
  { name: 'cache-image', env: 'CNB_CACHE_IMAGE', kind: 'string' },
  { name: 'launch-cache', env: 'CNB_LAUNCH_CACHE_DIR', kind: 'string' },
];

function storeOptions(v: FlagValues, env: NodeJS.ProcessEnv = process.env): StoreOptions {
  if (!v.bool('layout')) return { insecureRegistries: v.list('insecure-registry') };
  // Layout mode is experimental in the Platform API: allowed only when CNB_EXPERIMENTAL_MODE says so.
  const mode = env.CNB_EXPERIMENTAL_MODE || 'error';
  if (mode === 'error') throw new StrataError('-layout is experimental; set CNB_EXPERIMENTAL_MODE=warn (or quiet) to use it', Exit.InvalidArgs);
  const layoutDir = v.str('layout-dir');
  if (!layoutDir) throw new StrataError('-layout needs -layout-dir (or CNB_LAYOUT_DIR)', Exit.InvalidArgs);
  return { insecureRegistries: v.list('insecure-registry'), layoutDir };
}

function numeric(v: FlagValues, name: string): number {
  const text = v.str(name)!;
  if (!/^\d+$/.test(text)) throw new StrataError(`-${name} "${text}" is not a numeric id`, Exit.InvalidArgs);
  return Number(text);
}

/** The output names: positional images plus -tag, all on one registry (the spec's rule unless exporting to a daemon). */
function outputNames(v: FlagValues): string[] {
  const names = [...v.positional, ...v.list('tag')];
  if (!names.length) throw new StrataError('an output image name is required (positional argument)', Exit.InvalidArgs);
  if (v.bool('daemon')) return names;
  const registries = new Set(names.filter((n) => !n.startsWith('oci:')).map((n) => Reference.parse(n).registry));
  if (registries.size > 1) throw new StrataError(`writing to multiple registries (${[...registries].join(', ')}) is not allowed; keep every tag on one registry`, Exit.InvalidArgs);
  return names;
}

async function exportTargets(names: string[], options: StoreOptions): Promise<ExportTarget[]> {
  const out: ExportTarget[] = [];
  for (const name of names) {
    const t = await openTarget(parseTarget(name), { ...options, create: true });
    if (!t.tag) throw new StrataError(`${name}: an output image needs a tag, not a digest`, Exit.InvalidArgs);
    out.push({ store: t.store, tag: t.tag, name });
  }
  return out;
}

/** Every registry output must accept pushes; checked up front so no build runs only to fail at export. */
async function checkWriteAccess(names: string[], options: StoreOptions): Promise<void> {
  for (const name of names) {
    const t = await openTarget(parseTarget(name), { ...options, create: true });
    if (t.store instanceof RegistryRepository) {
      try {
        await t.store.checkPushAccess();
      } catch (err) {
        throw new StrataError(`no write access to ${name}: ${errorMessage(err)}`, Exit.AnalyzeError, { cause: err });
      }
    }
  }
}

/** `-cache-image` (a registry or oci: image) or `-cache-dir`; none means no cache. */
async function openCache(v: FlagValues, log: Logger): Promise<Cache | undefined> {
  const image = v.str('cache-image');
  if (image) {
    const t = await openTarget(parseTarget(image), { ...storeOptions(v), create: true });
    return new ImageCache(t.store, t.tag ?? 'latest', image, log);
  }
  const dir = v.str('cache-dir');
  return dir ? DirCache.open(dir, log) : undefined;
}

function createdTime(env: NodeJS.ProcessEnv): Date {
  try {
    return layerTime(env);
  } catch (err) {
    throw new StrataError((err as Error).message, Exit.InvalidArgs);
  }
}

const PHASES: Record<string, Phase> = {
  analyzer: {
    images: true,
    refuseRoot: false,
    errorCode: Exit.AnalyzeError,
    flags: [
      ...COMMON,
      ...REGISTRY_PHASE,
      { name: 'analyzed', env: 'CNB_ANALYZED_PATH', kind: 'string', default: inLayers('analyzed.toml') },
      RUN_TOML,
      STACK_TOML,
      RUN_IMAGE,
      PREVIOUS_IMAGE,
      { name: 'skip-layers', env: 'CNB_SKIP_LAYERS', kind: 'bool' },
      { name: 'group', env: 'CNB_GROUP_PATH', kind: 'string', default: inLayers('group.toml') },
    ],
    async run(v, { api, env, log }) {
      const names = outputNames(v);
      const runImages = api.atLeast('0.12') ? await readRunImages(v.str('run')!) : await readRunImages(v.str('stack')!, true);
      // Access first: without credentials, "no write access" says more than a failed read of the previous image.
      if (!v.bool('daemon')) await checkWriteAccess(names, storeOptions(v));
      const result = await analyze({ output: names[0]!, ...(v.str('previous-image') ? { previous: v.str('previous-image') } : {}), ...(v.str('run-image') ? { runImage: v.str('run-image') } : {}), runImages, store: storeOptions(v), ...(v.bool('daemon') ? { engine: EngineClient.fromEnv(env) } : {}), log });
      await writeAnalyzed(v.str('analyzed')!, result.analyzed);
      // The previous image's SBOMs come back to disk so reused layers keep theirs (the restorer puts them in place).
      const sbomSha = result.previousMetadata?.sbom?.sha;
      if (api.atLeast('0.8') && !v.bool('skip-layers') && result.previous && sbomSha) await extractSbomLayer(result.previous.image, sbomSha, result.previous.name, log, v.str('layers')!);
      log.info(result.previous ? `Previous image ${result.previous.reference}` : 'No previous image');
      log.info(`Run image ${result.run.reference}`);
    },
  },
  exporter: {
    images: true,
    refuseRoot: false,
    errorCode: Exit.ExportError,
    flags: [
      ...COMMON,
      ...REGISTRY_PHASE,
      { name: 'app', env: 'CNB_APP_DIR', kind: 'string', default: '/workspace' },
      { name: 'group', env: 'CNB_GROUP_PATH', kind: 'string', default: inLayers('group.toml') },
      { name: 'analyzed', env: 'CNB_ANALYZED_PATH', kind: 'string', default: inLayers('analyzed.toml') },
      RUN_TOML,
      STACK_TOML,
      LAUNCHER,
      { name: 'launcher-sbom', kind: 'string', default: '/cnb/lifecycle' },
      PROCESS_TYPE,
      { name: 'project-metadata', env: 'CNB_PROJECT_METADATA_PATH', kind: 'string', default: inLayers('project-metadata.toml') },
      { name: 'report', env: 'CNB_REPORT_PATH', kind: 'string', default: inLayers('report.toml') },
      { name: 'parallel', env: 'CNB_PARALLEL_EXPORT', kind: 'bool' },
      { name: 'extended', env: 'CNB_EXTENDED_DIR', kind: 'string' },
    ],
    async run(v, { api, env, log }) {
      const names = outputNames(v);
      const so = storeOptions(v);
      const group = await readGroupFile(v.str('group')!);
      const analyzed = await readAnalyzed(v.str('analyzed')!);
      const runRef = analyzed?.runImage?.reference;
      if (!runRef) throw new StrataError(`${v.str('analyzed')}: no run-image reference; run the analyzer first`, Exit.ExportError);
      const run = await openImage(runRef, so, log);
      if (!run) throw new StrataError(`run image ${runRef} not found`, Exit.ExportError);
      const runImages = api.atLeast('0.12') ? await readRunImages(v.str('run')!) : await readRunImages(v.str('stack')!, true);
      const runName = analyzed.runImage?.image || runRef;
      const entry = runImageEntry(runImages, runName);
      const cache = await openCache(v, log);
      // The cache takes the layers the export just made instead of tarring them again (not with -parallel).
      const keep = { dir: await mkdtemp(join(tmpdir(), 'strata-export-')), files: new Map<string, KeptLayer>() };
      const saveTheCache = async (): Promise<void> => {
        if (!cache) return;
        const saved = await saveCache({ group: group.group, layersDir: v.str('layers')!, cache, uid: numeric(v, 'uid'), gid: numeric(v, 'gid'), created: createdTime(env), log, kept: keep.files });
        if (saved) log.info(`Cache saved: ${saved.buildpacks.reduce((n, b) => n + Object.keys(b.layers).length, 0)} layer(s)`);
      };
      // -parallel: the cache is written while the image is; both only read the layer dirs.
      const caching = v.bool('parallel') ? saveTheCache() : undefined;
      const prevRef = analyzed.previousImage?.reference;
      const engine = v.bool('daemon') ? EngineClient.fromEnv(env) : undefined;
      // An engine trades whole tars, not blobs: in daemon mode a temporary layout holds the previous image and the
      // output, which is then loaded under every name.
      const fromEngine = engine && prevRef ? await openEngineImage(engine, prevRef).catch(() => undefined) : undefined;
      const staging = engine ? await OciLayout.open(await mkdtemp(join(tmpdir(), 'strata-daemon-')), { create: true }) : undefined;
      try {
        const prev = fromEngine ? { image: await resolveImage(fromEngine.store, fromEngine.id) } : prevRef ? await openImage(prevRef, so, log).catch(() => undefined) : undefined;
        const prevMd = prev ? parseLifecycleMetadata(prev.image.config.config?.Labels?.[LABEL.lifecycle]) : undefined;
        const result = await exportImage({
          group: group.group,
          layersDir: v.str('layers')!,
          appDir: v.str('app')!,
          launcher: await readFile(v.str('launcher')!),
          runImage: run.image,
          runImageName: entry?.image ?? runName,
          runImageReference: run.reference,
          runImageMirrors: entry?.mirrors ?? [],
          ...(prev && prevMd ? { previous: { image: prev.image, metadata: prevMd } } : {}),
          outputs: staging ? [{ store: staging, tag: 'export', name: 'export' }] : await exportTargets(names, so),
          uid: numeric(v, 'uid'),
          gid: numeric(v, 'gid'),
          platformApi: api,
          ...(v.str('process-type') ? { processType: v.str('process-type') } : {}),
          projectMetadata: await readProjectMetadata(v.str('project-metadata')!),
          execEnv: execEnv(env),
          created: createdTime(env),
          log,
          keep,
        });
        if (engine && staging) {
          let imageId = '';
          for (const name of names) imageId = await loadIntoEngine(staging, 'export', engine, name);
          await writeReport(v.str('report')!, { image: { tags: names, imageId } });
          for (const t of names) log.info(`Loaded ${t} into ${engine.description}`);
          log.info(`*** Image ID: ${imageId}`);
        } else {
          await writeReport(v.str('report')!, { image: { tags: result.tags, digest: result.digest, manifestSize: result.manifestSize } });
          for (const t of result.tags) log.info(`Saved ${t}`);
          log.info(`*** Digest: ${result.digest}`);
        }
        if (result.reused.length) log.info(`Reused ${result.reused.length} layer(s) from the previous image`);
        for (const u of result.untouched) log.info(`Layer ${u} is unchanged (same fingerprint): reused without reading it`);
      } finally {
        await fromEngine?.close();
        if (staging) await rm(staging.root, { recursive: true, force: true });
      }
      try {
        await (caching ?? saveTheCache());
      } finally {
        await rm(keep.dir, { recursive: true, force: true });
      }
    },
  },
  restorer: {
    refuseRoot: false,
    errorCode: Exit.RestoreError,
    flags: [
      ...COMMON,
      ...REGISTRY_PHASE,
      { name: 'group', env: 'CNB_GROUP_PATH', kind: 'string', default: inLayers('group.toml') },
      { name: 'analyzed', env: 'CNB_ANALYZED_PATH', kind: 'string', default: inLayers('analyzed.toml') },
      { name: 'skip-layers', env: 'CNB_SKIP_LAYERS', kind: 'bool' },
      { name: 'build-image', env: 'CNB_BUILD_IMAGE', kind: 'string' },
    ],
    async run(v, { api, log }) {
      const group = await readGroupFile(v.str('group')!);
      const analyzed = await readAnalyzed(v.str('analyzed')!);
      if (!analyzed) log.warn(`${v.str('analyzed')} not found; restoring from the cache only`);
      const previous = analyzed?.metadata ? parseLifecycleMetadata(JSON.stringify(analyzed.metadata)) : undefined;
      const cache = await openCache(v, log);
      const r = await restore({ group: group.group, layersDir: v.str('layers')!, ...(previous ? { previous } : {}), ...(cache ? { cache } : {}), platformApi: api, skipLayers: v.bool('skip-layers'), log });
      for (const l of r.restored) log.info(`Restored layer ${l} from the cache`);
      for (const l of r.removed) log.info(`Removed layer ${l}: the cache holds a different version`);
    },
  },
  creator: {
    images: true,
    refuseRoot: false,
    errorCode: Exit.Generic,
    flags: [
      ...COMMON,
      ...BUILDPACK_PHASE,
      ...REGISTRY_PHASE,
      { name: 'order', env: 'CNB_ORDER_PATH', kind: 'string' },
      RUN_TOML,
      RUN_IMAGE,
      PREVIOUS_IMAGE,
      LAUNCHER,
      PROCESS_TYPE,
      { name: 'project-metadata', env: 'CNB_PROJECT_METADATA_PATH', kind: 'string' },
      { name: 'report', env: 'CNB_REPORT_PATH', kind: 'string' },
      { name: 'skip-restore', env: 'CNB_SKIP_RESTORE', kind: 'bool' },
    ],
    async run(v, { env }) {
      const names = outputNames(v);
      const pass = (...flags: string[]): string[] => flags.flatMap((f) => (v.str(f) !== undefined ? [`-${f}`, v.str(f)!] : []));
      const list = (f: string): string[] => v.list(f).flatMap((x) => [`-${f}`, x]);
      const common = [...pass('layers', 'log-level', 'analyzed', 'group')];
      const buildpackSide = [...common, ...pass('app', 'platform', 'buildpacks', 'build-config', 'plan')];
      const flag = (f: string): string[] => (v.bool(f) ? [`-${f}`] : []);
      // Where images live (layout mode, a daemon) is every registry phase's business, or one goes to the network.
      const registrySide = [...common, ...list('insecure-registry'), ...pass('uid', 'gid', 'cache-dir', 'cache-image', 'layout-dir', 'launch-cache'), ...flag('layout'), ...flag('daemon')];
      // Analyze first (Platform API 0.7+), then the buildpack phases as the build user, then restore's and export's work.
      const steps: [string, string[], boolean][] = [
        ['analyzer', [...registrySide, ...pass('run', 'run-image', 'previous-image'), ...names.slice(0, 1)], false],
        ['detector', [...buildpackSide, ...pass('order', 'run')], true],
        ['restorer', [...registrySide, ...(v.bool('skip-restore') ? ['-skip-layers'] : [])], false],
        ['builder', buildpackSide, true],
        ['exporter', [...registrySide, ...pass('app', 'run', 'launcher', 'process-type', 'project-metadata', 'report'), ...names], false],
      ];
      for (const [phase, args, asBuildUser] of steps) {
        if (asBuildUser && process.getuid?.() === 0) {
          // The build user must own what buildpacks write to, as in the reference creator.
          await chownTree(v.str('layers')!, numeric(v, 'uid'), numeric(v, 'gid'));
          await chownTree(v.str('app')!, numeric(v, 'uid'), numeric(v, 'gid'));
        }
        const code = await runChildPhase(phase, args, asBuildUser ? buildpackPhaseEnv(env) : env, asBuildUser ? { uid: numeric(v, 'uid'), gid: numeric(v, 'gid') } : undefined);
        if (code !== 0) throw new StrataError(`${phase} failed (exit ${code})`, code);
      }
    },
  },
  rebaser: {
    images: true,
    refuseRoot: false,
    errorCode: Exit.RebaseError,
    flags: [
      ...COMMON,
      ...REGISTRY_PHASE,
      RUN_IMAGE,
      PREVIOUS_IMAGE,
      { name: 'force', env: 'CNB_FORCE_REBASE', kind: 'bool' },
      { name: 'report', env: 'CNB_REPORT_PATH', kind: 'string', default: 'report.toml' },
    ],
    async run(v, { log }) {
      const names = outputNames(v);
      const so = storeOptions(v);
      const appName = v.str('previous-image') ?? names[0]!;
      const app = await openImage(appName, so, log);
      if (!app) throw new StrataError(`app image ${appName} not found`, Exit.RebaseError);
      const md = parseLifecycleMetadata(app.image.config.config?.Labels?.[LABEL.lifecycle]);
      const runName = v.str('run-image') ?? md?.runImage?.image ?? md?.stack?.runImage?.image;
      if (!runName) throw new StrataError(`${appName} records no run image; give -run-image`, Exit.InvalidArgs);
      const mirrors = v.str('run-image') ? [] : (md?.runImage?.mirrors ?? md?.stack?.runImage?.mirrors ?? []);
      const run = v.str('run-image') ? await openImage(runName, so, log) : await resolveRunImage([{ image: runName, mirrors }], appName, so, log);
      if (!run) throw new StrataError(`run image ${runName} not found`, Exit.RebaseError);
      const started = Date.now();
      const result = await rebase({ app: app.image, appName, newRun: run.image, newRunName: run.name, newRunReference: run.reference, outputs: await exportTargets(names, so), force: v.bool('force') });
      await writeReport(v.str('report')!, { image: { tags: result.tags, digest: result.digest, manifestSize: result.manifestSize } });
      for (const t of result.tags) log.info(`Rebased ${t} onto ${run.reference} in ${Date.now() - started} ms`);
      log.info(`*** Digest: ${result.digest}`);
    },
  },
  detector: {
    refuseRoot: true,
    errorCode: Exit.DetectError,
    flags: [
      ...COMMON,
      ...BUILDPACK_PHASE,
      { name: 'order', env: 'CNB_ORDER_PATH', kind: 'string' },
      { name: 'system', env: 'CNB_SYSTEM_PATH', kind: 'string', default: '/cnb/system.toml' },
      { name: 'extensions', env: 'CNB_EXTENSIONS_DIR', kind: 'string', default: '/cnb/extensions' },
      RUN_TOML,
      { name: 'generated', env: 'CNB_GENERATED_DIR', kind: 'string', default: inLayers('generated') },
    ],
    async run(v, { api, env, log }) {
      const layersOrder = join(v.str('layers')!, 'order.toml');
      const orderPath = v.str('order') ?? ((await pathExists(layersOrder)) ? layersOrder : '/cnb/order.toml');
      const order = await readOrderFile(orderPath);
      const system = api.atLeast('0.15') ? await readSystemFile(v.str('system')!) : undefined;
      await mkdir(v.str('layers')!, { recursive: true });
      const detector = new Detector({ order: order.order, ...(system ? { system } : {}), scratchDir: v.str('layers')!, ...(await runInputs(v, { api, env, log })) });
      const out = await detector.run();
      await writeGroupFile(v.str('group')!, { group: out.group, groupExtensions: [] });
      await writePlanFile(v.str('plan')!, out.plan);
    },
  },
  builder: {
    refuseRoot: true,
    errorCode: Exit.BuildError,
    flags: [...COMMON, ...BUILDPACK_PHASE],
    async run(v, { api, env, log }) {
      const group = await readGroupFile(v.str('group')!);
      const plan = await readPlanFile(v.str('plan')!);
      await mkdir(v.str('layers')!, { recursive: true });
      await build({ group: group.group, plan: plan.entries, layersDir: v.str('layers')!, ...(await runInputs(v, { api, env, log })) });
    },
  },
};

export const PHASE_NAMES = Object.keys(PHASES);

/**
 * Runs a phase as a child process with our own entry; detect and build switch to the build user when we are root,
 * as the reference creator drops privileges before running buildpacks.
 */
function runChildPhase(phase: string, args: string[], env: NodeJS.ProcessEnv, user?: { uid: number; gid: number }): Promise<number> {
  const entry = join(PROJECT_ROOT, 'bin', 'lifecycle');
  const ids = user && process.getuid?.() === 0 ? { uid: user.uid, gid: user.gid } : {};
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [entry, phase, ...args], { env, stdio: 'inherit', ...ids });
    child.on('error', () => resolve(Exit.Generic));
    child.on('close', (code) => resolve(code ?? Exit.Generic));
  });
}

/**
 * Runs one lifecycle phase as the Platform API defines its command line, returning the exit code. CNB_PLATFORM_API
 * is checked before anything else is read.
 */
export async function runPhase(name: string, argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  // A container's umask, whatever the caller's: what the phase and the buildpacks it starts write (and so every layer
  // made of it) must not depend on who started the build.
  process.umask(0o022);
  const fail = (err: unknown, code: number): number => {
    const e = phaseError(err, code);
    process.stderr.write(`ERROR: ${name}: ${errorMessage(e)}\n`);
    if (env.STRATA_DEBUG && e.stack) process.stderr.write(`${e.stack}\n`);
    return e.exitCode;
  };
  const phase = PHASES[name];
  if (!phase) return fail(new StrataError(`unknown phase "${name}"; phases: ${PHASE_NAMES.join(', ')}`, Exit.InvalidArgs), Exit.InvalidArgs);
  let api: ApiVersion;
  try {
    api = platformApi(env.CNB_PLATFORM_API);
  } catch (err) {
    return fail(err, Exit.PlatformApi);
  }
  let values: FlagValues;
  let log: Logger;
  try {
    values = parseFlags(name, argv, phase.flags, env);
    if (!phase.images && values.positional.length) throw new StrataError(`unexpected argument${values.positional.length > 1 ? 's' : ''} ${values.positional.map((a) => `"${a}"`).join(' ')}: ${name} takes flags only`, Exit.InvalidArgs);
    log = createLogger(parseLogLevel(values.str('log-level')));
  } catch (err) {
    return fail(err, Exit.InvalidArgs);
  }
  if (phase.refuseRoot && process.getuid?.() === 0) {
    return fail(new StrataError(`refusing to run as root: buildpacks run as the build user (set by CNB_USER_ID in a builder); run ${name} as that user`, Exit.Generic), Exit.Generic);
  }
  try {
    await phase.run(values, { api, env, log });
    return 0;
  } catch (err) {
    return fail(err, phase.errorCode);
  }
}

/** `lifecycle <phase> …` or a binary named after the phase (`/cnb/lifecycle/detector`). */
export async function lifecycleMain(argv0: string, args: string[]): Promise<number> {
  const self = basename(argv0);
  if (self !== 'lifecycle') return runPhase(self, args);
  const [phase, ...rest] = args;
  if (!phase) {
    process.stderr.write(`usage: lifecycle <phase> [flags]; phases: ${PHASE_NAMES.join(', ')}\n`);
    return Exit.InvalidArgs;
  }
  return runPhase(phase, rest);
}
