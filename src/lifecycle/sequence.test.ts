import { test } from 'node:test';
import assert from 'node:assert/strict';
import { lstat, mkdir, mkdtemp, readFile, readdir, readlink, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { extractLayer } from '../oci/extract.js';
import { resolveImage } from '../oci/image.js';
import { readers } from '../oci/images.js';
import { hostPlatform } from '../oci/manifest.js';
import { emptyConfig, emptyManifest, writeImage } from '../oci/mutate.js';
import { OciLayout } from '../oci/layout.js';
import { ApiVersion } from '../spec/api.js';
import { DirCache } from './cache.js';
import { createLogger } from './log.js';
import { runSequence, type BuildpackRunner, type SequenceInputs } from './sequence.js';
import type { ExportTarget } from './export.js';

// The phase sequence with nothing faked but what buildpacks would write: the "buildpacks" here are functions that write
// into the layers dir the sequence hands them, and every image is an OCI layout on disk.

const GROUP = '[[group]]\nid = "test/bp"\nversion = "1.0.0"\napi = "0.10"\n';
const METADATA = '[[buildpacks]]\nid = "test/bp"\nversion = "1.0.0"\napi = "0.10"\n\n[[processes]]\ntype = "web"\ncommand = ["serve"]\nargs = []\ndirect = true\nbuildpack-id = "test/bp"\n';

async function world() {
  const root = await mkdtemp(join(tmpdir(), 'strata-sequence-'));
  const layersDir = join(root, 'layers');
  const appDir = join(root, 'app');
  await mkdir(layersDir);
  await mkdir(appDir);
  await writeFile(join(appDir, 'main.txt'), 'the app');
  const runDir = join(root, 'run');
  const run = await OciLayout.open(runDir, { create: true });
  const base = { ...emptyConfig(hostPlatform()), os: 'linux', config: { Labels: { 'io.buildpacks.base.distro.name': 'debian', 'io.buildpacks.base.distro.version': '12' } } };
  await writeImage(run, base, emptyManifest(), 'latest');
  const calls: string[] = [];
  return { root, layersDir, appDir, runName: `oci:${runDir}:latest`, out: join(root, 'out'), calls };
}

type World = Awaited<ReturnType<typeof world>>;

/** A world with its keep dir and an output layout (`app`), removed afterwards. */
async function inWorld(fn: (w: World, outputs: ExportTarget[]) => Promise<void>): Promise<void> {
  const w = await world();
  try {
    await mkdir(join(w.root, 'keep'));
    await fn(w, [{ store: await OciLayout.open(w.out, { create: true }), tag: 'app', name: 'app' }]);
  } finally {
    await rm(w.root, { recursive: true, force: true });
  }
}

function inputs(w: Awaited<ReturnType<typeof world>>, over: Partial<SequenceInputs> = {}): SequenceInputs {
  const log = createLogger('warn', () => undefined);
  const read = readers.remote({}, log);
  return {
    platformApi: ApiVersion.parse('0.12'),
    layersDir: w.layersDir,
    appDir: w.appDir,
    analyze: { output: `oci:${w.out}:app`, runImages: [{ image: w.runName, mirrors: [] }], readPrevious: read, readRun: read },
    launcher: () => Buffer.from('#!/bin/sh\n'),
    outputs: [],
    uid: process.getuid?.() ?? 0,
    gid: process.getgid?.() ?? 0,
    projectMetadata: {},
    execEnv: 'production',
    created: new Date(Date.UTC(1980, 0, 1, 0, 0, 1)),
    keepDir: join(w.root, 'keep'),
    log,
    phase: (name) => w.calls.push(name),
    ...over,
  };
}

/** Buildpacks as functions: detection writes the group and plan, the build one launch layer and the metadata. */
function buildpacks(w: Awaited<ReturnType<typeof world>>, extra: { detect?: () => Promise<void>; afterBuild?: (layer: string) => Promise<void> } = {}): BuildpackRunner {
  return async (phase) => {
    w.calls.push(`run ${phase}`);
    if (phase === 'detector') {
      await writeFile(join(w.layersDir, 'group.toml'), GROUP);
      await writeFile(join(w.layersDir, 'plan.toml'), '');
      await extra.detect?.();
      return 0;
    }
    const layer = join(w.layersDir, 'test_bp', 'web');
    await mkdir(layer, { recursive: true });
    await writeFile(join(layer, 'server'), `server built from ${await readFile(join(w.appDir, 'main.txt'), 'utf8')}`);
    await writeFile(join(w.layersDir, 'test_bp', 'web.toml'), '[types]\nlaunch = true\ncache = true\n');
    await mkdir(join(w.layersDir, 'config'), { recursive: true });
    await writeFile(join(w.layersDir, 'config', 'metadata.toml'), METADATA);
    await extra.afterBuild?.(layer);
    return 0;
  };
}

/** The files of the exported image's `web` layer, by path, with a link's target in place of content. */
async function webLayerFiles(w: World, r: Awaited<ReturnType<typeof runSequence>>): Promise<Record<string, string>> {
  const image = await resolveImage(await OciLayout.open(w.out), 'app');
  const sha = r.exported.metadata.buildpacks[0]!.layers?.web?.sha ?? "";
  const desc = image.manifest.manifest.layers[image.config.rootfs.diff_ids.indexOf(sha as `sha256:${string}`)]!;
  const into = await mkdtemp(join(w.root, 'x-'));
  await extractLayer(await image.store.getBlob(desc), into, { chown: false });
  const dir = join(into, w.layersDir.slice(1), 'test_bp', 'web');
  const files: Record<string, string> = {};
  for (const name of await readdir(dir)) {
    const st = await lstat(join(dir, name));
    files[name] = st.isSymbolicLink() ? `-> ${await readlink(join(dir, name))}` : await readFile(join(dir, name), 'utf8');
  }
  return files;
}

const pause = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Waits until `ok()` holds, for up to 20 s (a loaded CI machine), as a buildpack that takes its time would. */
async function until(ok: () => boolean): Promise<void> {
  for (const deadline = Date.now() + 20_000; !ok() && Date.now() < deadline; ) await pause(25);
}

test('the phase sequence runs analyze, detect, restore, build and export in order, into an image and a cache; the next run reuses the layer', async () =>
  inWorld(async (w, outputs) => {
    const cache = await DirCache.open(join(w.root, 'cache'), createLogger('warn', () => undefined));
    const first = await runSequence(inputs(w, { outputs, cache }), buildpacks(w));
    assert.deepEqual(w.calls, ['ANALYZING', 'DETECTING', 'run detector', 'RESTORING', 'BUILDING', 'run builder', 'EXPORTING']);
    assert.deepEqual(first.group.map((g) => `${g.id}@${g.version}`), ['test/bp@1.0.0']);
    assert.equal(first.analysis.analyzed.runImage?.target?.distro?.name, 'debian', "the run image's target, from its labels");
    const image = await resolveImage(outputs[0]!.store, 'app');
    assert.equal(image.manifest.digest, first.exported.digest);
    assert.ok(first.cached?.buildpacks.some((b) => 'web' in b.layers), 'the cache holds the launch layer');
    assert.ok((await readFile(join(w.layersDir, 'analyzed.toml'), 'utf8')).includes('[run-image]'));

    // Again, from the previous image and the cache, as a rebuild runs: the same content, the layer reused.
    await rm(w.layersDir, { recursive: true, force: true });
    await mkdir(w.layersDir);
    w.calls.length = 0;
    const again = await runSequence(inputs(w, { outputs, cache }), buildpacks(w));
    assert.equal(again.analysis.previous?.reference.endsWith(first.exported.digest), true);
    assert.equal(again.exported.digest, first.exported.digest, 'the same inputs, the same image');
    assert.ok(again.exported.reused.length > 0);
  }));

test('what detection leaves in the layers dir besides its group and plan is removed before the restore, links included and never followed', async () =>
  inWorld(async (w, outputs) => {
    const outside = join(w.root, 'outside');
    await mkdir(outside);
    await writeFile(join(outside, 'precious'), 'keep me');
    const r = await runSequence(
      inputs(w, { outputs }),
      buildpacks(w, {
        detect: async () => {
          await symlink(outside, join(w.layersDir, 'test_bp'));
          await writeFile(join(w.layersDir, 'junk'), 'x');
        },
      }),
    );
    assert.equal(r.group.length, 1);
    assert.equal(await readFile(join(outside, 'precious'), 'utf8'), 'keep me');
    assert.deepEqual(await readdir(outside), ['precious'], 'nothing was written through the link');
    assert.ok((await lstat(join(w.layersDir, 'test_bp'))).isDirectory(), 'the link was replaced by the build\'s own dir');
    assert.ok(!(await readdir(w.layersDir)).includes('junk'));
  }));

test('a detector that finds nothing stops the sequence with exit 20 before anything is restored or built', async () => {
  const w = await world();
  try {
    const run: BuildpackRunner = async (phase) => {
      w.calls.push(`run ${phase}`);
      return 20;
    };
    await assert.rejects(runSequence(inputs(w, { builderName: 'my/builder' }), run), (err: Error & { exitCode?: number }) => {
      assert.equal(err.message, 'no buildpack in my/builder detected this app (exit 20)');
      assert.equal(err.exitCode, 20);
      return true;
    });
    assert.deepEqual(w.calls, ['ANALYZING', 'DETECTING', 'run detector']);
  } finally {
    await rm(w.root, { recursive: true, force: true });
  }
});

test('a launch layer left alone while the build goes on is tarred then, and the export takes that tar', async () =>
  inWorld(async (w, outputs) => {
    const lines: string[] = [];
    const r = await runSequence(
      inputs(w, { outputs, log: createLogger('debug', (l) => lines.push(l)) }),
      // A later buildpack that takes a while, as one waiting on a package registry does.
      buildpacks(w, { afterBuild: () => until(() => lines.join('').includes('tarred while the build went on')) }),
    );
    assert.match(lines.join(''), /test_bp\/web tarred while the build went on/);
    assert.match(lines.join(''), /'test\/bp:web' was tarred while the build ran and is unchanged since/);
    assert.deepEqual(await webLayerFiles(w, r), { server: 'server built from the app' });
  }));

test('a layer changed after its early tar is tarred again: same size, new bytes; a file swapped for a link to a host file is a link in the image', async () => {
  for (const change of ['rewrite', 'link'] as const) {
    await inWorld(async (w, outputs) => {
      const lines: string[] = [];
      const r = await runSequence(
        inputs(w, { outputs, log: createLogger('debug', (l) => lines.push(l)) }),
        buildpacks(w, {
          afterBuild: async (layer) => {
            await until(() => lines.join('').includes('tarred while the build went on'));
            assert.match(lines.join(''), /tarred while the build went on/, 'the early tar was made before the change');
            const file = join(layer, 'server');
            if (change === 'rewrite') await writeFile(file, 'SERVER BUILT FROM THE APP');
            else {
              await rm(file);
              await symlink('/etc/passwd', file);
            }
          },
        }),
      );
      assert.doesNotMatch(lines.join(''), /was tarred while the build ran/, `${change}: the early tar is not used`);
      assert.deepEqual(await webLayerFiles(w, r), { server: change === 'rewrite' ? 'SERVER BUILT FROM THE APP' : '-> /etc/passwd' });
    });
  }
});

test('a layer restored from the cache and left alone by the build is not tarred early: the export reuses it unread', async () =>
  inWorld(async (w, outputs) => {
    const cache = await DirCache.open(join(w.root, 'cache'), createLogger('warn', () => undefined));
    await runSequence(inputs(w, { outputs, cache }), buildpacks(w));
    await rm(w.layersDir, { recursive: true, force: true });
    await mkdir(w.layersDir);
    await rm(join(w.root, 'keep'), { recursive: true, force: true });
    await mkdir(join(w.root, 'keep'));
    const lines: string[] = [];
    // This time the buildpack keeps its restored layer as it is (restored .toml files have no [types]: it states
    // them again) and writes its metadata, slowly.
    const keeping: BuildpackRunner = async (phase) => {
      if (phase === 'detector') {
        await writeFile(join(w.layersDir, 'group.toml'), GROUP);
        await writeFile(join(w.layersDir, 'plan.toml'), '');
        return 0;
      }
      await writeFile(join(w.layersDir, 'test_bp', 'web.toml'), '[types]\nlaunch = true\ncache = true\n');
      await mkdir(join(w.layersDir, 'config'), { recursive: true });
      await writeFile(join(w.layersDir, 'config', 'metadata.toml'), METADATA);
      await pause(600);
      return 0;
    };
    const again = await runSequence(inputs(w, { outputs, cache, log: createLogger('debug', (l) => lines.push(l)) }), keeping);
    assert.doesNotMatch(lines.join(''), /tarred while the build went on/);
    assert.deepEqual(again.exported.untouched, ['test/bp:web'], lines.join(''));
  }));
