import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EngineClient } from '../../oci/engine/client.js';
import { loadIntoEngine, openEngineImage } from '../../oci/engine/transfer.js';
import { StrataError, errorMessage } from '../../oci/errors.js';
import { resolveImage } from '../../oci/image.js';
import { checkWriteAccess, outputsFor, readers, type ImageReader } from '../../oci/images.js';
import { OciLayout } from '../../oci/layout.js';
import { Exit } from '../../spec/exit.js';
import { readProjectMetadata } from '../../spec/projectmeta.js';
import { writeReport } from '../../spec/report.js';
import { PROJECT_ROOT } from '../../version.js';
import { buildpackPhaseEnv } from '../env.js';
import { runSequence } from '../sequence.js';
import {
  BUILDPACK_PHASE,
  COMMON,
  execEnv,
  LAUNCHER,
  numeric,
  PREVIOUS_IMAGE,
  PROCESS_TYPE,
  REGISTRY_PHASE,
  RUN_IMAGE,
  RUN_TOML,
  runImagesOf,
  STACK_TOML,
  type Phase,
} from './common.js';
import { createdTime, openCache, outputNames, storeOptions } from './images.js';

/**
 * Runs a buildpack phase as a child process of our own entry, as the build user when we are root (as the reference
 * creator drops privileges before running buildpacks), with an environment that holds no credentials.
 */
function runChildPhase(phase: string, args: string[], env: NodeJS.ProcessEnv, user: { uid: number; gid: number }): Promise<number> {
  const entry = join(PROJECT_ROOT, 'bin', 'lifecycle');
  const ids = process.getuid?.() === 0 ? { uid: user.uid, gid: user.gid } : {};
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [entry, phase, ...args], { env, stdio: 'inherit', ...ids });
    child.on('error', () => resolve(Exit.Generic));
    child.on('close', (code) => resolve(code ?? Exit.Generic));
  });
}

/** In daemon mode the previous image comes out of the engine (its ID is its reference), into a temporary layout. */
function engineReader(engine: EngineClient, cleanups: (() => Promise<void>)[]): ImageReader {
  return async (name) => {
    const found = await engine.inspect(name);
    if (!found) return undefined;
    const opened = await openEngineImage(engine, name);
    cleanups.push(opened.close);
    return { name, image: await resolveImage(opened.store, opened.id), reference: found.Id, local: false };
  };
}

/**
 * `creator`: the whole build in one command, through the same phase sequence a platform build runs — analysis,
 * restore and export here, detection and build in children as the build user.
 */
export const creator: Phase = {
  images: true,
  refuseRoot: false,
  errorCode: Exit.Generic,
  flags: [
    ...COMMON,
    ...BUILDPACK_PHASE,
    ...REGISTRY_PHASE,
    { name: 'order', env: 'CNB_ORDER_PATH', kind: 'string' },
    RUN_TOML,
    STACK_TOML,
    RUN_IMAGE,
    PREVIOUS_IMAGE,
    LAUNCHER,
    PROCESS_TYPE,
    { name: 'project-metadata', env: 'CNB_PROJECT_METADATA_PATH', kind: 'string' },
    { name: 'report', env: 'CNB_REPORT_PATH', kind: 'string' },
    { name: 'skip-restore', env: 'CNB_SKIP_RESTORE', kind: 'bool' },
  ],
  async run(v, { api, env, log }) {
    const names = outputNames(v);
    const so = storeOptions(v);
    const layers = v.str('layers')!;
    const uid = numeric(v, 'uid');
    const gid = numeric(v, 'gid');
    const engine = v.bool('daemon') ? EngineClient.fromEnv(env) : undefined;
    const cleanups: (() => Promise<void>)[] = [];
    // An engine trades whole tars: the image is made in a temporary layout and then loaded under every name.
    const staging = engine ? await OciLayout.open(await mkdtemp(join(tmpdir(), 'strata-daemon-')), { create: true }) : undefined;
    const keepDir = await mkdtemp(join(tmpdir(), 'strata-export-'));
    try {
      const outputs = staging ? [{ store: staging, tag: 'export', name: 'export' }] : await outputsFor(names, true, so);
      if (!staging) {
        // Access first: without credentials, "no write access" says more than a failed read of the previous image.
        try {
          await checkWriteAccess(await outputsFor(names, true, so));
        } catch (err) {
          throw new StrataError(errorMessage(err), Exit.AnalyzeError, { cause: err });
        }
      }
      const pass = (...flags: string[]): string[] => flags.flatMap((f) => (v.str(f) !== undefined ? [`-${f}`, v.str(f)!] : []));
      const buildpackSide = pass('layers', 'log-level', 'analyzed', 'group', 'app', 'platform', 'buildpacks', 'build-config', 'plan');
      const cache = await openCache(v, log);
      const remote = readers.remote(so, log);
      const result = await runSequence(
        {
          platformApi: api,
          layersDir: layers,
          appDir: v.str('app')!,
          analyze: {
            output: names[0]!,
            ...(v.str('previous-image') ? { previous: v.str('previous-image') } : {}),
            ...(v.str('run-image') ? { runImage: v.str('run-image') } : {}),
            runImages: await runImagesOf(v, api),
            readPrevious: engine ? engineReader(engine, cleanups) : remote,
            readRun: remote,
          },
          ...(cache ? { cache } : {}),
          skipRestore: v.bool('skip-restore'),
          launcher: () => readFile(v.str('launcher')!),
          outputs,
          uid,
          gid,
          ...(v.str('process-type') ? { processType: v.str('process-type') } : {}),
          projectMetadata: await readProjectMetadata(v.str('project-metadata') ?? join(layers, 'project-metadata.toml')),
          execEnv: execEnv(env),
          created: createdTime(env),
          keepDir,
          log,
          phase: (name) => log.info(`===> ${name}`),
        },
        (phase) => runChildPhase(phase, [...buildpackSide, ...(phase === 'detector' ? pass('order', 'run') : [])], buildpackPhaseEnv(env), { uid, gid }),
      );
      const report = v.str('report') ?? join(layers, 'report.toml');
      if (engine && staging) {
        let imageId = '';
        for (const name of names) imageId = await loadIntoEngine(staging, 'export', engine, name);
        await writeReport(report, { image: { tags: names, imageId } });
        for (const t of names) log.info(`Loaded ${t} into ${engine.description}`);
        log.info(`*** Image ID: ${imageId}`);
      } else {
        await writeReport(report, { image: { tags: result.exported.tags, digest: result.exported.digest, manifestSize: result.exported.manifestSize } });
        log.info(`*** Digest: ${result.exported.digest}`);
      }
    } finally {
      for (const c of cleanups) await c().catch(() => undefined);
      if (staging) await rm(staging.root, { recursive: true, force: true });
      await rm(keepDir, { recursive: true, force: true });
    }
  },
};
