import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { ConfinedDir, copyTreeOut } from '../oci/confined.js';
import { StrataError, errorMessage } from '../oci/errors.js';
import { pathExists } from '../oci/fsutil.js';
import { descriptorDir, escapeId, readDescriptor } from '../spec/buildpack.js';
import { chooseRunImage, parseDockerfile, type Dockerfile, type RunImageChoice } from '../spec/dockerfile.js';
import { Exit } from '../spec/exit.js';
import { parseExtendConfig } from '../spec/extendconfig.js';
import type { GroupEntry } from '../spec/group.js';
import { writeBuildpackPlan, type PlanFile } from '../spec/plan.js';
import { parseToml } from '../spec/toml.js';
import { buildpackEnv, targetEnv, type BuildpackRunInputs } from './detect.js';
import { buildpackBaseEnv } from './env.js';
import { runProgram } from './exec.js';

/**
 * Generation (image extension spec): each extension of the detected group runs `bin/generate` (or offers its
 * `generate/` dir) and may write `build.Dockerfile`, `run.Dockerfile` and `extend-config.toml`. What it wrote is
 * extension output, so it is read through the confined reader, checked against the spec's Dockerfile rules and
 * copied to `<generated>/<escaped id>/`. The run.Dockerfiles decide the run image (platform spec, detector).
 */

export interface GenerateInputs extends BuildpackRunInputs {
  extensionsDir: string;
  extensions: GroupEntry[];
  plan: PlanFile;
  generatedDir: string;
  /** Where the extensions' plans and outputs are made (the layers dir: a build image may have no /tmp). */
  scratchDir: string;
}

export interface GeneratedDockerfile {
  extension: string;
  kind: 'build' | 'run';
  dockerfile: Dockerfile;
}

export interface GenerateResult {
  dockerfiles: GeneratedDockerfile[];
  run: RunImageChoice;
  /** The build image gets Dockerfiles applied. */
  extendBuild: boolean;
  /** The plan left for the buildpacks: what the extensions provided is theirs to satisfy, not a buildpack's. */
  plan: PlanFile;
}

const FILES = ['build.Dockerfile', 'run.Dockerfile', 'extend-config.toml'] as const;
const CONTEXTS = ['context', 'context.build', 'context.run'] as const;

export async function generate(i: GenerateInputs): Promise<GenerateResult> {
  const dockerfiles: GeneratedDockerfile[] = [];
  await mkdir(i.generatedDir, { recursive: true });
  const tmp = await mkdtemp(join(i.scratchDir, '.strata-generate-'));
  try {
    for (const ext of i.extensions) {
      const name = `${ext.id}@${ext.version}`;
      const desc = await readDescriptor(descriptorDir(i.extensionsDir, ext.id, ext.version), 'extension');
      const work = join(tmp, escapeId(ext.id));
      const output = join(work, 'output');
      await mkdir(output, { recursive: true });
      const planPath = join(work, 'plan.toml');
      const mine = i.plan.entries.filter((e) => e.providers.some((p) => p.extension && p.id === ext.id));
      await writeBuildpackPlan(planPath, { entries: mine.flatMap((e) => e.requires.map((r) => ({ name: r.name, metadata: r.metadata }))) });
      let from = output;
      if (await pathExists(join(desc.dir, 'bin', 'generate'))) {
        const env = await buildpackEnv(buildpackBaseEnv(i.hostEnv), desc, i.platformDir, i.buildConfigDir);
        Object.assign(env, { CNB_EXTENSION_DIR: desc.dir, CNB_OUTPUT_DIR: output, CNB_PLATFORM_DIR: i.platformDir, CNB_BP_PLAN_PATH: planPath });
        targetEnv(env, desc.apiVersion, i.target, i.execEnv);
        i.log.info(`Running generate for extension ${name}`);
        const r = await runProgram(join(desc.dir, 'bin', 'generate'), [], { cwd: i.appDir, env, stream: true });
        if (r.startError) throw new StrataError(`extension ${name}: ${r.startError}`, Exit.GenerateFailed);
        if (r.code !== 0) throw new StrataError(`extension ${name}: bin/generate exited ${r.code}`, Exit.GenerateFailed);
      } else {
        // An extension without bin/generate offers its generate/ dir as what it generated.
        from = join(desc.dir, 'generate');
        if (!(await pathExists(from))) continue;
      }
      try {
        ConfinedDir.with(from, (src) => {
          const texts = Object.fromEntries(FILES.map((f) => [f, src.readText(f, 1 << 20)]));
          for (const kind of ['build', 'run'] as const) {
            const text = texts[`${kind}.Dockerfile`];
            if (text !== undefined) dockerfiles.push({ extension: ext.id, kind, dockerfile: parseDockerfile(text, `${name} ${kind}.Dockerfile`, kind) });
          }
          if (texts['extend-config.toml'] !== undefined) parseExtendConfig(parseToml(texts['extend-config.toml'], `${name} extend-config.toml`), `${name} extend-config.toml`);
          ConfinedDir.with(i.generatedDir, (g) => {
            g.remove(escapeId(ext.id));
            g.mkdirp(escapeId(ext.id));
            for (const f of FILES) if (texts[f] !== undefined) g.writeFile(`${escapeId(ext.id)}/${f}`, texts[f]);
          });
          // The build contexts COPY and ADD read from: one for both images, or one for each (spec), links left out.
          const contexts = CONTEXTS.filter((c) => src.isDirectory(c));
          if (contexts.includes('context') && contexts.length > 1) throw new StrataError('context must not be given together with context.build or context.run');
          for (const c of contexts) copyTreeOut(src, c, join(i.generatedDir, escapeId(ext.id), c), { links: false });
        });
      } catch (err) {
        throw new StrataError(`extension ${name}: ${errorMessage(err)}`, Exit.GenerateError, { cause: err });
      }
    }
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
  const runs = dockerfiles.filter((d) => d.kind === 'run');
  const run = chooseRunImage(runs.map((d) => d.dockerfile));
  // A run.Dockerfile a later switch makes moot is kept as `.ignore`, as the reference lifecycle keeps it.
  ConfinedDir.with(i.generatedDir, (g) => {
    for (const n of run.ignored) g.rename(`${escapeId(runs[n]!.extension)}/run.Dockerfile`, `${escapeId(runs[n]!.extension)}/run.Dockerfile.ignore`);
  });
  const provided = new Set(i.extensions.map((e) => e.id));
  const plan = { entries: i.plan.entries.filter((e) => !e.providers.some((p) => p.extension && provided.has(p.id))) };
  return { dockerfiles, run, extendBuild: dockerfiles.some((d) => d.kind === 'build'), plan };
}
