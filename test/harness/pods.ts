import { cp, chmod, chown, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { RuncExecutor } from '../../src/platform/executor.js';
import { runOk } from './proc.js';

/**
 * kpack's build and rebase pods and the Tekton catalog's buildpacks-phases task, replayed as runc containers on this
 * machine: each container's command, arguments, environment and volume mounts as kpack's build_pod.go and the task's
 * YAML define them, over the unpacked builder image. The containers of kpack's own images (build-init, completion)
 * and the task's helper images (skopeo+jq, ubi, python) are replayed by the harness on the host, doing what they do
 * to the volumes. Facts from kpack and the Tekton catalog; no code of theirs.
 */

export interface Mount {
  volume: string;
  path: string;
  subPath?: string;
  readOnly?: boolean;
}

export interface PodStep {
  name: string;
  /** `builder` and `rebase` run under runc; `host` steps are the harness doing what another project's image does. */
  image: 'builder' | 'rebase' | 'host';
  command: string[];
  args: string[];
  env: Record<string, string>;
  mounts: Mount[];
  workingDir?: string;
  /** Tekton's `script:` (run with the image's bash). */
  script?: string;
  /** As root (Tekton's prepare, a step with runAsUser 0); else the builder's user. */
  root?: boolean;
}

/** kpack's supported Platform APIs, newest first; it takes the newest the builder's lifecycle also supports. */
export const KPACK_PLATFORM_APIS = ['0.9', '0.8', '0.7'];

export function negotiatePlatformApi(supported: string[], wanted: string[] = KPACK_PLATFORM_APIS): string {
  const api = wanted.find((v) => supported.includes(v));
  if (!api) throw new Error(`unsupported builder platform API versions: ${supported.join(',')}`);
  return api;
}

export interface KpackBuild {
  /** The image's tag first, then additional tags. */
  tags: string[];
  runImage: string;
  platformApi: string;
  previousImage?: string;
  volumeCache?: boolean;
  cacheImage?: string;
  env?: { name: string; value: string }[];
  subPath?: string;
  defaultProcess?: string;
}

const HOME = { HOME: '/builder/home' };
const layers: Mount = { volume: 'layers-dir', path: '/layers' };
const home: Mount = { volume: 'home-dir', path: '/builder/home' };
const platform: Mount = { volume: 'platform-dir', path: '/platform' };
const report: Mount = { volume: 'report-dir', path: '/var/report' };
const cache: Mount = { volume: 'cache-dir', path: '/cache' };

/** kpack's build pod: prepare (build-init), analyze, detect, restore, build, export, then completion. */
export function kpackBuildPod(b: KpackBuild): PodStep[] {
  const api = { CNB_PLATFORM_API: b.platformApi };
  const workspace: Mount = { volume: 'workspace-dir', path: '/workspace', ...(b.subPath ? { subPath: b.subPath } : {}) };
  const generic = b.volumeCache ? ['-cache-dir=/cache'] : b.cacheImage ? [`-cache-image=${b.cacheImage}`] : [];
  const analyzerCache = b.cacheImage && !b.volumeCache ? generic : [];
  const cacheMounts = b.volumeCache ? [cache] : [];
  const [tag, ...more] = b.tags;
  const env: Record<string, string> = {};
  for (const e of b.env ?? []) env[`PLATFORM_ENV_${e.name}`] = e.value;
  return [
    { name: 'prepare', image: 'host', command: ['/cnb/process/build-init'], args: [], env: { ...env, SOURCE_SUB_PATH: b.subPath ?? '', IMAGE_TAG: tag!, RUN_IMAGE: b.runImage }, mounts: [platform, { volume: 'workspace-dir', path: '/workspace' }, home, { volume: 'layers-dir', path: '/projectMetadata' }], workingDir: '/workspace' },
    {
      name: 'analyze',
      image: 'builder',
      command: ['/cnb/lifecycle/analyzer'],
      args: ['-layers=/layers', '-analyzed=/layers/analyzed.toml', `-run-image=${b.runImage}`, ...analyzerCache, ...more.map((t) => `-tag=${t}`), ...(b.previousImage ? [`-previous-image=${b.previousImage}`] : []), tag!],
      env: { ...HOME, ...api, SERVICE_BINDING_ROOT: '/platform/bindings' },
      mounts: [layers, workspace, home],
    },
    { name: 'detect', image: 'builder', command: ['/cnb/lifecycle/detector'], args: ['-app=/workspace', '-group=/layers/group.toml', '-plan=/layers/plan.toml'], env: api, mounts: [layers, platform, workspace] },
    { name: 'restore', image: 'builder', command: ['/cnb/lifecycle/restorer'], args: ['-group=/layers/group.toml', '-layers=/layers', ...generic, '-analyzed=/layers/analyzed.toml'], env: { ...HOME, ...api }, mounts: [layers, home, ...cacheMounts] },
    { name: 'build', image: 'builder', command: ['/cnb/lifecycle/builder'], args: ['-layers=/layers', '-app=/workspace', '-group=/layers/group.toml', '-plan=/layers/plan.toml'], env: { ...api, SERVICE_BINDING_ROOT: '/platform/bindings' }, mounts: [layers, platform, workspace] },
    {
      name: 'export',
      image: 'builder',
      command: ['/cnb/lifecycle/exporter'],
      args: ['-layers=/layers', '-app=/workspace', '-group=/layers/group.toml', '-analyzed=/layers/analyzed.toml', '-project-metadata=/layers/project-metadata.toml', ...(b.volumeCache ? ['-cache-dir=/cache'] : b.cacheImage ? [`-cache-image=${b.cacheImage}`] : []), ...(b.defaultProcess ? [`-process-type=${b.defaultProcess}`] : []), '-report=/var/report/report.toml', ...b.tags],
      env: { ...HOME, ...api, CNB_RUN_IMAGE: b.runImage },
      mounts: [layers, workspace, home, report, ...cacheMounts],
    },
    { name: 'completion', image: 'host', command: ['/cnb/process/completion'], args: [], env: HOME, mounts: [home, report] },
  ];
}

/** kpack's rebase pod: the rebase container (kpack's rebase image), then completion. */
export function kpackRebasePod(r: { runImage: string; lastBuiltImage: string; tags: string[] }): PodStep[] {
  return [
    { name: 'rebase', image: 'rebase', command: ['/cnb/process/rebase'], args: ['--run-image', r.runImage, '--last-built-image', r.lastBuiltImage, '--report', '/var/report/report.toml', ...r.tags], env: { BUILD_CHANGES: '[]' }, mounts: [report], workingDir: '/workspace' },
    { name: 'completion', image: 'host', command: ['/cnb/process/completion'], args: [], env: {}, mounts: [report] },
  ];
}

export interface TektonRun {
  appImage: string;
  platformApi: string;
  uid: number;
  gid: number;
  envVars?: string[];
  processType?: string;
  cacheImage?: string;
  runImage?: string;
  tags?: string;
  subPath?: string;
  /** A cache workspace bound to the task. */
  cacheWorkspace?: boolean;
}

/** The buildpacks-phases task (catalog 0.3, Platform API 0.13): its steps with their parameters substituted. */
export function tektonBuildpacksPhases(t: TektonRun): PodStep[] {
  const api = { CNB_PLATFORM_API: t.platformApi };
  const template = { CNB_EXPERIMENTAL_MODE: 'silent', HOME: '/tekton/home' };
  const source: Mount = { volume: 'source', path: '/workspace/source' };
  const cacheWs: Mount[] = t.cacheWorkspace ? [{ volume: 'cache', path: '/workspace/cache' }] : [];
  const cachePath = t.cacheWorkspace ? '/workspace/cache' : '';
  const app = `/workspace/source/${t.subPath ?? ''}`;
  const lyr: Mount = { volume: 'layers-dir', path: '/layers' };
  const plat: Mount = { volume: 'platform-dir', path: '/platform' };
  const thome: Mount = { volume: 'tekton-home-dir', path: '/tekton/home' };
  const ids = [`-uid=${t.uid}`, `-gid=${t.gid}`];
  return [
    { name: 'get-labels-and-env', image: 'host', command: [], args: [], env: template, mounts: [] },
    { name: 'prepare', image: 'host', command: [], args: ['--env-vars', ...(t.envVars ?? [])], env: { ...template, CNB_USER_ID: String(t.uid), CNB_GROUP_ID: String(t.gid) }, mounts: [lyr, plat, source, ...cacheWs, thome], root: true },
    {
      name: 'analyze',
      image: 'builder',
      command: ['/cnb/lifecycle/analyzer'],
      args: ['-log-level=info', '-layers=/layers', `-run-image=${t.runImage ?? ''}`, `-cache-image=${t.cacheImage ?? ''}`, ...ids, '-insecure-registry=', `-tag=${t.tags ?? ''}`, '-skip-layers=false', t.appImage],
      env: { ...template, ...api },
      mounts: [lyr, source, ...cacheWs, thome],
    },
    { name: 'detect', image: 'builder', command: ['/cnb/lifecycle/detector'], args: ['-log-level=info', `-app=${app}`, '-group=/layers/group.toml', '-plan=/layers/plan.toml', '-layers=/layers', '-platform=/platform'], env: { ...template, ...api }, mounts: [lyr, plat, source, ...cacheWs, thome] },
    {
      name: 'restore',
      image: 'builder',
      command: [],
      args: [],
      script: `#!/usr/bin/env bash
export BUILD_IMAGE=\${CNB_BUILD_IMAGE:-\${CNB_BUILDER_IMAGE}}
/cnb/lifecycle/restorer \\
  -log-level=\${CNB_LOG_LEVEL} \\
  -build-image=\${BUILD_IMAGE} \\
  -group=/layers/group.toml \\
  -layers=\${CNB_LAYERS_DIR} \\
  -cache-dir=${cachePath} \\
  -cache-image=\${CNB_CACHE_IMAGE} \\
  -uid=\${UID} \\
  -gid=\${GID} \\
  -insecure-registry=\${CNB_INSECURE_REGISTRIES} \\
  -skip-layers=\${CNB_SKIP_LAYERS}
`,
      env: { ...template, UID: String(t.uid), GID: String(t.gid), CNB_LOG_LEVEL: 'info', CNB_BUILD_IMAGE: '', CNB_BUILDER_IMAGE: 'builder', CNB_CACHE_IMAGE: t.cacheImage ?? '', CNB_INSECURE_REGISTRIES: '', CNB_SKIP_LAYERS: 'false', CNB_LAYERS_DIR: '/layers', ...api },
      mounts: [lyr, source, ...cacheWs, thome, { volume: 'kaniko-dir', path: '/kaniko' }],
    },
    { name: 'build', image: 'builder', command: ['/cnb/lifecycle/builder'], args: ['-log-level=info', `-app=${app}`, '-layers=/layers', '-group=/layers/group.toml', '-plan=/layers/plan.toml', '-platform=/platform'], env: { ...template, ...api }, mounts: [lyr, plat, source, ...cacheWs, thome] },
    {
      name: 'export',
      image: 'builder',
      command: ['/cnb/lifecycle/exporter'],
      args: ['-log-level=info', `-app=${app}`, '-layers=/layers', '-group=/layers/group.toml', `-cache-dir=${cachePath}`, `-cache-image=${t.cacheImage ?? ''}`, '-report=/layers/report.toml', `-process-type=${t.processType ?? 'web'}`, ...ids, '-insecure-registry=', t.appImage],
      env: { ...template, ...api },
      mounts: [lyr, source, ...cacheWs, thome],
    },
    { name: 'results', image: 'host', command: [], args: [], env: {}, mounts: [lyr] },
  ];
}

export interface PodRun {
  /** Where the pod's emptyDir volumes live (one dir each). */
  dir: string;
  rootfs: { builder: string; rebase?: string };
  /** Extra read-only host dirs in the rebase container (a libc for strata's lifecycle image). */
  rebaseBinds?: string[];
  uid: number;
  gid: number;
  /** The image's own env, which Kubernetes puts before the container's. */
  imageEnv: string[];
  /** What the harness does for a `host` step. */
  host(step: PodStep, volume: (name: string) => string): Promise<void>;
}

/** Runs the steps in order, as a pod's init containers run; the first that fails stops the pod. Returns the output. */
export async function runPod(steps: PodStep[], p: PodRun): Promise<string> {
  let output = '';
  const volume = (name: string) => join(p.dir, 'volumes', name);
  for (const s of steps) for (const m of s.mounts) await mkdir(volume(m.volume), { recursive: true });
  for (const s of steps) {
    output += `--- ${s.name}\n`;
    if (s.image === 'host') {
      await p.host(s, volume);
      continue;
    }
    for (const m of s.mounts) {
      // The pod's fsGroup: every volume belongs to the build user's group (and here, its user).
      await chown(volume(m.volume), p.uid, p.gid);
      if (m.subPath) await mkdir(join(volume(m.volume), m.subPath), { recursive: true });
    }
    const mounts = s.mounts.map((m) => ({ source: m.subPath ? join(volume(m.volume), m.subPath) : volume(m.volume), destination: m.path, ...(m.readOnly ? { readonly: true } : {}) }));
    let args = [...s.command, ...s.args];
    if (s.script) {
      const scripts = join(p.dir, 'scripts');
      await mkdir(scripts, { recursive: true });
      await writeFile(join(scripts, s.name), s.script, { mode: 0o755 });
      mounts.push({ source: scripts, destination: '/tekton/scripts', readonly: true });
      args = [`/tekton/scripts/${s.name}`];
    }
    if (s.image === 'rebase') for (const b of p.rebaseBinds ?? []) mounts.push({ source: b, destination: b, readonly: true });
    const rootfs = s.image === 'rebase' ? p.rootfs.rebase! : p.rootfs.builder;
    const env = [...p.imageEnv.filter((e) => !Object.hasOwn(s.env, e.split('=')[0]!)), ...Object.entries(s.env).map(([k, v]) => `${k}=${v}`)];
    const code = await new RuncExecutor(rootfs, join(p.dir, 'runc')).run({ args, env, uid: s.root ? 0 : p.uid, gid: s.root ? 0 : p.gid, cwd: s.workingDir ?? '/', mounts, network: 'host', output: (c) => (output += c.toString()) });
    if (code !== 0) throw new Error(`pod step ${s.name} exited ${code}:\n${output}`);
  }
  return output;
}

/** Unpacks an image from a registry (skopeo, umoci: independent tools) into a rootfs a container can run from. */
export async function unpackImage(ref: string, dir: string): Promise<{ rootfs: string; config: { Env?: string[]; User?: string; Labels?: Record<string, string> } }> {
  await mkdir(dir, { recursive: true });
  await runOk('skopeo', ['copy', '--src-tls-verify=false', `docker://${ref}`, `oci:${join(dir, 'layout')}:img`]);
  await runOk('umoci', ['unpack', '--image', `${join(dir, 'layout')}:img`, join(dir, 'bundle')]);
  const rootfs = join(dir, 'bundle', 'rootfs');
  // umoci leaves the rootfs itself 0700; a container's / is 0755. runc gives a tmpfs the mode of the dir it covers, so
  // /tmp is made sticky and world-writable as in any image (a small test image may have none).
  await chmod(rootfs, 0o755);
  await mkdir(join(rootfs, 'tmp'), { recursive: true });
  await chmod(join(rootfs, 'tmp'), 0o1777);
  const config = JSON.parse(await runOk('skopeo', ['inspect', '--tls-verify=false', '--config', `docker://${ref}`])) as { config: { Env?: string[]; User?: string; Labels?: Record<string, string> } };
  return { rootfs, config: config.config };
}

/**
 * build-init's part that matters here, done as the pod's user as build-init is: the app in the workspace,
 * PLATFORM_ENV_* as /platform/env files.
 */
export async function kpackPrepare(step: PodStep, volume: (name: string) => string, app: string, uid: number, gid: number): Promise<void> {
  await cp(app, volume('workspace-dir'), { recursive: true });
  await runOk('chown', ['-R', `${uid}:${gid}`, volume('workspace-dir')]);
  const envDir = join(volume('platform-dir'), 'env');
  await mkdir(envDir, { recursive: true });
  for (const [k, v] of Object.entries(step.env)) if (k.startsWith('PLATFORM_ENV_')) await writeFile(join(envDir, k.slice('PLATFORM_ENV_'.length)), v);
}

/** The report.toml's digest, as kpack's completion and the task's results step read it. */
export async function reportDigest(file: string): Promise<string> {
  const m = /digest = "(sha256:[0-9a-f]{64})"/.exec(await readFile(file, 'utf8'));
  if (!m) throw new Error(`${file} has no digest`);
  return m[1]!;
}
