import { createHash } from 'node:crypto';
import { lstatSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { isDigest, type Digest } from '../oci/digest.js';
import { writeFileAtomic } from '../oci/fsutil.js';
import { strataHome } from '../oci/images.js';
import { layerDiffID, type LayerEntry } from '../oci/layer.js';

/** How many fingerprints are kept: one per build user and platform a machine makes builders for, and some history. */
const KEEP = 32;

/**
 * What a set of layer entries is made of, cheaply: every entry's path, type, mode and owner, and for a file read
 * from disk its size, inode and times (a changed file moves its ctime), for one held in memory its hash. Equal
 * fingerprints mean the same tar, short of the clock being turned back as a file is rewritten. (Not the name a file is
 * read by: a tree's walk names its files through descriptors, whose numbers differ from walk to walk.)
 */
export async function entriesFingerprint(entries: AsyncIterable<LayerEntry>): Promise<string> {
  const h = createHash('sha256');
  for await (const e of entries) {
    const common = [e.type, e.path, e.uid ?? '', e.gid ?? ''];
    if (e.type === 'file') {
      if (Buffer.isBuffer(e.source)) h.update(JSON.stringify([...common, e.mode, e.size, createHash('sha256').update(e.source).digest('hex')]));
      else {
        const st = lstatSync(e.source, { bigint: true });
        h.update(JSON.stringify([...common, e.mode, e.size, String(st.dev), String(st.ino), String(st.mtimeNs), String(st.ctimeNs)]));
      }
    } else if (e.type === 'directory') h.update(JSON.stringify([...common, e.mode]));
    else h.update(JSON.stringify([...common, e.target]));
    h.update('\n');
  }
  return h.digest('hex');
}

/**
 * The diffIDs of layers this install makes itself (strata's lifecycle), by the fingerprint of what they are made
 * from: a builder's layer with one of them is unpacked from the install instead of downloaded. Only a hint: the
 * unpack still checks the diffID, so a wrong or planted entry costs time, never content.
 */
export class OwnLayers {
  constructor(private readonly file: string) {}

  /** The record kept under a strata home's cache. */
  static in(home: string): OwnLayers {
    return new OwnLayers(join(home, 'cache', 'own-layers.json'));
  }

  /** The record in this user's strata home; none for a user without a home (who then has nothing remembered). */
  static ofUser(env: NodeJS.ProcessEnv = process.env): OwnLayers | undefined {
    try {
      return OwnLayers.in(strataHome(env));
    } catch {
      return undefined;
    }
  }

  /** The diffID of `entries()`: remembered, or hashed once (a tar pass, no compression) and remembered. */
  async diffID(entries: () => AsyncIterable<LayerEntry>): Promise<Digest> {
    const fingerprint = await entriesFingerprint(entries());
    const known = (await this.read())[fingerprint];
    if (known) return known;
    const diffID = await layerDiffID(entries());
    await this.remember(fingerprint, diffID);
    return diffID;
  }

  /** Best effort, as a cache: a record that cannot be written (a read-only home) only means the next unpack hashes. */
  async remember(fingerprint: string, diffID: Digest): Promise<void> {
    const all = { ...(await this.read()) };
    delete all[fingerprint];
    all[fingerprint] = diffID;
    await writeFileAtomic(this.file, JSON.stringify(Object.fromEntries(Object.entries(all).slice(-KEEP)))).catch(() => undefined);
  }

  private async read(): Promise<Record<string, Digest>> {
    try {
      const parsed = JSON.parse(await readFile(this.file, 'utf8')) as unknown;
      if (!parsed || typeof parsed !== 'object') return {};
      return Object.fromEntries(Object.entries(parsed).filter((kv): kv is [string, Digest] => typeof kv[1] === 'string' && isDigest(kv[1])));
    } catch {
      // Missing or damaged: nothing is known, and the next write replaces it.
      return {};
    }
  }
}
