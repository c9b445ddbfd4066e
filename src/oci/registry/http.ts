import type { Agent, IncomingHttpHeaders, IncomingMessage } from 'node:http';
import type { Agent as HttpsAgent } from 'node:https';
import { http, https } from '../nodehttp.js';
import { createHash } from 'node:crypto';

import { Transform, type Readable } from 'node:stream';
import { StrataError } from '../errors.js';
import { pipeline } from 'node:stream/promises';

export interface HttpRequest {
  method: string;
  url: URL;
  headers?: Record<string, string>;
  body?: Buffer | (() => Promise<Readable>);
  /** Idle time with no bytes moving before the request fails. */
  timeoutMs?: number;
  /** Follow 3xx for GET/HEAD (blob downloads are often redirected to storage). */
  followRedirects?: boolean;
  tls?: { rejectUnauthorized: boolean; ca?: CaSource };
}

/** Extra CA certificates (PEM), or how to read them: only an https connection asks, so plain-HTTP work never does. */
export type CaSource = string[] | (() => string[] | undefined);

export interface HttpResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: IncomingMessage;
  url: URL;
}

const httpAgent = new http.Agent({ keepAlive: true, maxSockets: 16 });
const httpsAgents = new Map<string, HttpsAgent>();
const caKeys = new WeakMap<object, string>();

/** Agents are shared per trust setting; a CA list is identified by its content, hashed once per list object. */
function caKey(list: string[] | undefined): string {
  if (!list) return '';
  let key = caKeys.get(list);
  if (!key) {
    const h = createHash('sha256');
    for (const c of list) h.update(c);
    key = h.digest('hex');
    caKeys.set(list, key);
  }
  return key;
}

function agentFor(url: URL, tls: HttpRequest['tls']): Agent {
  if (url.protocol === 'http:') return httpAgent;
  const ca = typeof tls?.ca === 'function' ? tls.ca() : tls?.ca;
  const key = `${tls?.rejectUnauthorized === false ? 'insecure' : 'secure'}:${caKey(ca)}`;
  let agent = httpsAgents.get(key);
  if (!agent) {
    agent = new (https().Agent)({ keepAlive: true, maxSockets: 16, rejectUnauthorized: tls?.rejectUnauthorized !== false, ...(ca ? { ca } : {}) });
    httpsAgents.set(key, agent);
  }
  return agent;
}

/** One HTTP exchange, streaming both ways. The caller must consume or destroy `body`. */
export async function send(req: HttpRequest): Promise<HttpResponse> {
  let url = req.url;
  let headers = { ...(req.headers ?? {}) };
  for (let hop = 0; hop < 6; hop++) {
    const res = await sendOnce({ ...req, url, headers });
    const location = res.headers.location;
    if (req.followRedirects && res.status >= 300 && res.status < 400 && location && (req.method === 'GET' || req.method === 'HEAD')) {
      res.body.resume();
      const next = new URL(location, url);
      // Credentials are for the registry, not for whatever storage it redirects to.
      if (next.host !== url.host) {
        headers = Object.fromEntries(Object.entries(headers).filter(([k]) => k.toLowerCase() !== 'authorization'));
      }
      url = next;
      continue;
    }
    return res;
  }
  throw new Error(`too many redirects from ${req.url.host}`);
}

function sendOnce(req: HttpRequest): Promise<HttpResponse> {
  return new Promise((resolve, reject) => {
    const mod = req.url.protocol === 'https:' ? https() : http;
    const r = mod.request(req.url, { method: req.method, headers: req.headers, agent: agentFor(req.url, req.tls) });
    const timeout = req.timeoutMs ?? 120_000;
    r.setTimeout(timeout, () => r.destroy(Object.assign(new Error(`no response for ${timeout / 1000}s`), { code: 'ETIMEDOUT' })));
    r.on('error', reject);
    r.on('response', (res) => {
      res.setTimeout(timeout, () => res.destroy(Object.assign(new Error(`stalled for ${timeout / 1000}s`), { code: 'ETIMEDOUT' })));
      resolve({ status: res.statusCode ?? 0, headers: res.headers, body: res, url: req.url });
    });
    const body = req.body;
    if (body === undefined) r.end();
    else if (Buffer.isBuffer(body)) r.end(body);
    else {
      // A source that ends short of the Content-Length would leave the server waiting for the rest until a
      // timeout; it fails at once instead.
      const length = Number(Object.entries(req.headers ?? {}).find(([k]) => k.toLowerCase() === 'content-length')?.[1] ?? NaN);
      body()
        .then((stream) => (Number.isFinite(length) ? pipeline(stream, exactLength(length, req.url), r) : pipeline(stream, r)))
        .catch((e: Error) => r.destroy(e));
    }
  });
}

export async function readBody(res: HttpResponse, limit = 16 << 20): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of res.body as AsyncIterable<Buffer>) {
    n += c.length;
    if (n > limit) {
      res.body.destroy();
      throw new Error(`response from ${res.url.host} is larger than ${limit} bytes`);
    }
    chunks.push(c);
  }
  return Buffer.concat(chunks);
}

export function header(res: HttpResponse, name: string): string | undefined {
  const v = res.headers[name.toLowerCase()];
  return Array.isArray(v) ? v[0] : v;
}


/** Passes bytes through, failing if their count differs from `length` (a short or long request body). */
function exactLength(length: number, url: URL): Transform {
  let n = 0;
  return new Transform({
    transform(c: Buffer, _e, done) {
      n += c.length;
      if (n > length) done(new StrataError(`request body for ${url.host} is longer than its Content-Length ${length}`));
      else done(null, c);
    },
    flush(done) {
      if (n !== length) done(new StrataError(`request body for ${url.host} ended after ${n} of ${length} bytes (its source is truncated)`));
      else done();
    },
  });
}
