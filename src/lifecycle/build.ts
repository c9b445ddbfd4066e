import { copyFile, mkdir, mkdtemp, readdir, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { StrataError } from '../oci/errors.js';
import { SBOM_MEDIA_TYPES, descriptorDir, escapeId, readDescriptor, type BuildpackDescriptor } from '../spec/buildpack.js';
import { parseBuildToml } from '../spec/buildtoml.js';
import type { GroupEntry } from '../spec/group.js';
import { parseLaunch, type Label, type Slice } from '../spec/launch.js';
import { writeMetadata, type BuildMetadata, type MetadataProcess } from '../spec/metadata.js';
import { writeBuildpackPlan, type PlanEntry } from '../spec/plan.js';
import { readToml } from '../spec/toml.js';
import { LayersDir, type BuiltLayer } from './layersdir.js';
import { buildpackEnv, targetEnv, type BuildpackRunInputs } from './detect.js';
import { applyEnvDir, applyLayerRoot, buildpackBaseEnv } from './env.js';
import { runProgram } from './exec.js';
import { Exit } from '../spec/exit.js';
import { phaseError } from './exit.js';

export interface BuilderInputs extends BuildpackRunInputs {
  group: GroupEntry[];
  /** The extensions that took part, for the build metadata (spec: `extensions` beside `buildpacks`). */
  groupExtensions?: GroupEntry[];
  plan: PlanEntry[];
  layersDir: string;
}

/** Files a build may leave at the top of `<layers>` besides buildpack dirs. */
const LAYERS_ROOT_FILES = new Set(['analyzed.toml', 'group.toml', 'plan.toml', 'order.toml', 'project-metadata.toml', 'report.toml', 'config', 'sbom', 'generated', 'extended']);

const SBOM_EXTS = Object.values(SBOM_MEDIA_TYPES);

/**
 * Runs each group buildpack's `bin/build` in order (spec §8) and writes `<layers>/config/metadata.toml`. Layers a
 * buildpack marks `build = true` shape the environment of the buildpacks after it, never its own.
 */
export async function build(inputs: BuilderInputs): Promise<BuildMetadata> {
  const { layersDir, log } = inputs;
  await rm(join(layersDir, 'sbom'), { recursive: true, force: true });
  // Plan files live under the layers dir: a build image need not have a writable /tmp.
  const tmp = await mkdtemp(join(layersDir, '.strata-build-'));
  const env = buildpackBaseEnv(inputs.hostEnv);
  let remaining = inputs.plan;
  const processes = new Map<string, MetadataProcess>();
  let defaultProcess: string | undefined;
  const slices: Slice[] = [];
  const labels: Label[] = [];
  try {
    for (const entry of inputs.group) {
      const desc = await readDescriptor(descriptorDir(inputs.buildpacksDir, entry.id, entry.version)).catch((e: unknown) => {
        throw phaseError(e, Exit.BuildError);
      });
      const who = `${desc.id}@${desc.version}`;
      const bpLayers = join(layersDir, escapeId(desc.id));
      await mkdir(bpLayers, { recursive: true });
      const mine = remaining.filter((e) => e.providers.some((p) => p.id === desc.id && !p.extension));
      const bpPlan = { entries: mine.flatMap((e) => e.requires.map((r) => ({ name: r.name, metadata: r.metadata }))) };
      const planPath = join(tmp, escapeId(desc.id), 'plan.toml');
      await mkdir(join(tmp, escapeId(desc.id)), { recursive: true });
      await writeBuildpackPlan(planPath, bpPlan);

      const bpEnv = await buildpackEnv(env, desc, inputs.platformDir, inputs.buildConfigDir);
      bpEnv.CNB_BUILDPACK_DIR = desc.dir;
      if (desc.apiVersion.atLeast('0.8')) {
        bpEnv.CNB_LAYERS_DIR = bpLayers;
        bpEnv.CNB_PLATFORM_DIR = inputs.platformDir;
        bpEnv.CNB_BP_PLAN_PATH = planPath;
      }
      targetEnv(bpEnv, desc.apiVersion, inputs.target, inputs.execEnv);

      const before = new Set(await readdir(layersDir));
      log.info(`Running build for buildpack ${who}`);
      const result = await runProgram(join(desc.dir, 'bin', 'build'), [bpLayers, inputs.platformDir, planPath], { cwd: inputs.appDir, env: bpEnv, stream: true });
      if (result.startError) throw new StrataError(`buildpack ${who}: ${result.startError}`, Exit.BuildError);
      if (result.code !== 0) throw new StrataError(`buildpack ${who}: bin/build exited with status ${result.code}`, Exit.BuildpackBuildFailed);
      for (const name of await readdir(layersDir)) {
        if (!before.has(name) && !LAYERS_ROOT_FILES.has(name) && name !== escapeId(desc.id)) {
          throw new StrataError(`buildpack ${who} wrote ${join(layersDir, name)}, outside its layers dir ${bpLayers}`, Exit.BuildError);
        }
      }

      try {
        const layers = await LayersDir.with(layersDir, async (d) => d.layers(desc.id));
        for (const l of layers) {
          if (l.meta.warning) log.warn(l.meta.warning);
          if (l.meta.types.launch || l.meta.types.build || l.meta.types.cache) continue;
          // Neither exported, cached nor seen by later buildpacks: renamed out of the way.
          const ignored = `${l.dir}.ignore`;
          await rm(ignored, { recursive: true, force: true });
          await rename(l.dir, ignored).catch((e: NodeJS.ErrnoException) => {
            if (e.code !== 'ENOENT') throw e;
          });
        }
        // Layers ascending by name, each prepending: the last-named layer ends up first on PATH (the reference's order).
        for (const l of layers.filter((x) => x.meta.types.build)) {
          await applyLayerRoot(env, l.dir);
          await applyEnvDir(env, join(l.dir, 'env'));
          await applyEnvDir(env, join(l.dir, 'env.build'));
        }

        const buildToml = await readToml(join(bpLayers, 'build.toml'));
        const unmet = buildToml ? parseBuildToml(buildToml, join(bpLayers, 'build.toml')).unmet : [];
        const planned = new Set(bpPlan.entries.map((e) => e.name));
        for (const u of unmet) if (!planned.has(u)) throw new StrataError(`buildpack ${who}: build.toml lists unmet "${u}", which is not in its buildpack plan`);
        const met = new Set([...planned].filter((n) => !unmet.includes(n)));
        remaining = remaining.filter((e) => !e.requires.some((r) => met.has(r.name)));

        const launchToml = await readToml(join(bpLayers, 'launch.toml'));
        if (launchToml) {
          const launch = parseLaunch(launchToml, join(bpLayers, 'launch.toml'), desc.apiVersion);
          for (const p of launch.processes) {
            const wasDefault = defaultProcess === p.type;
            processes.set(p.type, { type: p.type, command: p.command, args: p.args, direct: p.direct, buildpackId: desc.id, ...(p.workingDir ? { workingDir: p.workingDir } : {}), execEnv: p.execEnv ?? ['*'] });
            if (p.default) defaultProcess = p.type;
            else if (wasDefault) {
              log.warn(`buildpack ${who} redefined the default process "${p.type}" without default = true; there is no default process now`);
              defaultProcess = undefined;
            }
          }
          slices.push(...launch.slices);
          labels.push(...launch.labels);
        }
        if (inputs.platformApi.atLeast('0.8')) await copySboms(desc, bpLayers, layersDir, layers);
      } catch (err) {
        const message = err instanceof Error ? err.message : String(err);
        if (message.startsWith(`buildpack ${who}`)) throw phaseError(err, Exit.BuildError);
        throw new StrataError(`buildpack ${who}: ${message}`, Exit.BuildError, { cause: err });
      }
    }
    const md: BuildMetadata = {
      buildpacks: inputs.group,
      extensions: inputs.groupExtensions ?? [],
      processes: [...processes.values()].sort((a, b) => (a.type < b.type ? -1 : a.type > b.type ? 1 : 0)),
      slices,
      labels,
      ...(defaultProcess ? { defaultProcess } : {}),
    };
    await mkdir(join(layersDir, 'config'), { recursive: true });
    await writeMetadata(join(layersDir, 'config', 'metadata.toml'), md, inputs.platformApi);
    return md;
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

/**
 * Copies `{launch,build,<layer>}.sbom.<ext>` into `<layers>/sbom/<kind>/<bp>/[<layer>/]sbom.<ext>`: launch layers'
 * SBOMs under launch, the others under build, and cache layers' also under cache.
 */
async function copySboms(desc: BuildpackDescriptor, bpLayers: string, layersDir: string, layers: BuiltLayer[]): Promise<void> {
  const byName = new Map(layers.map((l) => [l.name, l]));
  for (const file of (await readdir(bpLayers)).sort()) {
    const m = /^([^.]+)\.sbom\.(.+)$/.exec(file);
    if (!m) continue;
    const [, owner, ext] = m as unknown as [string, string, string];
    if (!(await stat(join(bpLayers, file))).isFile()) continue;
    const mediaType = Object.entries(SBOM_MEDIA_TYPES).find(([, e]) => e === ext)?.[0];
    if (!mediaType) throw new StrataError(`SBOM file ${file} has an unknown extension; use one of ${SBOM_EXTS.map((e) => `.sbom.${e}`).join(', ')}`);
    if (!desc.sbomFormats.includes(mediaType)) throw new StrataError(`SBOM file ${file} is ${mediaType}, which buildpack.toml does not declare in sbom-formats`);
    const kinds: string[] = [];
    let sub = '';
    if (owner === 'launch') kinds.push('launch');
    else if (owner === 'build') kinds.push('build');
    else {
      const layer = byName.get(owner);
      if (!layer) continue;
      sub = owner;
      kinds.push(layer.meta.types.launch ? 'launch' : 'build');
      if (layer.meta.types.cache) kinds.push('cache');
    }
    for (const kind of kinds) {
      const dir = join(layersDir, 'sbom', kind, escapeId(desc.id), sub);
      await mkdir(dir, { recursive: true });
      await copyFile(join(bpLayers, file), join(dir, `sbom.${ext}`));
    }
  }
}
