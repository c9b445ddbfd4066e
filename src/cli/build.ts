import type { Command } from 'commander';
import { spawnSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { mkdtemp, readFile, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { cliProgress } from './progress.js';
import { envEntryTooBig } from '../lifecycle/env.js';
import { join, resolve } from 'node:path';
import { StrataError } from '../oci/errors.js';
import { createLogger } from '../lifecycle/log.js';
import { runBuild } from '../platform/build.js';
import { EngineExecutor, HostExecutor, sandboxExecutor, type Executor, type Mount } from '../platform/executor.js';
import type { ResolvedImage } from '../oci/image.js';
import { configuredBuild, DEFAULT_BUILDER, readConfig } from '../platform/config.js';
import { globals, stamp } from './globals.js';
import { readProject } from '../spec/project.js';
import { commaList, platformList, repeatable } from './options.js';
import type { Digest } from '../oci/digest.js';
import { foreignArchitecture, type PlatformWanted } from '../oci/manifest.js';
import { writeIndex } from '../oci/mutate.js';
import { outputsFor } from '../oci/images.js';

/** `--env K=V`, or `--env K` to pass K from strata's own environment, as pack does. */
function parseEnv(items: string[], files: { path: string; text: string }[]): Record<string, string> {
  const env: Record<string, string> = {};
  const add = (item: string, where: string): void => {
    const eq = item.indexOf('=');
    const name = eq < 0 ? item : item.slice(0, eq);
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) throw new StrataError(`${where} "${item.length > 60 ? `${item.slice(0, 60)}…` : item}": expected NAME=VALUE`);
    // pack's rule: a bare NAME takes its value from strata's own environment.
    const value = eq >= 0 ? item.slice(eq + 1) : process.env[name];
    if (value === undefined) {
      process.stderr.write(`Warning: ${where} ${name} has no "=" and is not set in this environment; left out\n`);
      return;
    }
    if (envEntryTooBig(name, Buffer.byteLength(value))) throw new StrataError(`${where} ${name}: the value is ${Buffer.byteLength(value)} bytes; Linux limits one variable to 128 KiB (put large data in a file instead)`);
    env[name] = value;
  };
  // Files in the order given (a later one wins), then --env: pack's precedence.
  for (const file of files) {
    for (const [i, line] of file.text.split('\n').entries()) {
      const t = line.trim();
      if (!t || t.startsWith('#')) continue;
      add(t, `--env-file ${file.path} line ${i + 1}:`);
    }
  }
  for (const i of items) add(i, '--env');
  return env;
}

/** `-p app.zip|app.jar`: the archive's files as the app source, in a temp dir gone when strata exits. */
async function unzipped(file: string, given: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'strata-app-'));
  process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  // unzip refuses absolute names and strips `..`, so nothing lands outside the dir.
  const r = spawnSync('unzip', ['-q', '-o', file, '-d', dir], { encoding: 'utf8' });
  if (r.error || r.status !== 0) throw new StrataError(`--path ${given}: cannot unzip it: ${(r.error?.message ?? r.stderr).trim().split('\n')[0] || `unzip exited ${r.status}`}`);
  return dir;
}

/** An absolute, plain path that is not one of the dirs the build already uses. */
function checkWorkspace(dir: string): string {
  const clean = dir.replace(/\/+$/, '');
  if (!clean.startsWith('/') || clean.split('/').some((p) => p === '..' || p === '.') || ['', '/layers', '/platform', '/cnb', '/tmp', '/proc', '/dev', '/sys'].includes(clean)) {
    throw new StrataError(`--workspace "${dir}": an absolute dir such as /app (not /layers, /platform, /cnb or a system dir)`);
  }
  return clean;
}

function numericId(text: string, flag: string): number {
  if (!/^\d+$/.test(text)) throw new StrataError(`${flag} "${text}": a numeric id`);
  return Number(text);
}

/** Read by strata, never by Node.js (see bin/strata), with a one-line error naming the file. */
async function readEnvFile(path: string): Promise<{ path: string; text: string }> {
  try {
    return { path, text: await readFile(path, 'utf8') };
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new StrataError(`--env-file ${path}: ${code === 'ENOENT' ? 'not found' : code === 'EISDIR' ? 'is a directory' : (code ?? 'cannot be read')}`);
  }
}

/** `--volume /host:/container[:ro|rw]`: the host side must exist, or the sandbox would fail with a runtime's log line. */
async function parseVolumes(items: string[]): Promise<Mount[]> {
  const out: Mount[] = [];
  for (const v of items) {
    const [source, destination, mode, ...rest] = v.split(':');
    if (!source || !destination || !destination.startsWith('/') || rest.length || (mode && mode !== 'ro' && mode !== 'rw')) throw new StrataError(`--volume "${v}": expected /host/dir:/container/dir[:ro|rw]`);
    if (!(await stat(resolve(source)).catch(() => undefined))) throw new StrataError(`--volume "${v}": ${resolve(source)} does not exist`);
    out.push({ source: resolve(source), destination, readonly: mode !== 'rw' });
  }
  return out;
}

/** `--cache-image`, or pack's `--cache` spec (the build cache; launch caches do not apply without an engine). */
function cacheOptions(image: string | undefined, spec: string | undefined): { cacheImage?: string; cacheDir?: string } {
  if (image) return { cacheImage: image };
  if (!spec) return {};
  // pack's clauses, `type=build|launch;format=image|bind|volume;name=…|source=…`, several joined by commas.
  let out: { cacheImage?: string; cacheDir?: string } = {};
  for (const clause of spec.split(',').map((c) => c.trim()).filter(Boolean)) {
    const kv = Object.fromEntries(clause.split(';').map((p) => p.split('=').map((x) => x.trim()) as [string, string]));
    const type = kv.type ?? 'build';
    if (type !== 'build' && type !== 'launch') throw new StrataError(`--cache "${clause}": type is build or launch`);
    if (type === 'launch') {
      // A launch cache saves a daemon from re-reading layers; strata reuses them from the previous image by digest.
      process.stderr.write(`Warning: --cache "${clause}": strata keeps no launch cache (unchanged launch layers are reused from the previous image without one)\n`);
      continue;
    }
    if (kv.format === 'image' && kv.name) out = { cacheImage: kv.name };
    else if ((kv.format === 'bind' || kv.format === 'volume') && (kv.source || kv.name)) out = { cacheDir: resolve(kv.source ?? kv.name!) };
    else if (kv.format === 'volume') out = {};
    else throw new StrataError(`--cache "${clause}": expected 'type=build;format=image;name=<image>', 'type=build;format=bind;source=<dir>' or 'type=build;format=volume[;name=<dir>]'`);
  }
  return out;
}

function creationTime(text: string | undefined): Date | undefined {
  if (!text) return process.env.SOURCE_DATE_EPOCH ? new Date(Number(process.env.SOURCE_DATE_EPOCH) * 1000) : undefined;
  if (text === 'now') return new Date(Math.floor(Date.now() / 1000) * 1000);
  if (!/^\d+$/.test(text)) throw new StrataError(`--creation-time "${text}": use "now" or seconds since 1970`);
  return new Date(Number(text) * 1000);
}

/** `strata build`: pack's build, with no Docker engine — the builder's lifecycle runs in a runc sandbox. */
export function registerBuildCommand(program: Command): void {
  program
    .command('build <image>')
    .description('build an app image from source with a builder (no Docker engine needed)')
    .option('-B, --builder <image>', 'builder image (local store, oci:<dir>:<tag> or a registry); default: project.toml, then `strata config default-builder`')
    .option('-p, --path <dir>', 'app source directory', '.')
    .option('--publish', 'push the image to its registry (otherwise it goes to the local store)')
    .option('--run-image <image>', 'run image to use instead of the builder\'s')
    .option('--platform <os/arch[/variant]>', "the platform of the app image (default this machine's): its run image's image for it, buildpacks told the target, no emulation")
    .option('-e, --env <NAME=VALUE>', 'build-time env var for buildpacks (repeatable)', repeatable, [])
    .option('--env-file <file>', 'file of NAME=VALUE lines (repeatable; later files win)', repeatable, [])
    .option('-t, --tag <image>', 'additional tag (repeatable, comma list)', commaList, [])
    .option('--clear-cache', 'start with an empty cache')
    .option('--creation-time <t>', '"now" or seconds since 1970 (default: SOURCE_DATE_EPOCH, else 1980-01-01)')
    .option('--previous-image <image>', 'reuse layers from this image instead of <image>')
    .option('-D, --default-process <type>', 'the process the image starts by default')
    .option('--network <mode>', 'host or none', 'host')
    .option('--executor <name>', 'runc (daemonless sandbox, default; bubblewrap when not root), docker (any Docker-API engine at DOCKER_HOST, Podman too) or host (no isolation; CI inside the build image)', 'runc')
    .option('--report-output-dir <dir>', 'write report.toml here')
    .option('-b, --buildpack <ref>', 'use these buildpacks instead of the builder\'s order: id@version, a dir, a .cnb or an image (repeatable, comma list)', commaList, [])
    .option('--extension <ref>', 'use these image extensions instead of the builder\'s order-extensions: id@version or a dir (repeatable, comma list)', commaList, [])
    .option('--pre-buildpack <ref>', 'a buildpack to run before the group (repeatable, comma list)', commaList, [])
    .option('--post-buildpack <ref>', 'a buildpack to run after the group (repeatable, comma list)', commaList, [])
    .option('--disable-system-buildpacks', "leave out the builder's system buildpacks (system.toml)")
    .option('--exec-env <env>', 'the execution environment buildpacks see as CNB_EXEC_ENV (Platform API 0.15)', 'production')
    .option('--workspace <dir>', 'where the app lives in the build and the image (default /workspace)')
    .option('--uid <uid>', 'the build user\'s uid instead of the builder\'s CNB_USER_ID')
    .option('--gid <gid>', 'the build user\'s gid instead of the builder\'s CNB_GROUP_ID')
    .option('--docker-host <host>', 'the engine for --docker and --executor docker (default: DOCKER_HOST)')
    .option('--lifecycle-image <image>', "accepted for pack's scripts: strata runs the builder's own lifecycle")
    .option('-d, --descriptor <file>', 'project.toml (default: project.toml in --path when there is one)')
    .option('--volume <host:container[:ro|rw]>', 'mount a host dir into the build sandbox, read-only unless :rw (repeatable)', repeatable, [])
    .option('--sbom-output-dir <dir>', 'copy the SBOMs of this build here')
    .option('--cache-image <image>', 'keep the build cache as an image (in the registry with --publish)')
    .option('--cache <spec>', "pack's cache spec: 'type=build;format=image;name=<image>' or 'type=build;format=volume|bind;source=<dir>'")
    .option('--docker', 'also load the image into the Docker or Podman engine at DOCKER_HOST')
    .option('--pull-policy <policy>', 'always, if-not-present or never (default from strata config, else if-not-present)')
    .option('--insecure-registry <host>', 'plain HTTP or unverified TLS for this registry (repeatable)', repeatable, [])
    .action(async (image: string, opts: Record<string, unknown>) => {
      const o = opts as { workspace?: string; preBuildpack: string[]; postBuildpack: string[]; disableSystemBuildpacks?: boolean; execEnv: string; uid?: string; gid?: string; dockerHost?: string; lifecycleImage?: string; cache?: string; docker?: boolean; buildpack: string[]; extension: string[]; descriptor?: string; volume: string[]; sbomOutputDir?: string; cacheImage?: string; pullPolicy?: string; builder?: string; path: string; publish?: boolean; runImage?: string; platform?: string; env: string[]; envFile: string[]; tag: string[]; clearCache?: boolean; creationTime?: string; previousImage?: string; defaultProcess?: string; network: string; executor: string; reportOutputDir?: string; insecureRegistry: string[] };
      if (o.network !== 'host' && o.network !== 'none') throw new StrataError(`--network "${o.network}": use host or none`);
      const network: 'host' | 'none' = o.network;
      if (o.executor !== 'runc' && o.executor !== 'host' && o.executor !== 'docker') throw new StrataError(`--executor "${o.executor}": use runc, docker or host`);
      let path = resolve(o.path);
      const pathStat = await stat(path).catch(() => undefined);
      if (pathStat?.isFile() && /\.(zip|jar|war)$/i.test(path)) path = await unzipped(path, o.path);
      else if (!pathStat?.isDirectory()) throw new StrataError(`--path ${o.path}: not a directory, .zip or .jar`);
      const descriptorPath = o.descriptor ?? join(path, 'project.toml');
      const descriptor = (await stat(descriptorPath).catch(() => undefined)) ? await readProject(descriptorPath) : undefined;
      if (o.descriptor && !descriptor) throw new StrataError(`--descriptor ${o.descriptor}: not found`);
      for (const w of descriptor?.warnings ?? []) process.stderr.write(`Warning: ${w}\n`);
      const config = await readConfig();
      const { registryMirrors, ...configured } = configuredBuild(config, o.pullPolicy);
      // Every flag is checked before anything slow (a default builder) starts.
      const volumes = await parseVolumes(o.volume);
      const env = parseEnv(o.env, await Promise.all(o.envFile.map(readEnvFile)));
      if (o.dockerHost) process.env.DOCKER_HOST = o.dockerHost;
      if (o.lifecycleImage) process.stderr.write(`Warning: --lifecycle-image ${o.lifecycleImage}: strata runs the lifecycle the builder carries; the flag is ignored\n`);
      if (o.execEnv.includes('/') || !o.execEnv) throw new StrataError(`--exec-env "${o.execEnv}": a name such as production or test`);
      const ids = { ...(o.uid !== undefined ? { uid: numericId(o.uid, '--uid') } : {}), ...(o.gid !== undefined ? { gid: numericId(o.gid, '--gid') } : {}) };
      const cache = cacheOptions(o.cacheImage, o.cache);
      const platforms = platformList(o.platform ? [o.platform] : [], '--platform') ?? [undefined];
      const named = o.builder ?? descriptor?.builder ?? config['default-builder'];
      // The default builder is made on first use, and again for both architectures the first time --platform asks
      // for another one than this machine's.
      const foreign = platforms.some(foreignArchitecture);
      const builder =
        named && (named !== DEFAULT_BUILDER || !foreign)
          ? named
          : await (await import('../platform/defaultbuilder.js')).ensureDefaultBuilder(createLogger('info', (l) => process.stdout.write(stamp(l))), cliProgress((line) => process.stdout.write(stamp(`${line}\n`))), platforms.filter((p): p is PlatformWanted => p !== undefined));
      const log = createLogger(globals.quiet ? 'warn' : globals.verbose ? 'debug' : 'info', (l) => process.stdout.write(stamp(l)));
      const executor = async (ctx: { rootfs: string; stateDir: string; builder: ResolvedImage }): Promise<Executor> => {
        if (o.executor === 'host') return new HostExecutor();
        if (o.executor === 'runc') return sandboxExecutor(ctx.rootfs, ctx.stateDir);
        // The engine needs the builder image itself: loaded once per digest under a strata-owned name.
        const { EngineClient } = await import('../oci/engine/client.js');
        const { loadIntoEngine } = await import('../oci/engine/transfer.js');
        const engine = EngineClient.fromEnv();
        const tag = `strata-builder:${ctx.builder.manifest.digest.slice(7, 19)}`;
        if (!(await engine.inspect(tag))) await loadIntoEngine(ctx.builder.store, ctx.builder.manifest.digest, engine, tag);
        return new EngineExecutor(engine, tag);
      };
      if (platforms.length > 1 && (o.docker || (config.docker && !o.publish))) throw new StrataError('--platform with several platforms makes an image index, which an engine cannot hold: use --publish or an oci: name');
      const engineOut = o.docker || (config.docker && !o.publish) ? { engine: (await import('../oci/engine/client.js')).EngineClient.fromEnv() } : {};
      const buildFor = async (platform: PlatformWanted | undefined) => runBuild({
        image,
        builder,
        buildpacks: o.buildpack,
        extensions: o.extension,
        preBuildpacks: o.preBuildpack,
        postBuildpacks: o.postBuildpack,
        disableSystemBuildpacks: o.disableSystemBuildpacks ?? false,
        execEnv: o.execEnv,
        ...(o.workspace ? { workspace: checkWorkspace(o.workspace) } : {}),
        ...ids,
        ...(descriptor ? { descriptor } : {}),
        volumes,
        ...(o.sbomOutputDir ? { sbomDir: resolve(o.sbomOutputDir) } : {}),
        ...cache,
        ...configured,
        ...engineOut,
        appPath: path,
        publish: o.publish ?? false,
        ...(o.runImage ? { runImage: o.runImage } : {}),
        ...(platform ? { platform } : {}),
        ...(platforms.length > 1 ? { untagged: true } : {}),
        env,
        tags: o.tag,
        clearCache: o.clearCache ?? false,
        ...(creationTime(o.creationTime) ? { creationTime: creationTime(o.creationTime)! } : {}),
        ...(o.previousImage ? { previousImage: o.previousImage } : {}),
        ...(o.defaultProcess ? { defaultProcess: o.defaultProcess } : {}),
        network,
        executor,
        ...(o.reportOutputDir ? { reportDir: o.reportOutputDir } : {}),
        store: { insecureRegistries: o.insecureRegistry, registryMirrors },
        log,
        progress: cliProgress((line) => log.info(`builder: ${line}`)),
        phase: (name) => {
          if (!globals.quiet) process.stdout.write(stamp(`===> ${name}\n`));
        },
      });
      let r: Awaited<ReturnType<typeof buildFor>>;
      if (platforms.length === 1) r = await buildFor(platforms[0]);
      else {
        // One build per platform (each its own cache), then the index of them under every name.
        const images: { digest: Digest; size: number; mediaType: string; platform: PlatformWanted }[] = [];
        for (const platform of platforms) {
          if (!globals.quiet) process.stdout.write(stamp(`===> PLATFORM ${platform!.os}/${platform!.architecture}${platform!.variant ? `/${platform!.variant}` : ''}\n`));
          r = await buildFor(platform);
          const outs = await outputsFor([image, ...o.tag], o.publish ?? false, { insecureRegistries: o.insecureRegistry, registryMirrors });
          const m = await outs[0]!.store.getManifest(r.digest);
          images.push({ digest: r.digest, size: m.bytes.length, mediaType: m.mediaType, platform: platform! });
        }
        const outs = await outputsFor([image, ...o.tag], o.publish ?? false, { insecureRegistries: o.insecureRegistry, registryMirrors });
        let digest = '' as Digest;
        for (const out of outs) digest = await writeIndex(out.store, images, out.tag);
        r = { ...r!, digest };
      }
      process.stdout.write(`Successfully built image ${image} (${r.where})\n  digest ${r.digest}\n`);
      // pack users expect `docker run` next: when an engine answers and the image did not go there, say how.
      if (!o.publish && !o.docker && !config.docker && !image.startsWith('oci:')) {
        const client = (await import('../oci/engine/client.js')).EngineClient.fromEnv();
        const engine = await Promise.race([client.version().then(() => client.description, () => undefined), new Promise<undefined>((r) => setTimeout(() => r(undefined), 1000).unref())]).catch(() => undefined);
        if (engine) process.stdout.write(`  to run it with the engine at ${engine}: strata image copy ${image} docker-daemon:${image}  (or build with --docker; \`strata config docker true\` makes that the default)\n  or without one: strata run ${image}\n`);
      }
    });
}
