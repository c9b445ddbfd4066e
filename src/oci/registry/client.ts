import { PassThrough, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { VerifyingStream, sha256, type Digest } from '../digest.js';
import { NotFoundError, StrataError, errorMessage, isTransient, sleep } from '../errors.js';
import { parseManifest, type Descriptor, type ParsedManifest } from '../manifest.js';
import { MANIFEST_ACCEPT } from '../mediatype.js';
import { isLoopbackRegistry, registryApiHost } from '../reference.js';
import type { BlobOpener, BlobStream, ImageStore, MountHint } from '../store.js';
import { header, readBody, send, type CaSource, type HttpRequest, type HttpResponse } from './http.js';

/** Supplies Authorization headers and answers challenges; the anonymous one does neither. */
export interface Authorizer {
  authorization(scope: string): Promise<string | undefined>;
  /**
   * Given a 401's WWW-Authenticate header and the Authorization the refused request carried, prepares credentials;
   * true when a retry may now succeed. Requests run concurrently, so a challenge may already have been answered.
   */
  challenge(wwwAuthenticate: string, scope: string, sent: string | undefined): Promise<boolean>;
}

export const anonymous: Authorizer = {
  authorization: async () => undefined,
  challenge: async () => false,
};

export interface RegistryOptions {
  /** Plain HTTP or unverified TLS for this registry (`--insecure-registry`). */
  insecure?: boolean;
  authorizer?: Authorizer;
  /** Extra CA certificates (PEM), or how to read them when an https connection needs them. */
  ca?: CaSource;
  /** Blobs larger than this go up in PATCH chunks of `chunkSize`. */
  monolithicMax?: number;
  chunkSize?: number;
  timeoutMs?: number;
  /** Attempts after the first for transient failures (resets, stalls, 5xx, 429); default 5. */
  retries?: number;
  /** First backoff delay; it doubles per attempt, with jitter. */
  retryBaseMs?: number;
}

/** Statuses a registry or the proxy in front of it uses for "try again". */
const RETRY_STATUS = new Set([408, 429, 500, 502, 503, 504]);
const MAX_BACKOFF_MS = 10_000;
/** Responses still failing after every retry, so callers do not retry them again. */
const exhausted = new WeakSet<HttpResponse>();

const DEFAULT_MONOLITHIC_MAX = 32 << 20;
const DEFAULT_CHUNK = 32 << 20;

interface RegistryErrorBody {
  errors?: { code?: string; message?: string; detail?: unknown }[];
}

/** A client for one registry host speaking the distribution API v2. */
export class RegistryClient {
  private baseUrl?: URL;
  readonly authorizer: Authorizer;

  constructor(
    readonly registry: string,
    private readonly options: RegistryOptions = {},
  ) {
    this.authorizer = options.authorizer ?? anonymous;
  }

  /** HTTPS unless the registry is loopback or named insecure; an insecure one falls back to HTTP if TLS fails. */
  async base(): Promise<URL> {
    if (this.baseUrl) return this.baseUrl;
    const host = registryApiHost(this.registry);
    if (isLoopbackRegistry(this.registry)) {
      this.baseUrl = new URL(`http://${host}`);
    } else if (this.options.insecure) {
      const tryHttps = new URL(`https://${host}`);
      try {
        const res = await send({ method: 'GET', url: new URL('/v2/', tryHttps), tls: this.tls(), timeoutMs: 10_000 });
        res.body.resume();
        this.baseUrl = tryHttps;
      } catch {
        this.baseUrl = new URL(`http://${host}`);
      }
    } else {
      this.baseUrl = new URL(`https://${host}`);
    }
    return this.baseUrl;
  }

  private tls(): HttpRequest['tls'] {
    return { rejectUnauthorized: !this.options.insecure, ...(this.options.ca ? { ca: this.options.ca } : {}) };
  }

  get retries(): number {
    return this.options.retries ?? 5;
  }

  /** Exponential backoff with jitter, or the registry's Retry-After when it gives one. */
  async backoff(attempt: number, retryAfter?: string): Promise<void> {
    const asked = retryAfter !== undefined && /^\d+$/.test(retryAfter) ? Number(retryAfter) * 1000 : undefined;
    const base = this.options.retryBaseMs ?? 250;
    const ms = asked ?? Math.min(MAX_BACKOFF_MS, base * 2 ** attempt) * (0.5 + Math.random() / 2);
    await sleep(Math.min(ms, 60_000));
  }

  /**
   * Sends a request with authorization for `scope`, answering one 401 challenge by re-authorizing and retrying.
   * Transient failures are retried with backoff unless `retry` is false (uploads of partial data, whose recovery
   * needs the upload's offset, handle their own). The body is an opener so a retry can send it again.
   */
  async request(req: Omit<HttpRequest, 'url'> & { path: string | URL; retry?: boolean }, scope: string): Promise<HttpResponse> {
    const base = await this.base();
    const url = typeof req.path === 'string' ? new URL(req.path, base) : req.path;
    const retries = req.retry === false ? 0 : this.retries;
    // Two rounds: one to learn the scheme and get a token, one more if the registry refuses that token (expired).
    let challenges = 0;
    for (let attempt = 0; ; ) {
      const headers: Record<string, string> = { ...(req.headers ?? {}) };
      const auth = await this.authorizer.authorization(scope);
      if (auth) headers.Authorization = auth;
      let res: HttpResponse;
      try {
        res = await send({ ...req, url, headers, tls: this.tls(), timeoutMs: req.timeoutMs ?? this.options.timeoutMs });
      } catch (err) {
        const e = this.networkError(err, `${req.method} ${url.pathname}`);
        if (e.transient && attempt >= retries && retries > 0) throw new StrataError(`${e.message}; gave up after ${attempt + 1} attempts`, 1, { cause: err });
        if (!e.transient || attempt >= retries) throw e;
        await this.backoff(attempt++);
        continue;
      }
      if (res.status === 401 && challenges < 2) {
        challenges++;
        const challenge = header(res, 'www-authenticate') ?? '';
        res.body.resume();
        if (await this.authorizer.challenge(challenge, scope, auth)) continue;
        throw new StrataError(`registry ${this.registry}: authentication required for ${scopeWhat(scope)}; run \`strata login ${this.registry}\``);
      }
      if (RETRY_STATUS.has(res.status) && attempt < retries) {
        res.body.resume();
        await this.backoff(attempt++, header(res, 'retry-after'));
        continue;
      }
      if (RETRY_STATUS.has(res.status) && retries > 0) exhausted.add(res);
      return res;
    }
  }

  /** A failure below HTTP, as one line; `during` names the request when the registry answered others (a reset). */
  networkError(err: unknown, during?: string): StrataError {
    if (err instanceof StrataError) return err;
    const code = (err as NodeJS.ErrnoException).code ?? '';
    const unreachable = code === 'ECONNREFUSED' || code === 'ENOTFOUND' || code === 'EAI_AGAIN';
    const hint = unreachable ? ': is it running and is the address right?' : during ? ` during ${during}` : '';
    const tls = /certificate|self.signed|SSL|EPROTO/i.test(`${code} ${errorMessage(err)}`) ? ' (TLS problem: use --insecure-registry for a registry without valid HTTPS)' : '';
    return new StrataError(`cannot reach registry ${this.registry} (${code || errorMessage(err)})${hint}${tls}`, 1, { cause: err, transient: isTransient(err) });
  }

  async failure(res: HttpResponse, what: string): Promise<StrataError> {
    let detail = `HTTP ${res.status}`;
    try {
      const text = (await readBody(res, 1 << 20)).toString('utf8');
      const body = JSON.parse(text) as RegistryErrorBody;
      const e = body.errors?.[0];
      if (e) detail = `${e.code ?? res.status}: ${e.message ?? ''}`.trim();
    } catch {
      res.body.destroy();
    }
    if (res.status === 401 || res.status === 403) {
      return new StrataError(`registry ${this.registry}: ${what}: access denied (${detail}); check your credentials with \`strata login ${this.registry}\``);
    }
    const gaveUp = exhausted.has(res);
    return new StrataError(`registry ${this.registry}: ${what}: ${detail}${gaveUp ? '; gave up after retrying' : ''}`, 1, { transient: RETRY_STATUS.has(res.status) && !gaveUp });
  }

  /** Checks the registry answers the v2 API. */
  async ping(): Promise<void> {
    const res = await this.request({ method: 'GET', path: '/v2/' }, '');
    res.body.resume();
    if (res.status !== 200) throw new StrataError(`registry ${this.registry} does not speak the distribution API v2 (GET /v2/ gave HTTP ${res.status})`);
  }

  repository(repository: string): RegistryRepository {
    return new RegistryRepository(this, repository, this.options);
  }
}

function scopeWhat(scope: string): string {
  const [, repo, actions] = scope.split(':');
  return repo ? `${actions ?? 'pull'} on ${repo}` : 'the registry';
}

export function pullScope(repository: string): string {
  return `repository:${repository}:pull`;
}

export function pushScope(repository: string): string {
  return `repository:${repository}:pull,push`;
}

/** One repository of a registry, as an ImageStore. */
export class RegistryRepository implements ImageStore {
  readonly description: string;
  constructor(
    readonly client: RegistryClient,
    readonly repository: string,
    private readonly options: RegistryOptions = {},
  ) {
    this.description = `${client.registry}/${repository}`;
  }

  private path(rest: string): string {
    return `/v2/${this.repository}/${rest}`;
  }

  mountHint(): MountHint {
    return { registry: this.client.registry, repository: this.repository };
  }

  async getManifest(tagOrDigest = 'latest'): Promise<ParsedManifest> {
    const where = `${this.description}${tagOrDigest.startsWith('sha256:') ? '@' : ':'}${tagOrDigest}`;
    return this.readRetrying(`reading manifest ${where}`, async () => {
      const res = await this.client.request({ method: 'GET', path: this.path(`manifests/${tagOrDigest}`), headers: { Accept: MANIFEST_ACCEPT } }, pullScope(this.repository));
      if (res.status === 404) {
        res.body.resume();
        throw new NotFoundError(`${where}: manifest not found`);
      }
      if (res.status !== 200) throw await this.client.failure(res, `reading manifest ${where}`);
      const bytes = await readBody(res, 4 << 20);
      if (tagOrDigest.startsWith('sha256:') && sha256(bytes) !== tagOrDigest) {
        throw new StrataError(`${where}: registry returned a manifest whose content hashes to ${sha256(bytes)}`);
      }
      return parseManifest(bytes, header(res, 'content-type'), where);
    });
  }

  /**
   * A small whole read (a manifest, a config) again from the start when its body is cut short: the request layer
   * retries failed requests, but a response that breaks midway only a new request cures.
   */
  private async readRetrying<T>(what: string, read: () => Promise<T>): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await read();
      } catch (err) {
        const cut = !(err instanceof StrataError) && isTransient(err);
        if (!cut) throw err;
        if (attempt >= this.client.retries) throw new StrataError(`registry ${this.client.registry}: ${what}: the answer was cut short (${errorMessage(err)}); gave up after ${attempt + 1} attempts`, 1, { cause: err });
        await this.client.backoff(attempt);
      }
    }
  }

  /** The digest a tag points at, from a HEAD request (no manifest body moved). */
  async headManifest(tagOrDigest: string): Promise<{ digest: Digest; mediaType: string; size: number } | undefined> {
    const res = await this.client.request({ method: 'HEAD', path: this.path(`manifests/${tagOrDigest}`), headers: { Accept: MANIFEST_ACCEPT } }, pullScope(this.repository));
    res.body.resume();
    if (res.status === 404) return undefined;
    if (res.status !== 200) throw await this.client.failure(res, `checking manifest ${this.description}:${tagOrDigest}`);
    const digest = header(res, 'docker-content-digest');
    if (!digest?.startsWith('sha256:')) {
      const m = await this.getManifest(tagOrDigest);
      return { digest: m.digest, mediaType: m.mediaType, size: m.bytes.length };
    }
    return { digest: digest as Digest, mediaType: header(res, 'content-type') ?? '', size: Number(header(res, 'content-length') ?? -1) };
  }

  async getBlob(desc: Descriptor): Promise<Readable> {
    const raw = await this.getBlobRange(desc.digest);
    const verify = new VerifyingStream(desc.digest, desc.size >= 0 ? desc.size : undefined, this.description);
    pipeline(raw, verify).catch((e: Error) => verify.destroy(e));
    return verify;
  }

  /** The raw blob, or a byte range [start, end) of it, unverified (ranges cannot be hashed on their own). */
  async getBlobRange(digest: Digest, start?: number, end?: number): Promise<Readable> {
    const headers: Record<string, string> = {};
    if (start !== undefined && end !== undefined) headers.Range = `bytes=${start}-${end - 1}`;
    const res = await this.client.request({ method: 'GET', path: this.path(`blobs/${digest}`), headers, followRedirects: true }, pullScope(this.repository));
    if (res.status === 404) {
      res.body.resume();
      throw new StrataError(`${this.description}: blob ${digest} not found`);
    }
    if (res.status !== 200 && res.status !== 206) throw await this.client.failure(res, `reading blob ${digest}`);
    if (start !== undefined && start > 0 && res.status !== 206) {
      res.body.destroy();
      throw new StrataError(`${this.description}: registry ignored a range request for blob ${digest}`);
    }
    return res.body;
  }

  async getBlobBytes(desc: Descriptor): Promise<Buffer> {
    return this.readRetrying(`reading blob ${desc.digest}`, async () => {
      const stream = await this.getBlob(desc);
      const chunks: Buffer[] = [];
      for await (const c of stream as AsyncIterable<Buffer>) chunks.push(c);
      return Buffer.concat(chunks);
    });
  }

  async hasBlob(digest: Digest): Promise<boolean> {
    const res = await this.client.request({ method: 'HEAD', path: this.path(`blobs/${digest}`), followRedirects: true }, pullScope(this.repository));
    res.body.resume();
    if (res.status === 200) return true;
    if (res.status === 404) return false;
    throw await this.client.failure(res, `checking blob ${digest}`);
  }

  async putBlob(desc: Descriptor, open: BlobOpener, mount?: MountHint, fresh = false): Promise<'uploaded' | 'mounted' | 'exists'> {
    const canMount = mount && mount.registry === this.client.registry && mount.repository !== this.repository;
    // A mount answers for a blob already here as well, so it needs no HEAD first: one request where there were two.
    if (!canMount && !fresh && (await this.hasBlob(desc.digest))) return 'exists';
    const scope = pushScope(this.repository);
    let location: URL | undefined;
    if (canMount) {
      const q = new URLSearchParams({ mount: desc.digest, from: mount.repository });
      const res = await this.client.request({ method: 'POST', path: this.path(`blobs/uploads/?${q}`), headers: { 'Content-Length': '0' } }, `${scope} repository:${mount.repository}:pull`);
      res.body.resume();
      if (res.status === 201) return 'mounted';
      if (res.status !== 202) throw await this.client.failure(res, `mounting blob ${desc.digest} from ${mount.repository}`);
      location = await this.uploadLocation(res);
    }
    for (let attempt = 0; ; attempt++) {
      try {
        location ??= await this.startUpload(scope);
        await this.sendBlob(location, desc, open, scope);
        return 'uploaded';
      } catch (err) {
        // The session is abandoned; the blob starts over in a fresh one.
        location = undefined;
        if (!isTransient(err)) throw err;
        if (attempt >= this.client.retries) throw new StrataError(`${errorMessage(err)}; gave up after ${attempt + 1} attempts`, 1, { cause: err });
        await this.client.backoff(attempt);
      }
    }
  }

  /**
   * One streamed PATCH (chunked, no length: the distribution spec's streamed upload) fed as the blob is made, closed
   * by a PUT with the digest, which the registry checks against what it received.
   */
  async streamBlob(): Promise<BlobStream> {
    const scope = pushScope(this.repository);
    const location = await this.startUpload(scope);
    const sink = new PassThrough();
    let opened = false;
    const patched = this.client
      .request(
        {
          method: 'PATCH',
          path: location,
          headers: { 'Content-Type': 'application/octet-stream' },
          // Sent once: a stream cannot be replayed, so a challenge or a retry fails the upload instead.
          body: async () => {
            if (opened) throw new StrataError('a streamed upload cannot be sent again');
            opened = true;
            return sink;
          },
          retry: false,
        },
        scope,
      )
      .then(async (res) => {
        if (res.status !== 202) throw await this.client.failure(res, `streaming a blob to ${this.description}`);
        res.body.resume();
        return this.uploadLocation(res);
      });
    // A refused or broken PATCH ends the copy too, so the layer's writer never waits on a stream nobody reads.
    patched.catch((err: unknown) => sink.destroy(err instanceof Error ? err : new Error(String(err))));
    return {
      sink,
      finish: async (desc) => {
        try {
          await this.finishUpload(await patched, desc, scope, Buffer.alloc(0), 0, false);
          return true;
        } catch {
          return false;
        }
      },
      abort: () => sink.destroy(),
    };
  }

  /** Sends a blob into an open upload session: one PUT, or PATCH chunks that resume where the registry says. */
  private async sendBlob(location: URL, desc: Descriptor, open: BlobOpener, scope: string): Promise<void> {
    if (desc.size <= (this.options.monolithicMax ?? DEFAULT_MONOLITHIC_MAX)) {
      await this.finishUpload(location, desc, scope, desc.size === 0 ? Buffer.alloc(0) : () => open(0, desc.size), desc.size, false);
      return;
    }
    const chunk = this.options.chunkSize ?? DEFAULT_CHUNK;
    let offset = 0;
    let failures = 0;
    while (offset < desc.size) {
      const end = Math.min(desc.size, offset + chunk);
      const from = offset;
      try {
        const res = await this.client.request(
          {
            method: 'PATCH',
            path: location,
            headers: { 'Content-Type': 'application/octet-stream', 'Content-Range': `${from}-${end - 1}`, 'Content-Length': String(end - from) },
            body: () => open(from, end),
            retry: false,
          },
          scope,
        );
        res.body.resume();
        // 416: our idea of the offset is stale (a broken PATCH landed late); ask again.
        if (res.status === 416) throw new StrataError(`registry ${this.client.registry}: upload offset mismatch at ${from}`, 1, { transient: true });
        if (res.status !== 202) throw await this.client.failure(res, `uploading blob ${desc.digest} (bytes ${from}-${end - 1})`);
        location = await this.uploadLocation(res);
        offset = end;
      } catch (err) {
        if (!isTransient(err) || failures >= this.client.retries) throw err;
        await this.client.backoff(failures++);
        ({ location, offset } = await this.uploadStatus(location, scope));
      }
    }
    await this.finishUpload(location, desc, scope, Buffer.alloc(0), 0, failures > 0);
  }

  /** How much of an interrupted upload the registry holds (its Range header), and where to continue it. */
  private async uploadStatus(location: URL, scope: string): Promise<{ location: URL; offset: number }> {
    const res = await this.client.request({ method: 'GET', path: location }, scope);
    res.body.resume();
    if (res.status !== 204 && res.status !== 200) {
      const e = await this.client.failure(res, 'resuming an interrupted upload');
      throw new StrataError(e.message, 1, { transient: true });
    }
    const range = header(res, 'range')?.match(/^(?:bytes=)?0-(\d+)$/);
    // "0-0" is ambiguous (empty, or one byte); starting from 0 is safe because a wrong guess gets a 416.
    const last = range ? Number(range[1]) : 0;
    return { location: header(res, 'location') ? await this.uploadLocation(res) : location, offset: last === 0 ? 0 : last + 1 };
  }

  /**
   * Proves push access without writing anything: opens an upload session and cancels it, as go-containerregistry's
   * CheckPushPermission does, so a build fails before its buildpacks run rather than at the very end.
   */
  async checkPushAccess(): Promise<void> {
    const location = await this.startUpload(pushScope(this.repository));
    const res = await this.client.request({ method: 'DELETE', path: location }, pushScope(this.repository));
    res.body.resume();
  }

  private async startUpload(scope: string): Promise<URL> {
    // A POST with ?digest= and a body would be one request, but Debian's registry accepts it and drops the body,
    // so every upload is POST, then PUT (or PATCH…PUT).
    const res = await this.client.request({ method: 'POST', path: this.path('blobs/uploads/'), headers: { 'Content-Length': '0' } }, scope);
    res.body.resume();
    if (res.status !== 202) throw await this.client.failure(res, `starting an upload to ${this.description}`);
    return this.uploadLocation(res);
  }

  private async uploadLocation(res: HttpResponse): Promise<URL> {
    const loc = header(res, 'location');
    if (!loc) throw new StrataError(`registry ${this.client.registry}: upload response has no Location header`);
    return new URL(loc, await this.client.base());
  }

  /**
   * Closes an upload with the digest. Not retried in place: a PUT that broke may have appended part of its body,
   * so the caller starts a new session. After a resumed chunked upload a digest mismatch is retried the same way,
   * because a broken PATCH can land after the offset was read.
   */
  private async finishUpload(location: URL, desc: Descriptor, scope: string, body: Buffer | (() => Promise<Readable>), length: number, resumed: boolean): Promise<void> {
    const url = new URL(location);
    url.searchParams.set('digest', desc.digest);
    const res = await this.client.request(
      { method: 'PUT', path: url, headers: { 'Content-Type': 'application/octet-stream', 'Content-Length': String(length) }, body, retry: false },
      scope,
    );
    res.body.resume();
    if (res.status === 201) return;
    const e = await this.client.failure(res, `uploading blob ${desc.digest}`);
    if (resumed && res.status === 400) throw new StrataError(e.message, 1, { transient: true });
    throw e;
  }

  async putManifest(bytes: Buffer, mediaType: string, tag?: string): Promise<Digest> {
    const digest = sha256(bytes);
    const res = await this.client.request(
      { method: 'PUT', path: this.path(`manifests/${tag ?? digest}`), headers: { 'Content-Type': mediaType, 'Content-Length': String(bytes.length) }, body: bytes },
      pushScope(this.repository),
    );
    res.body.resume();
    if (res.status !== 201) throw await this.client.failure(res, `writing manifest ${this.description}:${tag ?? digest}`);
    const returned = header(res, 'docker-content-digest');
    if (returned && returned !== digest) throw new StrataError(`registry ${this.client.registry} stored manifest as ${returned}, expected ${digest}`);
    return digest;
  }

  async listTags(): Promise<string[]> {
    const tags: string[] = [];
    let next: string | undefined = this.path('tags/list?n=1000');
    while (next) {
      const res: HttpResponse = await this.client.request({ method: 'GET', path: next }, pullScope(this.repository));
      if (res.status === 404) {
        res.body.resume();
        throw new NotFoundError(`${this.description}: repository not found`);
      }
      if (res.status !== 200) throw await this.client.failure(res, `listing tags of ${this.description}`);
      const body = JSON.parse((await readBody(res)).toString('utf8')) as { tags?: string[] | null };
      tags.push(...(body.tags ?? []));
      const link = header(res, 'link');
      next = link?.match(/<([^>]+)>\s*;\s*rel="?next"?/)?.[1];
    }
    return tags;
  }
}
