import http from 'node:http';
import { rm } from 'node:fs/promises';
import Fastify, { type FastifyInstance } from 'fastify';
import { StrataError, errorMessage } from '../oci/errors.js';
import { VERSION } from '../version.js';
import type { Kind, Meta, Resource } from './resources.js';
import type { ServedFleet } from './service.js';

/**
 * The fleet's HTTP API: the CLI talks to a running `fleet serve` through a unix socket under `$STRATA_HOME/fleet`
 * (file permissions guard it), and a TCP listener (loopback by default) takes the registry's push notifications —
 * the same routes the dashboard will use.
 */

const EVENTS_TYPE = 'application/vnd.docker.distribution.events.v1+json';

interface RegistryEnvelope {
  events?: { action?: string; target?: { repository?: string; mediaType?: string; tag?: string; digest?: string } }[];
}

export function fleetServer(fleet: ServedFleet, log: (line: string) => void): FastifyInstance {
  const app = Fastify({ logger: false, bodyLimit: 32 << 20 });
  app.addContentTypeParser(EVENTS_TYPE, { parseAs: 'string' }, (_req, body, done) => {
    try {
      done(null, JSON.parse(body as string));
    } catch (err) {
      done(err as Error, undefined);
    }
  });
  app.setErrorHandler((err, _req, reply) => {
    void reply.code(err instanceof StrataError ? 400 : (err as { statusCode?: number }).statusCode ?? 500).send({ error: errorMessage(err) });
  });
  app.get('/v1/ping', async () => ({ pid: process.pid, version: VERSION, where: fleet.where, ...fleet.busy }));
  app.post('/v1/apply', async (req) => fleet.apply((req.body as { resources: Resource[] }).resources));
  app.post('/v1/delete', async (req) => fleet.delete((req.body as { metas: Pick<Meta, 'kind' | 'namespace' | 'name'>[] }).metas));
  app.get('/v1/resources', async (req) => fleet.resources((req.query as { kind?: Kind }).kind));
  app.get('/v1/images', async () => fleet.images());
  app.get('/v1/builds', async (req) => {
    const q = req.query as { namespace?: string; image?: string };
    return fleet.builds({ ...(q.namespace ? { namespace: q.namespace } : {}), ...(q.image ? { image: q.image } : {}) });
  });
  app.get('/v1/builds/:namespace/:image/:number/log', async (req) => {
    const p = req.params as { namespace: string; image: string; number: string };
    return fleet.log(p.namespace, p.image, Number(p.number), Number((req.query as { from?: string }).from ?? 0));
  });
  app.post('/v1/images/:namespace/:image/trigger', async (req) => {
    const p = req.params as { namespace: string; image: string };
    await fleet.trigger(p.namespace, p.image);
    return {};
  });
  app.post('/v1/reconcile', async () => fleet.reconcileNow());
  // The distribution registry's notifications (config `notifications.endpoints`): a push to a watched repository
  // starts a pass at once. The event is only a hint; the pass reads the registry itself.
  app.post('/v1/registry/events', async (req) => {
    const env = req.body as RegistryEnvelope;
    const repos = (env.events ?? []).filter((e) => e.action === 'push' && e.target?.repository && (e.target.tag || /manifest|index/.test(e.target.mediaType ?? ''))).map((e) => e.target!.repository!);
    if (!repos.length) return { reconciling: false };
    const hits = await fleet.registryPush(repos);
    if (hits.length) log(`registry push to ${hits.join(', ')}: reconciling`);
    return { reconciling: hits.length > 0 };
  });
  return app;
}

/** Listens on the unix socket (replacing a stale one: the caller holds the fleet lock) and, if asked, on TCP. */
export async function listen(app: FastifyInstance, socket: string, tcp?: { host: string; port: number }): Promise<{ tcp?: string }> {
  await rm(socket, { force: true });
  const { chmod } = await import('node:fs/promises');
  // A second server on the same routes: fastify listens on one address, so TCP goes through Node's http.
  const server = tcp ? http.createServer((req, res) => app.routing(req, res)) : undefined;
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

