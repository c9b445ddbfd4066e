import { createHash } from 'node:crypto';
import { cp, lchown, lstat, mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { envValue } from '../oci/config.js';
import type { Digest } from '../oci/digest.js';
import { StrataError } from '../oci/errors.js';
import { resolveImage, type ResolvedImage } from '../oci/image.js';
import type { StoreOptions } from '../oci/target.js';
import { imageTarget as runTarget, openImage } from '../lifecycle/analyze.js';
import { DirCache } from '../lifecycle/cache.js';
import { exportImage, saveCache } from '../lifecycle/export.js';
import { LABEL, parseLifecycleMetadata } from '../lifecycle/labels.js';
import type { Logger } from '../lifecycle/log.js';
import { restore } from '../lifecycle/restore.js';
import { extractSbomLayer } from '../lifecycle/sbom.js';
import { ApiVersion, LATEST_PLATFORM_API } from '../spec/api.js';
import { writeAnalyzed } from '../spec/analyzed.js';
import { readGroupFile } from '../spec/group.js';
import type { RunImage } from '../spec/run.js';
import { writeReport } from '../spec/report.js';
import { LABEL_BUILDER, type BuilderMetadata } from './builder.js';
import type { Executor, SandboxRun } from './executor.js';
import { imageTarget, strataHome } from './localstore.js';
import { unpackedRootfs } from './rootfs.js';

export interface BuildOptions {
  image: string;
  builder: string;
  appPath: string;
  publish: boolean;
  runImage?: string;
  env: Record<string, string>;
  tags: string[];
  clearCache: boolean;
  creationTime?: Date;
  previousImage?: string;
  defaultProcess?: string;
  network: 'host' | 'none';
  executor: (rootfs: string, stateDir: string) => Executor;
  reportDir?: string;
  store: StoreOptions;
  log: Logger;
  /** Phase headers (`===> DETECTING`). */
  phase: (name: string) => void;
}

export interface BuildResult {
  digest: Digest;
  tags: string[];
  reused: number;
  where: string;
}

/** Builders say which Platform APIs their lifecycle speaks; use the newest both sides know. */
function negotiate(builder: ResolvedImage): ApiVersion {
  const md = JSON.parse(builder.config.config?.Labels?.[LABEL_BUILDER] ?? '{}') as Partial<BuilderMetadata>;
  const theirs = md.lifecycle?.apis?.platform?.supported ?? [];
  const ours = ApiVersion.parse(LATEST_PLATFORM_API);
  const common = theirs.map((v) => ApiVersion.parse(v)).filter((v) => v.compare(ours) <= 0 && v.atLeast('0.12')).sort((a, b) => b.compare(a));
  if (!common.length) throw new StrataError(`builder ${md.createdBy?.name ?? ''} speaks Platform API ${theirs.join(', ') || '(none listed)'}; strata needs 0.12 to ${LATEST_PLATFORM_API}`);
  return common[0]!;
}

async function chownTree(dir: string, uid: number, gid: number): Promise<void> {
  const st = await lstat(dir);
  if (st.uid !== uid || st.gid !== gid) await lchown(dir, uid, gid);
  if (st.isDirectory()) for (const n of await readdir(dir)) await chownTree(join(dir, n), uid, gid);
}

/**
 * A daemonless build, as pack's untrusted-builder flow: analyze, restore and export run here (credentials stay in
 * this process), detect and build run in the builder's own lifecycle inside the sandbox, as the builder's user.
 */
export async function runBuild(o: BuildOptions): Promise<BuildResult> {
  const { log } = o;
  const home = strataHome();
  const bt = await imageTarget(o.builder, false, o.store).catch(() => undefined);
  const builder = bt ? await resolveImage(bt.store, bt.id).catch(() => undefined) : undefined;
  const opened = builder ? { image: builder } : await openImage(o.builder, o.store, log);
  if (!opened) throw new StrataError(`builder ${o.builder} not found (in the local store or its registry); create one with \`strata builder create\``);
  const builderImage = opened.image;
  const labels = builderImage.config.config?.Labels ?? {};
  if (!labels[LABEL_BUILDER]) throw new StrataError(`${o.builder} is not a builder (no ${LABEL_BUILDER} label)`);
  const md = JSON.parse(labels[LABEL_BUILDER]) as BuilderMetadata;
  const api = negotiate(builderImage);
  const uid = Number(envValue(builderImage.config, 'CNB_USER_ID') ?? NaN);
  const gid = Number(envValue(builderImage.config, 'CNB_GROUP_ID') ?? NaN);
  if (!Number.isInteger(uid) || !Number.isInteger(gid)) throw new StrataError(`builder ${o.builder} has no CNB_USER_ID/CNB_GROUP_ID in its env`);
  const runImages: RunImage[] = md.images?.length ? md.images : [md.stack.runImage];

  const rootfs = await unpackedRootfs(builderImage, join(home, 'rootfs'));
  await mkdir(join(home, 'builds'), { recursive: true });
  const work = await mkdtemp(join(home, 'builds', 'build-'));
  const layers = join(work, 'layers');
  const app = join(work, 'workspace');
  const platform = join(work, 'platform');
  const homeDir = join(work, 'home');
  try {
    await mkdir(join(platform, 'env'), { recursive: true });
    await mkdir(layers);
    await mkdir(homeDir);
    await cp(o.appPath, app, { recursive: true, verbatimSymlinks: true });
    for (const [k, v] of Object.entries(o.env)) await writeFile(join(platform, 'env', k), v);
    for (const d of [layers, app, homeDir]) await chownTree(d, uid, gid);

    const cacheKey = createHash('sha256').update(o.image).digest('hex').slice(0, 16);
    const cacheDir = join(home, 'cache', 'builds', cacheKey);
    if (o.clearCache) await rm(cacheDir, { recursive: true, force: true });
    const cache = await DirCache.open(cacheDir, log);

    o.phase('ANALYZING');
    // Local builds keep their images in the local store; published ones in the registry. Run images are looked up
    // locally first (a builder made on this machine names local bases), then in their registry.
    const previousName = o.previousImage ?? o.image;
    const previous = o.publish ? await openImage(previousName, o.store, log).catch(() => undefined) : await openLocalOrRemote(previousName, o.store, false);
    const prevMd = previous ? parseLifecycleMetadata(previous.image.config.config?.Labels?.[LABEL.lifecycle]) : undefined;
    const runCandidates = o.runImage ? [o.runImage] : [runImages[0]!.image, ...runImages[0]!.mirrors];
    let run: Opened | undefined;
    for (const c of runCandidates) if (!run) run = await openLocalOrRemote(c, o.store, true).catch(() => undefined);
    if (!run) throw new StrataError(`run image ${runCandidates.join(' or ')} cannot be read; check the name, or pull it with \`strata image copy\``);
    await writeAnalyzed(join(layers, 'analyzed.toml'), {
      ...(previous ? { previousImage: { reference: previous.reference } } : {}),
      ...(prevMd ? { metadata: JSON.parse(JSON.stringify(prevMd)) as Record<string, unknown> } : {}),
      runImage: { reference: run.reference, image: run.name, target: runTarget(run.image, run.name) },
    });
    if (previous && prevMd?.sbom?.sha) await extractSbomLayer(previous.image, prevMd.sbom.sha, o.image, log, work);
    log.info(previous ? `Previous image ${previous.name}` : 'No previous image');
    log.info(`Run image ${run.reference}`);

    const sandbox = o.executor(rootfs, join(home, 'run'));
    const inSandbox = sandbox.name !== 'host';
    const dirs = inSandbox ? { app: '/workspace', layers: '/layers', platform: '/platform', lifecycle: '/cnb/lifecycle' } : { app, layers, platform, lifecycle: join(rootfs, 'cnb', 'lifecycle') };
    const spec = (phase: string): SandboxRun => ({
      args: [`${dirs.lifecycle}/${phase}`, '-app', dirs.app, '-layers', dirs.layers, '-platform', dirs.platform, '-log-level', log.level],
      env: [`CNB_PLATFORM_API=${api}`, `PATH=${envValue(builderImage.config, 'PATH') ?? '/usr/local/bin:/usr/bin:/bin'}`, `HOME=${inSandbox ? '/home/cnb' : homeDir}`],
      uid,
      gid,
      cwd: dirs.app,
      mounts: [
        { source: app, destination: '/workspace' },
        { source: layers, destination: '/layers' },
        { source: platform, destination: '/platform', readonly: true },
        { source: homeDir, destination: '/home/cnb' },
      ],
      network: o.network,
    });
    o.phase('DETECTING');
    const detected = await sandbox.run(spec('detector'));
    if (detected !== 0) throw new StrataError(detected === 20 ? `no buildpack in ${o.builder} detected this app (exit 20)` : `detection failed (exit ${detected})`, detected);
    const group = (await readGroupFile(join(layers, 'group.toml'))).group;
    o.phase('RESTORING');
    const r = await restore({ group, layersDir: layers, ...(prevMd ? { previous: prevMd } : {}), cache, platformApi: api, skipLayers: false, extractRoot: work, log });
    for (const l of r.restored) log.info(`Restored ${l} from the cache`);
    await chownTree(layers, uid, gid);
    o.phase('BUILDING');
    const built = await sandbox.run(spec('builder'));
    if (built !== 0) throw new StrataError(`the build failed (exit ${built}); see the buildpack output above`, built);

    o.phase('EXPORTING');
    const entry = runImages.find((i) => [i.image, ...i.mirrors].includes(run.name)) ?? runImages[0];
    const outputs = [];
    for (const name of [o.image, ...o.tags]) {
      const t = await imageTarget(name, o.publish, o.store);
      outputs.push({ store: t.store, tag: t.tag, name, where: t.where });
    }
    const result = await exportImage({
      group,
      layersDir: layers,
      appDir: app,
      imageLayersDir: '/layers',
      imageAppDir: '/workspace',
      launcherPath: join(rootfs, 'cnb', 'lifecycle', 'launcher'),
      runImage: run.image,
      runImageName: entry?.image ?? run.name,
      runImageReference: run.reference,
      runImageMirrors: entry?.mirrors ?? [],
      ...(previous && prevMd ? { previous: { image: previous.image, metadata: prevMd } } : {}),
      outputs,
      uid,
      gid,
      platformApi: api,
      ...(o.defaultProcess ? { processType: o.defaultProcess } : {}),
      projectMetadata: {},
      execEnv: 'production',
      created: o.creationTime ?? new Date(Date.UTC(1980, 0, 1, 0, 0, 1)),
      log,
    });
    for (const t of result.tags) log.info(`Saved ${t}`);
    if (result.reused.length) log.info(`Reused ${result.reused.length} layer(s) from the previous image (not uploaded)`);
    await saveCache({ group, layersDir: layers, imageLayersDir: '/layers', cache, uid, gid, created: o.creationTime ?? new Date(Date.UTC(1980, 0, 1, 0, 0, 1)), log });
    if (o.reportDir) {
      await mkdir(o.reportDir, { recursive: true });
      await writeReport(join(o.reportDir, 'report.toml'), { image: { tags: result.tags, digest: result.digest, manifestSize: result.manifestSize } });
    }
    return { digest: result.digest, tags: result.tags, reused: result.reused.length, where: outputs[0]!.where };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

interface Opened {
  name: string;
  image: ResolvedImage;
  reference: string;
}

/** An image from the local store, else (when `remote`) from its registry; undefined when neither has it. */
async function openLocalOrRemote(name: string, store: StoreOptions, remote: boolean): Promise<Opened | undefined> {
  try {
    const t = await imageTarget(name, false, store);
    const image = await resolveImage(t.store, t.id);
    return { name, image, reference: `${name.replace(/@sha256:.*$/, '')}@${image.manifest.digest}` };
  } catch {
    return remote ? openImage(name, store) : undefined;
  }
}
