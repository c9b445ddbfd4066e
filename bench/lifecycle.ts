import { readFileSync } from 'node:fs';
// Lifecycle benchmarks: a no-op re-export against a full export of the same layers (what the reference lifecycle
// does on every build: re-tar everything), and rebase time for a large against a small image.
import { execFileSync } from 'node:child_process';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { exportImage, type ExporterInputs } from '../src/lifecycle/export.js';
import { rebase } from '../src/lifecycle/rebase.js';
import { LABEL, parseLifecycleMetadata } from '../src/lifecycle/labels.js';
import { silentLogger } from '../src/lifecycle/log.js';
import { resolveImage } from '../src/oci/image.js';
import { OciLayout } from '../src/oci/layout.js';
import { treeEntries, writeLayerFile } from '../src/oci/layer.js';
import { appendLayers, emptyConfig, emptyManifest, writeImage } from '../src/oci/mutate.js';
import { hostPlatform } from '../src/oci/manifest.js';
import { ApiVersion } from '../src/spec/api.js';
import { writeMetadata } from '../src/spec/metadata.js';
import { PROJECT_ROOT } from '../src/version.js';

function duBytes(dir: string): number {
  return Number(execFileSync('du', ['-sb', dir], { encoding: 'utf8' }).split('\t')[0]);
}

async function seconds(fn: () => Promise<unknown>): Promise<number> {
  const t0 = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

/** A one-layer image in a layout made from `dir`, labelled like a CNB app whose run image is its first layer. */
async function image(layout: OciLayout, tag: string, dirs: string[]): Promise<void> {
  let config = emptyConfig(hostPlatform());
  let manifest = emptyManifest();
  for (const [i, d] of dirs.entries()) {
    const file = join(layout.root, `.bench-${tag}-${i}`);
    const info = await writeLayerFile(treeEntries(d, { prefix: `l${i}` }), file);
    await layout.adoptBlobFile(file, info.digest);
    ({ config, manifest } = appendLayers(config, manifest, [{ descriptor: { mediaType: info.mediaType, digest: info.digest, size: info.size }, diffID: info.diffID }]));
  }
  const md = { app: [], buildpacks: [], runImage: { topLayer: config.rootfs.diff_ids[0]!, reference: 'run', image: 'bench/run' } };
  config.config = { Labels: { [LABEL.lifecycle]: JSON.stringify(md) }, Env: ['CNB_PLATFORM_API=0.15'] };
  await writeImage(layout, config, manifest, tag);
}

export async function lifecycleBench(base: string, tree: string, runs: number): Promise<void> {
  const root = join(base, 'lifecycle');
  await rm(root, { recursive: true, force: true });
  const layers = join(root, 'layers');
  const app = join(root, 'app');
  await mkdir(join(layers, 'bench_bp'), { recursive: true });
  await mkdir(join(layers, 'config'), { recursive: true });
  await mkdir(app, { recursive: true });
  await writeFile(join(app, 'index.js'), 'console.log(1)\n');
  execFileSync('cp', ['-al', tree, join(layers, 'bench_bp', 'deps')]);
  await writeFile(join(layers, 'bench_bp', 'deps.toml'), '[types]\nlaunch = true\n');
  const group = [{ id: 'bench/bp', version: '1.0.0', api: '0.12' }];
  await writeMetadata(join(layers, 'config', 'metadata.toml'), { buildpacks: group, extensions: [], processes: [], slices: [], labels: [] }, ApiVersion.parse('0.15'));
  const runDir = join(root, 'run');
  await mkdir(join(runDir, 'etc'), { recursive: true });
  await writeFile(join(runDir, 'etc', 'os-release'), 'ID=bench\n');
  const runLayout = await OciLayout.open(join(root, 'run-layout'), { create: true });
  await image(runLayout, 'run', [runDir]);
  const runImage = await resolveImage(runLayout, 'run');

  const outDir = join(root, 'out');
  const out = await OciLayout.open(outDir, { create: true });
  const inputs = (previous?: ExporterInputs['previous']): ExporterInputs => ({
    group,
    layersDir: layers,
    appDir: app,
    launcher: readFileSync(join(PROJECT_ROOT, 'dist', 'lifecycle', 'launcher')),
    runImage,
    runImageName: 'bench/run',
    runImageReference: 'bench/run',
    runImageMirrors: [],
    outputs: [{ store: out, tag: 'app', name: 'app' }],
    uid: 1000,
    gid: 1000,
    platformApi: ApiVersion.parse('0.15'),
    projectMetadata: {},
    execEnv: 'production',
    created: new Date(0),
    log: silentLogger,
    ...(previous ? { previous } : {}),
  });
  const full: number[] = [];
  const noop: number[] = [];
  let written = 0;
  let untouched = 0;
  for (let i = 0; i < runs; i++) {
    await rm(`${join(layers, 'bench_bp', 'deps')}.strata-fingerprint`, { force: true });
    full.push(await seconds(() => exportImage(inputs())));
    const prev = await resolveImage(out, 'app');
    const metadata = parseLifecycleMetadata(prev.config.config!.Labels![LABEL.lifecycle])!;
    const before = duBytes(outDir);
    noop.push(
      await seconds(async () => {
        const r = await exportImage(inputs({ image: prev, metadata }));
        untouched = r.untouched.length;
      }),
    );
    written = duBytes(outDir) - before;
  }
  const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  process.stdout.write(`\nexport of a ${Math.round(duBytes(tree) / 1e6)} MB launch layer, median of ${runs}\n`);
  process.stdout.write(`  full export (re-tar everything, as the reference does): ${med(full).toFixed(3)} s\n`);
  process.stdout.write(`  no-op re-export (fingerprint, layer not read):          ${med(noop).toFixed(3)} s, ${untouched} layer(s) untouched, ${written} bytes written\n`);
  process.stdout.write(`  ratio no-op / full: ${(med(noop) / med(full)).toFixed(3)}x\n`);

  // Rebase: the same work whatever the app layers weigh.
  const small = join(root, 'small');
  await mkdir(small, { recursive: true });
  await writeFile(join(small, 'f'), Buffer.alloc(1 << 20, 1));
  const rebaseLayout = await OciLayout.open(join(root, 'rebase'), { create: true });
  await image(rebaseLayout, 'big', [runDir, tree]);
  await image(rebaseLayout, 'small', [runDir, small]);
  const run2 = join(root, 'run2');
  await mkdir(join(run2, 'etc'), { recursive: true });
  await writeFile(join(run2, 'etc', 'os-release'), 'ID=bench\nPATCH=1\n');
  await image(rebaseLayout, 'run2', [run2]);
  const newRun = await resolveImage(rebaseLayout, 'run2');
  const times: Record<string, number[]> = { big: [], small: [] };
  for (let i = 0; i < runs * 4; i++) {
    for (const tag of ['big', 'small'] as const) {
      const appImage = await resolveImage(rebaseLayout, tag);
      times[tag]!.push(await seconds(() => rebase({ app: appImage, appName: tag, newRun, newRunName: 'bench/run', newRunReference: 'bench/run@x', outputs: [{ store: rebaseLayout, tag: `${tag}-rebased`, name: tag }], force: false })));
    }
  }
  process.stdout.write(`\nrebase onto a new run image, median of ${runs * 4}\n`);
  process.stdout.write(`  app with ${Math.round(duBytes(tree) / 1e6)} MB of app layers: ${(med(times.big!) * 1000).toFixed(1)} ms\n`);
  process.stdout.write(`  app with 1 MB of app layers:   ${(med(times.small!) * 1000).toFixed(1)} ms\n`);
  process.stdout.write(`  ratio big / small: ${(med(times.big!) / med(times.small!)).toFixed(2)}x  (target: 1x within noise)\n`);
}
