import type { Command } from 'commander';
import { StrataError } from '../oci/errors.js';
import { createBuilder, LABEL_BUILDER, LABEL_ORDER, LABEL_ORDER_EXTENSIONS, type BuilderMetadata } from '../platform/builder.js';
import { findImage, outputFor } from '../oci/images.js';
import { openImage } from '../oci/images.js';
import type { ResolvedImage } from '../oci/image.js';
import { pullPolicyOf, readConfig } from '../platform/config.js';
import { parseFormat, writeStructured } from './format.js';
import { readBuilderConfig } from '../spec/buildertoml.js';
import type { Order } from '../spec/order.js';
import { commaList, labelMap, platformList, repeatable, tagAlso } from './options.js';
import type { ImageStore } from '../oci/store.js';
import { OwnLayers } from '../platform/ownlayers.js';

function tree(order: Order, title = 'Detection Order:'): string {
  const lines = [title];
  order.forEach((g, i) => {
    lines.push(` ${i === order.length - 1 ? '└' : '├'} Group #${i + 1}:`);
    g.group.forEach((e, j) => lines.push(`    ${i === order.length - 1 ? ' ' : '│'}  ${j === g.group.length - 1 ? '└' : '├'} ${e.id}@${e.version ?? ''}${e.optional ? '    (optional)' : ''}`));
  });
  return lines.join('\n');
}

/** Builders worth knowing, as `pack builder suggest` lists them; strata's own first (made locally, offline). */
const SUGGESTED = [
  { vendor: 'strata', image: 'strata/builder:nodejs', about: 'made on this machine on first use: Node.js (yarn, npm) on Debian bookworm, no network at build time' },
  { vendor: 'Google', image: 'gcr.io/buildpacks/builder:google-22', about: 'Ubuntu 22.04: .NET, Dart, Go, Java, Node.js, PHP, Python, Ruby' },
  { vendor: 'Heroku', image: 'heroku/builder:24', about: 'Ubuntu 24.04 (amd64, arm64): Go, Java, Node.js, PHP, Python, Ruby, Scala' },
  { vendor: 'Paketo Buildpacks', image: 'paketobuildpacks/builder-jammy-base', about: 'Ubuntu 22.04, small: Java, Node.js, Go, .NET, Python, Ruby' },
  { vendor: 'Paketo Buildpacks', image: 'paketobuildpacks/builder-jammy-full', about: 'Ubuntu 22.04, larger: the base set plus PHP' },
];

/** `strata builder create|inspect|suggest`: pack's builder verbs, on strata's own image core. */
export function registerBuilderCommands(program: Command): void {
  const builder = program.command('builder').description('create and inspect builders');
  builder
    .command('lifecycle-image <name>')
    .description("make strata's lifecycle into a lifecycle image (for kpack's and the fleet's ClusterLifecycle)")
    .option('--publish', 'push it to its registry (otherwise the local store, or oci:<dir>)')
    .option('--insecure-registry <host>', 'plain HTTP or unverified TLS for this registry (repeatable)', commaList, [])
    .option('-t, --target <os/arch>', 'a platform to make it for (repeatable, comma list): several make an image index; default this machine’s', commaList, [])
    .action(async (name: string, opts: { publish?: boolean; insecureRegistry: string[]; target: string[] }) => {
      const { createLifecycleImage } = await import('../platform/builder.js');
      const platforms = platformList(opts.target, '--target') ?? [];
      let where = '';
      const r = await createLifecycleImage(async () => {
        const out = await outputFor(name, opts.publish ?? false, { insecureRegistries: opts.insecureRegistry });
        where = out.where;
        return out;
      }, platforms.length ? platforms : undefined);
      process.stdout.write(`Lifecycle image ${name} (strata ${r.version}) saved to ${where}\n  digest ${r.digest}\n`);
    });
  builder
    .command('create <name>')
    .description('create a builder image from builder.toml (buildpacks, order, build and run images) with strata\'s lifecycle')
    .requiredOption('-c, --config <file>', 'builder.toml')
    .option('--publish', 'push the builder to its registry (otherwise the local store, or oci:<dir>)')
    .option('-l, --label <KEY=VALUE>', 'a label on the builder image (repeatable)', repeatable, [])
    .option('--tag <image>', 'also write the builder under this name (repeatable, comma list)', commaList, [])
    .option('-t, --target <os/arch[/variant]>', 'a platform to make the builder for (repeatable, comma list): several make an image index, each from the build image of that platform', commaList, [])
    .option('--pull-policy <policy>', 'always, if-not-present or never, for the build and run images (default from config)')
    .option('--flatten <id@version,…>', 'put these buildpacks into one layer together (repeatable: one layer per flag)', repeatable, [])
    .option('--insecure-registry <host>', 'plain HTTP or unverified TLS for this registry (repeatable)', commaList, [])
    .action(async (name: string, opts: { config: string; publish?: boolean; label: string[]; tag: string[]; pullPolicy?: string; flatten: string[]; target: string[]; insecureRegistry: string[] }) => {
      const targets = platformList(opts.target, '--target');
      const cfg = await readConfig();
      const policy = pullPolicyOf(opts.pullPolicy, cfg);
      const labels = labelMap(opts.label);
      const options = { insecureRegistries: opts.insecureRegistry, registryMirrors: cfg['registry-mirrors'] ?? {} };
      const config = await readBuilderConfig(opts.config);
      for (const w of config.warnings) process.stderr.write(`Warning: ${w}\n`);
      let where = '';
      let store: ImageStore | undefined;
      const ownLayers = OwnLayers.ofUser();
      const r = await createBuilder(config, async () => {
        const out = await outputFor(name, opts.publish ?? false, options);
        where = out.where;
        store = out.store;
        return out;
      }, options, { labels, policy, flatten: opts.flatten.map((g) => g.split(',').map((k) => k.trim()).filter(Boolean)), ...(ownLayers ? { ownLayers } : {}) }, targets ?? (config.targets.length ? config.targets : undefined));
      await tagAlso(store!, r.digest, opts.tag, opts.publish ?? false, options);
      process.stdout.write(`Successfully created builder image ${name} in ${where}\n  digest ${r.digest}\n  ${r.metadata.buildpacks.length} buildpack(s); run image ${r.metadata.stack.runImage.image}\n`);
    });
  builder
    .command('suggest')
    .description('list builders to use with --builder or `strata config default-builder`')
    .action(() => {
      const rows = SUGGESTED.map((b) => `  ${`${b.vendor}:`.padEnd(20)}${b.image.padEnd(44)}${b.about}`);
      process.stdout.write(`Suggested builders:\n${rows.join('\n')}\n\nTip: learn more about one with \`strata builder inspect <builder-image>\`; make it the default with \`strata config default-builder <builder-image>\`.\n`);
    });
  builder
    .command('inspect <name>')
    .description('show a builder: description, run images, lifecycle, buildpacks and detection order')
    .option('-o, --output <format>', 'human, json, yaml or toml', 'human')
    .option('--insecure-registry <host>', 'plain HTTP or unverified TLS for this registry (repeatable)', commaList, [])
    .action(async (name: string, opts: { output: string; insecureRegistry: string[] }) => {
      const format = parseFormat(opts.output);
      const store = { insecureRegistries: opts.insecureRegistry };
      // pack's shape: the builder as the local store has it and as its registry has it; a builder made with
      // --publish is only in the registry.
      const [local, remote] = await Promise.all([
        findImage(name, store, false).catch(() => undefined),
        name.startsWith('oci:') ? Promise.resolve(undefined) : openImage(name, store).catch(() => undefined),
      ]);
      const image = local?.image ?? remote?.image;
      if (!image) throw new StrataError(`builder ${name} not found in the local store nor in its registry`);
      const config = await readConfig();
      const infoOf = (i: ResolvedImage | undefined) => (i ? builderInfo(i, name, config['run-image-mirrors'] ?? {}) : null);
      const data = {
        builder_name: name,
        trusted: (config['trusted-builders'] ?? []).includes(name),
        default: config['default-builder'] === name,
        remote_info: infoOf(remote?.image),
        local_info: infoOf(local?.image),
      };
      if (format !== 'human') return writeStructured(data, format);
      const labels = image.config.config?.Labels ?? {};
      const md = JSON.parse(labels[LABEL_BUILDER]!) as BuilderMetadata;
      const order = JSON.parse(labels[LABEL_ORDER] ?? '[]') as Order;
      const out = [
        `Inspecting builder: ${name}`,
        '',
        `Description: ${md.description || '(none)'}`,
        `Created By:\n  Name: ${md.createdBy.name}\n  Version: ${md.createdBy.version}`,
        'Run Images:',
        ...md.images.flatMap((i) => [`  ${i.image}`, ...i.mirrors.map((m) => `  ${m}    (mirror)`)]),
        `Lifecycle:\n  Version: ${md.lifecycle.version}\n  Buildpack APIs:\n    Supported: ${md.lifecycle.apis.buildpack.supported.join(', ')}\n  Platform APIs:\n    Supported: ${md.lifecycle.apis.platform.supported.join(', ')}`,
        'Buildpacks:',
        `  ${'ID'.padEnd(32)}${'VERSION'.padEnd(12)}HOMEPAGE`,
        ...md.buildpacks.map((b) => `  ${b.id.padEnd(32)}${b.version.padEnd(12)}${b.homepage ?? '-'}`),
        tree(order),
        ...(md.extensions?.length
          ? [
              'Extensions:',
              `  ${'ID'.padEnd(32)}${'VERSION'.padEnd(12)}HOMEPAGE`,
              ...md.extensions.map((b) => `  ${b.id.padEnd(32)}${b.version.padEnd(12)}${b.homepage ?? '-'}`),
              tree(JSON.parse(labels[LABEL_ORDER_EXTENSIONS] ?? '[]') as Order, 'Detection Order (Extensions):'),
            ]
          : []),
      ];
      process.stdout.write(`${out.join('\n')}\n`);
    });
}

/** What `pack builder inspect` shows of one copy of a builder, with pack's field names. */
function builderInfo(image: ResolvedImage, name: string, configMirrors: Record<string, string[]>) {
  const labels = image.config.config?.Labels ?? {};
  if (!labels[LABEL_BUILDER]) throw new StrataError(`${name} is not a builder (no ${LABEL_BUILDER} label)`);
  const md = JSON.parse(labels[LABEL_BUILDER]) as BuilderMetadata;
  const order = JSON.parse(labels[LABEL_ORDER] ?? '[]') as Order;
  const stack = labels['io.buildpacks.stack.id'];
  return {
    ...(md.description ? { description: md.description } : {}),
    created_by: md.createdBy,
    ...(stack ? { stack: { id: stack } } : {}),
    lifecycle: { version: md.lifecycle.version, buildpack_apis: md.lifecycle.apis.buildpack, platform_apis: md.lifecycle.apis.platform },
    run_images: md.images.flatMap((i) => [...(configMirrors[i.image] ?? []).map((m) => ({ name: m, user_configured: true })), { name: i.image }, ...i.mirrors.map((m) => ({ name: m }))]),
    buildpacks: md.buildpacks.map((b) => ({ id: b.id, version: b.version, ...(b.homepage ? { homepage: b.homepage } : {}) })),
    detection_order: order.map((g) => ({ buildpacks: g.group.map((e) => ({ id: e.id, ...(e.version ? { version: e.version } : {}), ...(e.optional ? { optional: true } : {}) })) })),
    ...(md.extensions?.length
      ? {
          extensions: md.extensions.map((b) => ({ id: b.id, version: b.version, ...(b.homepage ? { homepage: b.homepage } : {}) })),
          order_extensions: (JSON.parse(labels[LABEL_ORDER_EXTENSIONS] ?? '[]') as Order).map((g) => ({ extensions: g.group.map((e) => ({ id: e.id, ...(e.version ? { version: e.version } : {}) })) })),
        }
      : {}),
  };
}
