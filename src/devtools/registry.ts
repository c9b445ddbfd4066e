// A local registry for the demo and the tests: Debian's docker-registry with a config of its own.

import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, createServer, type Socket } from 'node:net';

export interface TestRegistry {
  /** `127.0.0.1:<port>` */
  host: string;
  port: number;
  dataDir: string;
  logPath: string;
  /** The request lines the registry logged so far (method and URI per line). */
  requests(): Promise<string[]>;
  stop(): Promise<void>;
}

export interface RegistryAuth {
  /** Serve HTTPS with this certificate, on `address` (default 127.0.0.1). */
  tls?: { certificate: string; key: string; address: string };
  htpasswd?: string;
  token?: { realm: string; service: string; issuer: string; rootcertbundle: string };
  /** URLs the registry POSTs its push notifications to (`notifications.endpoints`), e.g. a fleet's webhook. */
  notify?: string[];
  /** A bearer token the notifications carry (a fleet's webhook token). */
  notifyToken?: string;
}

/** A free loopback TCP port (bound and released). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

function notifications(urls: string[], token?: string): string {
  if (!urls.length) return '';
  const headers = token ? `      headers:\n        Authorization: [Bearer ${token}]\n` : '';
  return `notifications:\n  endpoints:\n${urls.map((u, i) => `    - name: endpoint${i}\n      url: ${u}\n${headers}      timeout: 2s\n      threshold: 10\n      backoff: 200ms\n`).join('')}`;
}

/**
 * Starts Debian's docker-registry on a free loopback port with a config of its own, and waits until /v2/ answers.
 */
export async function startRegistry(auth: RegistryAuth = {}): Promise<TestRegistry> {
  const dir = { path: await mkdtemp(join(tmpdir(), 'strata-registry-')) };
  const cleanup = () => rm(dir.path, { recursive: true, force: true });
  const port = await freePort();
  const dataDir = join(dir.path, 'data');
  await mkdir(dataDir, { recursive: true });
  let authYaml = '';
  if (auth.htpasswd) {
    const file = join(dir.path, 'htpasswd');
    await writeFile(file, auth.htpasswd);
    authYaml = `auth:\n  htpasswd:\n    realm: basic-realm\n    path: ${file}\n`;
  } else if (auth.token) {
    const t = auth.token;
    authYaml = `auth:\n  token:\n    realm: ${t.realm}\n    service: ${t.service}\n    issuer: ${t.issuer}\n    rootcertbundle: ${t.rootcertbundle}\n`;
  }
  const config = `version: 0.1
log:
  level: info
  accesslog:
    disabled: false
storage:
  cache:
    blobdescriptor: inmemory
  filesystem:
    rootdirectory: ${dataDir}
  delete:
    enabled: true
http:
  addr: ${auth.tls?.address ?? '127.0.0.1'}:${port}
${auth.tls ? `  tls:\n    certificate: ${auth.tls.certificate}\n    key: ${auth.tls.key}\n` : ''}${authYaml}${notifications(auth.notify ?? [], auth.notifyToken)}`;
  const configPath = join(dir.path, 'config.yml');
  await writeFile(configPath, config);
  const logPath = join(dir.path, 'registry.log');
  // The registry writes straight into its log file: a pipe through this process would stall the registry (and every
  // request to it) whenever this process's event loop is busy.
  const logFd = openSync(logPath, 'a');
  const child: ChildProcess = spawn('docker-registry', ['serve', configPath], { stdio: ['ignore', logFd, logFd] });
  closeSync(logFd);
  const host = `${auth.tls?.address ?? '127.0.0.1'}:${port}`;
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`docker-registry exited early: ${await readFile(logPath, 'utf8').catch(() => '')}`);
    try {
      if (auth.tls) {
        await new Promise<void>((resolve, reject) => connect(port, auth.tls!.address).once('connect', function (this: Socket) { this.destroy(); resolve(); }).once('error', reject));
        break;
      }
      const res = await fetch(`http://${host}/v2/`);
      if (res.status === 200 || res.status === 401) break;
    } catch {
      // not up yet
    }
    if (Date.now() > deadline) throw new Error('docker-registry did not start within 10s');
    await new Promise((r) => setTimeout(r, 25));
  }
  return {
    host,
    port,
    dataDir,
    logPath,
    async requests() {
      const text = await readFile(logPath, 'utf8');
      return text
        .split('\n')
        .map((l) => l.match(/"(GET|HEAD|POST|PUT|PATCH|DELETE) ([^ ]+) HTTP/))
        .filter((m): m is RegExpMatchArray => m !== null)
        .map((m) => `${m[1]} ${m[2]}`);
    },
    async stop() {
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await exited;
      }
      await cleanup();
    },
  };
}

