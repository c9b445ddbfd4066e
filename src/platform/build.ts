import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { copyFile, mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { chownTree } from '../oci/fsutil.js';
import { NORMALISED_MTIME } from '../oci/layer.js';
import { dirname, join } from 'node:path';
import { envValue } from '../oci/config.js';
import type { Digest } from '../oci/digest.js';
import { StrataError, errorMessage } from '../oci/errors.js';
import type { ResolvedImage } from '../oci/image.js';
import type { StoreOptions } from '../oci/target.js';
import { DirCache, ImageCache, type Cache } from '../lifecycle/cache.js';
import { extractLayer } from '../oci/extract.js';
import { escapeId } from '../spec/buildpack.js';
import { orderToToml, parseOrderFile, type OrderElement, type OrderFile } from '../spec/order.js';
import { projectSource, type ProjectBuildpack, type ProjectDescriptor } from '../spec/project.js';
import { toToml } from '../spec/toml.js';
import type { CollectedBuildpack } from './buildpackage.js';
import type { ImageReader, PullPolicy } from '../oci/images.js';
import { foreignArchitecture, type PlatformWanted } from '../oci/manifest.js';
import { copySource } from './source.js';
import type { EngineClient } from '../oci/engine/client.js';
import type { Logger } from '../lifecycle/log.js';
import { LayerStash } from '../lifecycle/stash.js';
import { envEntryTooBig } from '../lifecycle/env.js';
import { ApiVersion, LATEST_PLATFORM_API } from '../spec/api.js';
import { parseToml } from '../spec/toml.js';
import { checkPathComponent, ConfinedDir, copyTreeOut } from '../oci/confined.js';
import { mkdirSync, rmSync } from 'node:fs';
import type { RunImage } from '../spec/run.js';
import { writeReport } from '../spec/report.js';
import { LABEL_BUILDER, type BuilderMetadata } from './builder.js';
import type { Executor, Mount, SandboxRun } from './executor.js';
import type { SandboxLimits } from './sandboxlimits.js';
import { openByPolicy, outputFor, outputsFor, readers, strataHome, whereLooked } from '../oci/images.js';
import { runSequence, type HeldPhase } from '../lifecycle/sequence.js';
import { lifecycleHolds, lifecycleParts } from './lifecycle-layer.js';
import { unpackedRootfs } from './rootfs.js';
import { lineProgress, type Progress } from '../oci/progress.js';
import { isRemoteUri } from './download.js';
import { workDir } from './workdirs.js';
import { OwnLayers } from './ownlayers.js';

export interface BuildOptions {
  image: string;
  builder: string;
  appPath: string;
  publish: boolean;
  runImage?: string;
  /**
   * The platform the app image is for, when not this machine's (`--platform`): the run image of that platform, and
   * detect and build on this machine's builder with CNB_TARGET_* saying the target, as the spec lets buildpacks
   * that declare it make its layers (no emulation).
   */
  platform?: PlatformWanted;
  /** Store the image by digest only, tagging nothing (one platform of an index the caller writes). */
  untagged?: boolean;
  env: Record<string, string>;
  tags: string[];
  clearCache: boolean;
  creationTime?: Date;
  previousImage?: string;
  defaultProcess?: string;
  network: 'host' | 'none';
  /** Caps for each sandboxed phase (default: the executor's). */
  limits?: SandboxLimits;
  /** A host PEM bundle the buildpacks trust (`strata config ca-certificates`). */
  caCertificates?: string;
  executor: (ctx: { rootfs: string; stateDir: string; builder: ResolvedImage }) => Promise<Executor>;
  reportDir?: string;
  /** Extra or replacement buildpacks: `id@version` from the builder, a dir, a `.cnb`, or a buildpackage image. */
  buildpacks: string[];
  /** `--extension`: the image extensions to try, as one group (`id@version` from the builder, or a dir or .tgz). */
  extensions?: string[];
  /** Run before and after the group (`--pre-buildpack`, `--post-buildpack`), as project.toml's pre and post. */
  preBuildpacks?: string[];
  postBuildpacks?: string[];
  /** Leave out the builder's system buildpacks. */
  disableSystemBuildpacks?: boolean;
  /** CNB_EXEC_ENV for detect and build (default production). */
  execEnv?: string;
  /** Where the app is in the sandbox and the image (pack's --workspace; default /workspace). */
  workspace?: string;
  /** The build user, instead of the builder's CNB_USER_ID / CNB_GROUP_ID. */
  uid?: number;
  gid?: number;
  /** project.toml, when the app has one (or --descriptor names it). */
  descriptor?: ProjectDescriptor;
  volumes: Mount[];
  sbomDir?: string;
  cacheImage?: string;
  /** A cache directory of the user's choosing (`--cache format=bind;source=…`). */
  cacheDir?: string;
  /** Where cached layer dirs are kept unpacked between builds (default: per image under `$STRATA_HOME/cache`). */
  stashDir?: string;
  /** CNB bindings for the buildpacks: `/platform/bindings/<name>/<file>`. */
  bindings?: { name: string; files: Record<string, string> }[];
  pullPolicy: PullPolicy;
  /** Also load the image into this Docker/Podman engine. */
  engine?: EngineClient;
  /** From `strata config run-image-mirrors`. */
  runImageMirrors: Record<string, string[]>;
  store: StoreOptions;
  log: Logger;
  /** Phase headers (`===> DETECTING`). */
  phase: (name: string) => void;
  /** How pulling and unpacking layers shows itself (default: one log line per layer). */
  progress?: Progress;
}

export interface BuildResult {
  digest: Digest;
  tags: string[];
  reused: number;
  where: string;
  /** The buildpacks that took part (the group detection chose). */
  buildpacks: { id: string; version: string }[];
  /** The run image the app was put on, by digest. */
  runImage: string;
  /** Each phase and how long it took. */
  steps: { name: string; ms: number }[];
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

/**
 * A daemonless build, as pack's untrusted-builder flow: analyze, restore and export run here (credentials stay in
 * this process), detect and build run in the builder's own lifecycle inside the sandbox, as the builder's user.
 */
export async function runBuild(o: BuildOptions): Promise<BuildResult> {
  const { log } = o;
  const home = strataHome();
  const opened = await openByPolicy(o.builder, o.store, o.pullPolicy);
  if (!opened) throw new StrataError(`builder ${o.builder} not found ${whereLooked(o.pullPolicy)}; create one with \`strata builder create\``);
  const builderImage = opened.image;
  const labels = builderImage.config.config?.Labels ?? {};
  if (!labels[LABEL_BUILDER]) throw new StrataError(`${o.builder} is not a builder (no ${LABEL_BUILDER} label)`);
  const md = JSON.parse(labels[LABEL_BUILDER]) as BuilderMetadata;
  const api = negotiate(builderImage);
  const uid = o.uid ?? Number(envValue(builderImage.config, 'CNB_USER_ID') ?? NaN);
  const gid = o.gid ?? Number(envValue(builderImage.config, 'CNB_GROUP_ID') ?? NaN);
  if (!Number.isInteger(uid) || !Number.isInteger(gid)) throw new StrataError(`builder ${o.builder} has no CNB_USER_ID/CNB_GROUP_ID in its env`);
  const runImages: RunImage[] = (md.images?.length ? md.images : [md.stack.runImage]).map((r) => ({ image: r.image, mirrors: [...(o.runImageMirrors[r.image] ?? []), ...r.mirrors] }));

  const steps = stepClock(o.phase);
  const phase = steps.phase;
  phase('PREPARING');
  const unpacking = o.progress ?? lineProgress((line) => log.info(`builder: ${line}`));
  const rootfs = await unpackedRootfs(builderImage, join(home, 'rootfs'), unpacking, OwnLayers.in(home));
  const work = await workDir(join(home, 'builds'), 'build-');
  const layers = join(work, 'layers');
  const app = join(work, 'workspace');
  const platform = join(work, 'platform');
  const homeDir = join(work, 'home');
  try {
    await mkdir(join(platform, 'env'), { recursive: true });
    await mkdir(layers);
    await mkdir(homeDir);
    await copySource(o.appPath, app, o.descriptor?.include ?? [], o.descriptor?.exclude ?? []);
    const buildEnv: Record<string, string> = { ...Object.fromEntries((o.descriptor?.env ?? []).map((e) => [e.name, e.value])), ...o.env };
    if (o.caCertificates) {
      // The CNB bindings convention (a `ca-certificates` binding, as CA certificate buildpacks read it), and the
      // variables Node.js and OpenSSL read, unless the user set them.
      const binding = join(platform, 'bindings', 'ca-certificates');
      await mkdir(binding, { recursive: true });
      await writeFile(join(binding, 'type'), 'ca-certificates');
      await copyFile(o.caCertificates, join(binding, 'ca-certificates.crt')).catch((err: unknown) => {
        throw new StrataError(`ca-certificates ${o.caCertificates}: ${errorMessage(err)}`);
      });
      for (const k of ['NODE_EXTRA_CA_CERTS', 'SSL_CERT_FILE']) buildEnv[k] ??= '/platform/bindings/ca-certificates/ca-certificates.crt';
    }
    for (const [k, v] of Object.entries(buildEnv)) {
      const tooBig = envEntryTooBig(k, Buffer.byteLength(v));
      if (tooBig) throw new StrataError(`${k in o.env ? '--env' : 'project.toml [[io.buildpacks.build.env]]'} ${k}: ${tooBig}`);
      await writeFile(join(platform, 'env', k), v);
    }
    for (const b of o.bindings ?? []) {
      const dir = join(platform, 'bindings', checkPathComponent(b.name, 'binding name'));
      for (const [file, value] of Object.entries(b.files)) {
        const path = join(dir, ...file.split('/').map((p) => checkPathComponent(p, `binding ${b.name} file`)));
        await mkdir(dirname(path), { recursive: true });
        await writeFile(path, value, { mode: 0o644 });
      }
    }
    for (const d of [layers, app, homeDir]) chownTree(d, uid, gid);

    // Another architecture's layers are cached apart from this machine's, for the same image name.
    const foreignArch = o.platform && foreignArchitecture(o.platform) ? `\0${o.platform.os}/${o.platform.architecture}` : '';
    const cacheKey = createHash('sha256').update(o.image + foreignArch).digest('hex').slice(0, 16);
    const cacheDir = o.cacheDir ?? join(home, 'cache', 'builds', cacheKey);
    const stash = new LayerStash(o.stashDir ?? join(home, 'cache', 'stash', cacheKey), log);
    if (o.clearCache) await Promise.all([rm(cacheDir, { recursive: true, force: true }), rm(stash.dir, { recursive: true, force: true })]);
    const cache: Cache = o.cacheImage
      ? await outputFor(o.cacheImage, o.publish, o.store).then((t) => new ImageCache(t.store, t.tag, o.cacheImage!, log))
      : await DirCache.open(cacheDir, log);
    const extra = await prepareBuildpacks(o, rootfs, work, layers);
    const extraExtensions = await prepareExtensions(o, rootfs, work, layers);

    const sandbox = await o.executor({ rootfs, stateDir: join(home, 'run'), builder: builderImage });
    // The build phase runs on the builder an image extension extended, when one did.
    let buildSandbox = sandbox;
    const extenderContext = { home, stateDir: join(home, 'run'), scratch: work, network: o.network, ...(o.limits ? { limits: o.limits } : {}), log };
    const inSandbox = sandbox.name !== 'host';
    const workspace = o.workspace ?? '/workspace';
    const dirs = inSandbox ? { app: workspace, layers: '/layers', platform: '/platform', lifecycle: '/cnb/lifecycle' } : { app, layers, platform, lifecycle: join(rootfs, 'cnb', 'lifecycle') };
    const spec = (phase: string): SandboxRun => ({
      args: [`${dirs.lifecycle}/${phase}`, '-app', dirs.app, '-layers', dirs.layers, '-platform', dirs.platform, '-log-level', log.level, ...(phase === 'detector' && o.disableSystemBuildpacks ? ['-system', '/dev/null'] : [])],
      env: [`CNB_PLATFORM_API=${api}`, `CNB_EXEC_ENV=${o.execEnv ?? 'production'}`, `PATH=${envValue(builderImage.config, 'PATH') ?? '/usr/local/bin:/usr/bin:/bin'}`, `HOME=${inSandbox ? '/home/cnb' : homeDir}`],
      uid,
      gid,
      cwd: dirs.app,
      mounts: [
        { source: app, destination: workspace },
        { source: layers, destination: '/layers' },
        { source: platform, destination: '/platform', readonly: true },
        { source: homeDir, destination: '/home/cnb' },
        ...(extra ? [{ source: extra, destination: '/cnb/buildpacks', readonly: true }] : []),
        ...(extraExtensions ? [{ source: extraExtensions, destination: '/cnb/extensions', readonly: true }] : []),
        ...o.volumes,
      ],
      network: o.network,
      ...(o.limits ? { limits: o.limits } : {}),
    });
    // The export's layer blobs stay (under the build dir, removed with it) so the cache is fed from them.
    const keepDir = join(work, 'export');
    await mkdir(keepDir);
    // One platform of several: its image is stored by digest, and the caller tags the index of them all.
    const outputs = (await outputsFor([o.image, ...o.tags], o.publish, o.store)).map((out) => (o.untagged ? { ...out, tag: undefined } : out));
    // Local builds keep their images in the local store, published ones in the registry; run images are read under
    // the pull policy (a builder made on this machine names local bases). Detection and build run in the sandbox.
    const { exported: result, group, analysis } = await runSequence(
      {
        platformApi: api,
        layersDir: layers,
        appDir: app,
        imageLayersDir: '/layers',
        imageAppDir: workspace,
        analyze: {
          output: o.image,
          ...(o.previousImage ? { previous: o.previousImage } : {}),
          ...(o.runImage ? { runImage: o.runImage } : {}),
          runImages,
          readPrevious: o.publish ? readers.remote(o.store, log, o.platform) : readers.local(o.store, o.platform),
          readRun: targetRun(readers.byPolicy(o.store, o.pullPolicy, o.platform), o.platform),
        },
        cache,
        stash,
        // For another architecture, strata's own launcher for it: the builder's runs on this machine only.
        launcher: () => (o.platform && foreignArchitecture(o.platform) ? readFile(lifecycleParts(o.platform).launcher) : (ConfinedDir.with(rootfs, (d) => d.readFile('cnb/lifecycle/launcher', 256 << 20), { display: `builder ${o.builder}` }) ?? noLauncher(o.builder))),
        outputs,
        uid,
        gid,
        ...(o.defaultProcess ? { processType: o.defaultProcess } : {}),
        projectMetadata: projectSource(o.descriptor),
        execEnv: o.execEnv ?? 'production',
        created: o.creationTime ?? NORMALISED_MTIME,
        keepDir,
        builderName: o.builder,
        extend: {
          build: async (files) => {
            const { extendImage } = await import('./extender.js');
            const extended = await extendImage('build', builderImage, files, extenderContext);
            buildSandbox = await o.executor({ rootfs: await unpackedRootfs(extended, join(home, 'rootfs'), unpacking, OwnLayers.in(home)), stateDir: join(home, 'run'), builder: extended });
          },
          run: async (files, base) => ({ ...base, image: await (await import('./extender.js')).extendImage('run', base.image, files, extenderContext) }),
        },
        log,
        phase,
        ...(o.progress ? { progress: o.progress } : {}),
      },
      (name, started) => (name === 'builder' ? buildSandbox : sandbox).run({ ...spec(name), ...(started ? { started } : {}) }),
      sandbox.holds && lifecycleHolds(rootfs, `builder ${o.builder}`) ? (name) => heldPhase(name === 'builder' ? buildSandbox : sandbox, spec(name), () => (name === 'builder' ? buildSandbox : sandbox)) : undefined,
    );
    if (o.engine) {
      const { loadIntoEngine } = await import('../oci/engine/transfer.js');
      for (const out of outputs) {
        const id = await loadIntoEngine(out.store, out.tag, o.engine, out.name);
        log.info(`Loaded ${out.name} into ${o.engine.description} (${id.slice(0, 19)})`);
      }
    }
    if (o.sbomDir) copySboms(layers, o.sbomDir, log);
    steps.end();
    if (o.reportDir) {
      await mkdir(o.reportDir, { recursive: true });
      await writeReport(join(o.reportDir, 'report.toml'), { image: { tags: result.tags, digest: result.digest, manifestSize: result.manifestSize }, steps: steps.list });
    }
    return { digest: result.digest, tags: result.tags, reused: result.reused.length, where: outputs[0]!.where, buildpacks: group.map((g) => ({ id: g.id, version: g.version })), runImage: analysis.run.reference, steps: steps.list };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/** A run image reader that refuses one not for the target platform (an image, not an index, is the one it is). */
function targetRun(read: ImageReader, platform: PlatformWanted | undefined): ImageReader {
  if (!platform) return read;
  return async (name) => {
    const run = await read(name);
    const c = run?.image.config;
    if (c && (c.os !== platform.os || c.architecture !== platform.architecture)) throw new StrataError(`run image ${name} has no ${platform.os}/${platform.architecture} image (it is ${c.os}/${c.architecture}); for --platform ${platform.os}/${platform.architecture} it must be an index holding one`);
    return run;
  };
}

/**
 * A phase's sandbox started now and held (the layers dir shows empty in it) until `go`. A builder whose sandbox was
 * replaced meanwhile (an extension extended the build image) is called off and run on the new one.
 */
function heldPhase(on: Executor, run: SandboxRun, current: () => Executor): HeldPhase {
  let release!: (go: boolean) => void;
  const released = new Promise<boolean>((resolve) => (release = resolve));
  let up = false;
  let tell: (() => void) | undefined;
  const running = on.run({ ...run, hold: { destination: '/layers', release: released }, started: () => ((up = true), tell?.()) });
  running.catch(() => undefined);
  let settled = false;
  return {
    async go(started) {
      settled = true;
      if (current() !== on) {
        release(false);
        await running.catch(() => undefined);
        return current().run({ ...run, ...(started ? { started } : {}) });
      }
      if (up) started?.();
      else tell = started;
      release(true);
      return running;
    },
    async cancel() {
      if (settled) return;
      settled = true;
      release(false);
      await running.catch(() => undefined);
    },
  };
}

/** Phase headers, timed: each phase lasts until the next one starts. */
function stepClock(show: (name: string) => void): { phase: (name: string) => void; end: () => void; list: { name: string; ms: number }[] } {
  const list: { name: string; ms: number }[] = [];
  let current: { name: string; at: number } | undefined;
  const end = () => {
    if (current) list.push({ name: current.name, ms: Date.now() - current.at });
    current = undefined;
  };
  return {
    list,
    end,
    phase(name: string) {
      end();
      current = { name, at: Date.now() };
      if (name !== 'PREPARING') show(name);
    },
  };
}

/** `--sbom-output-dir`: the build's SBOM files, copied as plain files (links in the buildpacks' output are left out). */
function copySboms(layersDir: string, dest: string, log: Logger): void {
  ConfinedDir.with(layersDir, (d) => {
    if (!d.isDirectory('sbom')) return log.warn('the buildpacks wrote no SBOM');
    rmSync(dest, { recursive: true, force: true });
    copyTreeOut(d, 'sbom', dest, { links: false });
  });
}

function noLauncher(builder: string): never {
  throw new StrataError(`builder ${builder} has no /cnb/lifecycle/launcher`);
}

/**
 * `--buildpack` and project.toml's groups replace the builder's order with one group (project pre and post around
 * it). Buildpacks the builder lacks are laid out beside copies of its own in a dir the sandbox sees as
 * /cnb/buildpacks; returns that dir, or undefined when the builder's buildpacks suffice.
 */
async function prepareBuildpacks(o: BuildOptions, rootfs: string, work: string, layers: string): Promise<string | undefined> {
  const d = o.descriptor;
  const flagged = (list: string[] | undefined) => (list ?? []).map((b): ProjectBuildpack => ({ uri: b }));
  const main = o.buildpacks.length ? flagged(o.buildpacks) : (d?.group ?? []);
  const tagged = [
    ...[...(d?.pre ?? []), ...flagged(o.preBuildpacks)].map((ref) => ({ ref, part: 'pre' as const })),
    ...main.map((ref) => ({ ref, part: 'main' as const })),
    ...[...flagged(o.postBuildpacks), ...(d?.post ?? [])].map((ref) => ({ ref, part: 'post' as const })),
  ];
  if (!tagged.length) return undefined;
  const merged = join(work, 'buildpacks');
  // The builder's own buildpacks, copied without following links: a hostile builder's `cnb/buildpacks` could be a
  // link to a host dir, which the sandbox would then be given.
  ConfinedDir.with(rootfs, (d) => copyTreeOut(d, 'cnb/buildpacks', merged, { links: true }), { display: 'builder rootfs' });
  let copied = false;
  const parts: Record<'pre' | 'main' | 'post', OrderElement[]> = { pre: [], main: [], post: [] };
  for (const { ref, part } of tagged) {
    const group = parts[part];
    const text = ref.uri ?? (ref.id ? `${ref.id}${ref.version ? `@${ref.version}` : ''}` : '');
    if (ref.script) {
      const dir = join(merged, escapeId(ref.id!), '0.0.0');
      await mkdir(join(dir, 'bin'), { recursive: true });
      await writeFile(join(dir, 'buildpack.toml'), `api = "${ref.script.api}"\n[buildpack]\nid = "${ref.id}"\nversion = "0.0.0"\n`);
      await writeFile(join(dir, 'bin', 'detect'), '#!/bin/sh\nexit 0\n', { mode: 0o755 });
      await writeFile(join(dir, 'bin', 'build'), `#!${ref.script.shell}\n${ref.script.inline}\n`, { mode: 0o755 });
      group.push({ id: ref.id!, version: '0.0.0', optional: false });
      copied = true;
      continue;
    }
    // A path on disk (dir, .tgz, .cnb), or an image (docker://, or a name with a tag); otherwise id[@version].
    const local = await stat(text).catch(() => undefined);
    const remote = isRemoteUri(text);
    const image = !remote && (text.startsWith('docker://') || (!local && text.includes(':')));
    if (local || image || remote) {
      const { collectSource } = await import('./buildpackage.js');
      const { buildpacks } = await collectSource(image ? { image: text.replace(/^docker:\/\//, '') } : { uri: text }, work, o.store);
      for (const b of buildpacks) await placeBuildpack(b, merged);
      const entry = buildpacks[buildpacks.length - 1]!;
      group.push({ id: entry.id, version: entry.version, optional: false });
      copied = true;
      continue;
    }
    group.push({ ...(await inBuilder(merged, text, '--buildpack', 'a directory, .cnb or image')), optional: false });
  }
  // Pre and post buildpacks alone wrap every group of the builder's own order.
  const builderOrder = builderOrderFile(rootfs, o.builder);
  const groups = main.length ? [parts.main] : builderOrder.order.map((g) => g.group);
  await writeOrder(layers, { order: groups.map((g) => ({ group: [...parts.pre, ...g, ...parts.post] })), orderExtensions: builderOrder.orderExtensions });
  return copied ? merged : undefined;
}

/** `id[@version]` of a buildpack or extension in the builder's dir (laid out `<id>/<version>`): its one version when none is given. */
async function inBuilder(dir: string, text: string, flag: string, otherwise: string): Promise<{ id: string; version: string }> {
  const [id, version] = text.split('@') as [string, string | undefined];
  const versions = await readdir(join(dir, escapeId(id))).catch(() => [] as string[]);
  const chosen = version ?? (versions.length === 1 ? versions[0] : undefined);
  if (!chosen || !versions.includes(chosen)) throw new StrataError(`${flag} ${text}: not in the builder${versions.length ? ` (it has ${versions.join(', ')})` : ''}, and not ${otherwise}`);
  return { id, version: chosen };
}

/** The builder's own order.toml (read confined: the rootfs is an image's). */
function builderOrderFile(rootfs: string, builder: string): OrderFile {
  return parseOrderFile(parseToml(ConfinedDir.with(rootfs, (r) => r.readText('cnb/order.toml', 1 << 20)) ?? '', `${builder} cnb/order.toml`), `${builder} cnb/order.toml`);
}

/** The order detection uses, in the layers dir (where the detector looks first); an order already there is kept. */
async function writeOrder(layers: string, order: OrderFile): Promise<void> {
  await writeFile(join(layers, 'order.toml'), toToml({ ...orderToToml(order.order), ...(order.orderExtensions.length ? orderToToml(order.orderExtensions, 'order-extensions') : {}) }));
}

/**
 * `--extension`: the extensions to try instead of the builder's order-extensions, as one group. Ones the builder lacks
 * (a dir or .tgz) are laid out beside copies of its own in a dir the sandbox sees as /cnb/extensions; returns that
 * dir, or undefined when the builder's extensions suffice.
 */
async function prepareExtensions(o: BuildOptions, rootfs: string, work: string, layers: string): Promise<string | undefined> {
  if (!o.extensions?.length) return undefined;
  const merged = join(work, 'extensions');
  ConfinedDir.with(rootfs, (d) => (d.isDirectory('cnb/extensions') ? copyTreeOut(d, 'cnb/extensions', merged, { links: true }) : mkdirSync(merged, { mode: 0o755 })), { display: 'builder rootfs' });
  let copied = false;
  const group: OrderElement[] = [];
  for (const text of o.extensions) {
    if (await stat(text).catch(() => undefined)) {
      const { collectExtension } = await import('./buildpackage.js');
      const e = await collectExtension({ uri: text }, work);
      await placeBuildpack(e, merged, 'extensions');
      group.push({ id: e.id, version: e.version, optional: true });
      copied = true;
      continue;
    }
    group.push({ ...(await inBuilder(merged, text, '--extension', 'a directory or .tgz')), optional: true });
  }
  const current = await readFile(join(layers, 'order.toml'), 'utf8').then((t) => parseOrderFile(parseToml(t, 'order.toml'), 'order.toml'), () => builderOrderFile(rootfs, o.builder));
  await writeOrder(layers, { order: current.order, orderExtensions: [{ group }] });
  return copied ? merged : undefined;
}

/** Puts a packaged buildpack's (or extension's) layer (its `cnb/buildpacks/<id>/<version>/` tree) into the merged dir. */
async function placeBuildpack(b: CollectedBuildpack, merged: string, under: 'buildpacks' | 'extensions' = 'buildpacks'): Promise<void> {
  const rel = `${checkPathComponent(escapeId(b.id), 'buildpack id')}/${checkPathComponent(b.version, `version of ${b.id}`)}`;
  const stream = b.layer.file ? createReadStream(b.layer.file) : await b.layer.from!.getBlob(b.layer.descriptor);
  await ConfinedDir.with(merged, async (d) => {
    d.remove(rel);
    d.mkdirp(rel);
    // A buildpack's layer holds its own dir and nothing else: whiteouts and entries elsewhere are refused.
    await extractLayer(stream, d.pathOf(rel), { label: `${b.id}@${b.version}`, chown: false, strip: `cnb/${under}/${rel}`, whiteouts: false, diffID: b.layer.diffID });
  });
}
