import { join } from 'node:path';
import { StrataError } from './errors.js';
import { OciLayout } from './layout.js';
import { Reference } from './reference.js';
import { RegistryClient, type RegistryOptions } from './registry/client.js';
import type { ImageStore } from './store.js';
import { CredentialAuthorizer } from './registry/auth.js';
import { lookupCredential, type Credential } from './registry/credentials.js';
import { registryCAs } from './registry/tls.js';

/**
 * Where an image lives, as a user names it: `oci:<dir>[:<tag>|@<digest>]`, `docker-daemon:<name>[:<tag>]` (the
 * engine DOCKER_HOST names, skopeo's spelling) or a registry reference.
 */
export type ImageLocation =
  | { kind: 'layout'; dir: string; tag?: string; digest?: string; text: string }
  | { kind: 'engine'; name: string; text: string }
  | { kind: 'registry'; ref: Reference; text: string };

export function parseTarget(text: string): ImageLocation {
  if (text.startsWith('oci:')) {
    let rest = text.slice(4);
    if (!rest) throw new StrataError(`invalid image "${text}": oci: needs a directory, as oci:<dir>[:<tag>]`);
    let digest: string | undefined;
    const at = rest.lastIndexOf('@sha256:');
    if (at >= 0) {
      digest = rest.slice(at + 1);
      rest = rest.slice(0, at);
    }
    let tag: string | undefined;
    const colon = rest.lastIndexOf(':');
    if (colon > 0 && !rest.slice(colon + 1).includes('/')) {
      tag = rest.slice(colon + 1);
      rest = rest.slice(0, colon);
      if (!/^[\w][\w.-]{0,127}$/.test(tag)) throw new StrataError(`invalid image "${text}": "${tag}" is not a valid tag`);
    }
    return { kind: 'layout', dir: rest, text, ...(tag ? { tag } : {}), ...(digest ? { digest } : {}) };
  }
  if (text.startsWith('docker-daemon:')) {
    const ref = Reference.parse(text.slice('docker-daemon:'.length));
    if (ref.digest && !ref.tag) throw new StrataError(`invalid image "${text}": an engine image is named by name:tag, not by digest`);
    return { kind: 'engine', name: (ref.tag ? ref : ref.withTag('latest')).familiar(), text };
  }
  return { kind: 'registry', ref: Reference.parse(text), text };
}

export interface StoreOptions {
  insecureRegistries?: string[];
  /**
   * The Platform API's layout mode: registry references name OCI layouts under this dir instead,
   * `<dir>/<registry>/<repository>/<tag>` (or `…/sha256/<hex>` for a digest).
   */
  layoutDir?: string;
  registryOptions?: (registry: string) => RegistryOptions;
  /** Registry → mirror (`host[/path]`; `*` for any registry) that image reads try first. Writes never use it. */
  registryMirrors?: Record<string, string>;
  /**
   * Logins to use instead of the machine's own (Docker's config, CNB_REGISTRY_AUTH): a fleet's service account. A
   * registry they do not name is reached anonymously. `id` tells one set from another (clients are kept per set).
   */
  logins?: RegistryLogins;
}

export interface RegistryLogins {
  id: string;
  find(registry: string): Credential | undefined;
}

/** The reference to read instead through a registry mirror, if one is set for its registry. */
export function mirrored(ref: Reference, mirrors: Record<string, string> | undefined): Reference | undefined {
  const mirror = mirrors?.[ref.registry] ?? (ref.registry === 'docker.io' ? mirrors?.['index.docker.io'] : undefined) ?? mirrors?.['*'];
  if (!mirror) return undefined;
  return Reference.parse(`${mirror.replace(/\/+$/, '')}/${ref.repository}${ref.digest ? `@${ref.digest}` : `:${ref.tag ?? 'latest'}`}`);
}

const clients = new Map<string, RegistryClient>();

export function registryClient(registry: string, options: StoreOptions = {}): RegistryClient {
  const insecure = options.insecureRegistries?.includes(registry) ?? false;
  const logins = options.logins;
  const key = `${registry}|${insecure}|${logins?.id ?? ''}`;
  let client = clients.get(key);
  if (!client) {
    let cas: string[] | undefined | null = null;
    // Read (certificate files, the system roots) the first time an https connection to this registry is made.
    const ca = () => (cas === null ? (cas = registryCAs(registry)) : cas);
    const lookup = logins ? async () => logins.find(registry) : () => lookupCredential(registry);
    const authorizer = new CredentialAuthorizer(registry, lookup, { rejectUnauthorized: !insecure, ca });
    client = new RegistryClient(registry, { insecure, authorizer, ca, ...(options.registryOptions?.(registry) ?? {}) });
    clients.set(key, client);
  }
  return client;
}

/** Where layout mode keeps a registry reference: `<dir>/<registry>/<repository>/<tag>` or `…/sha256/<hex>`. */
export function layoutTarget(layoutDir: string, ref: Reference): ImageLocation {
  const leaf = ref.tag ? [ref.tag] : ['sha256', (ref.digest ?? '').replace(/^sha256:/, '')];
  // Docker Hub under the name the reference lifecycle (go-containerregistry) gives it, so layouts made for one are
  // found by the other.
  const registry = ref.registry === 'docker.io' ? 'index.docker.io' : ref.registry;
  const dir = join(layoutDir, registry, ...ref.repository.split('/'), ...leaf);
  return { kind: 'layout', dir, tag: ref.tag ?? 'latest', text: `oci:${dir}` };
}

/** Opens the store behind a target; `id` is what to read (tag or digest), `tag` is what a write names. */
export async function openTarget(target: ImageLocation, options: StoreOptions & { create?: boolean } = {}): Promise<{ store: ImageStore; id: string | undefined; tag: string | undefined }> {
  if (target.kind === 'registry' && options.layoutDir) return openTarget(layoutTarget(options.layoutDir, target.ref), { ...options, layoutDir: undefined });
  if (target.kind === 'engine') throw new StrataError(`${target.text}: an engine image cannot be used here; copy it to oci:<dir> or a registry first`);
  if (target.kind === 'layout') {
    const layout = await OciLayout.open(target.dir, { create: options.create ?? false });
    return { store: layout, id: target.digest ?? target.tag, tag: target.tag ?? 'latest' };
  }
  const repo = registryClient(target.ref.registry, options).repository(target.ref.repository);
  return { store: repo, id: target.ref.identifier, tag: target.ref.tag };
}
