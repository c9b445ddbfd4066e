import { StrataError } from '../errors.js';
import { writeFileAtomic } from '../fsutil.js';
import { CredentialAuthorizer } from './auth.js';
import { RegistryClient } from './client.js';
import { authKeyHost, callHelper, configKeyFor, readDockerConfig, writableDockerConfigPath, type DockerConfigFile } from './credentials.js';
import { registryCAs } from './tls.js';

export interface LoginOptions {
  insecure?: boolean;
  env?: NodeJS.ProcessEnv;
}

/**
 * Checks a user and password against the registry (GET /v2/ through its challenge, Basic or a token service) and
 * stores them where Docker would: the registry's credential helper, else the `credsStore`, else base64 in `auths`.
 * Returns where they went.
 */
export async function login(registry: string, username: string, password: string, options: LoginOptions = {}): Promise<string> {
  const env = options.env ?? process.env;
  const ca = registryCAs(registry, env);
  const authorizer = new CredentialAuthorizer(registry, async () => ({ kind: 'basic', username, password }), { rejectUnauthorized: !options.insecure, ...(ca ? { ca } : {}) });
  const client = new RegistryClient(registry, { insecure: options.insecure ?? false, authorizer, ...(ca ? { ca } : {}) });
  let status: number;
  try {
    const res = await client.request({ method: 'GET', path: '/v2/' }, '');
    res.body.resume();
    status = res.status;
  } catch (err) {
    if (err instanceof StrataError && /refused the credentials|authentication required/.test(err.message)) status = 401;
    else throw err;
  }
  if (status === 401 || status === 403) throw new StrataError(`login to ${registry} failed: wrong username or password for "${username}"`);
  if (status !== 200) throw new StrataError(`login to ${registry} failed: GET /v2/ answered HTTP ${status}; is ${registry} a registry?`);
  return storeLogin(registry, username, password, env);
}

function helperFor(config: DockerConfigFile, registry: string): string | undefined {
  return config.credHelpers?.[registry] ?? config.credHelpers?.[configKeyFor(registry)] ?? config.credsStore;
}

async function writeConfig(path: string, config: DockerConfigFile): Promise<void> {
  // The file holds secrets: owner-only, like Docker writes it.
  await writeFileAtomic(path, `${JSON.stringify(config, null, '\t')}\n`, 0o600);
}

export async function storeLogin(registry: string, username: string, password: string, env: NodeJS.ProcessEnv = process.env): Promise<string> {
  const path = writableDockerConfigPath(env);
  const config = await readDockerConfig(path);
  const helper = helperFor(config, registry);
  if (helper) {
    const input = JSON.stringify({ ServerURL: configKeyFor(registry), Username: username, Secret: password });
    const { ok, stdout } = await callHelper(helper, 'store', input, registry, path);
    if (!ok) throw new StrataError(`credential helper docker-credential-${helper} could not store the login for ${registry}: ${stdout.trim().split('\n')[0] || 'non-zero exit'}`);
    return `docker-credential-${helper}`;
  }
  const auths = Object.fromEntries(Object.entries(config.auths ?? {}).filter(([k]) => authKeyHost(k) !== registry));
  auths[configKeyFor(registry)] = { auth: Buffer.from(`${username}:${password}`).toString('base64') };
  await writeConfig(path, { ...config, auths });
  return path;
}

/** Removes a registry's login from the helper or from `auths`; an error when there was none. */
export async function logout(registry: string, env: NodeJS.ProcessEnv = process.env): Promise<string> {
  const path = writableDockerConfigPath(env);
  const config = await readDockerConfig(path);
  const helper = helperFor(config, registry);
  let removed = false;
  if (helper) {
    const { ok } = await callHelper(helper, 'erase', configKeyFor(registry), registry, path);
    removed = ok;
  }
  const auths = config.auths ?? {};
  const keep = Object.fromEntries(Object.entries(auths).filter(([k]) => authKeyHost(k) !== registry));
  if (Object.keys(keep).length !== Object.keys(auths).length) {
    await writeConfig(path, { ...config, auths: keep });
    removed = true;
  }
  if (!removed) throw new StrataError(`not logged in to ${registry} (nothing for it in ${path})`);
  return helper ? `docker-credential-${helper}` : path;
}
