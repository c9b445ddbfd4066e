import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EngineClient } from '../../oci/engine/client.js';
import { loadIntoEngine, openEngineImage } from '../../oci/engine/transfer.js';
import { StrataError } from '../../oci/errors.js';
import { resolveImage } from '../../oci/image.js';
import { openImage, outputsFor } from '../../oci/images.js';
import { OciLayout } from '../../oci/layout.js';
import { readAnalyzed } from '../../spec/analyzed.js';
import { Exit } from '../../spec/exit.js';
import { readGroupFile } from '../../spec/group.js';
import { readProjectMetadata } from '../../spec/projectmeta.js';
import { writeReport } from '../../spec/report.js';
import { exporterInputs, exportImage, saveCache, type KeptLayer } from '../export.js';
import { LABEL, parseLifecycleMetadata } from '../labels.js';
import { COMMON, execEnv, inLayers, LAUNCHER, numeric, PROCESS_TYPE, REGISTRY_PHASE, RUN_TOML, runImagesOf, STACK_TOML, type Phase } from './common.js';
import { createdTime, openCache, outputNames, storeOptions } from './images.js';

/** `exporter`: the app image from the layers dir on the run image, reusing the previous image's layers (spec §9). */
export const exporter: Phase = {
  images: true,
  refuseRoot: false,
  errorCode: Exit.ExportError,
  flags: [
    ...COMMON,
    ...REGISTRY_PHASE,
    { name: 'app', env: 'CNB_APP_DIR', kind: 'string', default: '/workspace' },
    { name: 'group', env: 'CNB_GROUP_PATH', kind: 'string', default: inLayers('group.toml') },
    { name: 'analyzed', env: 'CNB_ANALYZED_PATH', kind: 'string', default: inLayers('analyzed.toml') },
    RUN_TOML,
    STACK_TOML,
    LAUNCHER,
    { name: 'launcher-sbom', kind: 'string', default: '/cnb/lifecycle' },
    PROCESS_TYPE,
    { name: 'project-metadata', env: 'CNB_PROJECT_METADATA_PATH', kind: 'string', default: inLayers('project-metadata.toml') },
    { name: 'report', env: 'CNB_REPORT_PATH', kind: 'string', default: inLayers('report.toml') },
    { name: 'parallel', env: 'CNB_PARALLEL_EXPORT', kind: 'bool' },
    { name: 'extended', env: 'CNB_EXTENDED_DIR', kind: 'string' },
  ],
  async run(v, { api, env, log }) {
    const names = outputNames(v);
    const so = storeOptions(v);
    const group = await readGroupFile(v.str('group')!);
    const analyzed = await readAnalyzed(v.str('analyzed')!);
    const runRef = analyzed?.runImage?.reference;
    if (!runRef) throw new StrataError(`${v.str('analyzed')}: no run-image reference; run the analyzer first`, Exit.ExportError);
    const run = await openImage(runRef, so, log);
    if (!run) throw new StrataError(`run image ${runRef} not found`, Exit.ExportError);
    const cache = await openCache(v, log);
    // The cache takes the layers the export just made instead of tarring them again (not with -parallel).
    const keep = { dir: await mkdtemp(join(tmpdir(), 'strata-export-')), files: new Map<string, KeptLayer>() };
    const saveTheCache = async (): Promise<void> => {
      if (!cache) return;
      const saved = await saveCache({ group: group.group, layersDir: v.str('layers')!, cache, uid: numeric(v, 'uid'), gid: numeric(v, 'gid'), created: createdTime(env), log, kept: keep.files });
      if (saved) log.info(`Cache saved: ${saved.buildpacks.reduce((n, b) => n + Object.keys(b.layers).length, 0)} layer(s)`);
    };
    // -parallel: the cache is written while the image is; both only read the layer dirs.
    const caching = v.bool('parallel') ? saveTheCache() : undefined;
    caching?.catch(() => undefined); // awaited below; a failure is reported there, not as an unhandled rejection
    const exportWith = async (): Promise<void> => {
      const prevRef = analyzed.previousImage?.reference;
      const engine = v.bool('daemon') ? EngineClient.fromEnv(env) : undefined;
      // An engine trades whole tars, not blobs: in daemon mode a temporary layout holds the previous image and the
      // output, which is then loaded under every name.
      const fromEngine = engine && prevRef ? await openEngineImage(engine, prevRef).catch(() => undefined) : undefined;
      const staging = engine ? await OciLayout.open(await mkdtemp(join(tmpdir(), 'strata-daemon-')), { create: true }) : undefined;
      try {
        const prev = fromEngine ? { image: await resolveImage(fromEngine.store, fromEngine.id) } : prevRef ? await openImage(prevRef, so, log).catch(() => undefined) : undefined;
        const prevMd = prev ? parseLifecycleMetadata(prev.image.config.config?.Labels?.[LABEL.lifecycle]) : undefined;
        const result = await exportImage(
          exporterInputs({
            group: group.group,
            layersDir: v.str('layers')!,
            appDir: v.str('app')!,
            launcher: await readFile(v.str('launcher')!),
            run,
            ...(analyzed.runImage?.image ? { runName: analyzed.runImage.image } : {}),
            // With extensions in the group, a run image run.toml does not list was chosen by one: it is recorded by name.
            runImages: await runImagesOf(v, api).then((list) => (group.groupExtensions.length && analyzed.runImage?.image && !list.some((e) => [e.image, ...e.mirrors].includes(analyzed.runImage!.image!)) ? [] : list)),
            ...(prev ? { previous: { image: prev.image, ...(prevMd ? { metadata: prevMd } : {}) } } : {}),
            outputs: staging ? [{ store: staging, tag: 'export', name: 'export' }] : await outputsFor(names, true, so),
            uid: numeric(v, 'uid'),
            gid: numeric(v, 'gid'),
            platformApi: api,
            ...(v.str('process-type') ? { processType: v.str('process-type') } : {}),
            projectMetadata: await readProjectMetadata(v.str('project-metadata')!),
            execEnv: execEnv(env),
            created: createdTime(env),
            log,
            keep,
          }),
        );
        if (engine && staging) {
          let imageId = '';
          for (const name of names) imageId = await loadIntoEngine(staging, 'export', engine, name);
          await writeReport(v.str('report')!, { image: { tags: names, imageId } });
          for (const t of names) log.info(`Loaded ${t} into ${engine.description}`);
          log.info(`*** Image ID: ${imageId}`);
        } else {
          await writeReport(v.str('report')!, { image: { tags: result.tags, digest: result.digest, manifestSize: result.manifestSize } });
          for (const t of result.tags) log.info(`Saved ${t}`);
          log.info(`*** Digest: ${result.digest}`);
        }
        if (result.reused.length) log.info(`Reused ${result.reused.length} layer(s) from the previous image`);
        for (const u of result.untouched) log.info(`Layer ${u} is unchanged (same fingerprint): reused without reading it`);
      } finally {
        await fromEngine?.close();
        if (staging) await rm(staging.root, { recursive: true, force: true });
      }
      await (caching ?? saveTheCache());
    };
    try {
      await exportWith();
    } finally {
      // A failed export still waits for a parallel cache save, which reads the kept layers, before they go.
      await caching?.catch(() => undefined);
      await rm(keep.dir, { recursive: true, force: true });
    }
  },
};
