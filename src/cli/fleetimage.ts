import type { Command } from 'commander';
import { resolve } from 'node:path';
import { stringify } from 'yaml';
import { StrataError } from '../oci/errors.js';
import { Reference } from '../oci/reference.js';
import type { ImageSpec } from '../fleet/resources.js';
import { imageName, withFleet } from './fleetcommon.js';
import { repeatable } from './options.js';

/** kp's imperative image commands (`image create|patch|save`) and `import` of a dependency descriptor. */

interface ImageFlags {
  namespace: string;
  tag?: string;
  git?: string;
  gitRevision?: string;
  blob?: string;
  localPath?: string;
  localPathDestinationImage?: string;
  subPath?: string;
  builder?: string;
  clusterBuilder?: string;
  env: string[];
  deleteEnv?: string[];
  serviceAccount?: string;
  additionalTag: string[];
  deleteAdditionalTag?: string[];
  replaceAdditionalTag?: string[];
  serviceBinding: string[];
  deleteServiceBinding?: string[];
  cacheSize?: string;
  successBuildHistoryLimit?: string;
  failedBuildHistoryLimit?: string;
  output?: string;
  dryRun?: boolean;
  wait?: boolean;
  insecureRegistry: string[];
}

type Doc = { spec: Record<string, unknown> & { source?: Record<string, unknown>; build?: Record<string, unknown> } } & Record<string, unknown>;

function imageFlags(cmd: Command, patch: boolean): Command {
  cmd
    .option('-n, --namespace <ns>', 'namespace', 'default')
    .option('--git <url>', 'git repository url')
    .option('--git-revision <rev>', 'git revision such as commit, tag, or branch', patch ? undefined : 'main')
    .option('--blob <url>', 'source code blob url (a tar or tar.gz)')
    .option('--local-path <dir>', 'local source code: uploaded as an image, the Image builds from that')
    .option('--local-path-destination-image <image>', 'where --local-path is uploaded (default <tag repository>-source)')
    .option('--sub-path <path>', 'build the code at this path within the source')
    .option('-b, --builder <name>', 'Builder name (in the namespace)')
    .option('-c, --cluster-builder <name>', 'ClusterBuilder name (default: default)')
    .option('-e, --env <K=V>', `build time environment variables${patch ? ' to add or replace' : ''} (repeatable)`, repeatable, [])
    .option('--service-account <name>', 'service account whose Secrets give credentials')
    .option('--additional-tag <tag>', 'additional tags to push the image to (repeatable)', repeatable, [])
    .option('-s, --service-binding <secret>', 'a Secret the buildpacks see as a binding (repeatable)', repeatable, [])
    .option('--cache-size <size>', 'a volume cache of this size (its own cache per Image, removed with it)')
    .option('--success-build-history-limit <n>', 'succeeded builds to keep')
    .option('--failed-build-history-limit <n>', 'failed builds to keep')
    .option('--output <format>', 'print the resource as yaml or json (what kubectl apply -f would take)')
    .option('--dry-run', 'check it and print it (with --output), but change nothing')
    .option('-w, --wait', 'follow the build the change starts (with a running fleet serve)')
    .option('--insecure-registry <host>', 'plain HTTP for this registry (for --local-path; repeatable)', repeatable, []);
  if (patch) {
    cmd
      .option('-d, --delete-env <name>', 'build time environment variables to remove (repeatable)', repeatable, [])
      .option('--delete-additional-tag <tag>', 'additional tags to remove (repeatable)', repeatable, [])
      .option('--replace-additional-tag <tag>', 'replace all additional tags (repeatable)', repeatable, [])
      .option('--delete-service-binding <secret>', 'bindings to remove (repeatable)', repeatable, []);
  }
  return cmd;
}

function envPairs(items: string[]): { name: string; value: string }[] {
  return items.map((item) => {
    const eq = item.indexOf('=');
    if (eq <= 0) throw new StrataError(`--env "${item.slice(0, 60)}": expected NAME=VALUE`);
    return { name: item.slice(0, eq), value: item.slice(eq + 1) };
  });
}

function count(text: string | undefined, flag: string): number | undefined {
  if (text === undefined) return undefined;
  if (!/^\d+$/.test(text) || Number(text) < 1) throw new StrataError(`${flag} "${text}": expected a whole number of at least 1`);
  return Number(text);
}

/** Applies the flags to a document (a new one for create, the stored one for patch). */
async function edit(doc: Doc, o: ImageFlags): Promise<void> {
  const spec = doc.spec;
  const sources = [o.git, o.blob, o.localPath].filter((x) => x !== undefined);
  if (sources.length > 1) throw new StrataError('give one of --git, --blob or --local-path');
  if (o.builder && o.clusterBuilder) throw new StrataError('give --builder or --cluster-builder, not both');
  if (o.tag) spec.tag = o.tag;
  const subPath = o.subPath ?? (spec.source as { subPath?: string } | undefined)?.subPath;
  if (o.git) spec.source = { git: { url: o.git, revision: o.gitRevision ?? 'main' } };
  else if (o.gitRevision && spec.source && (spec.source as { git?: { url: string } }).git) spec.source = { git: { ...(spec.source as { git: object }).git, revision: o.gitRevision } };
  if (o.blob) spec.source = { blob: { url: o.blob } };
  if (o.localPath) {
    if (typeof spec.tag !== 'string') throw new StrataError('--local-path needs --tag');
    const dest = o.localPathDestinationImage ?? `${Reference.parse(spec.tag).name}-source`;
    if (o.dryRun) spec.source = { registry: { image: dest } };
    else {
      const { publishSourceImage } = await import('../platform/sourceimage.js');
      spec.source = { registry: { image: await publishSourceImage(resolve(o.localPath), dest, { insecureRegistries: o.insecureRegistry }) } };
      process.stderr.write(`Uploaded ${o.localPath} as ${(spec.source.registry as { image: string }).image}\n`);
    }
  }
  if (subPath && spec.source) spec.source.subPath = subPath;
  if (o.builder) spec.builder = { kind: 'Builder', name: o.builder };
  if (o.clusterBuilder) spec.builder = { kind: 'ClusterBuilder', name: o.clusterBuilder };
  if (o.serviceAccount) spec.serviceAccountName = o.serviceAccount;
  const build = (spec.build ??= {}) as { env?: { name: string }[]; services?: { kind: string; apiVersion: string; name: string }[] };
  const env = (build.env ?? []).filter((e) => !(o.deleteEnv ?? []).includes(e.name));
  for (const e of envPairs(o.env)) {
    const i = env.findIndex((x) => x.name === e.name);
    if (i >= 0) env[i] = e;
    else env.push(e);
  }
  build.env = env;
  const services = (build.services ?? []).filter((s) => !(o.deleteServiceBinding ?? []).includes(s.name));
  for (const name of o.serviceBinding) if (!services.some((s) => s.name === name)) services.push({ kind: 'Secret', apiVersion: 'v1', name });
  if (services.length) build.services = services;
  else delete build.services;
  if (!build.env.length) delete build.env;
  if (!Object.keys(build).length) delete spec.build;
  let tags = (spec.additionalTags as string[] | undefined) ?? [];
  if (o.replaceAdditionalTag?.length) tags = [...o.replaceAdditionalTag];
  tags = [...tags.filter((t) => !(o.deleteAdditionalTag ?? []).includes(t)), ...o.additionalTag.filter((t) => !tags.includes(t))];
  if (tags.length) spec.additionalTags = tags;
  else delete spec.additionalTags;
  if (o.cacheSize) spec.cache = { volume: { size: o.cacheSize } };
  const ok = count(o.successBuildHistoryLimit, '--success-build-history-limit');
  const bad = count(o.failedBuildHistoryLimit, '--failed-build-history-limit');
  if (ok) spec.successBuildHistoryLimit = ok;
  if (bad) spec.failedBuildHistoryLimit = bad;
}

async function save(name: string, o: ImageFlags, mode: 'create' | 'patch' | 'save'): Promise<void> {
  if (o.output !== undefined && o.output !== 'yaml' && o.output !== 'json') throw new StrataError(`--output "${o.output}": use yaml or json`);
  const { namespace, name: n } = imageName(name, o.namespace);
  await withFleet(async (f) => {
    const stored = (await f.resources('Image')).find((r) => r.resource.meta.namespace === namespace && r.resource.meta.name === n);
    if (mode === 'create' && stored) throw new StrataError(`Image ${namespace}/${n} exists; use strata fleet image patch (or save)`);
    if (mode === 'patch' && !stored) throw new StrataError(`no Image ${namespace}/${n} (see strata fleet images); use strata fleet image create (or save)`);
    let doc: Doc;
    if (stored) {
      const { imageDocument } = await import('../fleet/documents.js');
      doc = imageDocument(stored.resource.meta, stored.resource.spec as ImageSpec) as Doc;
      if (o.tag && o.tag !== (stored.resource.spec as ImageSpec).tag) throw new StrataError(`--tag: an Image's tag cannot change, as in kpack (it is ${(stored.resource.spec as ImageSpec).tag})`);
    } else {
      if (!o.tag) throw new StrataError('--tag is required: where the image is pushed');
      if (!o.git && !o.blob && !o.localPath) throw new StrataError('give the source: --git URL, --blob URL or --local-path DIR');
      doc = { apiVersion: 'kpack.io/v1alpha2', kind: 'Image', metadata: { name: n, namespace }, spec: { builder: { kind: 'ClusterBuilder', name: 'default' } } };
    }
    await edit(doc, o);
    const { parseResource } = await import('../fleet/parse.js');
    parseResource(doc, `Image ${namespace}/${n}`);
    if (o.output) process.stdout.write(o.output === 'json' ? `${JSON.stringify(doc, null, 2)}\n` : stringify(doc));
    if (o.dryRun) return;
    const before = new Set((await f.builds({ ownerKind: 'Image', namespace, image: n })).map((b) => b.number));
    const out = await f.apply([{ where: `Image ${namespace}/${n}`, doc }]);
    for (const w of out.warnings) process.stderr.write(`Warning: ${w}\n`);
    const outcome = out.results[0]?.outcome ?? 'unchanged';
    (o.output ? process.stderr : process.stdout).write(`Image ${namespace}/${n} ${outcome}\n`);
    if (!o.wait) return;
    const { RemoteFleet } = await import('../fleet/client.js');
    if (!(f instanceof RemoteFleet)) return void process.stderr.write('No strata fleet serve runs here to build it; strata fleet reconcile --once does\n');
    if (outcome === 'unchanged') return;
    let number: number | undefined;
    for (let i = 0; i < 600 && number === undefined; i++) {
      number = (await f.builds({ ownerKind: 'Image', namespace, image: n })).find((b) => !before.has(b.number))?.number;
      if (number === undefined) await new Promise((r) => setTimeout(r, 200));
    }
    if (number === undefined) return void process.stderr.write('No build started (the Image is up to date, or waits for its builder)\n');
    let from = 0;
    for (;;) {
      const key = { ownerKind: 'Image' as const, namespace, image: n, number };
      const { chunks, status } = await f.log(key, from);
      for (const c of chunks) process.stdout.write(c.text);
      if (chunks.length) from = chunks[chunks.length - 1]!.seq + 1;
      if (status !== 'pending' && status !== 'running') {
        for (const c of (await f.log(key, from)).chunks) process.stdout.write(c.text);
        if (status !== 'succeeded') process.exitCode = 1;
        return;
      }
      await new Promise((r) => setTimeout(r, 300));
    }
  });
}

export function registerFleetImageCommands(fleet: Command): void {
  const image = fleet.command('image').description("kp's image commands: create, patch or save an Image without writing YAML");
  imageFlags(image.command('create <name>').description('create an Image (kp image create)').option('-t, --tag <tag>', 'where the image is pushed'), false).action((name: string, o: ImageFlags) => save(name, o, 'create'));
  imageFlags(image.command('patch <name>').description('change an Image (kp image patch)'), true).action((name: string, o: ImageFlags) => save(name, o, 'patch'));
  imageFlags(image.command('save <name>').description('create an Image, or change it if it exists (kp image save)').option('-t, --tag <tag>', 'where the image is pushed'), true).action((name: string, o: ImageFlags) => save(name, o, 'save'));

  fleet
    .command('import')
    .description("apply kp's dependency descriptor (kp.kpack.io/v1alpha3 or v1): stores, stacks, buildpacks, lifecycles and cluster builders")
    .requiredOption('-f, --filename <path>', 'the descriptor, or - for stdin')
    .option('--default-repository <repo>', 'where cluster builders are pushed, as kp\'s default repository (<repo>:clusterbuilder-<name>)')
    .option('--output <format>', 'print the resources as yaml or json instead of applying them')
    .option('--dry-run', 'check and print, change nothing')
    .option('--insecure-registry <host>', 'plain HTTP for this registry (reading stack ids; repeatable)', repeatable, [])
    .action(async (o: { filename: string; defaultRepository?: string; output?: string; dryRun?: boolean; insecureRegistry: string[] }) => {
      if (o.output !== undefined && o.output !== 'yaml' && o.output !== 'json') throw new StrataError(`--output "${o.output}": use yaml or json`);
      const { readDependencyDescriptor, descriptorDocuments } = await import('../fleet/descriptor.js');
      const descriptor = await readDependencyDescriptor(o.filename);
      const docs = await descriptorDocuments(descriptor, o.defaultRepository, { insecureRegistries: o.insecureRegistry });
      if (o.output || o.dryRun) {
        const { parseDocuments } = await import('../fleet/manifests.js');
        parseDocuments(docs);
        const fmt = o.output ?? 'yaml';
        process.stdout.write(fmt === 'json' ? `${JSON.stringify(docs.map((d) => d.doc), null, 2)}\n` : docs.map((d) => stringify(d.doc)).join('---\n'));
        if (o.dryRun) return;
      }
      await withFleet(async (f) => {
        const out = await f.apply(docs);
        for (const w of out.warnings) process.stderr.write(`Warning: ${w}\n`);
        for (const r of out.results) (o.output ? process.stderr : process.stdout).write(`${r.key.replace(/\/\//, '/').replace(/^(\w+)\//, '$1 ')} ${r.outcome}\n`);
      });
    });
}
