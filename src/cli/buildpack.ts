import type { Command } from 'commander';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathExists } from '../oci/fsutil.js';
import { StrataError } from '../oci/errors.js';
import { assemblePackage, flattenBuildpacks, LABEL_BUILDPACKAGE, openBuildpackage, packagedBuildpacks, writeBuildpackageFile, writeBuildpackageImage } from '../platform/buildpackage.js';
import { outputFor } from '../oci/images.js';
import { readPackageConfig, type PackageConfig } from '../spec/packagetoml.js';
import { commaList, labelMap, platformList, repeatable, tagAlso } from './options.js';
import { pullPolicyOf, readConfig } from '../platform/config.js';
import { parseFormat, writeStructured } from './format.js';

/** `strata buildpack package|inspect`: pack's buildpackage verbs, without an engine. */
export function registerBuildpackCommands(program: Command): void {
  const bp = program.command('buildpack').description('package and inspect buildpacks');
  bp.command('package <name>')
    .description('package a buildpack and its dependencies (package.toml) as an image or a .cnb file')
    .option('-c, --config <file>', 'package.toml (default: the buildpack in --path alone)')
    .option('-p, --path <dir>', 'the buildpack dir, when there is no package.toml', '.')
    .option('-f, --format <format>', 'image or file', 'image')
    .option('--publish', 'push the image to its registry (otherwise it goes to the local store, or oci:<dir>)')
    .option('-l, --label <KEY=VALUE>', 'a label on the buildpackage image (repeatable)', repeatable, [])
    .option('--tag <image>', 'also write the package under this name (repeatable, comma list)', commaList, [])
    .option('-t, --target <os/arch[/variant]>', 'a platform to package for (repeatable, comma list; each one its buildpacks declare): several make an image index', commaList, [])
    .option('--pull-policy <policy>', "accepted for pack's scripts and checked; dependency images are read from where they are named (strata has no daemon to pull into)")
    .option('--flatten', 'put the buildpacks into one layer')
    .option('-e, --flatten-exclude <id@version>', 'keep these in layers of their own when flattening (repeatable, comma list)', commaList, [])
    .option('--insecure-registry <host>', 'plain HTTP or unverified TLS for this registry (repeatable)', commaList, [])
    .action(async (name: string, opts: { config?: string; path: string; format: string; publish?: boolean; label: string[]; tag: string[]; pullPolicy?: string; flatten?: boolean; flattenExclude: string[]; target: string[]; insecureRegistry: string[] }) => {
      const flagged = platformList(opts.target, '--target');
      if (opts.format !== 'image' && opts.format !== 'file') throw new StrataError(`--format "${opts.format}": use image or file`);
      const cfg = await readConfig();
      pullPolicyOf(opts.pullPolicy, cfg);
      const labels = labelMap(opts.label);
      const options = { insecureRegistries: opts.insecureRegistry, registryMirrors: cfg['registry-mirrors'] ?? {} };
      // Without a package.toml, --path is a buildpack, or an image extension when it holds extension.toml.
      const alone = async (): Promise<PackageConfig> => ({ buildpack: { uri: resolve(opts.path) }, ...((await pathExists(join(opts.path, 'extension.toml'))) && !(await pathExists(join(opts.path, 'buildpack.toml'))) ? { kind: 'extension' as const } : {}), dependencies: [], os: 'linux', targets: [], file: join(resolve(opts.path), 'package.toml') });
      const config: PackageConfig = opts.config ? await readPackageConfig(opts.config) : await alone();
      // --target, else package.toml's [[targets]], else this machine's platform.
      const targets = flagged ?? (config.targets.length ? config.targets : undefined);
      const what = (n: number) => (config.kind === 'extension' ? 'extension' : `${n} buildpack(s)`);
      const work = await mkdtemp(join(tmpdir(), 'strata-package-'));
      try {
        const assembled = await assemblePackage(config, work, options);
        const keys = assembled.buildpacks.map((b) => `${b.id}@${b.version}`).filter((k) => !opts.flattenExclude.includes(k));
        const pkg = opts.flatten && keys.length > 1 ? { ...assembled, buildpacks: await flattenBuildpacks(assembled.buildpacks, [keys], work, name) } : assembled;
        if (opts.format === 'file') {
          if (!name.endsWith('.cnb')) throw new StrataError(`${name}: a buildpackage file is named <name>.cnb`);
          await writeBuildpackageFile(pkg, name, targets);
          process.stdout.write(`Successfully created package ${name} (${pkg.entry.id}@${pkg.entry.version}, ${what(pkg.buildpacks.length)})\n`);
          return;
        }
        const t = await outputFor(name, opts.publish ?? false, options);
        const digest = await writeBuildpackageImage(pkg, t.store, t.tag, labels, targets);
        await tagAlso(t.store, digest, opts.tag, opts.publish ?? false, options);
        process.stdout.write(`Successfully created package ${name} in ${t.where} (${pkg.entry.id}@${pkg.entry.version}, ${what(pkg.buildpacks.length)})\n  digest ${digest}\n`);
      } finally {
        await rm(work, { recursive: true, force: true });
      }
    });
  bp.command('inspect <ref>')
    .description('show the buildpacks in a buildpackage (image, oci:<dir> or .cnb)')
    .option('-o, --output <format>', 'human, json, yaml or toml', 'human')
    .option('--insecure-registry <host>', 'plain HTTP or unverified TLS for this registry (repeatable)', commaList, [])
    .action(async (ref: string, opts: { output: string; insecureRegistry: string[] }) => {
      const format = parseFormat(opts.output);
      const work = await mkdtemp(join(tmpdir(), 'strata-inspect-'));
      try {
        const image = await openBuildpackage(ref, work, { insecureRegistries: opts.insecureRegistry });
        const meta = JSON.parse(image.config.config?.Labels?.[LABEL_BUILDPACKAGE] ?? '{}') as { id?: string; version?: string };
        const bps = packagedBuildpacks(image, ref);
        const root = bps.find((b) => b.id === meta.id && b.version === meta.version);
        if (format !== 'human') {
          return writeStructured({
            buildpackage: { id: meta.id, version: meta.version },
            buildpacks: bps.map((b) => ({ id: b.id, version: b.version, api: b.info.api, ...(b.info.homepage ? { homepage: b.info.homepage } : {}) })),
            detection_order: (root?.info.order ?? []).map((g) => ({ buildpacks: g.group.map((e) => ({ id: e.id, ...(e.version ? { version: e.version } : {}), ...(e.optional ? { optional: true } : {}) })) })),
          }, format);
        }
        process.stdout.write(`Inspecting buildpackage: ${ref}\n\nBuildpack: ${meta.id}@${meta.version}\n\nBuildpacks:\n  ID${' '.repeat(30)}VERSION     API\n`);
        for (const b of bps) process.stdout.write(`  ${b.id.padEnd(32)}${b.version.padEnd(12)}${b.info.api}\n`);
        if (root?.info.order) {
          process.stdout.write('\nDetection Order:\n');
          root.info.order.forEach((g, i) => {
            process.stdout.write(` └ Group #${i + 1}:\n`);
            g.group.forEach((e, j) => process.stdout.write(`    ${j === g.group.length - 1 ? '└' : '├'} ${e.id}@${e.version ?? ''}${e.optional ? '    (optional)' : ''}\n`));
          });
        }
      } finally {
        await rm(work, { recursive: true, force: true });
      }
    });
}
