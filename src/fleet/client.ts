import { http } from '../oci/nodehttp.js';
import { StrataError } from '../oci/errors.js';
import type { SourceDocument } from './manifests.js';
import type { Kind, Meta } from './resources.js';
import type { ApplyResult, BuildFilter, FleetApi, ImageView, ReconcileOutcome, ResourceView } from './service.js';
import type { BuildKey, BuildRecord, WorkerRecord } from './store.js';

/** The fleet behind a running `fleet serve`, over its unix socket. */
export class RemoteFleet implements FleetApi {
  private constructor(
    private readonly socket: string,
    readonly where: string,
  ) {}

  /** Connects when a server answers on `socket`; undefined when none does (a stale socket file included). */
  static async connect(socket: string): Promise<RemoteFleet | undefined> {
    try {
      const ping = await call<{ pid: number; where: string }>(socket, 'GET', '/v1/ping', undefined, 2000);
      return new RemoteFleet(socket, `the running strata fleet serve (pid ${ping.pid}, ${ping.where})`);
    } catch {
      return undefined;
    }
  }

  apply(documents: SourceDocument[]): Promise<ApplyResult> {
    return call(this.socket, 'POST', '/v1/apply', { documents });
  }

  delete(metas: Pick<Meta, 'kind' | 'namespace' | 'name'>[]): Promise<string[]> {
    return call(this.socket, 'POST', '/v1/delete', { metas });
  }

  resources(kind?: Kind): Promise<ResourceView[]> {
    return call(this.socket, 'GET', `/v1/resources${kind ? `?kind=${kind}` : ''}`);
  }

  images(): Promise<ImageView[]> {
    return call(this.socket, 'GET', '/v1/images');
  }

  builds(filter: BuildFilter): Promise<BuildRecord[]> {
    const q = new URLSearchParams(Object.entries(filter).filter(([, v]) => v !== undefined) as [string, string][]);
    return call(this.socket, 'GET', `/v1/builds?${q}`);
  }

  log(key: BuildKey, fromSeq: number): Promise<{ chunks: { seq: number; text: string }[]; status: BuildRecord['status'] }> {
    return call(this.socket, 'GET', `/v1/builds/${encodeURIComponent(key.namespace)}/${encodeURIComponent(key.image)}/${key.number}/log?from=${fromSeq}&owner=${key.ownerKind}`);
  }

  async trigger(namespace: string, name: string): Promise<void> {
    await call(this.socket, 'POST', `/v1/images/${encodeURIComponent(namespace)}/${encodeURIComponent(name)}/trigger`, {});
  }

  reconcileNow(): Promise<ReconcileOutcome> {
    return call(this.socket, 'POST', '/v1/reconcile', {});
  }

  workers(): Promise<WorkerRecord[]> {
    return call(this.socket, 'GET', '/v1/workers');
  }

  /** Whether the server is in a pass or running builds. */
  async busy(): Promise<{ reconciling: boolean; running: number }> {
    return call(this.socket, 'GET', '/v1/ping');
  }

  async close(): Promise<void> {}
}

function call<T>(socket: string, method: string, path: string, body?: unknown, timeoutMs = 60_000): Promise<T> {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const req = http.request({ socketPath: socket, method, path, headers: data ? { 'content-type': 'application/json', 'content-length': data.length } : {} }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let parsed: unknown;
        try {
          parsed = text ? JSON.parse(text) : undefined;
        } catch {
          parsed = undefined;
        }
        if ((res.statusCode ?? 500) >= 400) reject(new StrataError((parsed as { error?: string } | undefined)?.error ?? `fleet server: HTTP ${res.statusCode}`));
        else resolve(parsed as T);
      });
    });
    req.setTimeout(timeoutMs, () => req.destroy(new Error('the fleet server did not answer')));
    req.on('error', reject);
    req.end(data);
  });
}
