import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { pathExists } from '../../oci/fsutil.js';
import { Exit } from '../../spec/exit.js';
import { writeGroupFile } from '../../spec/group.js';
import { readOrderFile } from '../../spec/order.js';
import { writePlanFile } from '../../spec/plan.js';
import { readSystemFile } from '../../spec/system.js';
import { StrataError } from '../../oci/errors.js';
import { readAnalyzed, writeAnalyzed } from '../../spec/analyzed.js';
import { Detector } from '../detect.js';
import { generate, type GenerateResult } from '../generate.js';
import type { Logger } from '../log.js';
import { BUILDPACK_PHASE, COMMON, inLayers, RUN_TOML, runInputs, type Phase } from './common.js';

/**
 * What generation decided for the images, into analyzed.toml (platform spec, detector): a run image an extension
 * switched to (its digest and target cleared, for the restorer to resolve) and whether either image is extended.
 */
async function recordRunImage(path: string, g: GenerateResult, log: Logger): Promise<void> {
  const analyzed = (await readAnalyzed(path)) ?? {};
  const current = analyzed.runImage?.image;
  if (g.run.image && g.run.image !== current) {
    log.info(`Run image switched by an extension: ${g.run.image}`);
    analyzed.runImage = { reference: g.run.image, image: g.run.image, ...(g.run.extend ? { extend: true } : {}) };
  } else if (g.run.extend && analyzed.runImage) {
    analyzed.runImage.extend = true;
  }
  await writeAnalyzed(path, analyzed);
}

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
    if (order.orderExtensions.length && !api.atLeast('0.10')) throw new StrataError(`${orderPath}: [[order-extensions]] needs Platform API 0.10 or newer (this is ${api})`, Exit.DetectError);
    const inputs = await runInputs(v, ctx);
    const d = new Detector({ order: order.order, orderExtensions: order.orderExtensions, extensionsDir: v.str('extensions')!, ...(system ? { system } : {}), scratchDir: v.str('layers')!, ...inputs });
    const out = await d.run();
    let plan = out.plan;
    if (out.groupExtensions.length) {
      const g = await generate({ ...inputs, extensionsDir: v.str('extensions')!, extensions: out.groupExtensions, plan, generatedDir: v.str('generated')!, scratchDir: v.str('layers')! });
      plan = g.plan;
      await recordRunImage(v.str('analyzed')!, g, ctx.log);
    }
    await writeGroupFile(v.str('group')!, { group: out.group, groupExtensions: out.groupExtensions });
    await writePlanFile(v.str('plan')!, plan);
  },
};
