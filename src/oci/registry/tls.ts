import { readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';

const PEM_BLOCK = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

function pemsIn(file: string): string[] {
  try {
    return readFileSync(file, 'utf8').match(PEM_BLOCK) ?? [];
  } catch {
    return [];
  }
}

function pemsInDir(dir: string): string[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  return names.filter((n) => /\.(crt|pem|cert)$/.test(n)).sort().flatMap((n) => pemsIn(join(dir, n)));
}

/**
 * The CA certificates to trust for a registry, or undefined for Node's defaults. Passing `ca` to TLS replaces the
 * default roots, so any extra certificate is added to Node's bundled roots rather than given alone. Extra CAs come
 * from the variables OpenSSL and Node users already set (SSL_CERT_FILE, SSL_CERT_DIR, NODE_EXTRA_CA_CERTS) and from
 * the per-registry directories Docker and Podman read (`certs.d/<host:port>/*.crt`).
 */
export function registryCAs(registry: string, env: NodeJS.ProcessEnv = process.env): string[] | undefined {
  const extra: string[] = [];
  if (env.SSL_CERT_FILE) extra.push(...pemsIn(env.SSL_CERT_FILE));
  for (const dir of (env.SSL_CERT_DIR ?? '').split(':').filter(Boolean)) extra.push(...pemsInDir(dir));
  if (env.NODE_EXTRA_CA_CERTS) extra.push(...pemsIn(env.NODE_EXTRA_CA_CERTS));
  for (const dir of ['/etc/docker/certs.d', '/etc/containers/certs.d']) extra.push(...pemsInDir(join(dir, registry)));
  // node:tls loaded here, not at import: most commands talk plain HTTP or never ask.
  return extra.length ? [...(createRequire(import.meta.url)('node:tls') as typeof import('node:tls')).rootCertificates, ...extra] : undefined;
}
