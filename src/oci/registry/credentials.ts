import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { StrataError } from '../errors.js';
import { userHome } from '../userhome.js';

/** What a registry login can be: a user and password, an identity (refresh) token, or a ready header value. */
export type Credential =
  | { kind: 'basic'; username: string; password: string }
  | { kind: 'identity-token'; token: string }
  | { kind: 'header'; value: string };

export interface DockerConfigFile {
  auths?: Record<string, { auth?: string; username?: string; password?: string; identitytoken?: string; [k: string]: unknown }>;
  credHelpers?: Record<string, string>;
  credsStore?: string;
  [key: string]: unknown;
}

const DOCKER_HUB_KEY = 'https://index.docker.io/v1/';

/**
 * `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`; undefined when there is no home at all (platforms run
 * lifecycles as arbitrary uids with no passwd entry and no HOME: they then have no stored logins, which is no error).
 */
export function dockerConfigPath(env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (env.DOCKER_CONFIG) return join(env.DOCKER_CONFIG, 'config.json');
  const home = userHome(env);
  return home ? join(home, '.docker', 'config.json') : undefined;
}

/** The config file a login is written to: one must exist. */
export function writableDockerConfigPath(env: NodeJS.ProcessEnv = process.env): string {
  const path = dockerConfigPath(env);
  if (!path) throw new StrataError('no home directory to keep logins in (no HOME, and this user has no passwd entry); set DOCKER_CONFIG to a directory');
  return path;
}

export async function readDockerConfig(path: string): Promise<DockerConfigFile> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch {
    return {};
  }
  try {
    return JSON.parse(text) as DockerConfigFile;
  } catch {
    throw new StrataError(`${path}: not valid JSON; fix or remove it`);
  }
}

/** `auths` keys may carry a scheme and path (`https://index.docker.io/v1/`); compare hosts. */
export function authKeyHost(key: string): string {
  if (key === DOCKER_HUB_KEY) return 'docker.io';
  return key.replace(/^[a-z]+:\/\//, '').replace(/\/.*$/, '');
}

export function configKeyFor(registry: string): string {
  return registry === 'docker.io' ? DOCKER_HUB_KEY : registry;
}

/**
 * Runs `docker-credential-<name> <action>` with `input` on stdin, per Docker's credential-helper protocol.
 * Resolves with stdout; a non-zero exit rejects with the helper's first line of output in the error.
 */
export function callHelper(name: string, action: 'get' | 'store' | 'erase', input: string, registry: string, configPath: string): Promise<{ ok: boolean; stdout: string }> {
  const program = `docker-credential-${name}`;
  return new Promise((resolve, reject) => {
    const child = execFile(program, [action], { encoding: 'utf8', timeout: 30_000 }, (err, stdout) => {
      if (err && (err as NodeJS.ErrnoException).code === 'ENOENT') {
        reject(new StrataError(`credential helper ${program} (named in ${configPath} for ${registry}) is not installed or not on PATH`));
        return;
      }
      resolve({ ok: !err, stdout });
    });
    // A helper may exit without reading its input; that is not our failure.
    child.stdin?.on('error', () => undefined);
    child.stdin?.end(input);
  });
}

async function runHelper(name: string, registry: string, configPath: string): Promise<Credential | undefined> {
  const program = `docker-credential-${name}`;
  const { ok, stdout } = await callHelper(name, 'get', configKeyFor(registry), registry, configPath);
  if (!ok) {
    // Helpers answer "credentials not found" with a non-zero exit: that means anonymous, not failure.
    if (/not found/i.test(stdout)) return undefined;
    throw new StrataError(`credential helper ${program} failed for ${registry}: ${stdout.trim().split('\n')[0] || 'non-zero exit'}`);
  }
  try {
    const out = JSON.parse(stdout) as { Username?: string; Secret?: string };
    if (!out.Secret) return undefined;
    if (out.Username === '<token>') return { kind: 'identity-token', token: out.Secret };
    return { kind: 'basic', username: out.Username ?? '', password: out.Secret };
  } catch {
    throw new StrataError(`credential helper ${program} gave output that is not JSON for ${registry}`);
  }
}

/**
 * Finds credentials for a registry the way the Docker CLI does: `CNB_REGISTRY_AUTH` first (the Platform API's
 * way), then config.json's `credHelpers` for the host, its `credsStore`, and its `auths` entries.
 */
export async function lookupCredential(registry: string, env: NodeJS.ProcessEnv = process.env): Promise<Credential | undefined> {
  const cnb = env.CNB_REGISTRY_AUTH;
  if (cnb) {
    let parsed: Record<string, string>;
    try {
      parsed = JSON.parse(cnb) as Record<string, string>;
    } catch {
      throw new StrataError('CNB_REGISTRY_AUTH is not valid JSON: expected {"<registry>": "<Authorization header value>"}');
    }
    const value = parsed[registry] ?? parsed[configKeyFor(registry)];
    if (value) return { kind: 'header', value };
  }
  const path = dockerConfigPath(env);
  if (!path) return undefined;
  const config = await readDockerConfig(path);
  const helper = config.credHelpers?.[registry] ?? config.credHelpers?.[configKeyFor(registry)];
  if (helper) return runHelper(helper, registry, path);
  if (config.credsStore) {
    const fromStore = await runHelper(config.credsStore, registry, path);
    if (fromStore) return fromStore;
  }
  for (const [key, entry] of Object.entries(config.auths ?? {})) {
    if (authKeyHost(key) !== registry) continue;
    const c = authEntryCredential(entry, `${path}: the auth entry for ${key}`);
    if (c) return c;
  }
  return undefined;
}

/** One `auths` entry of a Docker config: an identity token, base64 `user:password`, or a username and password. */
export function authEntryCredential(e: { auth?: string; username?: string; password?: string; identitytoken?: string }, where: string): Credential | undefined {
  if (e.identitytoken) return { kind: 'identity-token', token: e.identitytoken };
  if (e.auth) {
    const decoded = Buffer.from(e.auth, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon < 0) throw new StrataError(`${where} is not base64 of "user:password"`);
    return { kind: 'basic', username: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
  }
  if (e.username !== undefined) return { kind: 'basic', username: e.username, password: e.password ?? '' };
  return undefined;
}

/**
 * The logins a Docker config's text gives, per registry: `{"auths": {...}}` (config.json, a dockerconfigjson
 * Secret) or, `legacy`, the bare map of a `.dockercfg`.
 */
export function dockerConfigLogins(text: string, legacy: boolean, where: string): { registry: string; credential: Credential }[] {
  let parsed: DockerConfigFile & Record<string, unknown>;
  try {
    parsed = JSON.parse(text) as DockerConfigFile & Record<string, unknown>;
  } catch {
    throw new StrataError(`${where}: not JSON (the contents of a Docker config file)`);
  }
  const auths = (legacy ? parsed : (parsed.auths ?? {})) as Record<string, { auth?: string; username?: string; password?: string; identitytoken?: string }>;
  const out: { registry: string; credential: Credential }[] = [];
  for (const [key, entry] of Object.entries(auths)) {
    const c = authEntryCredential(entry, `${where}: ${key}`);
    if (c) out.push({ registry: authKeyHost(key), credential: c });
  }
  return out;
}
