import type { Command } from 'commander';
import { cp, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { StrataError } from '../oci/errors.js';
import type { ResolvedImage } from '../oci/image.js';
import type { PlatformWanted } from '../oci/manifest.js';
import type { ExportTarget } from '../lifecycle/export.js';
import { openImage } from '../oci/images.js';
import { LABEL, parseLifecycleMetadata } from '../lifecycle/labels.js';
import { rebase, rebaseIndex } from '../lifecycle/rebase.js';
import { pullPolicyOf, readConfig } from '../platform/config.js';
import { writeReport } from '../spec/report.js';
import { findImage, outputFor, localImages, openByPolicy, requireImage, whereLooked } from '../oci/images.js';
import { parseFormat, writeStructured } from './format.js';
import { printJson } from './output.js';
import { commaList, repeatable } from './options.js';

interface BuildLabel {
  processes?: { type: string; command: string[]; args: string[]; direct: boolean; 'working-dir'?: string; buildpackID: string }[];
  buildpacks?: { id: string; version: string; homepage?: string }[];
  extensions?: { id: string; version: string; homepage?: string }[];
  'buildpack-default-process-type'?: string;
}

/** What `pack inspect` shows of one copy of an image, with pack's field names. */
function info(image: ResolvedImage, configMirrors: Record<string, string[]>) {
  const labels = image.config.config?.Labels ?? {};
  const md = parseLifecycleMetadata(labels[LABEL.lifecycle]);
  const build = JSON.parse(labels[LABEL.build] ?? '{}') as BuildLabel;
  const runImage = md?.runImage.image ?? md?.stack?.runImage.image;
  const mirrors = md?.runImage.mirrors ?? md?.stack?.runImage.mirrors ?? [];
  const processes = (build.processes ?? []).map((p) => ({
    type: p.type,
    shell: p.direct ? '' : 'bash',
    command: p.command[0] ?? '',
    default: p.type === build['buildpack-default-process-type'],
    args: [...p.command.slice(1), ...p.args],
    'working-dir': p['working-dir'] ?? '',
  }));
  return {
    stack: labels[LABEL.stackId] ?? '',
    base_image: { top_layer: md?.runImage.topLayer ?? '', reference: md?.runImage.reference ?? '' },
    run_images: [
      ...(runImage ? (configMirrors[runImage] ?? []).map((m) => ({ name: m, user_configured: true })) : []),
      ...(runImage ? [{ name: runImage }] : []),
      ...mirrors.map((m) => ({ name: m })),
    ] as { name: string; user_configured?: boolean }[],
    buildpacks: (build.buildpacks ?? []).map((b) => ({ id: b.id, version: b.version, ...(b.homepage ? { homepage: b.homepage } : {}) })),
    ...(build.extensions?.length ? { extensions: build.extensions.map((b) => ({ id: b.id, version: b.version, ...(b.homepage ? { homepage: b.homepage } : {}) })) } : {}),
    // The default process first, as pack lists them.
    processes: [...processes.filter((p) => p.default), ...processes.filter((p) => !p.default)],
    rebasable: labels[LABEL.rebasable] !== 'false',
  };
}

/** `strata images|rmi|inspect|rebase|sbom`: what app developers do with built images. */
export function registerAppCommands(program: Command): void {
  program
    .command('images')
    .description('list the images in the local store')
    .action(async () => {
      const store = await localImages();
      const tags = await store.listTags();
      process.stdout.write(`${'IMAGE'.padEnd(50)} DIGEST\n`);
      for (const t of tags.sort()) process.stdout.write(`${t.padEnd(50)} ${(await store.getManifest(t)).digest.slice(0, 19)}\n`);
    });
  program
    .command('rmi <image...>')
    .description('remove images from the local store')
    .action(async (names: string[]) => {
      const store = await localImages();
      for (const n of names) {
        const t = await outputFor(n, false);
        if (!(await store.removeTag(t.tag))) throw new StrataError(`${n} is not in the local store (see \`strata images\`)`);
        process.stdout.write(`Untagged ${t.tag}\n`);
      }
    });
  program
    .command('inspect <image>')
    .description('show how an app image was built: run image, buildpacks, processes')
    .option('--bom', 'print the SBOM layer\'s documents instead (see also `strata sbom download`)')
    .option('-o, --output <format>', 'human, json, yaml or toml', 'human')
    .option('--insecure-registry <host>', 'plain HTTP or unverified TLS for this registry (repeatable)', repeatable, [])
    .action(async (name: string, opts: { bom?: boolean; output: string; insecureRegistry: string[] }) => {
      const format = parseFormat(opts.output);
      const store = { insecureRegistries: opts.insecureRegistry };
      const { image, local } = await requireImage(name, store);
      const labels = image.config.config?.Labels ?? {};
      const md = parseLifecycleMetadata(labels[LABEL.lifecycle]);
      if (!md) throw new StrataError(`${name} was not built with buildpacks (no ${LABEL.lifecycle} label)`);
      if (opts.bom) {
        const dir = await mkdtemp(join(tmpdir(), 'strata-bom-'));
        try {
          await sbomTo(image, md.sbom?.sha, dir);
          const { readdir, readFile } = await import('node:fs/promises');
          const docs: Record<string, unknown> = {};
          const walk = async (d: string, rel: string): Promise<void> => {
            for (const e of await readdir(join(d, rel), { withFileTypes: true })) {
              const r = rel ? `${rel}/${e.name}` : e.name;
              if (e.isDirectory()) await walk(d, r);
              else docs[r] = JSON.parse(await readFile(join(d, r), 'utf8')) as unknown;
            }
          };
          await walk(dir, '');
          printJson(docs);
        } finally {
          await rm(dir, { recursive: true, force: true });
        }
        return;
      }
      const mirrors = (await readConfig())['run-image-mirrors'] ?? {};
      // pack's shape: the image as the registry has it and as the local store has it, either null.
      const [localInfo, remoteInfo] = await Promise.all([
        local ? info(image, mirrors) : findImage(name, store, false).then((f) => (f ? info(f.image, mirrors) : null)).catch(() => null),
        local && !name.startsWith('oci:') ? openImage(name, store).then((o) => (o ? info(o.image, mirrors) : null)).catch(() => null) : Promise.resolve(local ? null : info(image, mirrors)),
      ]);
      const data = { image_name: name, remote_info: remoteInfo, local_info: localInfo };
      if (format !== 'human') return writeStructured(data, format);
      const shown = (localInfo ?? remoteInfo)!;
      const out = [
        `Inspecting image: ${name}`,
        '',
        `${localInfo ? 'LOCAL' : 'REMOTE'}:`,
        `Digest: ${image.manifest.digest}`,
        '',
        `Stack: ${shown.stack}`,
        '',
        'Base Image:',
        `  Reference: ${shown.base_image.reference}`,
        `  Top Layer: ${shown.base_image.top_layer}`,
        '',
        `Run Images:${shown.run_images.map((r) => `\n  ${r.name}${r.user_configured ? '    (user-configured)' : ''}`).join('') || '\n  (none)'}`,
        '',
        `Rebasable: ${shown.rebasable}`,
        '',
        'Buildpacks:',
        `  ${'ID'.padEnd(32)}${'VERSION'.padEnd(12)}HOMEPAGE`,
        ...shown.buildpacks.map((b) => `  ${b.id.padEnd(32)}${b.version.padEnd(12)}${b.homepage ?? '-'}`),
        '',
        ...(shown.extensions ? ['Extensions:', `  ${'ID'.padEnd(32)}${'VERSION'.padEnd(12)}HOMEPAGE`, ...shown.extensions.map((b) => `  ${b.id.padEnd(32)}${b.version.padEnd(12)}${b.homepage ?? '-'}`), ''] : []),
        'Processes:',
        `  ${'TYPE'.padEnd(20)}${'SHELL'.padEnd(8)}${'COMMAND'.padEnd(30)}${'ARGS'.padEnd(20)}WORK DIR`,
        ...shown.processes.map((p) => `  ${(p.type + (p.default ? ' (default)' : '')).padEnd(20)}${p.shell.padEnd(8)}${p.command.padEnd(30)}${p.args.join(' ').padEnd(20)}${p['working-dir']}`),
      ];
      process.stdout.write(`${out.join('\n')}\n`);
    });
  program
    .command('rebase <image>')
    .description('put an app image on a new run image by rewriting only its config and manifest')
    .option('--run-image <image>', 'the new run image (default: the one the image records)')
    .option('--publish', 'the image is in its registry (otherwise the local store)')
    .option('--force', 'rebase even across run images, rebasable=false or a target mismatch')
    .option('--previous-image <image>', 'rebase this image and write the result as <image>')
    .option('-t, --tag <image>', 'additional tag (repeatable, comma list)', commaList, [])
    .option('--pull-policy <policy>', 'where the run image comes from: always (registry first), if-not-present (local first), never (local only)')
    .option('--report-output-dir <dir>', 'write report.toml (tags, digest, manifest size) here')
    .option('--insecure-registry <host>', 'plain HTTP or unverified TLS for this registry (repeatable)', repeatable, [])
    .action(async (name: string, opts: { runImage?: string; publish?: boolean; force?: boolean; previousImage?: string; tag: string[]; pullPolicy?: string; reportOutputDir?: string; insecureRegistry: string[] }) => {
      const config = await readConfig();
      const policy = pullPolicyOf(opts.pullPolicy, config);
      const store = { insecureRegistries: opts.insecureRegistry, registryMirrors: config['registry-mirrors'] ?? {} };
      const source = opts.previousImage ?? name;
      // Publishing, the run image is read from its registry first, as pack does: its layers are then mounted or
      // already there, and a local copy (perhaps damaged on disk) is only the fallback.
      const openRun = async (runName: string, platform?: PlatformWanted) => {
        const run = (opts.publish && policy !== 'never' ? await openImage(runName, store, undefined, platform).catch(() => undefined) : undefined) ?? (await openByPolicy(runName, store, policy, platform));
        if (!run) throw new StrataError(`run image ${runName}${platform ? ` for ${platform.os}/${platform.architecture}` : ''} not found ${whereLooked(policy)}`);
        return run;
      };
      // Named, the run image is read while the app image is (a registry round trip each).
      const early = opts.runImage ? openRun(opts.runImage) : undefined;
      early?.catch(() => undefined);
      const app = opts.publish ? await openImage(source, store) : await requireImage(source, store).then((f) => ({ image: f.image }));
      if (!app) throw new StrataError(`image ${source} not found`);
      const md = parseLifecycleMetadata(app.image.config.config?.Labels?.[LABEL.lifecycle]);
      const runName = opts.runImage ?? md?.runImage?.image;
      if (!runName) throw new StrataError(`${source} records no run image; give --run-image`);
      const runFor = (platform?: PlatformWanted) => openRun(runName, platform);
      const outputs: ExportTarget[] = [];
      for (const n of [name, ...opts.tag]) {
        const t = await outputFor(n, opts.publish ?? false, store);
        outputs.push({ store: t.store, tag: t.tag, name: n });
      }
      const started = process.hrtime.bigint();
      const force = opts.force ?? false;
      // An index (a multi-platform image): each platform's image onto the run image of that platform.
      const index = app.image.index;
      const r = index
        ? await rebaseIndex({ index, store: app.image.store, appName: source, runFor, newRunName: runName, outputs, force })
        : await (early ?? runFor()).then((run) => rebase({ app: app.image, appName: source, newRun: run.image, newRunName: runName, newRunReference: run.reference, outputs, force }).then((x) => ({ ...x, images: [{ platform: '', digest: x.digest, runReference: run.reference }] })));
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      if (opts.reportOutputDir) {
        await mkdir(opts.reportOutputDir, { recursive: true });
        await writeReport(join(opts.reportOutputDir, 'report.toml'), { image: { tags: r.tags, digest: r.digest, manifestSize: r.manifestSize } });
      }
      if (index) process.stdout.write(`Rebased ${name} (${r.images.length} platforms) in ${ms.toFixed(1)} ms\n${r.images.map((i) => `  ${i.platform} onto ${i.runReference}\n`).join('')}  digest ${r.digest}\n`);
      else process.stdout.write(`Rebased ${name} onto ${r.images[0]!.runReference} in ${ms.toFixed(1)} ms\n  digest ${r.digest}\n`);
    });
  const sbom = program.command('sbom').description('software bills of materials of app images');
  sbom
    .command('download <image>')
    .description('write the image\'s SBOM documents into a directory, as pack lays them out (<dir>/layers/sbom/launch/<buildpack>/<layer>/sbom.<ext>)')
    .option('-o, --output-dir <dir>', 'where to write them', '.')
    .option('--remote', 'read the image from its registry (otherwise the local store)')
    .option('--insecure-registry <host>', 'plain HTTP or unverified TLS for this registry (repeatable)', repeatable, [])
    .action(async (name: string, opts: { outputDir: string; remote?: boolean; insecureRegistry: string[] }) => {
      const store = { insecureRegistries: opts.insecureRegistry };
      const found = opts.remote ? await openImage(name, store) : await findImage(name, store, false);
      if (!found) throw new StrataError(opts.remote ? `image ${name} not found in its registry` : `image ${name} not found in the local store; for an image in a registry, add --remote`);
      const image = found.image;
      const md = parseLifecycleMetadata(image.config.config?.Labels?.[LABEL.lifecycle]);
      await sbomTo(image, md?.sbom?.sha, opts.outputDir);
      process.stdout.write(`SBOMs of ${name} written to ${opts.outputDir}\n`);
    });
}

/**
 * Extracts the SBOM layer's `sbom/launch/…` tree into `<dir>/<layers dir>/sbom` (pack's layout: `layers/sbom/…`). The layer comes from
 * a registry: it may hold only that tree, of plain files (no links, no whiteouts), and must match its diffID.
 */
async function sbomTo(image: ResolvedImage, sha: string | undefined, dir: string): Promise<void> {
  if (!sha) throw new StrataError('the image has no SBOM layer (its buildpacks wrote no SBOM)');
  const i = image.config.rootfs.diff_ids.indexOf(sha as never);
  if (i < 0) throw new StrataError(`the image's SBOM layer ${sha} is missing`);
  // Loaded here: rebase and inspect, the quick commands of this module, need neither.
  const [{ extractLayer }, { imageLayersDir }] = await Promise.all([import('../oci/extract.js'), import('../lifecycle/sbom.js')]);
  const tmp = await mkdtemp(join(tmpdir(), 'strata-sbom-'));
  try {
    await extractLayer(await image.store.getBlob(image.manifest.manifest.layers[i]!), tmp, {
      chown: false,
      label: 'SBOM layer',
      strip: `${imageLayersDir(image)}/sbom`,
      whiteouts: false,
      links: false,
      diffID: image.config.rootfs.diff_ids[i]!,
    });
    await cp(tmp, join(dir, imageLayersDir(image).replace(/^\/+/, ''), 'sbom'), { recursive: true });
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}
