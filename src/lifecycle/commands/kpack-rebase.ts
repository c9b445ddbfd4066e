import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { StrataError, errorMessage } from '../../oci/errors.js';
import { openImage, outputsFor } from '../../oci/images.js';
import { authKeyHost, dockerConfigLogins, type Credential } from '../../oci/registry/credentials.js';
import type { RegistryLogins, StoreOptions } from '../../oci/target.js';
import { Exit } from '../../spec/exit.js';
import { writeReport } from '../../spec/report.js';
import { rebase } from '../rebase.js';
import type { Phase } from './common.js';

/**
 * kpack's rebase container, `/cnb/process/rebase --run-image R --last-built-image L --report P [secrets] TAG…`, as
 * kpack's rebase pod runs it: the last built image onto the run image, under every tag. Registry credentials come
 * from the Secrets kpack mounts under /var/build-secrets/<name> and names in `-basic-docker=<name>=<registry>`,
 * `-dockerconfig=<name>`, `-dockercfg=<name>` and `-imagepull=<name>`. No CNB_PLATFORM_API: kpack sets none.
 */

const SECRETS_DIR = '/var/build-secrets';

async function secretFile(name: string, file: string, root: string): Promise<string | undefined> {
  if (!/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(name)) throw new StrataError(`secret "${name}" is not a Kubernetes name`, Exit.InvalidArgs);
  try {
    return await readFile(join(root, name, file), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new StrataError(`reading secret ${name}: ${errorMessage(err)}`);
  }
}

/** The logins kpack's secret arguments give; the first for a registry wins, as in kpack. */
export async function kpackLogins(a: { basicDocker: string[]; dockerconfig: string[]; dockercfg: string[]; imagepull: string[] }, root = SECRETS_DIR): Promise<RegistryLogins> {
  const found: { registry: string; credential: Credential }[] = [];
  for (const arg of a.basicDocker) {
    const eq = arg.indexOf('=');
    if (eq < 1) throw new StrataError(`-basic-docker "${arg}": expected <secret>=<registry>`, Exit.InvalidArgs);
    const name = arg.slice(0, eq);
    const username = await secretFile(name, 'username', root);
    const password = await secretFile(name, 'password', root);
    if (username === undefined || password === undefined) throw new StrataError(`secret ${name}: a basic-auth secret needs username and password files in ${join(root, name)}`);
    found.push({ registry: authKeyHost(arg.slice(eq + 1)), credential: { kind: 'basic', username, password } });
  }
  const configs: [string, string, boolean][] = [...a.dockerconfig.map((n): [string, string, boolean] => [n, '.dockerconfigjson', false]), ...a.dockercfg.map((n): [string, string, boolean] => [n, '.dockercfg', true])];
  for (const n of a.imagepull) configs.push((await secretFile(n, '.dockerconfigjson', root)) !== undefined ? [n, '.dockerconfigjson', false] : [n, '.dockercfg', true]);
  for (const [name, file, legacy] of configs) {
    const text = await secretFile(name, file, root);
    if (text === undefined) throw new StrataError(`secret ${name}: no ${file} in ${join(root, name)}`);
    found.push(...dockerConfigLogins(text, legacy, `secret ${name}`));
  }
  return { id: `kpack:${found.map((f) => f.registry).join(',')}`, find: (registry) => found.find((f) => f.registry === registry)?.credential };
}

export const kpackRebase: Phase = {
  images: true,
  refuseRoot: false,
  ownApi: true,
  errorCode: Exit.RebaseError,
  flags: [
    { name: 'run-image', kind: 'string' },
    { name: 'last-built-image', kind: 'string' },
    { name: 'report', kind: 'string' },
    { name: 'basic-docker', kind: 'list' },
    { name: 'dockerconfig', kind: 'list' },
    { name: 'dockercfg', kind: 'list' },
    { name: 'imagepull', kind: 'list' },
    { name: 'log-level', kind: 'string', default: 'info' },
  ],
  async run(v, { log }) {
    const runName = v.str('run-image');
    const lastName = v.str('last-built-image');
    if (!runName || !lastName) throw new StrataError('--run-image and --last-built-image are required', Exit.InvalidArgs);
    const tags = v.positional;
    if (!tags.length) throw new StrataError('give the tags to write (positional arguments)', Exit.InvalidArgs);
    const so: StoreOptions = { logins: await kpackLogins({ basicDocker: v.list('basic-docker'), dockerconfig: v.list('dockerconfig'), dockercfg: v.list('dockercfg'), imagepull: v.list('imagepull') }) };
    const app = await openImage(lastName, so, log);
    if (!app) throw new StrataError(`last built image ${lastName} not found`, Exit.RebaseError);
    const run = await openImage(runName, so, log);
    if (!run) throw new StrataError(`run image ${runName} not found`, Exit.RebaseError);
    const result = await rebase({ app: app.image, appName: lastName, newRun: run.image, newRunName: run.name, newRunReference: run.reference, outputs: await outputsFor(tags, true, so), force: false });
    const report = v.str('report');
    if (report) await writeReport(report, { image: { tags: result.tags, digest: result.digest, manifestSize: result.manifestSize } });
    for (const t of result.tags) log.info(`Rebased ${t} onto ${run.reference}`);
    log.info(`*** Digest: ${result.digest}`);
  },
};
