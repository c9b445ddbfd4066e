import { StrataError } from '../../oci/errors.js';
import { openImage, outputsFor, readers, resolveRunImage } from '../../oci/images.js';
import { Exit } from '../../spec/exit.js';
import { writeReport } from '../../spec/report.js';
import { LABEL, parseLifecycleMetadata } from '../labels.js';
import { rebase } from '../rebase.js';
import { COMMON, PREVIOUS_IMAGE, REGISTRY_PHASE, RUN_IMAGE, type Phase } from './common.js';
import { outputNames, storeOptions } from './images.js';

/** `rebaser`: the app image onto a new run image, writing only a config and a manifest (spec §10). */
export const rebaser: Phase = {
  images: true,
  refuseRoot: false,
  errorCode: Exit.RebaseError,
  flags: [...COMMON, ...REGISTRY_PHASE, RUN_IMAGE, PREVIOUS_IMAGE, { name: 'force', env: 'CNB_FORCE_REBASE', kind: 'bool' }, { name: 'report', env: 'CNB_REPORT_PATH', kind: 'string', default: 'report.toml' }],
  async run(v, { log }) {
    const names = outputNames(v);
    const so = storeOptions(v);
    const appName = v.str('previous-image') ?? names[0]!;
    const app = await openImage(appName, so, log);
    if (!app) throw new StrataError(`app image ${appName} not found`, Exit.RebaseError);
    const md = parseLifecycleMetadata(app.image.config.config?.Labels?.[LABEL.lifecycle]);
    const runName = v.str('run-image') ?? md?.runImage?.image ?? md?.stack?.runImage?.image;
    if (!runName) throw new StrataError(`${appName} records no run image; give -run-image`, Exit.InvalidArgs);
    const mirrors = v.str('run-image') ? [] : (md?.runImage?.mirrors ?? md?.stack?.runImage?.mirrors ?? []);
    const run = v.str('run-image') ? await openImage(runName, so, log) : await resolveRunImage([{ image: runName, mirrors }], appName, readers.remote(so, log), log);
    if (!run) throw new StrataError(`run image ${runName} not found`, Exit.RebaseError);
    const started = Date.now();
    const result = await rebase({ app: app.image, appName, newRun: run.image, newRunName: run.name, newRunReference: run.reference, outputs: await outputsFor(names, true, so), force: v.bool('force') });
    await writeReport(v.str('report')!, { image: { tags: result.tags, digest: result.digest, manifestSize: result.manifestSize } });
    for (const t of result.tags) log.info(`Rebased ${t} onto ${run.reference} in ${Date.now() - started} ms`);
    log.info(`*** Digest: ${result.digest}`);
  },
};
