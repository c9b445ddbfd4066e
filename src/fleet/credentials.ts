import { createHash } from 'node:crypto';
import { StrataError } from '../oci/errors.js';
import { authKeyHost, dockerConfigLogins, type Credential } from '../oci/registry/credentials.js';
import type { RegistryLogins } from '../oci/target.js';
import { canonical } from './canonical.js';
import type { AccountRef, SecretSpec } from './resources.js';

/**
 * What a ServiceAccount's Secrets let the fleet do, read as kpack reads them (docs/secrets.md): basic-auth Secrets
 * annotated `kpack.io/docker: REGISTRY` or `kpack.io/git: URL`, ssh-auth Secrets annotated `kpack.io/git`,
 * `kubernetes.io/dockerconfigjson` and `dockercfg` Secrets for every registry they list, `kpack.io/blob: HOST` Secrets
 * for blob downloads, and a cosign key pair (`cosign.key`) for signing. These are used only by strata's own code
 * (git, registry and blob clients, the exporter, the signer), never handed to a process that runs buildpack code.
 */

export interface GitLogin {
  /** What the `kpack.io/git` annotation names: `https://host[:port][/path]` or, for ssh, `git@host` / `ssh://user@host:port`. */
  prefix: string;
  secret: string;
  auth: { kind: 'basic'; username: string; password: string } | { kind: 'ssh'; privateKey: string; knownHosts?: string };
}

export interface BlobLogin {
  host: string;
  secret: string;
  /** The Authorization header value. */
  header: string;
}

export interface SigningKey {
  secret: string;
  privateKey: string;
  password?: string;
  publicKey?: string;
  /** `kpack.io/cosign.docker-media-types: "1"`: the signature manifest in Docker's media types. */
  dockerMediaTypes: boolean;
  /** `kpack.io/cosign.repository`: where signatures go, instead of beside the image. */
  repository?: string;
}

export interface Credentials {
  /** The declared ServiceAccount these come from (`namespace/name`); absent, there is none and the machine's own apply. */
  account?: string;
  registries: { registry: string; secret: string; credential: Credential }[];
  git: GitLogin[];
  blobs: BlobLogin[];
  signing: SigningKey[];
  /** Every value of every Secret read: what build logs are redacted of. */
  values: string[];
}

export const NO_CREDENTIALS: Credentials = { registries: [], git: [], blobs: [], signing: [], values: [] };

export interface SecretWithValues {
  namespace: string;
  name: string;
  spec: SecretSpec;
  values: Record<string, string>;
}

/** The credentials a set of Secrets gives, in the order given (the first Secret for a registry or URL wins). */
export function credentialsFrom(secrets: SecretWithValues[]): Credentials {
  const out: Credentials = { registries: [], git: [], blobs: [], signing: [], values: [] };
  for (const s of secrets) {
    const v = s.values;
    const a = s.spec.annotations;
    out.values.push(...Object.values(v));
    const where = `Secret ${s.namespace}/${s.name}`;
    if (s.spec.type === 'kubernetes.io/basic-auth') {
      const basic = { kind: 'basic' as const, username: v.username ?? '', password: v.password ?? '' };
      if (a['kpack.io/docker']) out.registries.push({ registry: authKeyHost(a['kpack.io/docker']), secret: where, credential: basic });
      if (a['kpack.io/git']) out.git.push({ prefix: a['kpack.io/git'], secret: where, auth: basic });
    } else if (s.spec.type === 'kubernetes.io/ssh-auth') {
      if (a['kpack.io/git']) out.git.push({ prefix: a['kpack.io/git'], secret: where, auth: { kind: 'ssh', privateKey: v['ssh-privatekey'] ?? '', ...(v.known_hosts ? { knownHosts: v.known_hosts } : {}) } });
    } else if (s.spec.type === 'kubernetes.io/dockerconfigjson' || s.spec.type === 'kubernetes.io/dockercfg') {
      const text = v['.dockerconfigjson'] ?? v['.dockercfg'] ?? '{}';
      for (const l of dockerConfigLogins(text, s.spec.type === 'kubernetes.io/dockercfg', where)) out.registries.push({ ...l, secret: where });
    } else if (a['kpack.io/blob']) {
      const header = v.authorization ?? (v.bearer ? `Bearer ${v.bearer}` : v.username !== undefined ? `Basic ${Buffer.from(`${v.username}:${v.password ?? ''}`).toString('base64')}` : undefined);
      if (!header) throw new StrataError(`${where}: a kpack.io/blob Secret needs username and password, bearer, or authorization`);
      out.blobs.push({ host: a['kpack.io/blob'].replace(/^[a-z]+:\/\//, '').replace(/\/.*$/, ''), secret: where, header });
    }
    if (v['cosign.key']) {
      out.signing.push({
        secret: where,
        privateKey: v['cosign.key'],
        ...(v['cosign.password'] !== undefined ? { password: v['cosign.password'] } : {}),
        ...(v['cosign.pub'] ? { publicKey: v['cosign.pub'] } : {}),
        dockerMediaTypes: a['kpack.io/cosign.docker-media-types'] === '1',
        ...(a['kpack.io/cosign.repository'] ? { repository: a['kpack.io/cosign.repository'] } : {}),
      });
    }
  }
  return out;
}

/** The registry logins as the image clients take them; a registry no Secret names is reached anonymously. */
export function registryLogins(c: Credentials): RegistryLogins {
  const id = createHash('sha256').update(canonical(c.registries)).digest('hex').slice(0, 16);
  return { id, find: (registry) => c.registries.find((r) => r.registry === registry)?.credential };
}

interface GitPlace {
  ssh: boolean;
  host: string;
  port?: string;
  user?: string;
  path: string;
}

/** `https://host:port/path`, `ssh://user@host:port/path`, `user@host:path` (scp form) or `git@host`, as parts. */
export function gitPlace(url: string): GitPlace | undefined {
  const m = /^(https?|ssh|git):\/\/(?:([^@/]+)@)?([^/:]+)(?::(\d+))?(\/.*)?$/.exec(url);
  if (m) return { ssh: m[1] === 'ssh', host: m[3]!.toLowerCase(), ...(m[4] ? { port: m[4] } : {}), ...(m[2] ? { user: m[2] } : {}), path: m[5] ?? '' };
  const scp = /^([^@/]+)@([^:/]+)(?::(.*))?$/.exec(url);
  if (scp) return { ssh: true, host: scp[2]!.toLowerCase(), user: scp[1]!, path: scp[3] ? `/${scp[3].replace(/^\//, '')}` : '' };
  return undefined;
}

/** The login for a git URL: the same transport (https or ssh), host and port, and a path under the annotation's. */
export function gitLoginFor(url: string, logins: GitLogin[]): GitLogin | undefined {
  const want = gitPlace(url);
  if (!want) return undefined;
  return logins.find((l) => {
    const p = gitPlace(l.prefix);
    if (!p || p.ssh !== want.ssh || p.host !== want.host) return false;
    if (p.port && p.port !== want.port) return false;
    if (p.user && want.user && p.user !== want.user) return false;
    if ((l.auth.kind === 'ssh') !== want.ssh) return false;
    return want.path.startsWith(p.path.replace(/\/$/, ''));
  });
}

export function blobLoginFor(url: string, logins: BlobLogin[]): BlobLogin | undefined {
  const host = new URL(url).host.toLowerCase();
  return logins.find((l) => l.host.toLowerCase() === host);
}

/**
 * A service account's credentials: its `secrets` and `imagePullSecrets` (plus any extra pull secrets named by the
 * resource itself), each opened. `default` with no declaration has none, as a fresh Kubernetes namespace's has none.
 */
export async function accountCredentials(
  ref: AccountRef | undefined,
  read: {
    account(namespace: string, name: string): Promise<{ secrets: string[]; imagePullSecrets: string[] } | undefined>;
    secret(namespace: string, name: string): Promise<{ spec: SecretSpec; values: Record<string, string> } | undefined>;
  },
  extraPullSecrets: string[] = [],
): Promise<Credentials> {
  if (!ref) return NO_CREDENTIALS;
  const sa = await read.account(ref.namespace, ref.name);
  if (!sa && ref.name !== 'default') throw new StrataError(`ServiceAccount ${ref.namespace}/${ref.name} is not declared`);
  if (!sa && !extraPullSecrets.length) return NO_CREDENTIALS;
  const names = [...new Set([...(sa?.secrets ?? []), ...(sa?.imagePullSecrets ?? []), ...extraPullSecrets])];
  const secrets: SecretWithValues[] = [];
  for (const name of names) {
    const s = await read.secret(ref.namespace, name);
    if (!s) throw new StrataError(`Secret ${ref.namespace}/${name} (named by ServiceAccount ${ref.namespace}/${ref.name}) is not declared`);
    secrets.push({ namespace: ref.namespace, name, ...s });
  }
  return { ...credentialsFrom(secrets), account: `${ref.namespace}/${ref.name}` };
}
