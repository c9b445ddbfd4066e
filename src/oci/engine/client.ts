import type { IncomingMessage } from 'node:http';
import { http } from '../nodehttp.js';
import { Readable } from 'node:stream';
import { StrataError } from '../errors.js';

/** Docker Engine API version spoken: the newest Podman 4 serves, and one every current Docker accepts. */
const API = '/v1.41';

export interface EngineImageSummary {
  Id: string;
  RepoTags?: string[] | null;
  RepoDigests?: string[] | null;
  Size?: number;
  Created?: number;
}

export interface EngineImageInspect {
  Id: string;
  RepoTags?: string[] | null;
  Architecture?: string;
  Os?: string;
  Config?: { Env?: string[]; Labels?: Record<string, string> | null; Entrypoint?: string[] | null; Cmd?: string[] | null; WorkingDir?: string };
  RootFS?: { Type: string; Layers?: string[] };
}

/** The engine's log stream without a TTY: frames of [stream, 0, 0, 0, size (BE32)] then the bytes. */
async function demux(res: IncomingMessage, out: NodeJS.WritableStream, err: NodeJS.WritableStream): Promise<void> {
  let buf = Buffer.alloc(0);
  for await (const chunk of res as AsyncIterable<Buffer>) {
    buf = Buffer.concat([buf, chunk]);
    while (buf.length >= 8) {
      const size = buf.readUInt32BE(4);
      if (buf.length < 8 + size) break;
      (buf[0] === 2 ? err : out).write(buf.subarray(8, 8 + size));
      buf = buf.subarray(8 + size);
    }
  }
}

type Endpoint = { socketPath: string } | { host: string; port: number };

/**
 * A client for the Docker Engine API (Docker, or Podman's compatible service) on a unix socket or plain TCP, as named
 * by DOCKER_HOST. Only what moving images needs: version, load, inspect, list and save.
 */
export class EngineClient {
  private constructor(
    private readonly endpoint: Endpoint,
    readonly description: string,
  ) {}

  /** `unix:///path`, `tcp://host:port` (TLS endpoints are not supported), or the default Docker socket. */
  static fromEnv(env: NodeJS.ProcessEnv = process.env): EngineClient {
    const host = env.DOCKER_HOST || 'unix:///var/run/docker.sock';
    if (host.startsWith('unix://')) return new EngineClient({ socketPath: host.slice('unix://'.length) }, host);
    const tcp = host.match(/^(?:tcp|http):\/\/([^:/]+):(\d+)\/?$/);
    if (tcp) {
      if (env.DOCKER_TLS_VERIFY) throw new StrataError(`DOCKER_HOST=${host} with DOCKER_TLS_VERIFY: TLS engine endpoints are not supported; use a unix socket`);
      return new EngineClient({ host: tcp[1]!, port: Number(tcp[2]) }, host);
    }
    throw new StrataError(`DOCKER_HOST="${host}" is not understood; use unix:///path/to/docker.sock or tcp://host:port`);
  }

  private call(method: string, path: string, body?: Readable, headers: Record<string, string> = {}): Promise<IncomingMessage> {
    return new Promise((resolve, reject) => {
      const req = http.request({ ...this.endpoint, method, path: `${API}${path}`, headers: { Host: 'docker', ...headers } });
      req.on('error', (err: NodeJS.ErrnoException) => {
        const hint = err.code === 'ENOENT' || err.code === 'ECONNREFUSED' ? ': is Docker or `podman system service` running, and DOCKER_HOST right?' : err.code === 'EACCES' ? ': permission denied on the socket' : '';
        reject(new StrataError(`cannot reach the container engine at ${this.description} (${err.code ?? err.message})${hint}`, 1, { cause: err }));
      });
      req.on('response', resolve);
      if (body) body.on('error', (e) => req.destroy(e)).pipe(req);
      else req.end();
    });
  }

  private async text(res: IncomingMessage): Promise<string> {
    const chunks: Buffer[] = [];
    for await (const c of res as AsyncIterable<Buffer>) chunks.push(c);
    return Buffer.concat(chunks).toString('utf8');
  }

  private async fail(res: IncomingMessage, what: string): Promise<StrataError> {
    const text = await this.text(res);
    let message = text.trim().split('\n')[0] ?? '';
    try {
      message = (JSON.parse(text) as { message?: string }).message ?? message;
    } catch {
      // not JSON: keep the first line
    }
    return new StrataError(`container engine ${this.description}: ${what}: ${message || `HTTP ${res.statusCode}`}`);
  }

  async version(): Promise<{ Version: string; ApiVersion: string; Components?: { Name: string }[] }> {
    const res = await this.call('GET', '/version');
    if (res.statusCode !== 200) throw await this.fail(res, 'reading its version');
    return JSON.parse(await this.text(res)) as { Version: string; ApiVersion: string };
  }

  /** POST /images/load with a tar stream (docker-archive); returns the names the engine reports loaded. */
  async load(tar: Readable): Promise<string[]> {
    const res = await this.call('POST', '/images/load?quiet=1', tar, { 'Content-Type': 'application/x-tar', 'Transfer-Encoding': 'chunked' });
    const text = await this.text(res);
    if (res.statusCode !== 200) throw new StrataError(`container engine ${this.description}: loading an image: ${text.trim().split('\n')[0] || `HTTP ${res.statusCode}`}`);
    const loaded: string[] = [];
    // The answer is a stream of JSON messages, one per line (Podman omits the final newline).
    for (const line of text.split(/\r?\n|(?<=\})(?=\{)/).filter((l) => l.trim())) {
      const msg = JSON.parse(line) as { stream?: string; error?: string; errorDetail?: { message?: string } };
      if (msg.error) throw new StrataError(`container engine ${this.description}: loading an image: ${msg.errorDetail?.message ?? msg.error}`);
      for (const m of (msg.stream ?? '').matchAll(/Loaded image(?: ID)?: (\S+)/g)) loaded.push(...m[1]!.split(','));
    }
    return loaded;
  }

  async inspect(name: string): Promise<EngineImageInspect | undefined> {
    const res = await this.call('GET', `/images/${encodeURIComponent(name)}/json`);
    if (res.statusCode === 404) {
      res.resume();
      return undefined;
    }
    if (res.statusCode !== 200) throw await this.fail(res, `inspecting ${name}`);
    return JSON.parse(await this.text(res)) as EngineImageInspect;
  }

  async list(): Promise<EngineImageSummary[]> {
    const res = await this.call('GET', '/images/json');
    if (res.statusCode !== 200) throw await this.fail(res, 'listing images');
    return JSON.parse(await this.text(res)) as EngineImageSummary[];
  }

  /** Creates a container (POST /containers/create); returns its ID. */
  async createContainer(spec: Record<string, unknown>): Promise<string> {
    const body = Buffer.from(JSON.stringify(spec));
    const res = await this.call('POST', '/containers/create', Readable.from([body]), { 'Content-Type': 'application/json', 'Content-Length': String(body.length) });
    if (res.statusCode !== 201) throw await this.fail(res, 'creating a container');
    return (JSON.parse(await this.text(res)) as { Id: string }).Id;
  }

  /** Starts a container, streams its output to ours while it runs, and returns its exit code; the container is removed. */
  async runContainer(id: string, out: NodeJS.WritableStream, err: NodeJS.WritableStream): Promise<number> {
    try {
      const start = await this.call('POST', `/containers/${id}/start`);
      if (start.statusCode !== 204 && start.statusCode !== 304) throw await this.fail(start, 'starting a container');
      start.resume();
      const logs = await this.call('GET', `/containers/${id}/logs?follow=1&stdout=1&stderr=1`);
      const demuxed = demux(logs, out, err);
      const wait = await this.call('POST', `/containers/${id}/wait`);
      if (wait.statusCode !== 200) throw await this.fail(wait, 'waiting for a container');
      const code = (JSON.parse(await this.text(wait)) as { StatusCode: number }).StatusCode;
      await demuxed;
      return code;
    } finally {
      const rm = await this.call('DELETE', `/containers/${id}?force=1`).catch(() => undefined);
      rm?.resume();
    }
  }

  /** GET /images/{name}/get: the image as a docker-archive tar stream. */
  async save(name: string): Promise<Readable> {
    const res = await this.call('GET', `/images/${encodeURIComponent(name)}/get`);
    if (res.statusCode === 404) {
      res.resume();
      throw new StrataError(`container engine ${this.description}: no image ${name}`);
    }
    if (res.statusCode !== 200) throw await this.fail(res, `reading ${name}`);
    return res;
  }
}
