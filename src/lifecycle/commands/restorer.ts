import { readers } from '../../oci/images.js';
import { readAnalyzed, writeAnalyzed } from '../../spec/analyzed.js';
import { resolveRunImage } from '../analyze.js';
import { Exit } from '../../spec/exit.js';
import { readGroupFile } from '../../spec/group.js';
import { parseLifecycleMetadata } from '../labels.js';
import { restore } from '../restore.js';
import { COMMON, inLayers, REGISTRY_PHASE, type Phase } from './common.js';
import { openCache, storeOptions } from './images.js';

/** `restorer`: store.toml and layer metadata from the previous image, layer contents from the cache (spec §7). */
export const restorer: Phase = {
  refuseRoot: false,
  errorCode: Exit.RestoreError,
  flags: [
    ...COMMON,
    ...REGISTRY_PHASE,
    { name: 'group', env: 'CNB_GROUP_PATH', kind: 'string', default: inLayers('group.toml') },
    { name: 'analyzed', env: 'CNB_ANALYZED_PATH', kind: 'string', default: inLayers('analyzed.toml') },
    { name: 'skip-layers', env: 'CNB_SKIP_LAYERS', kind: 'bool' },
    { name: 'build-image', env: 'CNB_BUILD_IMAGE', kind: 'string' },
  ],
  async run(v, { api, log }) {
    const group = await readGroupFile(v.str('group')!);
    const analyzed = await readAnalyzed(v.str('analyzed')!);
    if (!analyzed) log.warn(`${v.str('analyzed')} not found; restoring from the cache only`);
    // A run image an extension switched to is named only: its digest and target are found now (Platform API 0.12+).
    if (analyzed && api.atLeast('0.12') && (await resolveRunImage(analyzed, readers.remote(storeOptions(v), log)))) await writeAnalyzed(v.str('analyzed')!, analyzed);
    const previous = analyzed?.metadata ? parseLifecycleMetadata(JSON.stringify(analyzed.metadata)) : undefined;
    const cache = await openCache(v, log);
    const r = await restore({ group: group.group, layersDir: v.str('layers')!, ...(previous ? { previous } : {}), ...(cache ? { cache } : {}), platformApi: api, skipLayers: v.bool('skip-layers'), log });
    for (const l of r.restored) log.info(`Restored layer ${l} from the cache`);
    for (const l of r.removed) log.info(`Removed layer ${l}: the cache holds a different version`);
  },
};
