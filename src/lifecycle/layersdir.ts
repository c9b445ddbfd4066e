import { checkPathComponent, ConfinedDir } from '../oci/confined.js';
import { escapeId } from '../spec/buildpack.js';
import { NOT_LAYERS, parseLayerToml, type LayerMetadata } from '../spec/layer.js';
import { parseMetadata, type BuildMetadata } from '../spec/metadata.js';
import { parseStore, type StoreFile } from '../spec/storetoml.js';
import { parseToml, SpecError, toToml, type Table } from '../spec/toml.js';

/** TOML files buildpacks leave are small; anything bigger is not one strata reads. */
const TOML_LIMIT = 8 << 20;

/** One layer a buildpack left, with its `.toml`. */
export interface BuiltLayer {
  name: string;
  /** The layer dir relative to the layers dir: `<escaped bp id>/<name>`. */
  rel: string;
  /** Its host path, for messages and for code that runs in the buildpack's own rights. */
  dir: string;
  meta: LayerMetadata;
}

/**
 * The layers dir as the lifecycle's phases read and change it. After a buildpack has run, every name in it may be a
 * link aimed at the host, so every access goes through a ConfinedDir: links are refused, never followed, and names
 * from buildpacks or image labels are checked to be single path components before they become paths.
 */
export class LayersDir {
  private constructor(readonly dir: ConfinedDir) {}

  get path(): string {
    return this.dir.path;
  }

  static open(path: string): LayersDir {
    return new LayersDir(ConfinedDir.open(path));
  }

  /** Opens the layers dir for `use` and closes it afterwards. */
  static async with<T>(path: string, use: (layers: LayersDir) => Promise<T>): Promise<T> {
    const l = LayersDir.open(path);
    try {
      return await use(l);
    } finally {
      l.close();
    }
  }

  close(): void {
    this.dir.close();
  }

  /** A buildpack's dir name: its id with `/` escaped, refused if it could name anything but one dir. */
  static bpDir(id: string): string {
    return checkPathComponent(escapeId(id), 'buildpack id');
  }

  /** `<bp>/<layer>` for a layer name that comes from a buildpack, a cache or an image label. */
  static layerRel(id: string, name: string): string {
    return `${LayersDir.bpDir(id)}/${checkPathComponent(name, `layer name of ${id}`)}`;
  }

  readToml(rel: string): Table | undefined {
    const text = this.dir.readText(rel, TOML_LIMIT);
    return text === undefined ? undefined : parseToml(text, this.dir.pathOf(rel));
  }

  writeToml(rel: string, table: Table): void {
    this.dir.writeFile(rel, toToml(table));
  }

  /** A buildpack's `<layer>.toml` files, sorted by name; build, launch and store are not layers. */
  layers(bpId: string): BuiltLayer[] {
    const bp = LayersDir.bpDir(bpId);
    const names = (this.dir.readdir(bp) ?? [])
      .filter((n) => n.endsWith('.toml'))
      .map((n) => n.slice(0, -5))
      .filter((n) => n !== '' && !NOT_LAYERS.has(n))
      .sort();
    return names.map((name) => {
      const rel = `${bp}/${name}`;
      const file = this.dir.pathOf(`${rel}.toml`);
      return { name, rel, dir: this.dir.pathOf(rel), meta: parseLayerToml(this.readToml(`${rel}.toml`) ?? {}, file) };
    });
  }

  store(bpId: string): StoreFile | undefined {
    const rel = `${LayersDir.bpDir(bpId)}/store.toml`;
    const t = this.readToml(rel);
    return t ? parseStore(t, this.dir.pathOf(rel)) : undefined;
  }

  /** `config/metadata.toml`, the builder's output. */
  metadata(): BuildMetadata {
    const t = this.readToml('config/metadata.toml');
    if (!t) throw new SpecError(`${this.dir.pathOf('config/metadata.toml')}: not found; run the builder first`);
    return parseMetadata(t, this.dir.pathOf('config/metadata.toml'));
  }

  isDirectory(rel: string): boolean {
    return this.dir.isDirectory(rel);
  }
}
