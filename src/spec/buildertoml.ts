import { parseOrder, type Order, type OrderElement, parseElement } from './order.js';
import { resolveUri, type BuildpackSource } from './packagetoml.js';
import { Fields, SpecError, readToml, type Table } from './toml.js';
import type { RunImage } from './run.js';
import { targetPlatforms } from './target.js';

/** pack's builder.toml, as strata reads it. */
export interface BuilderConfig {
  description?: string;
  buildpacks: (BuildpackSource & { id?: string; version?: string })[];
  order: Order;
  /** Image extensions, and the order they are tried in before each buildpack group. */
  extensions: (BuildpackSource & { id?: string; version?: string })[];
  orderExtensions: Order;
  system: { pre: OrderElement[]; post: OrderElement[] };
  buildImage: string;
  buildEnv: { name: string; value: string; suffix?: string; delim?: string }[];
  runImages: RunImage[];
  stack?: { id: string };
  /** `[[targets]]`: the platforms to make the builder for when `--target` gives none. */
  targets: { os: string; architecture: string; variant?: string }[];
  /** Things worth one line that do not stop the builder (a [lifecycle] strata does not use). */
  warnings: string[];
  file: string;
}

const KNOWN_TOP = new Set(['description', 'buildpacks', 'extensions', 'order', 'order-extensions', 'system', 'stack', 'build', 'run', 'lifecycle', 'targets']);
const SUFFIXES = new Set(['default', 'override', 'append', 'prepend', 'delim']);

export function parseBuilderConfig(table: Table, file: string): BuilderConfig {
  for (const k of Object.keys(table)) if (!KNOWN_TOP.has(k)) throw new SpecError(`${file}: unknown key "${k}"`);
  const f = new Fields(table, file);
  const stack = f.sub('stack').only('id', 'build-image', 'run-image', 'run-image-mirrors');
  const build = f.sub('build').only('image', 'env');
  const warnings: string[] = [];
  const lifecycle = f.sub('lifecycle').only('version', 'uri');
  if (lifecycle.has('version') || lifecycle.has('uri')) {
    warnings.push(`${file}: [lifecycle] ${lifecycle.str('version') ? `version ${lifecycle.str('version')}` : `uri ${lifecycle.str('uri')}`} is ignored: strata puts its own lifecycle (Platform API 0.12 to 0.15) into every builder`);
  }
  // The older [stack] form and [build]/[[run.images]] may both be there (pack writes both for old platforms), but must agree.
  if (build.str('image') && stack.str('build-image') && build.str('image') !== stack.str('build-image')) {
    throw new SpecError(`${file}: [build] image ${build.str('image')} and [stack] build-image ${stack.str('build-image')} differ; give one, or the same in both`);
  }
  const buildImage = build.str('image') ?? stack.str('build-image');
  if (!buildImage) throw new SpecError(`${file}: [build] image is required (the build image the builder extends)`);
  const runImages = f.sub('run').only('images').list('images').map((r) => ({ image: r.only('image', 'mirrors').reqStr('image'), mirrors: r.strArray('mirrors') ?? [] }));
  if (runImages.length && stack.str('run-image') && runImages[0]!.image !== stack.str('run-image')) {
    throw new SpecError(`${file}: [[run.images]] image ${runImages[0]!.image} and [stack] run-image ${stack.str('run-image')} differ; give one, or the same in both`);
  }
  if (!runImages.length && stack.str('run-image')) runImages.push({ image: stack.str('run-image')!, mirrors: stack.strArray('run-image-mirrors') ?? [] });
  if (!runImages.length) throw new SpecError(`${file}: [[run.images]] needs at least one image`);
  const sources = (key: 'buildpacks' | 'extensions') =>
    f.list(key).map((b) => {
      b.only('id', 'version', 'uri', 'image');
      const uri = b.str('uri');
      const image = b.str('image');
      const id = b.str('id');
      const version = b.str('version');
      if (!uri && !image) throw new SpecError(`${b.where}: give a uri or an image`);
      return { ...(uri ? { uri: resolveUri(uri, file) } : {}), ...(image ? { image } : {}), ...(id ? { id } : {}), ...(version ? { version } : {}) };
    });
  const buildpacks = sources('buildpacks');
  const extensions = sources('extensions');
  for (const key of ['order', 'order-extensions']) {
    for (const g of f.list(key)) {
      g.only('group');
      // Extensions are always optional, so their order entries take no optional flag.
      for (const e of g.list('group')) (key === 'order' ? e.only('id', 'version', 'optional') : e.only('id', 'version'));
    }
  }
  const order = parseOrder(f.list('order'), false);
  const orderExtensions = parseOrder(f.list('order-extensions'), false);
  if (orderExtensions.length && !extensions.length) throw new SpecError(`${file}: [[order-extensions]] names extensions, but there is no [[extensions]] entry`);
  if (!order.length) throw new SpecError(`${file}: [[order]] is required: which buildpacks to try, in which groups`);
  const sys = f.sub('system').only('pre', 'post');
  const buildEnv = build.list('env').map((e) => {
    e.only('name', 'value', 'suffix', 'delim');
    const suffix = e.str('suffix');
    if (suffix && !SUFFIXES.has(suffix)) throw new SpecError(`${e.where}: suffix "${suffix}" is not one of ${[...SUFFIXES].join(', ')}`);
    const delim = e.str('delim');
    if (delim !== undefined && suffix !== 'append' && suffix !== 'prepend') throw new SpecError(`${e.where}: delim applies to suffix append or prepend`);
    return { name: e.reqStr('name'), value: e.str('value') ?? '', ...(suffix ? { suffix } : {}), ...(delim !== undefined ? { delim } : {}) };
  });
  const description = f.str('description');
  return {
    ...(description ? { description } : {}),
    buildpacks,
    order,
    extensions,
    orderExtensions,
    system: { pre: sys.sub('pre').list('buildpacks').map((e) => parseElement(e, true)), post: sys.sub('post').list('buildpacks').map((e) => parseElement(e, true)) },
    buildImage,
    buildEnv,
    runImages,
    ...(stack.str('id') ? { stack: { id: stack.str('id')! } } : {}),
    targets: targetPlatforms(f),
    warnings,
    file,
  };
}

export async function readBuilderConfig(path: string): Promise<BuilderConfig> {
  const t = await readToml(path);
  if (!t) throw new SpecError(`${path}: not found; pass the builder.toml with --config`);
  return parseBuilderConfig(t, path);
}
