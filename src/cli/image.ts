import type { Command } from 'commander';
import { globals } from './globals.js';
import { cliProgress } from './progress.js';
import { copyImage } from '../oci/copy.js';
import { EngineClient } from '../oci/engine/client.js';
import { loadIntoEngine, openEngineImage } from '../oci/engine/transfer.js';
import { resolveImage } from '../oci/image.js';
import { openTarget, parseTarget, type StoreOptions } from '../oci/target.js';
import { hostPlatform, type PlatformWanted } from '../oci/manifest.js';
import { commaList, platformFlag } from './options.js';

function storeOptions(opts: { insecureRegistry?: string[] }): StoreOptions {
  return { insecureRegistries: opts.insecureRegistry ?? [] };
}

function parsePlatform(text: string | undefined): PlatformWanted {
  return text ? platformFlag(text, '--platform') : hostPlatform();
}

/** `strata image …`: crane-like verbs over registries and OCI layouts. */
export function registerImageCommands(program: Command): void {
  const image = program.command('image').description('copy and read images in registries and OCI layouts (REF is a registry reference or oci:<dir>[:<tag>])');
  const insecure = (c: Command): Command => c.option('--insecure-registry <host>', 'use plain HTTP or unverified TLS for this registry (repeatable)', commaList, []);

  insecure(image.command('copy <src> <dst>').description('copy an image or index, keeping digests; only missing blobs are sent; docker-daemon:NAME:TAG is the engine at DOCKER_HOST'))
    .option('--platform <os/arch[/variant]>', 'platform to load into an engine from an index')
    .action(async (src: string, dst: string, opts: { insecureRegistry?: string[]; platform?: string }) => {
      const so = storeOptions(opts);
      const srcTarget = parseTarget(src);
      const dstTarget = parseTarget(dst);
      const engine = srcTarget.kind === 'engine' || dstTarget.kind === 'engine' ? EngineClient.fromEnv() : undefined;
      const from = srcTarget.kind === 'engine' ? await openEngineImage(engine!, srcTarget.name) : { ...(await openTarget(srcTarget, so)), close: async () => undefined };
      try {
        if (dstTarget.kind === 'engine') {
          const id = await loadIntoEngine(from.store, from.id, engine!, dstTarget.name, parsePlatform(opts.platform));
          process.stdout.write(globals.quiet ? `${id}\n` : `loaded ${src} → ${engine!.description} as ${dstTarget.name}\n  image ID ${id}\n`);
          return;
        }
        const to = await openTarget(dstTarget, { ...so, create: true });
        const r = await copyImage(from.store, from.id, to.store, to.tag, { progress: cliProgress((line) => process.stderr.write(`${line}\n`)) });
        if (globals.quiet) process.stdout.write(`${r.digest}\n`);
        else process.stdout.write(`copied ${src} → ${dst}\n  digest ${r.digest}\n  blobs: ${r.uploaded} sent (${r.bytesUploaded} bytes), ${r.mounted} mounted, ${r.existing} already there\n`);
      } finally {
        await from.close();
      }
    });

  insecure(image.command('manifest <ref>').description('print the manifest or index exactly as stored')).action(async (ref: string, opts: { insecureRegistry?: string[] }) => {
    const t = await openTarget(parseTarget(ref), storeOptions(opts));
    const m = await t.store.getManifest(t.id);
    process.stdout.write(m.bytes);
    process.stdout.write('\n');
  });

  insecure(image.command('config <ref>').description("print the image's config (from the host platform's manifest of an index)"))
    .option('--platform <os/arch[/variant]>', 'platform to choose from an index')
    .action(async (ref: string, opts: { insecureRegistry?: string[]; platform?: string }) => {
      const t = await openTarget(parseTarget(ref), storeOptions(opts));
      const img = await resolveImage(t.store, t.id, parsePlatform(opts.platform));
      process.stdout.write(img.configBytes);
      process.stdout.write('\n');
    });

  insecure(image.command('digest <ref>').description('print the digest of the manifest or index a reference points at')).action(async (ref: string, opts: { insecureRegistry?: string[] }) => {
    const t = await openTarget(parseTarget(ref), storeOptions(opts));
    const m = await t.store.getManifest(t.id);
    process.stdout.write(`${m.digest}\n`);
  });

  insecure(image.command('tags <repo>').description('list the tags of a repository or layout')).action(async (repo: string, opts: { insecureRegistry?: string[] }) => {
    const t = await openTarget(parseTarget(repo), storeOptions(opts));
    for (const tag of await t.store.listTags()) process.stdout.write(`${tag}\n`);
  });
}
