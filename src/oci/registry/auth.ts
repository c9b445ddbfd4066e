import { StrataError } from '../errors.js';
import type { Authorizer } from './client.js';
import type { Credential } from './credentials.js';
import { readBody, send, type CaSource } from './http.js';

export interface Challenge {
  scheme: string;
  params: Record<string, string>;
}

/** Parses `Bearer realm="…",service="…",scope="…"` (quoted values may hold commas). */
export function parseChallenge(header: string): Challenge | undefined {
  const m = header.trim().match(/^(\S+)\s*(.*)$/);
  if (!m) return undefined;
  const params: Record<string, string> = {};
  const re = /([A-Za-z_][\w-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))/g;
  for (let p = re.exec(m[2] ?? ''); p; p = re.exec(m[2] ?? '')) params[p[1]!.toLowerCase()] = p[2] !== undefined ? p[2].replace(/\\(.)/g, '$1') : (p[3] ?? '');
  return { scheme: m[1]!.toLowerCase(), params };
}

function basicHeader(username: string, password: string): string {
  return `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}`;
}

/**
 * Answers registry challenges with the credential found for the registry: Basic directly, Bearer through the token
 * service named in the challenge. Tokens are cached per scope (repository and actions) until they expire.
 */
export class CredentialAuthorizer implements Authorizer {
  private scheme: 'basic' | 'bearer' | undefined;
  private bearer?: { realm: string; service?: string };
  private readonly tokens = new Map<string, { token: string; expires: number }>();
  private credential?: Promise<Credential | undefined>;

  constructor(
    private readonly registry: string,
    private readonly lookup: () => Promise<Credential | undefined>,
    private readonly tls: { rejectUnauthorized: boolean; ca?: CaSource } = { rejectUnauthorized: true },
  ) {}

  private cred(): Promise<Credential | undefined> {
    this.credential ??= this.lookup();
    return this.credential;
  }

  async authorization(scope: string): Promise<string | undefined> {
    const c = await this.cred();
    if (c?.kind === 'header') return c.value;
    if (this.scheme === 'basic' && c?.kind === 'basic') return basicHeader(c.username, c.password);
    if (this.scheme === 'bearer') {
      const t = this.tokens.get(scope);
      if (t && t.expires > Date.now()) return `Bearer ${t.token}`;
      if (this.bearer) return `Bearer ${await this.fetchToken(scope)}`;
    }
    return undefined;
  }

  async challenge(header: string, scope: string, sent: string | undefined): Promise<boolean> {
    const ch = parseChallenge(header);
    const c = await this.cred();
    if (!ch) return false;
    if (ch.scheme === 'basic') {
      if (c?.kind !== 'basic') return false;
      this.scheme = 'basic';
      // Retry only if the refused request did not already carry these credentials.
      return sent !== basicHeader(c.username, c.password);
    }
    if (ch.scheme === 'bearer' && ch.params.realm) {
      this.scheme = 'bearer';
      this.bearer = { realm: ch.params.realm, ...(ch.params.service ? { service: ch.params.service } : {}) };
      const cached = this.tokens.get(scope);
      // Another request may have fetched a token since this one was sent.
      if (cached && cached.expires > Date.now() && sent !== `Bearer ${cached.token}`) return true;
      // The token this request carried was refused (expired or short of scope): fetch a new one and retry once.
      this.tokens.delete(scope);
      await this.fetchToken(scope);
      return true;
    }
    return false;
  }

  private async fetchToken(scope: string): Promise<string> {
    const b = this.bearer!;
    const c = await this.cred();
    const url = new URL(b.realm);
    if (b.service) url.searchParams.set('service', b.service);
    for (const s of scope.split(' ').filter(Boolean)) url.searchParams.append('scope', s);
    let res;
    try {
      if (c?.kind === 'identity-token') {
        const form = new URLSearchParams({ grant_type: 'refresh_token', refresh_token: c.token, service: b.service ?? '', scope, client_id: 'strata' });
        res = await send({ method: 'POST', url: new URL(b.realm), headers: { 'Content-Type': 'application/x-www-form-urlencoded' }, body: Buffer.from(form.toString()), tls: this.tls });
      } else {
        const headers: Record<string, string> = {};
        if (c?.kind === 'basic') headers.Authorization = basicHeader(c.username, c.password);
        res = await send({ method: 'GET', url, headers, tls: this.tls });
      }
    } catch (err) {
      throw new StrataError(`cannot reach the token service ${url.host} for registry ${this.registry} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
    }
    if (res.status === 401 || res.status === 403) {
      res.body.resume();
      throw new StrataError(`registry ${this.registry}: the token service refused the credentials (HTTP ${res.status}); run \`strata login ${this.registry}\``);
    }
    if (res.status !== 200) {
      res.body.resume();
      throw new StrataError(`registry ${this.registry}: token service ${url.host} answered HTTP ${res.status}`);
    }
    const body = JSON.parse((await readBody(res, 1 << 20)).toString('utf8')) as { token?: string; access_token?: string; expires_in?: number };
    const token = body.token ?? body.access_token;
    if (!token) throw new StrataError(`registry ${this.registry}: token service ${url.host} returned no token`);
    // Renew a little early so a token never expires mid-request.
    const lifetime = Math.max(10, (body.expires_in ?? 60) - 10) * 1000;
    this.tokens.set(scope, { token, expires: Date.now() + lifetime });
    return token;
  }
}
