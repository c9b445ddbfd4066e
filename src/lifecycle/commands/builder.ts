import { mkdir } from 'node:fs/promises';
import { Exit } from '../../spec/exit.js';
import { readGroupFile } from '../../spec/group.js';
import { readPlanFile } from '../../spec/plan.js';
import { build } from '../build.js';
import { BUILDPACK_PHASE, COMMON, runInputs, type Phase } from './common.js';

/** `builder`: each buildpack of the group builds, in order, into the layers dir (spec §8). */
export const builder: Phase = {
  refuseRoot: true,
  errorCode: Exit.BuildError,
  flags: [...COMMON, ...BUILDPACK_PHASE],
  async run(v, ctx) {
    const group = await readGroupFile(v.str('group')!);
    const plan = await readPlanFile(v.str('plan')!);
    await mkdir(v.str('layers')!, { recursive: true });
    await build({ group: group.group, groupExtensions: group.groupExtensions, plan: plan.entries, layersDir: v.str('layers')!, ...(await runInputs(v, ctx)) });
  },
};
