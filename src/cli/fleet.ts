import type { Command } from 'commander';
import { mkdir, stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { StrataError } from '../oci/errors.js';
import { strataHome } from '../platform/home.js';
import { RemoteFleet } from '../fleet/client.js';
import { fleetPaths } from '../fleet/paths.js';
import { describe, KINDS, type Kind } from '../fleet/resources.js';
import type { FleetApi } from '../fleet/service.js';
import type { ImageStatus } from '../fleet/store.js';
import { printJson } from './output.js';
import { repeatable } from './options.js';

/**
 * `strata fleet …`: declare images in kpack's YAML and let strata keep them built and rebased, in kp's spirit. Each
 * command talks to a running `fleet serve` when there is one, else opens the fleet database itself.
 */

const log = (line: string): void => void process.stderr.write(`${new Date().toISOString()} ${line}\n`);

function controllerOptions(o: { builds?: string; rebases?: string; pollInterval?: string; insecureRegistry?: string[] }) {
  const int = (v: string | undefined, flag: string, fallback: number): number => {
    if (v === undefined) return fallback;
    if (!/^\d+$/.test(v) || Number(v) < 1) throw new StrataError(`${flag} "${v}": expected a whole number of at least 1`);
    return Number(v);
  };
  return {
    home: strataHome(),
    storeOptions: { insecureRegistries: o.insecureRegistry ?? [] },
    buildConcurrency: int(o.builds, '--builds', 2),
    rebaseConcurrency: int(o.rebases, '--rebases', 16),
    pollIntervalMs: duration(o.pollInterval ?? '60s', '--poll-interval'),
    log,
  };
}

/** `90s`, `5m`, `1h` or plain seconds. */
function duration(text: string, flag: string): number {
  const m = /^(\d+)(ms|s|m|h)?$/.exec(text.trim());
  if (!m) throw new StrataError(`${flag} "${text}": expected a duration such as 30s, 5m or 1h`);
  return Number(m[1]) * ({ ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] ?? 's'] ?? 1000);
}

async function openFleet(o: Parameters<typeof controllerOptions>[0] = {}): Promise<FleetApi> {
  const paths = fleetPaths(strataHome());
  const remote = await RemoteFleet.connect(paths.socket);
  if (remote) return remote;
  try {
    // The database and the controller load only when no server holds them.
    const { LocalFleet } = await import('../fleet/service.js');
    return await LocalFleet.open(controllerOptions(o));
  } catch (err) {
    // A `fleet serve` that was starting up holds the database now: talk to it instead.
    return (await RemoteFleet.connect(paths.socket)) ?? Promise.reject(err);
  }
}

async function withFleet<T>(fn: (fleet: FleetApi) => Promise<T>, o?: Parameters<typeof controllerOptions>[0]): Promise<T> {
  const fleet = await openFleet(o);
  try {
    return await fn(fleet);
  } finally {
    await fleet.close();
  }
}

/** `ns/name`, or `name` in `-n` (default: default). */
function imageName(text: string, namespace: string | undefined): { namespace: string; name: string } {
  const slash = text.indexOf('/');
  if (slash > 0) return { namespace: text.slice(0, slash), name: text.slice(slash + 1) };
  return { namespace: namespace ?? 'default', name: text };
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return `${rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]! + 3))).join('').trimEnd()).join('\n')}\n`;
}

function format(o: { output: string }): 'human' | 'json' {
  if (o.output !== 'human' && o.output !== 'json') throw new StrataError(`-o "${o.output}": use human or json`);
  return o.output;
}

const ago = (iso: string | undefined): string => (iso ? iso.replace('T', ' ').replace(/\.\d+Z$/, 'Z') : '--');

/** The options of the commands that run builds. */
function workerOptions(cmd: Command): Command {
  return cmd
    .option('--builds <n>', 'full builds at once', '2')
    .option('--rebases <n>', 'rebases at once', '16')
    .option('--insecure-registry <host>', 'plain HTTP or unverified TLS for this registry (repeatable)', repeatable, []);
}

export function registerFleetCommands(program: Command): void {
  const fleet = program.command('fleet').description('declare images in kpack YAML; strata keeps them built and rebased (kpack on one machine)');

  fleet
    .command('apply')
    .description('create or update resources from kpack YAML (ClusterStack, ClusterStore, ClusterBuilder, Builder, Image)')
    .requiredOption('-f, --filename <path>', 'a YAML file, a directory of them, or - for stdin (repeatable)', repeatable, [])
    .action(async (o: { filename: string[] }) => {
      const { readDocuments } = await import('../fleet/manifests.js');
      const documents = await readDocuments(o.filename);
      await withFleet(async (f) => {
        const out = await f.apply(documents);
        for (const w of out.warnings) process.stderr.write(`Warning: ${w}\n`);
        for (const r of out.results) process.stdout.write(`${r.key.replace(/\/\//, '/').replace(/^(\w+)\//, '$1 ')} ${r.outcome}\n`);
      });
    });

  fleet
    .command('delete [kind] [name]')
    .description('delete resources named in files (-f), or one by kind and name')
    .option('-f, --filename <path>', 'YAML files or directories (repeatable)', repeatable, [])
    .option('-n, --namespace <ns>', 'namespace of a Builder or Image', 'default')
    .action(async (kind: string | undefined, name: string | undefined, o: { filename: string[]; namespace: string }) => {
      let metas: { kind: Kind; namespace: string; name: string }[];
      if (o.filename.length) {
        const { readDocuments, parseDocuments } = await import('../fleet/manifests.js');
        metas = parseDocuments(await readDocuments(o.filename)).parsed.map((p) => p.resource.meta);
      }
      else {
        if (!kind || !name) throw new StrataError('give -f FILE, or a kind and a name (strata fleet delete Image my-app)');
        const k = KINDS.find((x) => x.toLowerCase() === kind.toLowerCase());
        if (!k) throw new StrataError(`unknown kind "${kind}" (kinds: ${KINDS.join(', ')})`);
        metas = [{ kind: k, namespace: k === 'Image' || k === 'Builder' ? o.namespace : '', name }];
      }
      await withFleet(async (f) => {
        const gone = new Set(await f.delete(metas));
        for (const m of metas) process.stdout.write(`${describe(m)} ${gone.has(`${m.kind}/${m.namespace}/${m.name}`) ? 'deleted' : 'not found'}\n`);
      });
    });

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
        const spec = r.resource.spec as import('../fleet/resources.js').ImageSpec;
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
    .command('trigger <image>')
    .description('ask for a build of an image now (reason TRIGGER)')
    .option('-n, --namespace <ns>', 'namespace', 'default')
    .action(async (text: string, o: { namespace: string }) => {
      const { namespace, name } = imageName(text, o.namespace);
      await withFleet(async (f) => {
        await f.trigger(namespace, name);
        process.stdout.write(`Triggered a build of ${namespace}/${name}${f instanceof RemoteFleet ? '' : '; it runs at the next strata fleet reconcile (or serve)'}\n`);
      });
    });

  workerOptions(fleet
    .command('reconcile')
    .description('one pass: resolve sources and images, make builders, run the builds and rebases that are due')
    .option('--once', 'run one pass and the builds it starts, then exit (for cron); the default'))
    .action(async (o: { builds: string; rebases: string; insecureRegistry: string[] }) => {
      await withFleet(async (f) => {
        const r = await f.reconcileNow();
        if (r.served) return void process.stdout.write(`Asked ${f.where} to reconcile now\n`);
        for (const e of r.report?.errors ?? []) process.stdout.write(`not ready: ${e}\n`);
        for (const b of r.finished ?? []) process.stdout.write(`${b.image} #${b.number} ${b.kind} (${b.reasons}): ${b.status}\n`);
        if (!r.finished?.length) process.stdout.write('Nothing to build: every image is up to date\n');
        if ((r.finished ?? []).some((b) => b.status !== 'succeeded') || r.report?.errors.length) process.exitCode = 1;
      }, o);
    });

  workerOptions(fleet
    .command('serve')
    .description('the fleet controller: polls sources and registries, takes registry push notifications, runs builds; stops gracefully on SIGTERM')
    .option('--listen <host:port>', 'also serve the API on TCP (registry notifications, tools); every call needs a bearer token')
    .option('--token-file <file>', 'API tokens, "ROLE TOKEN" per line (admin, read, webhook); default: made once into $STRATA_HOME/fleet/tokens and printed')
    .option('--host-name <name>', 'a name the TCP listener is reached by (Host header), besides its address (repeatable)', repeatable, [])
    .option('--allow-local-source <dir>', 'resources applied over TCP may name file:// and local git sources in this dir (repeatable)', repeatable, [])
    .option('--max-log-size <bytes>', 'the most log one build keeps', String(8 << 20))
    .option('--poll-interval <duration>', 'how often sources and images are checked', '60s')
    .option('--grace <duration>', 'on SIGTERM, how long running builds may finish before they are interrupted', '5m'))
    .action(async (o: { listen?: string; tokenFile?: string; hostName: string[]; allowLocalSource: string[]; maxLogSize: string; builds: string; rebases: string; pollInterval: string; grace: string; insecureRegistry: string[] }) => {
      const grace = duration(o.grace, '--grace');
      if (!/^\d+$/.test(o.maxLogSize) || Number(o.maxLogSize) < 1024) throw new StrataError(`--max-log-size "${o.maxLogSize}": expected a number of bytes, at least 1024`);
      let tcp: { host: string; port: number } | undefined;
      if (o.listen) {
        const m = /^(.*):(\d+)$/.exec(o.listen);
        if (!m || Number(m[2]) > 65535) throw new StrataError(`--listen "${o.listen}": expected host:port`);
        tcp = { host: (m[1] || '127.0.0.1').replace(/^\[(.*)\]$/, '$1'), port: Number(m[2]) };
      }
      for (const d of o.allowLocalSource) if (!(await stat(d).catch(() => undefined))?.isDirectory()) throw new StrataError(`--allow-local-source ${d}: not a directory`);
      const paths = fleetPaths(strataHome());
      if (await RemoteFleet.connect(paths.socket)) throw new StrataError(`a strata fleet serve already runs for ${paths.dir}`);
      const { ServedFleet } = await import('../fleet/service.js');
      const { fleetServer, listen, listenerHostNames } = await import('../fleet/api.js');
      const { ownTokens, readTokenFile } = await import('../fleet/tokens.js');
      const fleet = (await ServedFleet.open({ ...controllerOptions(o), maxLogBytes: Number(o.maxLogSize) })) as import('../fleet/service.js').ServedFleet;
      const hostNames: string[] = [];
      let tokens;
      try {
        if (o.tokenFile) tokens = readTokenFile(o.tokenFile);
        else {
          await mkdir(paths.dir, { recursive: true, mode: 0o700 });
          const own = ownTokens(paths.tokens);
          tokens = own.tokens;
          // Shown this once: only their digests are kept.
          if (own.created) process.stdout.write(`API tokens (shown once; their digests are in ${paths.tokens}):\n${Object.entries(own.created).map(([role, t]) => `  ${role.padEnd(8)} ${t}`).join('\n')}\n`);
        }
      } catch (err) {
        await fleet.close();
        throw err;
      }
      const app = fleetServer(fleet, { tokens, hostNames, allowLocalSources: o.allowLocalSource.map((d) => resolve(d)), log });
      try {
        await fleet.takeControl();
        const where = await listen(app, paths.socket, tcp);
        if (tcp && where.tcp) hostNames.push(...listenerHostNames(tcp.host, Number(where.tcp.split(':').pop()), o.hostName));
        log(`strata fleet serve: ${fleet.where}; API on ${paths.socket}${where.tcp ? ` and http://${where.tcp} (tokens from ${tokens.source})` : ''}`);
        await fleet.serve();
      } catch (err) {
        // Nothing may keep the process alive after a failed start: the server, the database, the lock.
        await app.close().catch(() => undefined);
        await fleet.stop(0).catch(() => undefined);
        throw err;
      }
      await new Promise<void>((resolve) => {
        let stopping = false;
        const stop = (sig: string) => () => {
          if (stopping) {
            log(`${sig} again: interrupting running builds now`);
            void fleet.stop(0);
            return;
          }
          stopping = true;
          log(`${sig}: stopping (running builds get ${Math.round(grace / 1000)} s)`);
          void (async () => {
            await app.close();
            await fleet.stop(grace);
            resolve();
          })();
        };
        process.on('SIGTERM', stop('SIGTERM'));
        process.on('SIGINT', stop('SIGINT'));
      });
      log('strata fleet serve: stopped');
    });
}


