import http, { type IncomingMessage } from 'node:http';
import https from 'node:https';
import { chmod, rm } from 'node:fs/promises';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { StrataError, errorMessage } from '../oci/errors.js';
import { VERSION } from '../version.js';
import { MAX_APPLY_BYTES, type SourceDocument } from './manifests.js';
import { checkName, checkNamespace } from './parse.js';
import { KINDS, NAMESPACED, type Kind, type Meta } from './resources.js';
import type { ServedFleet } from './service.js';
import { allows, bearerToken, roleOf, type Role, type TokenSet } from './tokens.js';
import type { StoreOptions } from '../oci/target.js';
import { registerDashboard } from './web/routes.js';

/**
 * The fleet's HTTP API. The local CLI talks to it through a unix socket under `$STRATA_HOME/fleet` that only the
 * owner can open; a TCP listener (for the registry's notifications, the dashboard and other tools) takes nobody on
 * trust: every API route needs a bearer token of the right role (the dashboard's pages, `web/routes.ts`, a sign-in
 * off loopback), the Host header must name the listener (no DNS rebinding), bodies are JSON and size-capped, and what
 * is applied goes through the same validator as the CLI's files, with local sources confined to the directories the
 * operator allows.
 */

const EVENTS_TYPE = 'application/vnd.docker.distribution.events.v1+json';

export interface ApiOptions {
  tokens: TokenSet;
  /** Host header values the TCP listener answers to (host:port), besides its own address. */
  hostNames: string[];
  allowLocalSources: string[];
  log: (line: string) => void;
  /** The TCP listener is on loopback (the dashboard's pages need no sign-in there), and whether it speaks TLS. */
  loopback?: boolean;
  tls?: boolean;
  /** How the dashboard reaches registries (the Images' own logins are added per image). */
  storeOptions?: StoreOptions;
}

interface RegistryEnvelope {
  events?: { action?: string; target?: { repository?: string; mediaType?: string; tag?: string; digest?: string } }[];
}

/** Requests that came in over TCP (the unix socket's come from the machine's own user). */
const overTcp = new WeakSet<IncomingMessage>();

const obj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function metasOf(body: unknown): Pick<Meta, 'kind' | 'namespace' | 'name'>[] {
  const list = obj(body) ? body.metas : undefined;
  if (!Array.isArray(list) || !list.length || list.length > 10_000) throw new StrataError('expected {"metas": [{"kind", "namespace", "name"}, …]}');
  return list.map((m, i) => {
    if (!obj(m) || typeof m.kind !== 'string' || typeof m.name !== 'string' || (m.namespace !== undefined && typeof m.namespace !== 'string')) throw new StrataError(`metas[${i}]: expected kind, namespace and name as strings`);
    const kind = KINDS.find((k) => k === m.kind);
    if (!kind) throw new StrataError(`metas[${i}].kind: unknown kind "${String(m.kind).slice(0, 60)}"`);
    checkName(m.name, `metas[${i}].name`);
    const namespace = NAMESPACED.has(kind) ? ((m.namespace as string | undefined) || 'default') : '';
    if (namespace) checkNamespace(namespace, `metas[${i}].namespace`);
    return { kind, namespace, name: m.name };
  });
}

function documentsOf(body: unknown): SourceDocument[] {
  const list = obj(body) ? body.documents : undefined;
  if (!Array.isArray(list)) throw new StrataError('expected {"documents": [{"where": "…", "doc": {…}}, …]} (or {"documents": [{…kpack resource…}]})');
  return list.map((d, i) => (obj(d) && 'doc' in d ? { where: typeof d.where === 'string' ? d.where.slice(0, 300) : `documents[${i}]`, doc: d.doc } : { where: `documents[${i}]`, doc: d }));
}

function ownerOf(text: string): 'Image' | 'Build' {
  if (text !== 'Image' && text !== 'Build') throw new StrataError(`owner "${String(text).slice(0, 20)}": Image or Build`);
  return text;
}

function params(req: FastifyRequest): { namespace: string; image: string; number?: number } {
  const p = req.params as { namespace: string; image: string; number?: string };
  checkNamespace(p.namespace, 'namespace');
  checkName(p.image, 'name');
  if (p.number === undefined) return { namespace: p.namespace, image: p.image };
  if (!/^\d{1,9}$/.test(p.number) || Number(p.number) < 1) throw new StrataError(`build number "${p.number.slice(0, 20)}" is not a whole number`);
  return { namespace: p.namespace, image: p.image, number: Number(p.number) };
}

export function fleetServer(fleet: ServedFleet, o: ApiOptions): FastifyInstance {
  const app = Fastify({ logger: false, bodyLimit: MAX_APPLY_BYTES * 2, return503OnClosing: true });
  app.removeAllContentTypeParsers();
  const json = (_req: FastifyRequest, body: string, done: (err: Error | null, value?: unknown) => void) => {
    try {
      done(null, body === '' ? undefined : JSON.parse(body));
    } catch {
      done(new StrataError('the body is not valid JSON'));
    }
  };
  app.addContentTypeParser(['application/json', EVENTS_TYPE], { parseAs: 'string' }, json);
  app.setNotFoundHandler((_req, reply) => void reply.code(404).send({ error: 'no such route' }));
  app.setErrorHandler((err, req, reply) => {
    const e = err as { statusCode?: number; code?: string };
    if (err instanceof StrataError) return void reply.code(400).send({ error: errorMessage(err) });
    if (e.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') return void reply.code(415).send({ error: 'send JSON (Content-Type: application/json)' });
    if (e.code === 'FST_ERR_CTP_BODY_TOO_LARGE') return void reply.code(413).send({ error: `the body is larger than ${(MAX_APPLY_BYTES * 2) >> 20} MiB` });
    if (e.statusCode && e.statusCode >= 400 && e.statusCode < 500) return void reply.code(e.statusCode).send({ error: 'bad request' });
    // Anything else is ours: logged here in full, never sent (it could name a path or hold a value).
    o.log(`API ${req.method} ${req.url.split('?')[0]}: ${errorMessage(err)}`);
    return void reply.code(500).send({ error: 'internal error; see the fleet serve log' });
  });

  // Over TCP: the Host header names this listener, and the caller shows a token with the role the route needs.
  const need = (role: Role) => async (req: FastifyRequest, reply: FastifyReply) => {
    if (!overTcp.has(req.raw)) return;
    const host = String(req.headers.host ?? '').toLowerCase();
    if (!o.hostNames.includes(host)) return reply.code(421).send({ error: `Host "${host.slice(0, 100)}" is not this listener's name` });
    const have = roleOf(o.tokens, bearerToken(req.headers.authorization));
    if (!have) return reply.code(401).header('www-authenticate', 'Bearer realm="strata fleet"').send({ error: 'a bearer token is required' });
    if (!allows(have, role)) return reply.code(403).send({ error: `this token cannot do that (needs ${role})` });
  };
  const read = { preHandler: need('read') };
  const admin = { preHandler: need('admin') };

  app.get('/v1/ping', read, async () => {
    const m = process.memoryUsage();
    const mb = (n: number) => Math.round(n / (1 << 20));
    return { pid: process.pid, version: VERSION, where: fleet.where, ...fleet.busy, memory: { rss: mb(m.rss), heapTotal: mb(m.heapTotal), heapUsed: mb(m.heapUsed), external: mb(m.external), arrayBuffers: mb(m.arrayBuffers) } };
  });
  app.post('/v1/apply', admin, async (req) => fleet.applyFrom(documentsOf(req.body), { remote: overTcp.has(req.raw), allowLocalSources: o.allowLocalSources }));
  app.post('/v1/delete', admin, async (req) => fleet.delete(metasOf(req.body)));
  app.get('/v1/resources', read, async (req) => {
    const kind = (req.query as { kind?: string }).kind;
    if (kind !== undefined && !KINDS.includes(kind as Kind)) throw new StrataError(`kind "${String(kind).slice(0, 60)}": unknown (kinds: ${KINDS.join(', ')})`);
    return fleet.resources(kind as Kind | undefined);
  });
  app.get('/v1/images', read, async () => fleet.images());
  app.get('/v1/builds', read, async (req) => {
    const q = req.query as { namespace?: string; image?: string; owner?: string };
    if (q.namespace !== undefined) checkNamespace(String(q.namespace), 'namespace');
    if (q.image !== undefined) checkName(String(q.image), 'image');
    return fleet.builds({ ...(q.namespace ? { namespace: q.namespace } : {}), ...(q.image ? { image: q.image } : {}), ...(q.owner !== undefined ? { ownerKind: ownerOf(q.owner) } : {}) });
  });
  app.get('/v1/builds/:namespace/:image/:number/log', read, async (req) => {
    const p = params(req);
    const q = req.query as { from?: string; owner?: string };
    const from = q.from ?? '0';
    if (!/^\d{1,9}$/.test(from)) throw new StrataError(`from "${String(from).slice(0, 20)}" is not a whole number`);
    return fleet.log({ ownerKind: ownerOf(q.owner ?? 'Image'), namespace: p.namespace, image: p.image, number: p.number! }, Number(from));
  });
  app.post('/v1/images/:namespace/:image/trigger', admin, async (req) => {
    const p = params(req);
    await fleet.trigger(p.namespace, p.image);
    return {};
  });
  app.post('/v1/reconcile', admin, async () => fleet.reconcileNow());
  app.get('/v1/workers', read, async () => fleet.workers());
  // The distribution registry's notifications (config `notifications.endpoints`, with an Authorization header): a
  // push to a watched repository starts a pass at once. The event is only a hint; the pass reads the registry itself,
  // so a forged event costs one pass and changes nothing.
  app.post('/v1/registry/events', { preHandler: need('webhook') }, async (req) => {
    const env = (obj(req.body) ? req.body : {}) as RegistryEnvelope;
    const events = Array.isArray(env.events) ? env.events : [];
    const repos = events.filter((e) => obj(e) && e.action === 'push' && obj(e.target) && typeof e.target.repository === 'string' && (e.target.tag || /manifest|index/.test(String(e.target.mediaType ?? '')))).map((e) => e.target!.repository!);
    if (!repos.length) return { reconciling: false };
    const hits = await fleet.registryPush(repos);
    if (hits.length) o.log(`registry push to ${hits.join(', ')}: reconciling`);
    return { reconciling: hits.length > 0 };
  });
  registerDashboard(app, fleet, { tokens: o.tokens, hostNames: o.hostNames, overTcp: (req) => overTcp.has(req), loopback: o.loopback ?? false, tls: o.tls ?? false, storeOptions: o.storeOptions ?? {}, log: o.log });
  return app;
}

/** The Host values a TCP listener answers to: its address, and the loopback names when it is on loopback. */
export function listenerHostNames(host: string, port: number, extra: string[]): string[] {
  const names = new Set(extra.map((n) => (n.includes(':') && !n.startsWith('[') ? n : `${n}:${port}`).toLowerCase()));
  const h = host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
  names.add(`${h}:${port}`.toLowerCase());
  if (['127.0.0.1', 'localhost', '[::1]', '::1'].includes(host)) for (const n of ['127.0.0.1', 'localhost', '[::1]']) names.add(`${n}:${port}`);
  return [...names];
}

/**
 * Listens on the unix socket (replacing a stale one: the caller holds the serve lock) and, if asked, on TCP, with TLS
 * when given a certificate and key.
 */
export async function listen(app: FastifyInstance, socket: string, tcp?: { host: string; port: number }, tls?: { cert: Buffer; key: Buffer }): Promise<{ tcp?: string }> {
  await rm(socket, { force: true });
  // A second server on the same routes: fastify listens on one address, so TCP goes through Node's http or https.
  const options = { requestTimeout: 60_000, headersTimeout: 20_000, maxHeaderSize: 16 << 10 };
  const handler = (req: IncomingMessage, res: http.ServerResponse) => {
    overTcp.add(req);
    app.routing(req, res);
  };
  const server = tcp ? (tls ? https.createServer({ ...options, cert: tls.cert, key: tls.key }, handler) : http.createServer(options, handler)) : undefined;
  if (server) {
    app.addHook('onClose', async () => {
      await new Promise<void>((r) => server.close(() => r()));
    });
  }
  await app.listen({ path: socket });
  await chmod(socket, 0o600);
  if (!server || !tcp) return {};
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => reject(new StrataError(`--listen ${tcp.host}:${tcp.port}: ${err.code ?? err.message}`)));
    server.listen(tcp.port, tcp.host, () => resolve());
  });
  const addr = server.address();
  return { tcp: typeof addr === 'object' && addr ? `${addr.address}:${addr.port}` : `${tcp.host}:${tcp.port}` };
}
