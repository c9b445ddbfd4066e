import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';

/**
 * What the proxy does to one request:
 * - `reset`: drops the connection before answering
 * - `500` / `503` / `429`: answers that status itself (429 with `Retry-After: 0`)
 * - `stall`: accepts the request and never answers (the client's idle timeout must fire)
 * - `cut`: forwards half of the request body (or, without one, half of the response) and then drops both sides
 * - `slow`: forwards it a quarter of a second late (a distant registry)
 */
export type Fault = 'reset' | '500' | '503' | '429' | 'stall' | 'cut' | 'slow';

export interface FaultProxy {
  host: string;
  /** Every fault injected so far, as `<fault> <method> <path>`. */
  injected: string[];
  requests: number;
  stop(): Promise<void>;
}

/**
 * An HTTP proxy on a loopback port in front of `upstream` (host:port) that injects the fault `plan` names for the
 * Nth request (1-based). The Host header passes through untouched, so the registry's Location headers point back
 * at the proxy and every request of an upload goes through it.
 */
export async function startFaultProxy(upstream: string, plan: (n: number, req: IncomingMessage) => Fault | undefined): Promise<FaultProxy> {
  const [upHost, upPort] = upstream.split(':');
  const sockets = new Set<Socket>();
  const agent = new http.Agent({ keepAlive: false });
  const state: FaultProxy = { host: '', injected: [], requests: 0, stop: async () => undefined };

  const forward = (req: IncomingMessage, res: ServerResponse, cut: boolean): void => {
    const up = http.request({ host: upHost, port: Number(upPort), method: req.method, path: req.url, headers: req.headers, agent });
    const drop = (): void => {
      up.destroy();
      req.socket.destroy();
    };
    up.on('error', () => req.socket.destroy());
    const length = Number(req.headers['content-length'] ?? 0);
    if (cut && length > 1) {
      let sent = 0;
      req.on('data', (chunk: Buffer) => {
        if (sent >= length / 2) return;
        const part = chunk.subarray(0, Math.max(0, Math.ceil(length / 2) - sent));
        sent += part.length;
        up.write(part);
        // Give the registry time to store what it got before the connection dies.
        if (sent >= length / 2) setTimeout(drop, 50);
      });
    } else {
      req.pipe(up);
    }
    up.on('response', (ur) => {
      res.writeHead(ur.statusCode ?? 502, ur.headers);
      const total = Number(ur.headers['content-length'] ?? 0);
      if (cut && length <= 1 && total > 1) {
        let sent = 0;
        ur.on('data', (chunk: Buffer) => {
          if (sent >= total / 2) return;
          const part = chunk.subarray(0, Math.max(0, Math.ceil(total / 2) - sent));
          sent += part.length;
          res.write(part);
          if (sent >= total / 2) drop();
        });
      } else {
        ur.pipe(res);
      }
    });
  };

  const server = http.createServer((req, res) => {
    const n = ++state.requests;
    const fault = plan(n, req);
    if (fault) state.injected.push(`${fault} ${req.method} ${req.url}`);
    switch (fault) {
      case 'reset':
        req.socket.destroy();
        return;
      case '500':
      case '503':
      case '429':
        req.resume();
        res.writeHead(Number(fault), { 'Content-Type': 'text/plain', Connection: 'close', ...(fault === '429' ? { 'Retry-After': '0' } : {}) });
        res.end(`injected ${fault}\n`);
        return;
      case 'stall':
        req.resume();
        return;
      case 'slow':
        setTimeout(() => forward(req, res, false), 250);
        return;
      default:
        forward(req, res, fault === 'cut');
    }
  });
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const addr = server.address();
  state.host = `127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`;
  state.stop = async () => {
    for (const s of sockets) s.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    agent.destroy();
  };
  return state;
}
