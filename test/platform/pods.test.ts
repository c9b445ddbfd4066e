// strata inside kpack and Tekton: a builder made by `strata builder create`, built and rebased by kpack's build and
// rebase pods and by the Tekton catalog's buildpacks-phases task, replayed container by container under runc. The
// images are checked with skopeo and run, and compared with what `strata build` makes from the same app.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cp, mkdir, readdir, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { copyImage } from '../../src/oci/copy.js';
import { RegistryClient } from '../../src/oci/registry/client.js';
import { RuncExecutor } from '../../src/platform/executor.js';
import { writeBuildpack } from '../harness/buildpacks.js';
import { hostToolImageFiles, makeLayoutImage } from '../harness/images.js';
import { kpackBuildPod, kpackPrepare, kpackRebasePod, negotiatePlatformApi, reportDigest, runPod, tektonBuildpacksPhases, unpackImage, type PodRun, type PodStep } from '../harness/pods.js';
import { runOk } from '../harness/proc.js';
import { STRATA } from '../harness/probe.js';
import { registryFixture } from '../harness/registry.js';

const fx = registryFixture();
const UID = 1000;

interface World {
  reg: string;
  builder: string;
  builderRootfs: string;
  builderEnv: string[];
  supported: string[];
  app: string;
  env: NodeJS.ProcessEnv;
}

let world: Promise<World> | undefined;
const ready = (): Promise<World> => (world ??= prepare());

async function prepare(): Promise<World> {
  const w = fx.work;
  const reg = fx.reg.host;
  const env = { ...process.env, STRATA_HOME: join(w, 'home') };
  const tools = await hostToolImageFiles();
  const images = join(w, 'images');
  const client = new RegistryClient(reg);
  const build = await makeLayoutImage(images, 'build', [tools], { 'io.buildpacks.base.id': 'test.stack' }, [`CNB_USER_ID=${UID}`, `CNB_GROUP_ID=${UID}`]);
  await copyImage(build.layout, 'build', client.repository('base'), 'build');
  await pushRun(images, client, tools, 'run0', {});
  // The buildpack reads the app from its working dir (the app dir, wherever the platform put it) and a build env var.
  const bp = await writeBuildpack(join(w, 'bps'), {
    id: 'test/hello',
    version: '1.0.0',
    api: '0.10',
    detect: '[ -f hello.txt ]',
    build: `L="$1"
mkdir -p "$L/content"
{ cat hello.txt; echo "greeting=$(cat "$2/env/BP_GREETING" 2>/dev/null)"; } > "$L/content/hello.txt"
printf '[types]\\nlaunch = true\\n' > "$L/content.toml"
printf '[[processes]]\\ntype = "web"\\ncommand = ["cat", "/layers/test_hello/content/hello.txt"]\\ndefault = true\\n' > "$L/launch.toml"`,
  });
  await writeFile(join(w, 'builder.toml'), `[[buildpacks]]\nuri = "${bp}"\n[[order]]\n[[order.group]]\nid = "test/hello"\n[build]\nimage = "${reg}/base:build"\n[[run.images]]\nimage = "${reg}/base:run"\n`);
  const builder = `${reg}/builders/pods`;
  await runOk(STRATA, ['builder', 'create', builder, '--config', join(w, 'builder.toml'), '--publish'], { env });
  const unpacked = await unpackImage(builder, join(w, 'builder-unpacked'));
  const md = JSON.parse(unpacked.config.Labels!['io.buildpacks.builder.metadata']!) as { lifecycle: { apis: { platform: { supported: string[] } } } };
  const app = join(w, 'app');
  await mkdir(app, { recursive: true });
  await writeFile(join(app, 'hello.txt'), 'hello from the app\n');
  return { reg, builder, builderRootfs: unpacked.rootfs, builderEnv: unpacked.config.Env ?? [], supported: md.lifecycle.apis.platform.supported, app, env };
}

async function pushRun(images: string, client: RegistryClient, tools: Awaited<ReturnType<typeof hostToolImageFiles>>, tag: string, extra: Record<string, string>): Promise<string> {
  const img = await makeLayoutImage(images, tag, [tools, ...(Object.keys(extra).length ? [extra] : [])], { 'io.buildpacks.base.id': 'test.stack', 'io.buildpacks.rebasable': 'true' });
  await copyImage(img.layout, tag, client.repository('base'), 'run');
  return img.digest;
}

/** A pod's steps over the builder's rootfs, as its build user. */
function onBuilder(w: World, steps: PodStep[], dir: string, host: PodRun['host']): Promise<string> {
  return runPod(steps, { dir, rootfs: { builder: w.builderRootfs }, uid: UID, gid: UID, imageEnv: w.builderEnv, host });
}

async function inspect(ref: string): Promise<{ Digest: string; Layers: string[]; Labels: Record<string, string> }> {
  return JSON.parse(await runOk('skopeo', ['inspect', '--tls-verify=false', `docker://${ref}`])) as { Digest: string; Layers: string[]; Labels: Record<string, string> };
}

async function diffIds(ref: string): Promise<string[]> {
  return (JSON.parse(await runOk('skopeo', ['inspect', '--tls-verify=false', '--config', `docker://${ref}`])) as { rootfs: { diff_ids: string[] } }).rootfs.diff_ids;
}

/** Runs an app image's default process under runc, as a container runtime would, and returns what it printed. */
async function runApp(ref: string, dir: string): Promise<string> {
  const { rootfs, config } = await unpackImage(ref, dir);
  const full = JSON.parse(await runOk('skopeo', ['inspect', '--tls-verify=false', '--config', `docker://${ref}`])) as { config: { Entrypoint: string[]; Env: string[]; WorkingDir: string } };
  let out = '';
  const code = await new RuncExecutor(rootfs, join(dir, 'runc')).run({ args: full.config.Entrypoint, env: config.Env ?? [], uid: UID, gid: UID, cwd: full.config.WorkingDir || '/', mounts: [], network: 'none', output: (c) => (out += c.toString()) });
  assert.equal(code, 0, out);
  return out;
}

test("kpack's build pod over a strata builder: Platform API negotiated as kpack does, the image strata build makes, and it runs", { timeout: 300_000 }, async () => {
  const w = await ready();
  const api = negotiatePlatformApi(w.supported);
  assert.equal(api, '0.9', `kpack takes the newest API it and the builder share, of ${w.supported.join(', ')}`);
  const runImage = `${w.reg}/base@${(await inspect(`${w.reg}/base:run`)).Digest}`;
  const dir = join(fx.work, 'kpack-build');
  const steps = kpackBuildPod({ tags: [`${w.reg}/apps/kp`, `${w.reg}/apps/kp:b1`], runImage, platformApi: api, env: [{ name: 'BP_GREETING', value: 'hi' }], volumeCache: true });
  assert.deepEqual(steps.map((s) => s.name), ['prepare', 'analyze', 'detect', 'restore', 'build', 'export', 'completion']);
  const out = await onBuilder(w, steps, dir, async (s, volume) => {
    if (s.name === 'prepare') await kpackPrepare(s, volume, w.app, UID, UID);
  });
  const digest = await reportDigest(join(dir, 'volumes', 'report-dir', 'report.toml'));
  const pushed = await inspect(`${w.reg}/apps/kp`);
  assert.equal(pushed.Digest, digest, out);
  assert.equal((await inspect(`${w.reg}/apps/kp:b1`)).Digest, digest, 'every tag');
  const md = JSON.parse(pushed.Labels['io.buildpacks.build.metadata']!) as { buildpacks: { id: string }[]; processes: { type: string }[] };
  assert.deepEqual(md.buildpacks.map((b) => b.id), ['test/hello']);
  assert.deepEqual(md.processes.map((p) => p.type), ['web']);
  assert.ok((await readdir(join(dir, 'volumes', 'cache-dir'))).length > 0, 'the volume cache was written');

  // strata build, same builder and app: the same layers.
  await runOk(STRATA, ['build', `${w.reg}/apps/direct`, '--builder', w.builder, '--path', w.app, '--env', 'BP_GREETING=hi', '--publish'], { env: w.env });
  // Every layer strata build makes, but the launch metadata's: Platform API 0.9 writes a process's command as a
  // string with its args apart, 0.10 and later as one list (strata build speaks the newest).
  const withoutConfig = async (ref: string) => {
    const md = JSON.parse((await inspect(ref)).Labels['io.buildpacks.lifecycle.metadata']!) as { config: { sha: string } };
    return (await diffIds(ref)).filter((d) => d !== md.config.sha);
  };
  assert.deepEqual(await withoutConfig(`${w.reg}/apps/kp@${digest}`), await withoutConfig(`${w.reg}/apps/direct`), 'the layers strata build makes');
  const ran = await runApp(`${w.reg}/apps/kp@${digest}`, join(fx.work, 'run-kp'));
  assert.equal(ran, 'hello from the app\ngreeting=hi\n');
  assert.equal(await runApp(`${w.reg}/apps/direct`, join(fx.work, 'run-direct')), ran);
});

test("kpack's rebase pod with strata's lifecycle image as its rebase image: the app moves onto a new run image, layers kept", { timeout: 300_000 }, async () => {
  const w = await ready();
  const before = await inspect(`${w.reg}/apps/kp`);
  const tools = await hostToolImageFiles();
  const newRun = await pushRun(join(fx.work, 'images'), new RegistryClient(w.reg), tools, 'run1', { 'etc/patched': 'yes\n' });
  await runOk(STRATA, ['builder', 'lifecycle-image', `${w.reg}/lifecycle:1`, '--publish'], { env: w.env });
  const life = await unpackImage(`${w.reg}/lifecycle:1`, join(fx.work, 'lifecycle-unpacked'));
  // What kpack's ClusterLifecycle reads: the lifecycle's version and APIs in io.buildpacks.builder.metadata, and .apis.
  const described = JSON.parse(life.config.Labels!['io.buildpacks.builder.metadata']!) as { lifecycle: { version: string }; api: { platform: string }; apis: { platform: { supported: string[] } } };
  assert.match(described.lifecycle.version, /^\d+\.\d+\.\d+/);
  assert.ok(described.apis.platform.supported.includes(described.api.platform));
  assert.ok(JSON.parse(life.config.Labels!['io.buildpacks.lifecycle.apis']!).platform.supported.includes('0.9'));
  assert.equal(life.config.User, '65532:65532', 'not root: kpack runs its rebase pod with runAsNonRoot');
  // kpack's rebase image needs a libc for strata's lifecycle: the lifecycle layer on one (here, the host's).
  await symlink('usr/lib', join(life.rootfs, 'lib'));
  await symlink('usr/lib64', join(life.rootfs, 'lib64'));

  const dir = join(fx.work, 'kpack-rebase');
  const steps = kpackRebasePod({ runImage: `${w.reg}/base@${newRun}`, lastBuiltImage: `${w.reg}/apps/kp@${before.Digest}`, tags: [`${w.reg}/apps/kp`] });
  const out = await runPod(steps, { dir, rootfs: { builder: w.builderRootfs, rebase: life.rootfs }, rebaseBinds: ['/usr/lib', '/usr/lib64'], uid: 65532, gid: 65532, imageEnv: ['PATH=/usr/bin:/bin'], host: async () => undefined });
  const digest = await reportDigest(join(dir, 'volumes', 'report-dir', 'report.toml'));
  const after = await inspect(`${w.reg}/apps/kp`);
  assert.equal(after.Digest, digest, out);
  assert.notEqual(digest, before.Digest);
  const [oldIds, newIds, runIds] = [await diffIds(`${w.reg}/apps/kp@${before.Digest}`), await diffIds(`${w.reg}/apps/kp@${digest}`), await diffIds(`${w.reg}/base@${newRun}`)];
  assert.deepEqual(newIds.slice(0, runIds.length), runIds, 'the new run image underneath');
  assert.deepEqual(newIds.slice(runIds.length), oldIds.slice(oldIds.length - (newIds.length - runIds.length)), 'the app layers kept');
  assert.equal(await runApp(`${w.reg}/apps/kp@${digest}`, join(fx.work, 'run-rebased')), 'hello from the app\ngreeting=hi\n');
});

test("the Tekton catalog's buildpacks-phases task (Platform API 0.13) over a strata builder: its empty flags taken as unset, and the image runs", { timeout: 300_000 }, async () => {
  const w = await ready();
  const api = negotiatePlatformApi(w.supported, ['0.13']);
  const dir = join(fx.work, 'tekton');
  const steps = tektonBuildpacksPhases({ appImage: `${w.reg}/apps/tk`, platformApi: api, uid: UID, gid: UID, envVars: ['BP_GREETING=tekton'], cacheWorkspace: true });
  const out = await onBuilder(w, steps, dir, async (s, volume) => {
    if (s.name === 'get-labels-and-env') {
      // The step reads the builder's labels and fails without a registry credentials file in $HOME.
      await mkdir(join(volume('tekton-home-dir'), '.docker'), { recursive: true });
      await writeFile(join(volume('tekton-home-dir'), '.docker', 'config.json'), '{"auths":{}}');
      assert.ok(w.supported.includes(api));
    } else if (s.name === 'prepare') {
      // git-clone filled the source workspace before the task; prepare hands the volumes to the build user.
      await cp(w.app, volume('source'), { recursive: true });
      const envDir = join(volume('platform-dir'), 'env');
      await mkdir(envDir, { recursive: true });
      for (const e of s.args.slice(1)) {
        const [k, v] = e.split('=', 2);
        if (k && v) await writeFile(join(envDir, k), v);
      }
      for (const v of ['tekton-home-dir', 'layers-dir', 'source', 'cache']) await runOk('chown', ['-R', `${UID}:${UID}`, volume(v)]);
    }
  });
  const digest = await reportDigest(join(dir, 'volumes', 'layers-dir', 'report.toml'));
  assert.equal((await inspect(`${w.reg}/apps/tk`)).Digest, digest, out);
  assert.equal(await runApp(`${w.reg}/apps/tk@${digest}`, join(fx.work, 'run-tk')), 'hello from the app\ngreeting=tekton\n');
});
