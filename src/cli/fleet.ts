import type { Command } from 'commander';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { mkdir, readFile, stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { StrataError } from '../oci/errors.js';
import { strataHome } from '../oci/images.js';
import { RemoteFleet } from '../fleet/client.js';
import { fleetPaths } from '../fleet/paths.js';
import { describe, KINDS, type Kind } from '../fleet/resources.js';
import { controllerOptions, duration, imageName, log, useDatabase, withFleet, workerOptions } from './fleetcommon.js';
import { registerFleetImageCommands } from './fleetimage.js';
import { registerFleetViews } from './fleetviews.js';
import { repeatable } from './options.js';

/**
 * `strata fleet …`: declare images in kpack's YAML and let strata keep them built and rebased, in kp's spirit. Each
 * command talks to a running `fleet serve` when there is one, else opens the fleet database itself. This module
 * changes the fleet and runs it; fleetviews.ts shows it; fleetimage.ts is kp's imperative image commands and import.
 */

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

  registerFleetViews(fleet);
  registerFleetImageCommands(fleet);

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
        if (r.served) return void process.stdout.write(`Asked ${r.controller ?? f.where} to reconcile now\n`);
        for (const e of r.report?.errors ?? []) process.stdout.write(`not ready: ${e}\n`);
        for (const b of r.finished ?? []) process.stdout.write(`${b.image} #${b.number} ${b.kind} (${b.reasons}): ${b.status}\n`);
        if (!r.finished?.length) process.stdout.write('Nothing to build: every image is up to date\n');
        if ((r.finished ?? []).some((b) => b.status !== 'succeeded') || r.report?.errors.length) process.exitCode = 1;
      }, o);
    });

  workerOptions(fleet
    .command('serve')
    .description('the fleet controller: polls sources and registries, takes registry push notifications, runs builds; stops gracefully on SIGTERM')
    .option('--listen <host:port>', 'also serve the API and the dashboard on TCP; API calls need a bearer token, and the dashboard a sign-in unless on loopback')
    .option('--tls-cert <file>', 'serve --listen over HTTPS with this PEM certificate (chain)')
    .option('--tls-key <file>', 'the PEM private key of --tls-cert')
    .option('--token-file <file>', 'API tokens, "ROLE TOKEN" per line (admin, read, webhook); default: made once into $STRATA_HOME/fleet/tokens and printed')
    .option('--host-name <name>', 'a name the TCP listener is reached by (Host header), besides its address (repeatable)', repeatable, [])
    .option('--allow-local-source <dir>', 'resources applied over TCP may name file:// and local git sources in this dir (repeatable)', repeatable, [])
    .option('--max-log-size <bytes>', 'the most log one build keeps', String(8 << 20))
    .option('--poll-interval <duration>', 'how often sources and images are checked', '60s')
    .option('--grace <duration>', 'on SIGTERM, how long running builds may finish before they are interrupted', '5m'))
    .action(async (o: { listen?: string; tlsCert?: string; tlsKey?: string; tokenFile?: string; hostName: string[]; allowLocalSource: string[]; maxLogSize: string; builds: string; rebases: string; pollInterval: string; grace: string; insecureRegistry: string[] }) => {
      const grace = duration(o.grace, '--grace');
      if (!/^\d+$/.test(o.maxLogSize) || Number(o.maxLogSize) < 1024) throw new StrataError(`--max-log-size "${o.maxLogSize}": expected a number of bytes, at least 1024`);
      let tcp: { host: string; port: number } | undefined;
      if (o.listen) {
        const m = /^(.*):(\d+)$/.exec(o.listen);
        if (!m || Number(m[2]) > 65535) throw new StrataError(`--listen "${o.listen}": expected host:port`);
        tcp = { host: (m[1] || '127.0.0.1').replace(/^\[(.*)\]$/, '$1'), port: Number(m[2]) };
      }
      if (!o.tlsCert !== !o.tlsKey) throw new StrataError(o.tlsCert ? '--tls-cert needs --tls-key (the certificate\'s private key)' : '--tls-key needs --tls-cert (the certificate it belongs to)');
      if (o.tlsCert && !tcp) throw new StrataError('--tls-cert and --tls-key need --listen host:port');
      const tls = o.tlsCert && o.tlsKey ? await readTlsPair(o.tlsCert, o.tlsKey) : undefined;
      for (const d of o.allowLocalSource) if (!(await stat(d).catch(() => undefined))?.isDirectory()) throw new StrataError(`--allow-local-source ${d}: not a directory`);
      const paths = fleetPaths(strataHome());
      if (await RemoteFleet.connect(paths.socket)) throw new StrataError(`a strata fleet serve already runs for ${paths.dir}`);
      const options = { ...controllerOptions(o, 0), maxLogBytes: Number(o.maxLogSize) };
      const { ServedFleet } = await import('../fleet/service.js');
      const { fleetServer, listen, listenerHostNames } = await import('../fleet/api.js');
      const { ownTokens, readTokenFile } = await import('../fleet/tokens.js');
      const fleet = (await ServedFleet.open(options)) as import('../fleet/service.js').ServedFleet;
      const hostNames: string[] = [];
      // Tokens guard the TCP listener; without one there is only the owner's socket, and nothing to make.
      let tokens: import('../fleet/tokens.js').TokenSet = { entries: [], source: 'none' };
      try {
        if (o.tokenFile) tokens = readTokenFile(o.tokenFile);
        else if (tcp) {
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
      const loopback = !!tcp && /^(127\.\d+\.\d+\.\d+|::1|localhost)$/.test(tcp.host);
      const app = fleetServer(fleet, { tokens, hostNames, allowLocalSources: o.allowLocalSource.map((d) => resolve(d)), log, loopback, tls: !!tls, storeOptions: options.storeOptions });
      try {
        await fleet.takeHome();
        const where = await listen(app, paths.socket, tcp, tls);
        if (tcp && where.tcp) hostNames.push(...listenerHostNames(tcp.host, Number(where.tcp.split(':').pop()), o.hostName));
        log(`strata fleet serve: ${fleet.where}; API on ${paths.socket}${where.tcp ? ` and ${tls ? 'https' : 'http'}://${where.tcp} (dashboard there; tokens from ${tokens.source})` : ''}`);
        await fleet.serve();
      } catch (err) {
        // Nothing may keep the process alive after a failed start: the server, the database, the lock.
        await app.close().catch(() => undefined);
        await fleet.stop(0).catch(() => undefined);
        throw err;
      }
      await untilSignalled(grace, async (g) => {
        await app.close();
        await fleet.stop(g);
      });
      log('strata fleet serve: stopped');
    });

  workerOptions(fleet
    .command('worker')
    .description('a build machine: takes builds and rebases from the fleet\'s queue (a PostgreSQL server the fleet shares, --database); stops gracefully on SIGTERM')
    .option('--max-log-size <bytes>', 'the most log one build keeps', String(8 << 20))
    .option('--grace <duration>', 'on SIGTERM, how long running builds may finish before they go back to the queue', '5m'))
    .action(async (o: { maxLogSize: string; builds: string; rebases: string; lease: string; grace: string; insecureRegistry: string[] }) => {
      const grace = duration(o.grace, '--grace');
      if (!/^\d+$/.test(o.maxLogSize) || Number(o.maxLogSize) < 1024) throw new StrataError(`--max-log-size "${o.maxLogSize}": expected a number of bytes, at least 1024`);
      const options = { ...controllerOptions(o), maxLogBytes: Number(o.maxLogSize) };
      const { openFleetStore } = await import('../fleet/open.js');
      const { dispatcherFor } = await import('../fleet/service.js');
      const store = await openFleetStore(options);
      const worker = dispatcherFor(store, options);
      try {
        await worker.start();
      } catch (err) {
        await worker.stop(0).catch(() => undefined);
        await store.close();
        throw err;
      }
      log(`strata fleet worker ${worker.name}: ${store.description}; ${options.buildConcurrency} build(s) and ${options.rebaseConcurrency} rebase(s) at once`);
      await untilSignalled(grace, async (g) => {
        await worker.stop(g);
        await store.close();
      });
      log('strata fleet worker: stopped');
    });

  fleet
    .command('migrate')
    .description('copy this machine\'s embedded fleet (resources, build history, logs) to a PostgreSQL server, which must hold no fleet yet')
    .requiredOption('--to <url>', 'the PostgreSQL server, postgres://user@host:port/database')
    .action(async (o: { to: string }) => {
      const { checkDatabaseUrl } = await import('../fleet/db/url.js');
      checkDatabaseUrl(o.to, '--to');
      const paths = fleetPaths(strataHome());
      if (await RemoteFleet.connect(paths.socket)) throw new StrataError(`stop the strata fleet serve of ${paths.dir} first: a fleet that runs cannot be copied whole`);
      const { migrateFleet } = await import('../fleet/migrate.js');
      const copied = await migrateFleet(strataHome(), o.to);
      process.stdout.write(`Copied ${copied.resources} resource(s), ${copied.builds} build record(s) and ${copied.logs} log piece(s) to ${copied.to}\n`);
      process.stdout.write(`Run every fleet command with --database (or STRATA_FLEET_DATABASE) from now on; the embedded database is left as it was\n`);
    });

  // Every fleet command reaches the fleet's database the same way: --database, else STRATA_FLEET_DATABASE.
  const all = (c: Command): Command[] => [c, ...c.commands.flatMap(all)];
  for (const c of all(fleet).slice(1)) if (!c.commands.length && c.name() !== 'migrate') c.option('--database <url>', 'the fleet\'s PostgreSQL server, shared by its machines (default: $STRATA_FLEET_DATABASE, else the embedded database)');
  fleet.hook('preAction', (_fleet, action) => useDatabase(action.opts<{ database?: string }>().database));
}

/** Waits for SIGTERM or SIGINT, then stops with `grace` for running builds; a second signal stops them at once. */
/** A PEM certificate and its key, checked to belong together, so a wrong pair is one line rather than a TLS error later. */
async function readTlsPair(certFile: string, keyFile: string): Promise<{ cert: Buffer; key: Buffer }> {
  const read = (file: string, flag: string) => readFile(file).catch((err: NodeJS.ErrnoException) => {
    throw new StrataError(`${flag} ${file}: ${err.code === 'ENOENT' ? 'no such file' : (err.code ?? 'unreadable')}`);
  });
  const [cert, key] = [await read(certFile, '--tls-cert'), await read(keyFile, '--tls-key')];
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(cert);
  } catch {
    throw new StrataError(`--tls-cert ${certFile}: not a PEM certificate (-----BEGIN CERTIFICATE-----)`);
  }
  let privateKey;
  try {
    privateKey = createPrivateKey(key);
  } catch {
    throw new StrataError(`--tls-key ${keyFile}: not an unencrypted PEM private key`);
  }
  if (!x509.checkPrivateKey(privateKey)) throw new StrataError(`--tls-key ${keyFile}: not the private key of --tls-cert ${certFile}`);
  return { cert, key };
}

function untilSignalled(grace: number, stop: (graceMs: number) => Promise<void>): Promise<void> {
  return new Promise<void>((resolve) => {
    let stopping = false;
    const on = (sig: string) => () => {
      if (stopping) {
        log(`${sig} again: giving running builds back to the queue now`);
        void stop(0);
        return;
      }
      stopping = true;
      log(`${sig}: stopping (running builds get ${Math.round(grace / 1000)} s)`);
      void stop(grace).finally(resolve);
    };
    process.on('SIGTERM', on('SIGTERM'));
    process.on('SIGINT', on('SIGINT'));
  });
}


