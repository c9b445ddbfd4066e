import http from 'node:http';
import { randomUUID, sign } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { runOk } from './proc.js';

export interface TokenServer {
  realm: string;
  service: string;
  issuer: string;
  certPath: string;
  /** Every token request as `<user> <scope…>` (user `-` when anonymous). */
  log: string[];
  /** How many of the next tokens to issue already expired (while claiming a normal lifetime), to test re-challenge. */
  issueExpired: number;
  stop(): Promise<void>;
}

/** A user's password and what they may do: repository-name prefix → allowed actions. */
export type Grants = Record<string, { password: string; access: Record<string, string[]> }>;

function b64url(data: Buffer | string): string {
  return Buffer.from(data).toString('base64url');
}

/**
 * A token service for Debian's docker-registry (`auth: token`): checks Basic credentials (or a refresh token equal to
 * `refresh-<user>`), grants the intersection of the requested scopes and the user's grants, and signs an RS256 JWT
 * whose header carries the self-signed certificate (`x5c`), which the registry checks against its rootcertbundle.
 */
export async function startTokenServer(dir: string, grants: Grants): Promise<TokenServer> {
  const keyPath = join(dir, 'token-key.pem');
  const certPath = join(dir, 'token-cert.pem');
  await runOk('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', keyPath, '-out', certPath, '-days', '2', '-subj', '/CN=strata-test-token-issuer']);
  const key = await readFile(keyPath, 'utf8');
  const certDer = (await readFile(certPath, 'utf8')).replace(/-----[^-]+-----|\s/g, '');
  const service = 'strata-test-registry';
  const issuer = 'strata-test-issuer';
  const state = { log: [] as string[], issueExpired: 0 };
  const lifetime = 300;

  const userFor = (req: http.IncomingMessage, form: URLSearchParams | undefined): string | undefined | null => {
    if (form?.get('grant_type') === 'refresh_token') {
      const user = form.get('refresh_token')?.replace(/^refresh-/, '');
      return user && grants[user] ? user : null;
    }
    const h = req.headers.authorization;
    if (!h) return undefined;
    const [user, password] = Buffer.from(h.replace(/^Basic /, ''), 'base64').toString('utf8').split(':');
    return user && grants[user]?.password === password ? user : null;
  };

  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const url = new URL(req.url ?? '/', 'http://x');
      const form = req.method === 'POST' ? new URLSearchParams(Buffer.concat(chunks).toString('utf8')) : undefined;
      const user = userFor(req, form);
      const scopes = form ? (form.get('scope') ?? '').split(' ').filter(Boolean) : url.searchParams.getAll('scope');
      state.log.push(`${user ?? '-'} ${scopes.join(' ')}`);
      if (user === null) {
        res.writeHead(401, { 'Content-Type': 'application/json' }).end('{"details":"bad credentials"}');
        return;
      }
      const access = scopes.flatMap((s) => {
        const [type, name, actions] = s.split(':');
        if (type !== 'repository' || !name || !actions) return [];
        const rule = Object.entries(user ? grants[user]!.access : {}).find(([prefix]) => name.startsWith(prefix));
        const allowed = actions.split(',').filter((a) => rule?.[1].includes(a));
        return allowed.length ? [{ type, name, actions: allowed }] : [];
      });
      const now = Math.floor(Date.now() / 1000);
      const header = { alg: 'RS256', typ: 'JWT', x5c: [certDer] };
      // Beyond the registry's 60 s leeway, so the token is refused although the client believes it fresh.
      const exp = state.issueExpired > 0 ? now - 600 : now + lifetime;
      if (state.issueExpired > 0) state.issueExpired--;
      const claims = { iss: issuer, sub: user ?? '', aud: service, exp, nbf: now - 900, iat: now - 900, jti: randomUUID(), access };
      const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
      const token = `${input}.${b64url(sign('RSA-SHA256', Buffer.from(input), key))}`;
      res.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify({ token, access_token: token, expires_in: lifetime }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : 0;
  return {
    realm: `http://127.0.0.1:${port}/token`,
    service,
    issuer,
    certPath,
    log: state.log,
    get issueExpired() {
      return state.issueExpired;
    },
    set issueExpired(v: number) {
      state.issueExpired = v;
    },
    stop: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
