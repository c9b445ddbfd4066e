import type { Command } from 'commander';
import { join } from 'node:path';
import { cliProgress } from './progress.js';
import { StrataError } from '../oci/errors.js';
import { sandboxExecutor } from '../platform/executor.js';
import { readConfig, sandboxLimits } from '../platform/config.js';
import { requireImage, strataHome } from '../oci/images.js';
import { unpackedRootfs } from '../platform/rootfs.js';
import { platformFlag, repeatable } from './options.js';
import { hostPlatform } from '../oci/manifest.js';

/** `strata run`: an app image from the local store, a layout or a registry, in the runc sandbox, on the host network. */
export function registerRunCommand(program: Command): void {
  program
    .command('run <image> [args...]')
    .description('run an app image (local store, oci:<dir>:<tag> or a registry) in a sandbox; Ctrl-C stops it')
    .option('-e, --env <NAME=VALUE>', 'env var for the app (repeatable)', repeatable, [])
    .option('--process <type>', 'process type to run instead of the default')
    .option('--insecure-registry <host>', 'plain HTTP or unverified TLS for this registry (repeatable)', repeatable, [])
    .option('--platform <os/arch[/variant]>', "the image to run from an index (default: this machine's)")
    .action(async (name: string, args: string[], opts: { env: string[]; process?: string; insecureRegistry: string[]; platform?: string }) => {
      const store = { insecureRegistries: opts.insecureRegistry };
      const host = hostPlatform();
      const platform = opts.platform ? platformFlag(opts.platform, '--platform') : host;
      // Another architecture would need emulation registered machine-wide (binfmt), which strata never does.
      if (platform.os !== host.os || platform.architecture !== host.architecture) throw new StrataError(`--platform ${opts.platform}: this machine runs ${host.os}/${host.architecture} images only (another architecture needs emulation, which strata does not register)`);
      const { image } = await requireImage(name, store, platform);
      const cfg = image.config.config ?? {};
      for (const e of opts.env) if (!/^[A-Za-z_][A-Za-z0-9_]*=/.test(e)) throw new StrataError(`--env "${e}": expected NAME=VALUE`);
      if (opts.process) {
        const types = ((JSON.parse(cfg.Labels?.['io.buildpacks.build.metadata'] ?? '{}') as { processes?: { type: string }[] }).processes ?? []).map((p) => p.type);
        if (!types.includes(opts.process)) throw new StrataError(`--process ${opts.process}: ${name} has no such process (${types.length ? `it has ${types.join(', ')}` : 'it declares none'})`);
      }
      const entrypoint = opts.process ? [`/cnb/process/${opts.process}`] : (cfg.Entrypoint ?? []);
      const argv = [...entrypoint, ...(args.length ? args : (cfg.Cmd ?? []))];
      if (!argv.length) throw new StrataError(`${name} has no entrypoint; give a command after the image name`);
      const [uid, gid] = (cfg.User ?? '0:0').split(':').map((x) => Number(x));
      const home = strataHome();
      const rootfs = await unpackedRootfs(image, join(home, 'rootfs'), cliProgress((line) => process.stderr.write(`${line}\n`)));
      const env = [...(cfg.Env ?? []), ...opts.env];
      const limits = sandboxLimits(await readConfig());
      const code = await sandboxExecutor(rootfs, join(home, 'run')).run({ args: argv, env, uid: Number.isInteger(uid) ? uid! : 0, gid: Number.isInteger(gid) ? gid! : 0, cwd: cfg.WorkingDir || '/', mounts: [], network: 'host', limits });
      process.exitCode = code;
    });
}
