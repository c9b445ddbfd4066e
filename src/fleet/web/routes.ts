import { readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { StrataError, errorMessage } from '../../oci/errors.js';
import { openImage } from '../../oci/images.js';
import type { StoreOptions } from '../../oci/target.js';
import { LABEL, parseLifecycleMetadata } from '../../lifecycle/labels.js';
import { imageSbomDocuments } from '../../lifecycle/sbom.js';
import { sbomFormat, sbomPackages } from '../../spec/sbom.js';
import { checkName, checkNamespace } from '../parse.js';
import { describe, type BuilderSpec, type ImageSpec } from '../resources.js';
import type { ServedFleet } from '../service.js';
import type { BuildRecord, BuilderStatus, StackStatus, StoreStatus } from '../store.js';
import { bearerToken, roleOf, type TokenSet } from '../tokens.js';
import { buildCredentials, withLogins } from '../worker.js';
import type { Html } from './html.js';
import { buildDurations, buildsPerHour, coverage, filterRows, layerDiff, layerFacts, SORTS, sortRows, type CoverageRow, type FleetRow, type LayerFact, type SortKey } from './model.js';
import { COOKIE, cookie, Sessions } from './session.js';
import { buildersPage, buildPage, errorPage, fleetPage, imagePage, signinPage, type ImagePage } from './views.js';

/**
 * The dashboard on the fleet's TCP listener: server-rendered pages, their assets, live updates by server-sent events,
 * and a few JSON routes. Pages are open on a loopback listener and need a sign-in (a read token, kept as a signed
 * cookie) elsewhere; JSON routes need a bearer token, and the one action, trigger, an admin token. Every response
 * carries a Content-Security-Policy that allows only this server's own scripts and styles.
 */

export interface DashboardOptions {
  tokens: TokenSet;
  hostNames: string[];
  /** Requests that came in over TCP (the unix socket's are the machine's own user's). */
  overTcp: (req: IncomingMessage) => boolean;
  /** The TCP listener is on a loopback address: its pages need no sign-in. */
  loopback: boolean;
  /** The listener speaks TLS. */
  tls: boolean;
  storeOptions: StoreOptions;
  log: (line: string) => void;
}

const PAGE_SIZE = 100;
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

const here = dirname(fileURLToPath(import.meta.url));
const requireHere = createRequire(import.meta.url);

function asset(file: string, type: string): { body: Buffer; type: string } {
  return { body: readFileSync(file), type };
}

/** Read once, on first use: the dashboard's own script and style, and uPlot from its npm package (no CDN). */
let assets: Record<string, { body: Buffer; type: string }> | undefined;
function assetFiles(): Record<string, { body: Buffer; type: string }> {
  assets ??= {
    'dashboard.js': asset(join(here, 'assets', 'dashboard.js'), 'text/javascript; charset=utf-8'),
    'dashboard.css': asset(join(here, 'assets', 'dashboard.css'), 'text/css; charset=utf-8'),
    'uplot.js': asset(requireHere.resolve('uplot/dist/uPlot.iife.min.js'), 'text/javascript; charset=utf-8'),
    'uplot.css': asset(requireHere.resolve('uplot/dist/uPlot.min.css'), 'text/css; charset=utf-8'),
  };
  return assets;
}

/** Small caches of what the image page reads from registries, by image digest: images do not change. */
class Lru<V> {
  private readonly map = new Map<string, V>();
  constructor(private readonly max: number) {}
  get(k: string): V | undefined {
    const v = this.map.get(k);
    if (v !== undefined) {
      this.map.delete(k);
      this.map.set(k, v);
    }
    return v;
  }
  set(k: string, v: V): void {
    this.map.delete(k);
    this.map.set(k, v);
    if (this.map.size > this.max) this.map.delete(this.map.keys().next().value!);
  }
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  return Promise.race([p, new Promise<T>((_, reject) => setTimeout(() => reject(new StrataError(`${what}: no answer in ${ms / 1000} s`)), ms).unref())]);
}

export function registerDashboard(app: FastifyInstance, fleet: ServedFleet, o: DashboardOptions): void {
  const sessions = new Sessions();
  const facts = new Lru<{ layers: LayerFact[]; labels: Record<string, string> }>(200);
  const sboms = new Lru<NonNullable<ImagePage['sbom']>>(100);

  app.addHook('onSend', async (_req, reply, payload) => {
    reply.header('content-security-policy', CSP).header('x-content-type-options', 'nosniff').header('referrer-policy', 'no-referrer').header('x-frame-options', 'DENY');
    return payload;
  });

  const hostOk = (req: FastifyRequest): boolean => o.hostNames.includes(String(req.headers.host ?? '').toLowerCase());
  const signedIn = (req: FastifyRequest): boolean => sessions.valid(cookie(req.headers.cookie, COOKIE));

  /** Pages and their live updates: open on loopback, else a signed-in browser. */
  const page = async (req: FastifyRequest, reply: FastifyReply) => {
    if (!o.overTcp(req.raw)) return;
    if (!hostOk(req)) return reply.code(421).type('text/html; charset=utf-8').send(errorPage(421, 'This host name is not this listener\'s.').text);
    if (o.loopback || signedIn(req)) return;
    return reply.code(303).header('location', `/signin?next=${encodeURIComponent(req.url)}`).send();
  };
  const pageOptions = (req: FastifyRequest) => ({ signedIn: !o.loopback && signedIn(req) });
  const send = (reply: FastifyReply, h: Html, status = 200) => reply.code(status).type('text/html; charset=utf-8').header('cache-control', 'no-store').send(h.text);

  const api = (role: 'read' | 'admin') => async (req: FastifyRequest, reply: FastifyReply) => {
    if (!hostOk(req) && o.overTcp(req.raw)) return reply.code(421).send({ error: 'not this listener\'s name' });
    const have = roleOf(o.tokens, bearerToken(req.headers.authorization));
    if (!have) return reply.code(401).header('www-authenticate', 'Bearer realm="strata fleet"').send({ error: 'a bearer token is required' });
    if (role === 'admin' && have !== 'admin') return reply.code(403).send({ error: 'this needs the admin token' });
  };

  // Only sign-in and sign-out take form bodies; every other route stays JSON only.
  app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string', bodyLimit: 8192 }, (req, body, done) => {
    if (!/^\/sign(in|out)(\?|$)/.test(req.url)) return done(Object.assign(new Error('unsupported media type'), { statusCode: 415, code: 'FST_ERR_CTP_INVALID_MEDIA_TYPE' }));
    done(null, Object.fromEntries(new URLSearchParams(String(body))));
  });

  // Browsers ask for it on every page; there is none.
  app.get('/favicon.ico', async (_req, reply) => reply.code(204).header('cache-control', 'public, max-age=86400').send());
  app.get('/assets/:file', async (req, reply) => {
    const f = assetFiles()[(req.params as { file: string }).file];
    if (!f) return reply.code(404).send({ error: 'no such asset' });
    return reply.type(f.type).header('cache-control', 'public, max-age=3600').send(f.body);
  });

  /** Every image as a row, with its stack, and the stacks' current run images. */
  async function fleetState(): Promise<{ rows: FleetRow[]; stacks: Map<string, string | undefined>; coverage: CoverageRow[] }> {
    const [images, clusterBuilders, builders, stacks] = await Promise.all([fleet.images(), fleet.resources('ClusterBuilder'), fleet.resources('Builder'), fleet.resources('ClusterStack')]);
    const stackOf = new Map([...clusterBuilders, ...builders].map((b) => [describe(b.resource.meta), (b.resource.spec as BuilderSpec).stack]));
    const current = new Map(stacks.map((s) => [s.resource.meta.name, (s.status as StackStatus).runImage]));
    const rows: FleetRow[] = images.map((i) => {
      const building = i.latestBuild && (i.latestBuild.status === 'pending' || i.latestBuild.status === 'running') ? i.latestBuild.status : undefined;
      const stack = stackOf.get(i.builder);
      return {
        namespace: i.namespace,
        name: i.name,
        builder: i.builder,
        ...(stack ? { stack } : {}),
        ready: i.ready,
        ...(i.why ? { why: i.why } : {}),
        ...(i.latestImage ? { image: i.latestImage } : {}),
        ...(i.runImage ? { runImage: i.runImage } : {}),
        ...(i.latestBuild ? { lastReason: i.latestBuild.reasons } : {}),
        ...(i.latestAt ? { lastAt: i.latestAt } : {}),
        ...(building ? { building } : {}),
      };
    });
    return { rows, stacks: current, coverage: coverage(rows, current) };
  }

  app.get('/', { preHandler: page }, async (req, reply) => {
    const q = req.query as { q?: string; sort?: string; page?: string };
    const sort: SortKey = SORTS.includes(q.sort as SortKey) ? (q.sort as SortKey) : 'name';
    const since = new Date(Date.now() - 24 * 3600_000).toISOString();
    const [state, recent] = await Promise.all([fleetState(), fleet.builds({ since })]);
    const matching = sortRows(filterRows(state.rows, q.q), sort);
    const pages = Math.max(1, Math.ceil(matching.length / PAGE_SIZE));
    const pageNo = Math.min(pages, Math.max(1, Number.parseInt(q.page ?? '1', 10) || 1));
    const counts = {
      ready: state.rows.filter((r) => r.ready === 'True' && !r.building).length,
      building: state.rows.filter((r) => r.building).length,
      failed: state.rows.filter((r) => r.ready === 'False').length,
    };
    return send(
      reply,
      fleetPage({ rows: matching.slice((pageNo - 1) * PAGE_SIZE, pageNo * PAGE_SIZE), total: state.rows.length, counts, coverage: state.coverage, perHour: buildsPerHour(recent, new Date()), durations: buildDurations(recent, 300), q: String(q.q ?? '').slice(0, 200), sort, page: pageNo, pages }, pageOptions(req)),
    );
  });

  const imageParams = (req: FastifyRequest): { namespace: string; name: string; number?: number } => {
    const p = req.params as { namespace: string; name: string; number?: string };
    checkNamespace(p.namespace, 'namespace');
    checkName(p.name, 'name');
    if (p.number === undefined) return { namespace: p.namespace, name: p.name };
    if (!/^\d{1,9}$/.test(p.number)) throw new StrataError('not a build number');
    return { namespace: p.namespace, name: p.name, number: Number(p.number) };
  };

  /** The registry's view of a build's image, with the logins of the Image's service account. */
  async function openBuilt(b: BuildRecord) {
    const creds = await buildCredentials(fleet.store, b.namespace, b.inputs);
    const opened = await withTimeout(openImage(b.result!.image!, withLogins(o.storeOptions, creds)), 20_000, b.result!.image!);
    if (!opened) throw new StrataError(`${b.result!.image} is gone from its registry`);
    return opened;
  }

  /** A built image's layers, whose each is, and its labels. */
  async function factsOf(b: BuildRecord) {
    const key = b.result!.image!;
    let f = facts.get(key);
    if (!f) {
      const { image } = await openBuilt(b);
      facts.set(key, (f = { layers: layerFacts(image.config, image.manifest.manifest), labels: image.config.config?.Labels ?? {} }));
    }
    return f;
  }

  async function sbomOf(b: BuildRecord): Promise<NonNullable<ImagePage['sbom']>> {
    const key = b.result!.image!;
    let s = sboms.get(key);
    if (!s) {
      const { image } = await openBuilt(b);
      const md = parseLifecycleMetadata(image.config.config?.Labels?.[LABEL.lifecycle]);
      const docs = await withTimeout(imageSbomDocuments(image, md?.sbom?.sha), 30_000, `${key} SBOM`);
      const packages = docs.flatMap((d) => {
        const format = sbomFormat(d.file);
        return format ? sbomPackages(d.text, format).map((p) => ({ ...p, buildpack: d.buildpack, layer: d.layer })) : [];
      });
      sboms.set(key, (s = { packages }));
    }
    return s;
  }

  app.get('/images/:namespace/:name', { preHandler: page }, async (req, reply) => {
    const p = imageParams(req);
    const view = (await fleet.images()).find((i) => i.namespace === p.namespace && i.name === p.name);
    if (!view) return send(reply, errorPage(404, `No Image ${p.namespace}/${p.name}.`), 404);
    const builds = await fleet.builds({ ownerKind: 'Image', namespace: p.namespace, image: p.name });
    const ok = builds.filter((b) => b.status === 'succeeded' && b.result?.image);
    const q = req.query as { a?: string; b?: string };
    let diff: ImagePage['diff'];
    if (ok.length >= 2) {
      const pick = (v: string | undefined, fallback: BuildRecord) => ok.find((b) => String(b.number) === v) ?? fallback;
      const [a, b] = [pick(q.a, ok[1]!), pick(q.b, ok[0]!)];
      try {
        diff = { a: a.number, b: b.number, changes: layerDiff((await factsOf(a)).layers, (await factsOf(b)).layers) };
      } catch (err) {
        diff = { a: a.number, b: b.number, error: `the layers could not be read: ${errorMessage(err)}` };
      }
    }
    let sbom: ImagePage['sbom'];
    let labels: ImagePage['labels'];
    if (ok[0]) {
      try {
        labels = { values: (await factsOf(ok[0])).labels };
      } catch (err) {
        labels = { error: `the image could not be read: ${errorMessage(err)}` };
      }
      try {
        sbom = await sbomOf(ok[0]);
      } catch (err) {
        sbom = { packages: [], error: `the SBOM could not be read: ${errorMessage(err)}` };
      }
    }
    const spec = (await fleet.store.get({ kind: 'Image', namespace: p.namespace, name: p.name }))?.resource.spec as ImageSpec | undefined;
    return send(reply, imagePage({ namespace: p.namespace, name: p.name, tag: spec?.tag ?? view.tag, builder: view.builder, conditions: view.conditions, env: spec?.env ?? [], builds, durations: buildDurations(builds), ...(diff ? { diff } : {}), ...(sbom ? { sbom } : {}), ...(labels ? { labels } : {}) }, pageOptions(req)));
  });

  app.get('/images/:namespace/:name/builds/:number', { preHandler: page }, async (req, reply) => {
    const p = imageParams(req);
    const build = (await fleet.builds({ ownerKind: 'Image', namespace: p.namespace, image: p.name })).find((b) => b.number === p.number);
    if (!build) return send(reply, errorPage(404, `No build #${p.number} of ${p.namespace}/${p.name}.`), 404);
    const { chunks } = await fleet.log({ ownerKind: 'Image', namespace: p.namespace, image: p.name, number: build.number }, 0);
    return send(reply, buildPage({ namespace: p.namespace, name: p.name, build, log: chunks.map((c) => c.text).join(''), nextSeq: chunks.length ? chunks[chunks.length - 1]!.seq + 1 : 0 }, pageOptions(req)));
  });

  // Streams end when the server stops, so a stopping serve never waits for a browser to go away.
  const streams = new Set<ServerResponse>();
  let shuttingDown = false;
  app.addHook('preClose', async () => {
    shuttingDown = true;
    for (const res of streams) res.end();
  });

  /** Server-sent events: a stream that the handler feeds until it ends or the browser goes. */
  const stream = (req: FastifyRequest, reply: FastifyReply, feed: (send: (event: string, data: unknown) => void, closed: () => boolean) => Promise<void>) => {
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-store', 'content-security-policy': CSP, 'x-content-type-options': 'nosniff', connection: 'keep-alive' });
    let closed = false;
    req.raw.on('close', () => (closed = true));
    streams.add(res);
    res.on('close', () => streams.delete(res));
    const sendEvent = (event: string, data: unknown) => {
      if (!closed) res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
    };
    void feed(sendEvent, () => closed || shuttingDown)
      .catch((err: unknown) => o.log(`dashboard stream ${req.url.split('?')[0]}: ${errorMessage(err)}`))
      .finally(() => res.end());
  };

  app.get('/images/:namespace/:name/builds/:number/log/stream', { preHandler: page }, async (req, reply) => {
    const p = imageParams(req);
    const key = { ownerKind: 'Image' as const, namespace: p.namespace, image: p.name, number: p.number! };
    let from = Math.max(0, Number.parseInt((req.query as { from?: string }).from ?? '0', 10) || 0);
    stream(req, reply, async (sendEvent, closed) => {
      const started = Date.now();
      while (!closed() && Date.now() - started < 3600_000) {
        const { chunks, status } = await fleet.log(key, from);
        if (chunks.length) {
          from = chunks[chunks.length - 1]!.seq + 1;
          sendEvent('log', { text: chunks.map((c) => c.text).join(''), next: from });
        }
        if (status !== 'running' && status !== 'pending') {
          const last = await fleet.log(key, from);
          if (last.chunks.length) sendEvent('log', { text: last.chunks.map((c) => c.text).join(''), next: last.chunks[last.chunks.length - 1]!.seq + 1 });
          sendEvent('end', { status });
          return;
        }
        await new Promise((r) => setTimeout(r, 300));
      }
    });
  });

  // One watch for every browser looking at the fleet: coverage and counts, sent when they change. The fleet's events
  // (builds queued, a build finished, on any machine) bring a look within 200 ms, at most five a second; a slow tick
  // catches what sends no event.
  const watchers = new Set<(data: unknown) => void>();
  let last = '';
  let lastAt = 0;
  let looking: Promise<void> | undefined;
  let soon: NodeJS.Timeout | undefined;
  let ticker: NodeJS.Timeout | undefined;
  let stopEvents: (() => Promise<void>) | undefined;
  const look = async () => {
    lastAt = Date.now();
    const state = await fleetState();
    const data = { coverage: state.coverage, building: state.rows.filter((r) => r.building).length, at: Date.now() };
    const text = JSON.stringify({ ...data, at: 0 });
    if (text === last) return;
    last = text;
    for (const w of watchers) w(data);
  };
  const lookSoon = () => {
    if (soon || !watchers.size) return;
    soon = setTimeout(() => {
      void (looking ??= look()
        .catch((err: unknown) => o.log(`dashboard: ${errorMessage(err)}`))
        .finally(() => {
          looking = undefined;
          soon = undefined;
        }));
    }, Math.max(0, lastAt + 200 - Date.now()));
  };
  const startWatching = async () => {
    ticker ??= setInterval(lookSoon, 2000);
    stopEvents ??= await fleet.store.events((e) => {
      if (e.type !== 'abort') lookSoon();
    });
  };
  const stopWatching = async () => {
    if (watchers.size) return;
    clearInterval(ticker);
    ticker = undefined;
    const stop = stopEvents;
    stopEvents = undefined;
    await stop?.();
  };
  app.get('/events/fleet', { preHandler: page }, async (req, reply) => {
    stream(req, reply, async (sendEvent, closed) => {
      const w = (data: unknown) => sendEvent('fleet', data);
      watchers.add(w);
      try {
        await startWatching();
        // The newcomer gets the current state at once.
        const state = await fleetState();
        sendEvent('fleet', { coverage: state.coverage, building: state.rows.filter((r) => r.building).length, at: Date.now() });
        while (!closed()) await new Promise((r) => setTimeout(r, 500));
      } finally {
        watchers.delete(w);
        await stopWatching();
      }
    });
  });
  app.addHook('onClose', async () => {
    watchers.clear();
    clearTimeout(soon);
    await stopWatching();
  });

  app.get('/builders', { preHandler: page }, async (req, reply) => {
    const [cb, b, stacks, stores, images] = await Promise.all([fleet.resources('ClusterBuilder'), fleet.resources('Builder'), fleet.resources('ClusterStack'), fleet.resources('ClusterStore'), fleet.images()]);
    return send(
      reply,
      buildersPage(
        {
          builders: [...cb, ...b].map((r) => ({ kind: r.resource.meta.kind, namespace: r.resource.meta.namespace, name: r.resource.meta.name, conditions: r.conditions, status: r.status as BuilderStatus, stack: (r.resource.spec as BuilderSpec).stack, images: images.filter((i) => i.builder === describe(r.resource.meta)).map((i) => ({ namespace: i.namespace, name: i.name })) })),
          stacks: stacks.map((r) => ({ name: r.resource.meta.name, conditions: r.conditions, status: r.status as StackStatus })),
          stores: stores.map((r) => ({ name: r.resource.meta.name, conditions: r.conditions, status: r.status as StoreStatus })),
        },
        pageOptions(req),
      ),
    );
  });

  const safeNext = (v: unknown): string => (typeof v === 'string' && /^\/(?![/\\])/.test(v) ? v.slice(0, 500) : '/');
  const hostOnly = async (req: FastifyRequest, reply: FastifyReply) => {
    if (o.overTcp(req.raw) && !hostOk(req)) return reply.code(421).type('text/html; charset=utf-8').send(errorPage(421, 'This host name is not this listener\'s.').text);
  };
  app.get('/signin', { preHandler: hostOnly }, async (req, reply) => send(reply, signinPage({ next: safeNext((req.query as { next?: string }).next), insecure: !o.loopback && !o.tls })));
  app.post('/signin', { preHandler: hostOnly }, async (req, reply) => {
    const body = (req.body ?? {}) as { token?: string; next?: string };
    const role = roleOf(o.tokens, typeof body.token === 'string' ? body.token : undefined);
    if (role !== 'read' && role !== 'admin') return send(reply, signinPage({ next: safeNext(body.next), failed: true, insecure: !o.loopback && !o.tls }), 401);
    const s = sessions.issue();
    reply.header('set-cookie', `${COOKIE}=${s.value}; Path=/; Max-Age=${s.maxAge}; HttpOnly; Secure; SameSite=Strict`);
    return reply.code(303).header('location', safeNext(body.next)).send();
  });
  app.post('/signout', { preHandler: hostOnly }, async (_req, reply) => {
    reply.header('set-cookie', `${COOKIE}=; Path=/; Max-Age=0; HttpOnly; Secure; SameSite=Strict`);
    return reply.code(303).header('location', '/').send();
  });

  // JSON for tools and the page's one action.
  app.get('/api/images', { preHandler: api('read') }, async () => (await fleetState()).rows);
  app.get('/api/coverage', { preHandler: api('read') }, async () => (await fleetState()).coverage);
  const trigger = async (req: FastifyRequest) => {
    const p = req.params as { namespace?: string; name: string };
    const namespace = p.namespace ?? 'default';
    checkNamespace(namespace, 'namespace');
    checkName(p.name, 'name');
    await fleet.trigger(namespace, p.name);
    return { triggered: `${namespace}/${p.name}` };
  };
  app.post('/api/images/:name/trigger', { preHandler: api('admin') }, trigger);
  app.post('/api/images/:namespace/:name/trigger', { preHandler: api('admin') }, trigger);
}
