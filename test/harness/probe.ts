import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PROJECT_ROOT } from '../../src/version.js';
import { orderToml, writeBuildpack } from './buildpacks.js';
import { hostToolImageFiles, makeLayoutImage } from './images.js';
import { runOk } from './proc.js';

export const STRATA = join(PROJECT_ROOT, 'bin', 'strata');

export interface ProbeBuilder {
  /** `oci:<root>/builder:1` */
  builder: string;
  /** An app dir holding one file. */
  app: string;
  /** A world-writable dir for `--volume <out>:/out:rw`, where the buildpack can leave what it saw. */
  out: string;
  /** strata's env with its own STRATA_HOME under root. */
  env: NodeJS.ProcessEnv;
  images: string;
}

/**
 * A small builder (busybox, bash and the host's Node.js libraries; no debootstrap) with one buildpack `test/probe`
 * whose bin/detect and bin/build are the given bash; its build makes a launch layer and a `web` process by default.
 */
export async function probeBuilder(root: string, scripts: { detect?: string; build?: string }): Promise<ProbeBuilder> {
  const images = join(root, 'images');
  const tools = await hostToolImageFiles();
  await makeLayoutImage(images, 'build', [tools], {}, ['CNB_USER_ID=1000', 'CNB_GROUP_ID=1000']);
  await makeLayoutImage(images, 'run', [tools], { 'io.buildpacks.rebasable': 'true' });
  const build =
    scripts.build ??
    `mkdir -p "$1/l"; echo l > "$1/l/f"; printf '[types]\\nlaunch = true\\ncache = true\\n' > "$1/l.toml"
printf '[[processes]]\\ntype = "web"\\ncommand = ["bash", "-c", "echo web"]\\ndefault = true\\n' > "$1/launch.toml"`;
  const bp = await writeBuildpack(join(root, 'bps'), { id: 'test/probe', api: '0.10', detect: scripts.detect ?? 'exit 0', build });
  await writeFile(join(root, 'builder.toml'), `[[buildpacks]]\nuri = "${bp}"\n${orderToml([['test/probe']])}\n[build]\nimage = "oci:${images}:build"\n[[run.images]]\nimage = "oci:${images}:run"\n`);
  const env = { ...process.env, STRATA_HOME: join(root, 'home') };
  await runOk(STRATA, ['builder', 'create', `oci:${root}/builder:1`, '--config', join(root, 'builder.toml')], { env });
  const app = join(root, 'app');
  const out = join(root, 'out');
  await mkdir(app, { recursive: true });
  await mkdir(out, { recursive: true });
  await chmod(out, 0o777);
  await writeFile(join(app, 'x'), 'x');
  return { builder: `oci:${root}/builder:1`, app, out, env, images };
}
