import { EngineClient } from '../../oci/engine/client.js';
import { checkWriteAccess, outputsFor, readers } from '../../oci/images.js';
import { StrataError, errorMessage } from '../../oci/errors.js';
import { writeAnalyzed } from '../../spec/analyzed.js';
import { Exit } from '../../spec/exit.js';
import { analyze } from '../analyze.js';
import { extractSbomLayer } from '../sbom.js';
import { COMMON, inLayers, PREVIOUS_IMAGE, REGISTRY_PHASE, RUN_IMAGE, RUN_TOML, runImagesOf, STACK_TOML, type Phase } from './common.js';
import { outputNames, storeOptions } from './images.js';

/** `analyzer`: the previous image and the run image into analyzed.toml (spec §6). */
export const analyzer: Phase = {
  images: true,
  refuseRoot: false,
  errorCode: Exit.AnalyzeError,
  flags: [
    ...COMMON,
    ...REGISTRY_PHASE,
    { name: 'analyzed', env: 'CNB_ANALYZED_PATH', kind: 'string', default: inLayers('analyzed.toml') },
    RUN_TOML,
    STACK_TOML,
    RUN_IMAGE,
    PREVIOUS_IMAGE,
    { name: 'skip-layers', env: 'CNB_SKIP_LAYERS', kind: 'bool' },
    { name: 'group', env: 'CNB_GROUP_PATH', kind: 'string', default: inLayers('group.toml') },
  ],
  async run(v, { api, env, log }) {
    const names = outputNames(v);
    const so = storeOptions(v);
    const runImages = await runImagesOf(v, api);
    // Access first: without credentials, "no write access" says more than a failed read of the previous image.
    if (!v.bool('daemon')) {
      try {
        await checkWriteAccess(await outputsFor(names, true, so));
      } catch (err) {
        throw new StrataError(errorMessage(err), Exit.AnalyzeError, { cause: err });
      }
    }
    const read = readers.remote(so, log);
    const result = await analyze({ output: names[0]!, ...(v.str('previous-image') ? { previous: v.str('previous-image') } : {}), ...(v.str('run-image') ? { runImage: v.str('run-image') } : {}), runImages, readPrevious: read, readRun: read, ...(v.bool('daemon') ? { engine: EngineClient.fromEnv(env) } : {}), log });
    await writeAnalyzed(v.str('analyzed')!, result.analyzed);
    // The previous image's SBOMs come back to disk so reused layers keep theirs (the restorer puts them in place).
    const sbomSha = result.previousMetadata?.sbom?.sha;
    if (api.atLeast('0.8') && !v.bool('skip-layers') && result.previous && sbomSha) await extractSbomLayer(result.previous.image, sbomSha, result.previous.name, log, v.str('layers')!);
    log.info(result.previous ? `Previous image ${result.previous.reference}` : 'No previous image');
    log.info(`Run image ${result.run.reference}`);
  },
};
