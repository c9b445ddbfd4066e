import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { StrataError } from '../errors.js';
import { resolveImage } from '../image.js';
import { Reference } from '../reference.js';
import { OciLayout } from '../layout.js';
import type { PlatformWanted } from '../manifest.js';
import type { ImageStore } from '../store.js';
import { dockerArchive, importDockerArchive } from './archive.js';
import type { EngineClient } from './client.js';

/** Loads one platform's image from a store into the engine under `name`; returns the engine's image ID. */
export async function loadIntoEngine(store: ImageStore, id: string | undefined, engine: EngineClient, givenName: string, platform?: PlatformWanted): Promise<string> {
  // Engines want a tag in a docker-archive's RepoTags (Podman refuses one without): `app` loads as `app:latest`.
  const ref = Reference.parse(givenName);
  const name = ref.digest ? givenName : ref.toString();
  const image = await resolveImage(store, id, platform);
  await engine.load(dockerArchive(image, [name]));
  const loaded = await engine.inspect(name);
  if (!loaded) throw new StrataError(`container engine ${engine.description}: loaded ${name}, but the engine cannot find it by that name`);
  return loaded.Id;
}

/**
 * Reads an image out of the engine into a temporary layout (engines hand out whole tars, not blobs); the caller
 * copies from it and then calls `close`.
 */
export async function openEngineImage(engine: EngineClient, name: string): Promise<{ store: OciLayout; id: string; close: () => Promise<void> }> {
  if (!(await engine.inspect(name))) throw new StrataError(`container engine ${engine.description}: no image ${name}; check the name with \`docker images\``);
  const dir = await mkdtemp(join(tmpdir(), 'strata-engine-'));
  const close = () => rm(dir, { recursive: true, force: true });
  try {
    const layout = await OciLayout.open(dir, { create: true });
    await importDockerArchive(await engine.save(name), layout, 'latest', `docker-daemon:${name}`);
    return { store: layout, id: 'latest', close };
  } catch (err) {
    await close();
    throw err;
  }
}
