import type { Command } from 'commander';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { StrataError } from '../oci/errors.js';
import { createLogger } from '../lifecycle/log.js';
import { baseImage, debootstrapTree, hostMirror, type BaseOptions } from '../platform/base.js';
import { cliProgress } from './progress.js';
import { outputFor, strataHome } from '../oci/images.js';
import { commaList, platformList } from './options.js';
import { withVariant } from '../oci/manifest.js';
import { writePlatformImages } from '../oci/mutate.js';

function id(text: string, flag: string): number {
  if (!/^\d+$/.test(text)) throw new StrataError(`${flag} "${text}" is not a numeric id`);
  return Number(text);
}

/** `strata base create`: matching build and run images from Debian packages, with no Dockerfile and no engine. */
export function registerBaseCommands(program: Command): void {
  const base = program.command('base').description('make base images (build and run) for builders');
  base
    .command('create')
    .description('make a build image and a run image for Debian with debootstrap (the tree is cached between runs)')
    .requiredOption('--build-image <ref>', 'where the build image goes (registry ref or oci:<dir>:<tag>)')
    .requiredOption('--run-image <ref>', 'where the run image goes')
    .option('--publish', 'push to the registry (otherwise the local store, or oci:<dir>)')
    .option('--distro <name>', 'Debian release', 'bookworm')
    .option('--build-packages <p,…>', 'extra packages in the build image', commaList, [])
    .option('--run-packages <p,…>', 'extra packages in the run image', commaList, [])
    .option('--uid <n>', 'the cnb user id', '1000')
    .option('--gid <n>', 'the cnb group id', '1000')
    .option('--mirror <url>', 'Debian mirror (default: the one apt uses here)')
    .option('--platform <os/arch,…>', "the platforms to make them for (default this machine's; another architecture is emulated while its packages are configured): several make each image an index")
    .option('--insecure-registry <host>', 'plain HTTP or unverified TLS for this registry (repeatable)', commaList, [])
    .action(async (opts: { buildImage: string; runImage: string; publish?: boolean; distro: string; buildPackages: string[]; runPackages: string[]; uid: string; gid: string; mirror?: string; platform?: string; insecureRegistry: string[] }) => {
      const platforms = platformList(opts.platform ? [opts.platform] : [], '--platform') ?? [undefined];
      if (!/^[a-z]+$/.test(opts.distro)) throw new StrataError(`--distro "${opts.distro}": give a Debian release name such as bookworm`);
      const log = createLogger('info');
      const options: BaseOptions = {
        distro: opts.distro,
        buildPackages: opts.buildPackages,
        runPackages: opts.runPackages,
        uid: id(opts.uid, '--uid'),
        gid: id(opts.gid, '--gid'),
        mirror: opts.mirror ?? (await hostMirror()),
        cacheDir: process.env.STRATA_DEBOOTSTRAP_CACHE || join(strataHome(), 'cache', 'debootstrap'),
        log,
        progress: cliProgress((line) => log.info(line)),
      };
      const work = await mkdtemp(join(tmpdir(), 'strata-base-'));
      try {
        const so = { insecureRegistries: opts.insecureRegistry };
        for (const [kind, ref, packages] of [['build', opts.buildImage, opts.buildPackages], ['run', opts.runImage, opts.runPackages]] as const) {
          const out = await outputFor(ref, opts.publish ?? false, so);
          const digest = await writePlatformImages(out.store, out.tag, platforms, async (platform, tag) => {
            const forPlatform = { ...options, ...(platform ? { platform: withVariant(platform) } : {}) };
            const tree = await debootstrapTree(opts.distro, packages, forPlatform);
            return { digest: await baseImage(kind, tree, forPlatform, out.store, tag, work), ...(forPlatform.platform ? { platform: forPlatform.platform } : {}) };
          });
          process.stdout.write(`${kind} image ${ref} (${out.where})\n  digest ${digest}\n`);
        }
      } finally {
        await rm(work, { recursive: true, force: true });
      }
    });
}
