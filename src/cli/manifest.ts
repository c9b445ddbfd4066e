import type { Command } from 'commander';
import { globals } from './globals.js';
import { commaList, labelMap } from './options.js';
import { StrataError } from '../oci/errors.js';
import { annotated, findEntries, indexOf, parseFormat, platformText, withEntries, withoutEntries, type ManifestList } from '../oci/manifestlist.js';
import { parseTarget, openTarget, type StoreOptions } from '../oci/target.js';
import { entriesFrom, localLists, pushList, remoteList } from '../platform/manifests.js';

/** `--insecure`: every registry the command names is reached over plain HTTP or unverified TLS. */
function storeOptions(insecure: boolean | undefined, names: string[]): StoreOptions {
  if (!insecure) return {};
  const registries = names.flatMap((n) => {
    const t = parseTarget(n);
    return t.kind === 'registry' ? [t.ref.registry] : [];
  });
  return { insecureRegistries: registries };
}

const out = (line: string): void => {
  if (!globals.quiet) process.stdout.write(`${line}\n`);
};

/** A list kept here, or one line saying how to make it. */
async function existing(name: string): Promise<ManifestList> {
  const list = await localLists().get(name);
  if (!list) throw new StrataError(`no local manifest list ${name}; make one with \`strata manifest create ${name} <image>…\``);
  return list;
}

/** `strata manifest …`: pack's verbs for image indexes (multi-platform images), kept locally until pushed. */
export function registerManifestCommands(program: Command): void {
  const manifest = program.command('manifest').description('make, change and push image indexes (one image per platform), as pack manifest does');
  const insecure = (c: Command): Command => c.option('--insecure', 'reach the registries named over plain HTTP or without verifying TLS');

  insecure(manifest.command('create <manifest-list> <manifest...>').description('make an index of these images, kept locally until `manifest push` (or pushed now with --publish)'))
    .option('-f, --format <format>', 'media type of the index: oci or docker', 'oci')
    .option('--publish', 'push the index to its registry now, keeping no local copy')
    .action(async (name: string, images: string[], opts: { format?: string; insecure?: boolean; publish?: boolean }) => {
      const format = parseFormat(opts.format);
      const so = storeOptions(opts.insecure, [name, ...images]);
      const lists = localLists();
      if (!opts.publish && (await lists.get(name))) throw new StrataError(`manifest list ${name} exists locally; add to it with \`strata manifest add\`, or remove it first with \`strata manifest remove ${name}\``);
      let list: ManifestList = { name, format, entries: [] };
      for (const image of images) list = withEntries(list, await entriesFrom(image, so));
      if (opts.publish) {
        const r = await pushList(list, so);
        out(`Successfully pushed manifest list ${name} (${r.digest})`);
        if (globals.quiet) process.stdout.write(`${r.digest}\n`);
        return;
      }
      await lists.put(list);
      out(`Successfully created manifest list ${name}: ${list.entries.map((e) => platformText(e.descriptor.platform)).join(', ')}`);
    });

  insecure(manifest.command('add <manifest-list> <manifest>').description('add an image (or each image of an index) to a local list; a list only in its registry is brought here first'))
    .action(async (name: string, image: string, opts: { insecure?: boolean }) => {
      const so = storeOptions(opts.insecure, [name, image]);
      const lists = localLists();
      const list = (await lists.get(name)) ?? (await remoteList(name, so));
      if (!list) throw new StrataError(`no manifest list ${name} here or in its registry; make one with \`strata manifest create ${name} ${image}\``);
      const added = await entriesFrom(image, so);
      await lists.put(withEntries(list, added));
      for (const e of added) out(`Successfully added ${e.source} (${platformText(e.descriptor.platform)}) to manifest list ${name}`);
    });

  manifest
    .command('annotate <manifest-list> <manifest>')
    .description("set an entry's platform or annotations (the entry by digest, or by the name it was added as)")
    .option('--os <os>', 'set the operating system')
    .option('--arch <arch>', 'set the architecture')
    .option('--variant <variant>', 'set the architecture variant')
    .option('--annotations <key=value>', 'set an annotation (repeatable, or comma-separated)', commaList, [])
    .action(async (name: string, which: string, opts: { os?: string; arch?: string; variant?: string; annotations: string[] }) => {
      const annotations = labelMap(opts.annotations, '--annotations');
      if (!opts.os && !opts.arch && !opts.variant && !Object.keys(annotations).length) throw new StrataError('manifest annotate: nothing to change; give --os, --arch, --variant or --annotations');
      const list = await existing(name);
      await localLists().put(annotated(list, which, { ...(opts.os ? { os: opts.os } : {}), ...(opts.arch ? { arch: opts.arch } : {}), ...(opts.variant ? { variant: opts.variant } : {}), annotations }));
      out(`Successfully annotated ${which} in manifest list ${name}`);
    });

  insecure(manifest.command('inspect <manifest-list>').description('print the index as it will be pushed (a local list), or as its registry has it')).action(async (name: string, opts: { insecure?: boolean }) => {
    const list = await localLists().get(name);
    if (list) {
      process.stdout.write(`${JSON.stringify(JSON.parse(indexOf(list).bytes.toString()), null, 2)}\n`);
      return;
    }
    let bytes: Buffer;
    try {
      const t = await openTarget(parseTarget(name), storeOptions(opts.insecure, [name]));
      bytes = (await t.store.getManifest(t.id)).bytes;
    } catch (err) {
      throw new StrataError(`no manifest list ${name} here or in its registry (${(err as Error).message})`);
    }
    process.stdout.write(`${JSON.stringify(JSON.parse(bytes.toString()), null, 2)}\n`);
  });

  insecure(manifest.command('push <manifest-list>').description('push a local list: its images into the list’s repository first, then the index'))
    .option('-f, --format <format>', 'media type of the index: oci or docker (default: the list’s own)')
    .option('-p, --purge', 'remove the local list once it is pushed')
    .action(async (name: string, opts: { format?: string; insecure?: boolean; purge?: boolean }) => {
      const list = await existing(name);
      const so = storeOptions(opts.insecure, [name, ...list.entries.map((e) => e.source)]);
      const r = await pushList(opts.format ? { ...list, format: parseFormat(opts.format) } : list, so);
      if (opts.purge) await localLists().remove(name);
      out(`Successfully pushed manifest list ${name} (${r.digest}; ${r.copied} image(s) copied into its repository)`);
      if (globals.quiet) process.stdout.write(`${r.digest}\n`);
    });

  manifest
    .command('remove <manifest-list...>')
    .description('delete local manifest lists (their images and pushed indexes stay)')
    .action(async (names: string[]) => {
      const missing: string[] = [];
      for (const n of names) if (!(await localLists().remove(n))) missing.push(n);
      for (const n of names.filter((x) => !missing.includes(x))) out(`Successfully removed manifest list ${n}`);
      if (missing.length) throw new StrataError(`no local manifest list ${missing.join(', ')}`);
    });

  manifest
    .command('rm <manifest-list> <manifest...>')
    .description('take images out of a local list (by digest, or by the name they were added as)')
    .action(async (name: string, which: string[]) => {
      const list = await existing(name);
      for (const w of which) findEntries(list, w);
      await localLists().put(withoutEntries(list, which));
      for (const w of which) out(`Successfully removed ${w} from manifest list ${name}`);
    });
}
