import { join } from 'node:path';
import { writeLayerFile, type LayerEntry, type LayerInfo } from '../oci/layer.js';
import type { BlobStream } from '../oci/store.js';
import type { GroupEntry } from '../spec/group.js';
import { fingerprint, recordedAs } from './fingerprint.js';
import { LayersDir } from './layersdir.js';
import type { Logger } from './log.js';

/** How the export tars a layer dir: its recipe and its entries, so a tar made early has the export's own bytes. */
export type LayerSource = (layers: LayersDir, rel: string) => { recipe: string; entries: AsyncIterable<LayerEntry> };

/** A launch layer tarred while the build went on; usable while its dir keeps the fingerprint taken before the tar. */
export interface EarlyLayer {
  recipe: string;
  fingerprint: string;
  path: string;
  info: LayerInfo;
  /** Sent to the export's streaming output as it was compressed. */
  sent: boolean;
}

/** A finished runtime layer waits at most this long to be noticed; a look that finds nothing new reads only .toml files. */
const POLL_MS = 50;
/**
 * How long a layer dir must have been left alone before it is tarred. File times move in ticks of the kernel's clock
 * (1 to 10 ms), so a write in the same tick as the fingerprint could leave every time as it was; a dir quiet for
 * longer than any tick cannot be written without a time moving past the fingerprint's.
 */
const QUIET_MS = 30;

/**
 * The launch layers of buildpacks that have finished, tarred and compressed while later buildpacks still build: on a
 * build whose first buildpack installs a runtime and whose next one waits on a package registry, the export's biggest
 * layer is ready when the build ends. Nothing is trusted from the time of the tar: the export takes an early layer
 * only when the dir's fingerprint (every entry's inode, size and times, read before the tar) is still the same, and
 * tars the dir itself otherwise. Reads go through the confined layers dir, as the export's own do.
 */
export class EarlyLayers {
  private readonly made = new Map<string, EarlyLayer>();
  /** Layers restored or reused as they were recorded: the export knows them already and tars nothing. */
  private readonly known = new Set<string>();
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;
  private count = 0;

  constructor(
    private readonly o: {
      layersDir: string;
      group: GroupEntry[];
      dir: string;
      source: LayerSource;
      created: Date;
      log: Logger;
      /** Starts an upload to the output the export streams buildpack layers to, when there is one. */
      stream?: () => Promise<BlobStream | undefined>;
    },
  ) {}

  start(): void {
    this.timer = setTimeout(() => this.tick(), POLL_MS);
  }

  /** Stops looking; a tar under way is finished, since the export would make the same one. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
  }

  /** The early tar of `rel`, when it was made by `recipe` and the dir has not changed since. */
  take(layers: LayersDir, rel: string, recipe: string): EarlyLayer | undefined {
    const e = this.made.get(rel);
    if (!e || e.recipe !== recipe) return undefined;
    try {
      return fingerprint(layers.dir, rel) === e.fingerprint ? e : undefined;
    } catch {
      return undefined;
    }
  }

  private tick(): void {
    this.running = this.pass()
      .catch((err: unknown) => this.o.log.debug(`early layers: ${err instanceof Error ? err.message : String(err)}`))
      .finally(() => {
        if (!this.stopped) this.timer = setTimeout(() => this.tick(), POLL_MS);
      });
  }

  /** One look at the layers dir: the first quiet launch layer not yet tarred is tarred. */
  private async pass(): Promise<void> {
    await LayersDir.with(this.o.layersDir, async (layers) => {
      for (const bp of this.o.group) {
        // A buildpack writes its .toml files as it goes: one not yet complete fails to parse, and is looked at again.
        for (const l of layers.layers(bp.id)) {
          if (this.stopped) return;
          if (!l.meta.types.launch || this.made.has(l.rel) || this.known.has(l.rel) || !layers.dir.isDirectory(l.rel)) continue;
          const quietSince = BigInt(Date.now() - QUIET_MS) * 1_000_000n;
          let newest = BigInt(Math.ceil((layers.dir.lstat(`${l.rel}.toml`)?.ctimeMs ?? 0) * 1e6));
          // A .toml written just now says the buildpack is still at it: not worth walking the tree to learn that.
          if (newest >= quietSince) continue;
          // An entry's latest time; the top dir's ctime moves when it is renamed into place, so its mtime only.
          const print = fingerprint(layers.dir, l.rel, (st, top) => {
            const t = top || st.mtimeNs > st.ctimeNs ? st.mtimeNs : st.ctimeNs;
            if (t > newest) newest = t;
          });
          if (newest >= quietSince) continue;
          const { recipe, entries } = this.o.source(layers, l.rel);
          if (recordedAs(layers.dir, l.rel, recipe, print)) {
            this.known.add(l.rel);
            continue;
          }
          const path = join(this.o.dir, `early-${this.count++}.tar.gz`);
          const sending = await this.o.stream?.();
          let info: LayerInfo;
          try {
            info = await writeLayerFile(entries, path, { mtime: this.o.created, ...(sending ? { copyTo: sending.sink } : {}) });
          } catch (err) {
            sending?.abort();
            throw err;
          }
          const sent = sending ? await sending.finish({ mediaType: info.mediaType, digest: info.digest, size: info.size }) : false;
          this.made.set(l.rel, { recipe, fingerprint: print, path, info, sent });
          this.o.log.debug(`early layers: ${l.rel} tarred while the build went on (${info.diffID.slice(7, 19)})`);
          return;
        }
      }
    });
  }
}
