import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { treeEntries, writeLayerFile } from '../../src/oci/layer.js';
import { OciLayout } from '../../src/oci/layout.js';
import { appendLayers, emptyConfig, emptyManifest, writeImage } from '../../src/oci/mutate.js';
import { hostPlatform, type PlatformWanted } from '../../src/oci/manifest.js';
import type { Digest } from '../../src/oci/digest.js';
import { tempDir } from './proc.js';

/** A file's content, or its content and mode (executables, shared libraries). */
export type FileSpec = string | Buffer | { content: string | Buffer; mode: number };

/** Writes files (path → content) under a directory. */
export async function writeTree(root: string, files: Record<string, FileSpec>): Promise<void> {
  for (const [path, spec] of Object.entries(files)) {
    await mkdir(dirname(join(root, path)), { recursive: true });
    if (typeof spec === 'object' && !Buffer.isBuffer(spec)) await writeFile(join(root, path), spec.content, { mode: spec.mode });
    else await writeFile(join(root, path), spec);
  }
}

/** Makes a single-platform image in a layout, one layer per file map, with strata's own layer writer. */
export async function makeLayoutImage(dir: string, tag: string, layers: Record<string, FileSpec>[], labels: Record<string, string> = {}, env: string[] = [], platform: PlatformWanted = hostPlatform()): Promise<{ layout: OciLayout; digest: Digest }> {
  const layout = await OciLayout.open(dir, { create: true });
  let config = emptyConfig(platform);
  config.config = { Env: ['PATH=/usr/bin:/bin', ...env], Labels: labels };
  let manifest = emptyManifest();
  const work = await tempDir();
  try {
    for (const [i, files] of layers.entries()) {
      const src = join(work.path, `l${i}`);
      await mkdir(src, { recursive: true });
      await writeTree(src, files);
      const tmp = join(layout.root, `.layer-${i}-${process.pid}`);
      const info = await writeLayerFile(treeEntries(src), tmp);
      await layout.adoptBlobFile(tmp, info.digest);
      ({ config, manifest } = appendLayers(config, manifest, [{ descriptor: { mediaType: info.mediaType, digest: info.digest, size: info.size }, diffID: info.diffID, history: { created_by: `test layer ${i}` } }]));
    }
  } finally {
    await work.cleanup();
  }
  const { digest } = await writeImage(layout, config, manifest, tag);
  return { layout, digest };
}

/** An image whose layers are the given tars as they are (gzipped): for layers no well-behaved tool would write. */
export async function makeRawLayoutImage(dir: string, tag: string, tars: Buffer[], createdBy: string[] = []): Promise<{ layout: OciLayout; digest: Digest }> {
  const { gzipSync } = await import('node:zlib');
  const { sha256 } = await import('../../src/oci/digest.js');
  const { MediaType } = await import('../../src/oci/mediatype.js');
  const layout = await OciLayout.open(dir, { create: true });
  let config = emptyConfig(hostPlatform());
  let manifest = emptyManifest();
  for (const [i, t] of tars.entries()) {
    const gz = gzipSync(t);
    const tmp = join(layout.root, `.raw-${i}-${process.pid}`);
    await writeFile(tmp, gz);
    await layout.adoptBlobFile(tmp, sha256(gz));
    ({ config, manifest } = appendLayers(config, manifest, [{ descriptor: { mediaType: MediaType.OciLayerGzip, digest: sha256(gz), size: gz.length }, diffID: sha256(t), history: { created_by: createdBy[i] ?? `raw layer ${i}` } }]));
  }
  const { digest } = await writeImage(layout, config, manifest, tag);
  return { layout, digest };
}

/**
 * The files of a tiny image that can run strata's shipped Node.js, bash buildpacks and the launcher: busybox plus
 * bash, env and the host's own shared libraries they need (so no debootstrap is needed for fast tests).
 */
export async function hostToolImageFiles(): Promise<Record<string, FileSpec>> {
  const { readFile } = await import('node:fs/promises');
  const { runOk } = await import('./proc.js');
  const exe = async (p: string): Promise<FileSpec> => ({ content: await readFile(p), mode: 0o755 });
  const tools = ['/bin/bash', '/usr/bin/env', '/bin/cat', '/bin/mkdir', '/bin/chmod', '/usr/bin/id'];
  const files: Record<string, FileSpec> = { 'bin/busybox': await exe('/bin/busybox') };
  for (const t of tools) files[t.slice(1)] = await exe(t);
  const libs = (await runOk('sh', ['-c', `ldd ${process.execPath} ${tools.join(' ')} | grep -o "/[^ ]*" | grep -v ":$" | sort -u`])).trim().split('\n');
  for (const lib of libs) files[lib.replace(/^\//, '')] = await exe(lib);
  return files;
}
