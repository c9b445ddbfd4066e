import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { pathExists } from '../../oci/fsutil.js';
import { Exit } from '../../spec/exit.js';
import { writeGroupFile } from '../../spec/group.js';
import { readOrderFile } from '../../spec/order.js';
import { writePlanFile } from '../../spec/plan.js';
import { readSystemFile } from '../../spec/system.js';
import { Detector } from '../detect.js';
import { BUILDPACK_PHASE, COMMON, inLayers, RUN_TOML, runInputs, type Phase } from './common.js';

/** `detector`: the order's groups tried in turn; the first that passes into group.toml and plan.toml (spec §5). */
export const detector: Phase = {
  refuseRoot: true,
  errorCode: Exit.DetectError,
  flags: [
    ...COMMON,
    ...BUILDPACK_PHASE,
    { name: 'order', env: 'CNB_ORDER_PATH', kind: 'string' },
    { name: 'system', env: 'CNB_SYSTEM_PATH', kind: 'string', default: '/cnb/system.toml' },
    { name: 'extensions', env: 'CNB_EXTENSIONS_DIR', kind: 'string', default: '/cnb/extensions' },
    RUN_TOML,
    { name: 'generated', env: 'CNB_GENERATED_DIR', kind: 'string', default: inLayers('generated') },
  ],
  async run(v, ctx) {
    const { api } = ctx;
    const layersOrder = join(v.str('layers')!, 'order.toml');
    const orderPath = v.str('order') ?? ((await pathExists(layersOrder)) ? layersOrder : '/cnb/order.toml');
    const order = await readOrderFile(orderPath);
    const system = api.atLeast('0.15') ? await readSystemFile(v.str('system')!) : undefined;
    await mkdir(v.str('layers')!, { recursive: true });
    const d = new Detector({ order: order.order, ...(system ? { system } : {}), scratchDir: v.str('layers')!, ...(await runInputs(v, ctx)) });
    const out = await d.run();
    await writeGroupFile(v.str('group')!, { group: out.group, groupExtensions: [] });
    await writePlanFile(v.str('plan')!, out.plan);
  },
};
