import type { Command } from 'commander';
import { StrataError } from '../oci/errors.js';
import type { BuilderSpec, ImageSpec, Kind, SecretSpec, StackSpec, StoreSpec } from '../fleet/resources.js';
import type { BuilderStatus, BuildpackStatus, ImageStatus, LifecycleStatus, StackStatus, StoreStatus } from '../fleet/store.js';
import { ago, format, imageName, table, withFleet } from './fleetcommon.js';
import { printJson } from './output.js';

/** `strata fleet images|status|builds|logs|build status|builders|stacks|stores|…`: the fleet as kp shows it. */
export function registerFleetViews(fleet: Command): void {
  registerResourceViews(fleet);
  registerBuildStatus(fleet);
  fleet
    .command('images')
    .description('the declared images: ready, latest image, last reason')
    .option('-n, --namespace <ns>', 'only this namespace')
    .option('-o, --output <format>', 'human or json', 'human')
    .action(async (o: { namespace?: string; output: string }) => {
      const fmt = format(o);
      await withFleet(async (f) => {
        const images = (await f.images()).filter((i) => !o.namespace || i.namespace === o.namespace);
        if (fmt === 'json') return printJson(images);
        if (!images.length) return void process.stdout.write('no images declared (strata fleet apply -f FILE)\n');
        const rows = [['NAME', 'READY', 'LATEST REASON', 'LATEST BUILD', 'LATEST IMAGE']];
        for (const i of images) {
          const b = i.latestBuild ? `#${i.latestBuild.number} ${i.latestBuild.status}` : '--';
          rows.push([`${i.namespace}/${i.name}`, i.ready, i.latestReason ?? '--', b, i.latestImage ?? '--']);
        }
        process.stdout.write(table(rows));
      });
    });

  fleet
    .command('status <image>')
    .description('one image: its status, source, builder and latest builds')
    .option('-n, --namespace <ns>', 'namespace', 'default')
    .option('-o, --output <format>', 'human or json', 'human')
    .action(async (text: string, o: { namespace: string; output: string }) => {
      const fmt = format(o);
      const { namespace, name } = imageName(text, o.namespace);
      await withFleet(async (f) => {
        const r = (await f.resources('Image')).find((x) => x.resource.meta.namespace === namespace && x.resource.meta.name === name);
        if (!r) throw new StrataError(`no Image ${namespace}/${name} (see strata fleet images)`);
        const builds = await f.builds({ ownerKind: 'Image', namespace, image: name });
        if (fmt === 'json') return printJson({ ...r, builds });
        const ready = r.conditions.find((c) => c.type === 'Ready');
        const spec = r.resource.spec as ImageSpec;
        const s = r.status as ImageStatus;
        const ok = builds.find((b) => b.status === 'succeeded');
        const bad = builds.find((b) => b.status === 'failed' || b.status === 'interrupted');
        const src = spec.source.git ? ['GitUrl', spec.source.git.url, `${spec.source.git.revision}${s.commit ? ` (${s.commit})` : ''}`] : spec.source.registry ? ['Registry', spec.source.registry.image, s.sourceImage ?? '--'] : ['Blob', spec.source.blob?.url ?? '', '--'];
        const lines = [
          `Image:          ${namespace}/${name} (${spec.tag})`,
          `Status:         ${ready?.status === 'True' ? 'Ready' : ready?.status === 'False' ? 'NotReady' : 'Unknown'}`,
          `Message:        ${s.error ?? ready?.message ?? s.why ?? '--'}`,
          `LatestImage:    ${ok?.result?.image ?? '--'}`,
          ...r.conditions.map((c) => `${`${c.type}:`.padEnd(16)}${c.status}${c.reason ? ` (${c.reason})` : ''}`),
          '',
          'Source',
          `Type:           ${src[0]}`,
          `Url:            ${src[1]}`,
          `Revision:       ${src[2]}`,
          ...(spec.source.subPath ? [`Sub Path:       ${spec.source.subPath}`] : []),
          '',
          'Builder Ref',
          `Name:           ${spec.builder.name}`,
          `Kind:           ${spec.builder.kind}`,
          '',
          'Last Successful Build',
          `Id:             ${ok ? `#${ok.number}` : '--'}`,
          `Build Reason:   ${ok?.reasons ?? '--'}`,
          `Finished:       ${ago(ok?.finishedAt)}`,
          '',
          'Last Failed Build',
          `Id:             ${bad ? `#${bad.number} (${bad.status})` : '--'}`,
          `Build Reason:   ${bad?.reasons ?? '--'}`,
          `Message:        ${bad?.message ?? '--'}`,
        ];
        process.stdout.write(`${lines.join('\n')}\n`);
      });
    });

  fleet
    .command('builds [image]')
    .description('build records, newest first: number, status, reasons, image')
    .option('-n, --namespace <ns>', 'namespace', 'default')
    .option('-o, --output <format>', 'human or json', 'human')
    .action(async (text: string | undefined, o: { namespace: string; output: string }) => {
      const fmt = format(o);
      const filter = text ? imageName(text, o.namespace) : undefined;
      await withFleet(async (f) => {
        const builds = await f.builds(filter ? { namespace: filter.namespace, image: filter.name } : {});
        if (fmt === 'json') return printJson(builds);
        const rows = [['IMAGE', 'BUILD', 'KIND', 'STATUS', 'REASONS', 'STARTED', 'FINISHED', 'IMAGE DIGEST']];
        for (const b of builds) rows.push([`${b.ownerKind === 'Build' ? 'Build ' : ''}${b.namespace}/${b.image}`, String(b.number), b.kind, b.status, b.reasons, ago(b.startedAt), ago(b.finishedAt), b.result?.digest?.slice(0, 19) ?? (b.message ? `(${b.message.slice(0, 50)})` : '--')]);
        process.stdout.write(builds.length ? table(rows) : 'no builds\n');
      });
    });

  fleet
    .command('logs <image>')
    .description('the log of a build (the latest unless -b)')
    .option('-n, --namespace <ns>', 'namespace', 'default')
    .option('-b, --build <number>', 'build number')
    .option('--follow', 'keep printing until the build ends')
    .option('--kind <kind>', 'whose builds: Image, or Build for a Build resource applied by itself', 'Image')
    .action(async (text: string, o: { namespace: string; build?: string; follow?: boolean; kind: string }) => {
      if (o.kind !== 'Image' && o.kind !== 'Build') throw new StrataError(`--kind "${o.kind}": Image or Build`);
      const ownerKind: 'Image' | 'Build' = o.kind;
      const { namespace, name } = imageName(text, o.namespace);
      await withFleet(async (f) => {
        let number = o.build ? Number(o.build) : undefined;
        if (o.build && (!Number.isInteger(number) || number! < 1)) throw new StrataError(`-b "${o.build}": expected a build number`);
        if (number === undefined) {
          const latest = (await f.builds({ ownerKind, namespace, image: name }))[0];
          if (!latest) throw new StrataError(`${ownerKind} ${namespace}/${name} has no builds yet`);
          number = latest.number;
        }
        let from = 0;
        for (;;) {
          const key = { ownerKind, namespace, image: name, number };
          const { chunks, status } = await f.log(key, from);
          for (const c of chunks) process.stdout.write(c.text);
          if (chunks.length) from = chunks[chunks.length - 1]!.seq + 1;
          if (!o.follow || (status !== 'pending' && status !== 'running')) {
            // One last read: the final lines land with the status.
            if (o.follow) for (const c of (await f.log(key, from)).chunks) process.stdout.write(c.text);
            process.exitCode = status === 'failed' ? 1 : 0;
            return;
          }
          await new Promise((r) => setTimeout(r, 300));
        }
      });
    });

  fleet
    .command('export')
    .description('write the whole fleet as kpack resources (kubectl apply -f takes them; so does strata fleet apply -f); Secrets are named, never written')
    .option('--kpack', 'kpack.io/v1alpha2 YAML (the one format)')
    .option('-f, --filename <file>', 'write here instead of stdout (replaced whole, never half-written)')
    .action(async (o: { kpack?: boolean; filename?: string }) => {
      if (!o.kpack) throw new StrataError('say which format to export: --kpack (kpack.io/v1alpha2 YAML)');
      const { kpackExport } = await import('../fleet/documents.js');
      const { stringify } = await import('yaml');
      const text = await withFleet(async (f) => kpackExport((await f.resources()).map((v) => v.resource), (d) => stringify(d, { lineWidth: 0 })));
      if (!o.filename) return void process.stdout.write(text);
      const { writeFileAtomic } = await import('../oci/fsutil.js');
      await writeFileAtomic(o.filename, text);
    });

  fleet
    .command('workers')
    .description('the worker processes of the fleet on every machine: their slots, the builds they hold, the controller')
    .option('-o, --output <format>', 'human or json', 'human')
    .action(async (o: { output: string }) => {
      const fmt = format(o);
      await withFleet(async (f) => {
        const [workers, running] = await Promise.all([f.workers(), f.builds({}).then((bs) => bs.filter((b) => b.status === 'running'))]);
        if (fmt === 'json') return printJson(workers.map((w) => ({ ...w, running: running.filter((b) => b.worker === w.name).map((b) => `${b.namespace}/${b.image}#${b.number}`) })));
        const rows = [['WORKER', 'ROLE', 'SLOTS', 'RUNNING', 'SEEN'], ...workers.map((w) => [w.name, w.controller ? 'controller' : 'worker', `${w.slots.builds} builds, ${w.slots.rebases} rebases`, String(running.filter((b) => b.worker === w.name).length), ago(w.seenAt)])];
        process.stdout.write(workers.length ? table(rows) : 'no workers have been seen (start strata fleet serve or strata fleet worker)\n');
      });
    });
}

type View = import('../fleet/service.js').ResourceView;

const readyWord = (v: View): string => {
  const c = v.conditions.find((x) => x.type === 'Ready');
  return c?.status ?? 'Unknown';
};

const nameOf = (v: View): string => `${v.resource.meta.namespace ? `${v.resource.meta.namespace}/` : ''}${v.resource.meta.name}`;

/** The one resource of these kinds named `text` (`ns/name` for namespaced kinds, or `-n`). */
function pick(views: View[], text: string, namespace: string, what: string): View {
  const slash = text.indexOf('/');
  const [ns, name] = slash > 0 ? [text.slice(0, slash), text.slice(slash + 1)] : [undefined, text];
  const found = views.filter((v) => v.resource.meta.name === name && (v.resource.meta.namespace === '' || v.resource.meta.namespace === (ns ?? namespace)));
  if (!found.length) throw new StrataError(`no ${what} ${text} (see strata fleet ${what === 'builder' ? 'builders' : `${what}s`})`);
  return found[0]!;
}

function conditionLines(v: View): string[] {
  const ready = v.conditions.find((c) => c.type === 'Ready');
  return [`Status:        ${ready?.status === 'True' ? 'Ready' : ready?.status === 'False' ? 'NotReady' : 'Unknown'}`, ...(ready?.message ? [`Message:       ${ready.message}`] : []), ...v.conditions.map((c) => `${`${c.type}:`.padEnd(15)}${c.status}${c.reason ? ` (${c.reason})` : ''}`)];
}

/** A listing with NAME and READY, and a detailed status of one when named. */
function listing(fleet: Command, o: { command: string; description: string; kinds: Kind[]; what: string; columns: [string, (v: View) => string][]; details: (v: View) => string[]; ready?: false }): void {
  fleet
    .command(`${o.command} [name]`)
    .description(o.description)
    .option('-n, --namespace <ns>', 'namespace of namespaced resources', 'default')
    .option('-o, --output <format>', 'human or json', 'human')
    .action(async (name: string | undefined, opts: { namespace: string; output: string }) => {
      const fmt = format(opts);
      await withFleet(async (f) => {
        const views = (await Promise.all(o.kinds.map((k) => f.resources(k)))).flat();
        if (name) {
          const v = pick(views, name, opts.namespace, o.what);
          if (fmt === 'json') return printJson(v);
          return void process.stdout.write(`${[`Name:          ${v.resource.meta.kind} ${nameOf(v)}`, ...(o.ready === false ? [] : conditionLines(v)), ...o.details(v)].join('\n')}\n`);
        }
        if (fmt === 'json') return printJson(views);
        if (!views.length) return void process.stdout.write(`no ${o.what}s declared (strata fleet apply -f FILE)\n`);
        const ready = o.ready !== false;
        const rows = [['NAME', ...(ready ? ['READY'] : []), ...o.columns.map(([h]) => h)]];
        for (const v of views) rows.push([`${o.kinds.length > 1 ? `${v.resource.meta.kind} ` : ''}${nameOf(v)}`, ...(ready ? [readyWord(v)] : []), ...o.columns.map(([, get]) => get(v))]);
        process.stdout.write(table(rows));
      });
    });
}

export function registerResourceViews(fleet: Command): void {
  listing(fleet, {
    command: 'builders',
    description: 'ClusterBuilders and Builders: readiness, image; with a name, its buildpacks, lifecycle, run image and order',
    kinds: ['ClusterBuilder', 'Builder'],
    what: 'builder',
    columns: [['STACK', (v) => (v.resource.spec as BuilderSpec).stack], ['IMAGE', (v) => (v.status as BuilderStatus).image ?? '--']],
    details: (v) => {
      const s = v.status as BuilderStatus;
      const spec = v.resource.spec as BuilderSpec;
      const rows = [['BUILDPACK ID', 'VERSION'], ...(s.buildpacks ?? []).map((b) => [b.id, b.version])];
      return [
        `Tag:           ${spec.tag}`,
        `Image:         ${s.image ?? '--'}`,
        `Stack:         ${spec.stack}${s.stackId ? ` (${s.stackId})` : ''}`,
        `Run Image:     ${s.runImage ?? '--'}`,
        `Lifecycle:     ${s.lifecycle ?? '--'}`,
        '',
        table(rows).trimEnd(),
        '',
        'DETECTION ORDER',
        ...(s.order ?? spec.order).flatMap((g, i) => [`  Group #${i + 1}`, ...g.group.map((e) => `    ${'id' in e && e.id ? e.id : ('name' in e ? `${(e as { kind?: string }).kind} ${(e as { name?: string }).name}` : '')}${e.version ? `@${e.version}` : ''}${e.optional ? ' (optional)' : ''}`)]),
      ];
    },
  });
  listing(fleet, {
    command: 'stacks',
    description: 'ClusterStacks: readiness and images by digest',
    kinds: ['ClusterStack'],
    what: 'stack',
    columns: [['ID', (v) => (v.resource.spec as StackSpec).id], ['RUN IMAGE', (v) => (v.status as StackStatus).runImage ?? '--']],
    details: (v) => {
      const spec = v.resource.spec as StackSpec;
      const s = v.status as StackStatus;
      return [`Id:            ${spec.id}`, `Build Image:   ${spec.buildImage} (${s.buildImage ?? '--'})`, `Run Image:     ${spec.runImage} (${s.runImage ?? '--'})`];
    },
  });
  listing(fleet, {
    command: 'stores',
    description: 'ClusterStores: readiness and the buildpacks their buildpackages hold',
    kinds: ['ClusterStore'],
    what: 'store',
    columns: [['SOURCES', (v) => String((v.resource.spec as StoreSpec).sources.length)]],
    details: (v) => {
      const s = v.status as StoreStatus;
      const rows = [['BUILDPACK ID', 'VERSION', 'SOURCE'], ...(s.sources ?? []).flatMap((src) => src.buildpacks.map((b) => [b.id, b.version, src.digest]))];
      return ['', table(rows).trimEnd()];
    },
  });
  listing(fleet, {
    command: 'buildpacks',
    description: 'ClusterBuildpacks and Buildpacks: readiness and what their image holds',
    kinds: ['ClusterBuildpack', 'Buildpack'],
    what: 'buildpack',
    columns: [['IMAGE', (v) => (v.status as BuildpackStatus).image ?? (v.resource.spec as { image: string }).image]],
    details: (v) => {
      const s = v.status as BuildpackStatus;
      return [`Image:         ${s.image ?? '--'}`, `Root:          ${s.root ? `${s.root.id}@${s.root.version}` : '--'}`, '', table([['BUILDPACK ID', 'VERSION'], ...(s.buildpacks ?? []).map((b) => [b.id, b.version])]).trimEnd()];
    },
  });
  listing(fleet, {
    command: 'lifecycles',
    description: 'ClusterLifecycles: readiness, image and lifecycle version',
    kinds: ['ClusterLifecycle'],
    what: 'lifecycle',
    columns: [['VERSION', (v) => (v.status as LifecycleStatus).version ?? '--'], ['IMAGE', (v) => (v.status as LifecycleStatus).image ?? '--']],
    details: (v) => [`Image:         ${(v.status as LifecycleStatus).image ?? '--'}`, `Version:       ${(v.status as LifecycleStatus).version ?? '--'}`],
  });
  listing(fleet, {
    command: 'secrets',
    description: 'Secrets: type, what they give credentials for, and their keys (never their values)',
    kinds: ['Secret'],
    what: 'secret',
    ready: false,
    columns: [
      ['TYPE', (v) => (v.resource.spec as SecretSpec).type],
      ['FOR', (v) => Object.entries((v.resource.spec as SecretSpec).annotations).filter(([k]) => k.startsWith('kpack.io/')).map(([k, x]) => `${k.slice(9)} ${x}`).join(', ') || '--'],
      ['KEYS', (v) => (v.resource.spec as SecretSpec).keys.join(', ')],
    ],
    details: (v) => [`Type:          ${(v.resource.spec as SecretSpec).type}`, `Keys:          ${(v.resource.spec as SecretSpec).keys.join(', ')}`],
  });
}

const STATUS_WORDS: Record<string, string> = { pending: 'PENDING', running: 'BUILDING', succeeded: 'SUCCESS', failed: 'FAILURE', interrupted: 'INTERRUPTED' };

function secs(ms: number): string {
  return ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(1)} s`;
}

/** `fleet build status IMAGE [-b N]`, as `kp build status`. */
export function registerBuildStatus(fleet: Command): void {
  fleet
    .command('build')
    .description('one build of an image')
    .command('status <image>')
    .description('a build in detail: reasons and changes, builder, run image, buildpacks, each step\'s time, the image digest (the latest unless -b)')
    .option('-n, --namespace <ns>', 'namespace', 'default')
    .option('-b, --build <number>', 'build number')
    .option('--kind <kind>', 'whose builds: Image, or Build for a Build resource applied by itself', 'Image')
    .option('-o, --output <format>', 'human or json', 'human')
    .action(async (text: string, o: { namespace: string; build?: string; kind: string; output: string }) => {
      const fmt = format(o);
      if (o.kind !== 'Image' && o.kind !== 'Build') throw new StrataError(`--kind "${o.kind}": Image or Build`);
      if (o.build !== undefined && !/^\d+$/.test(o.build)) throw new StrataError(`-b "${o.build}": expected a build number`);
      const { namespace, name } = imageName(text, o.namespace);
      await withFleet(async (f) => {
        const all = await f.builds({ ownerKind: o.kind as 'Image' | 'Build', namespace, image: name });
        const b = o.build ? all.find((x) => x.number === Number(o.build)) : all[0];
        if (!b) throw new StrataError(o.build ? `${o.kind} ${namespace}/${name} has no build #${o.build}` : `${o.kind} ${namespace}/${name} has no builds yet`);
        if (fmt === 'json') return printJson(b);
        const src = b.inputs.config.source;
        const short = (v: unknown) => (typeof v === 'string' ? v : JSON.stringify(v));
        const lines = [
          `Image:            ${b.result?.image ?? '--'}`,
          `Status:           ${STATUS_WORDS[b.status] ?? b.status}`,
          `Build:            #${b.number} (${b.kind})`,
          `Reasons:          ${b.reasons}`,
          ...b.changes.map((c) => `                  ${c.reason}: ${short(c.old) ?? '∅'} → ${short(c.new)}`),
          ...(b.message ? [`Message:          ${b.message}`] : []),
          `Created:          ${ago(b.createdAt)}`,
          `Started:          ${ago(b.startedAt)}`,
          `Finished:         ${ago(b.finishedAt)}`,
          ...(b.worker ? [`Worker:           ${b.worker}${b.attempts > 1 ? ` (attempt ${b.attempts})` : ''}`] : []),
          '',
          `Builder:          ${b.inputs.builder}`,
          `Run Image:        ${b.result?.runImage ?? b.inputs.runImage}`,
          `Lifecycle:        ${b.inputs.lifecycle}`,
          '',
          'Source',
          ...(src.git ? [`Type:             GitUrl`, `Url:              ${src.git.url}`, `Revision:         ${b.inputs.commit ?? '--'}`] : src.registry ? [`Type:             Registry`, `Image:            ${src.registry.image}`] : [`Type:             Blob`, `Url:              ${src.blob?.url ?? '--'}`]),
          ...(src.subPath ? [`Sub Path:         ${src.subPath}`] : []),
          '',
          table([['BUILDPACK ID', 'BUILDPACK VERSION'], ...(b.result?.usedBuildpacks ?? []).map((x) => [x.id, x.version])]).trimEnd(),
          '',
          table([['STEP', 'DURATION'], ...(b.result?.steps ?? []).map((s) => [s.name, secs(s.ms)])]).trimEnd(),
        ];
        process.stdout.write(`${lines.join('\n')}\n`);
      });
    });
}
