import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import http from 'node:http';
import { join } from 'node:path';
import { freePort, runOk } from './proc.js';

/**
 * Private git servers for the fleet's credential tests: smart HTTP through git's own `git http-backend` (a CGI program)
 * behind a small server that asks for basic auth, and ssh through a real `sshd` on a private port that takes one key.
 */

export interface GitHttpServer {
  /** `http://127.0.0.1:<port>/<repo>` */
  url(repo: string): string;
  /** Requests that came without (or with wrong) credentials. */
  refused: number;
  stop(): Promise<void>;
}

/** Serves every bare repo under `root` to `user`:`password` only. */
export async function startGitHttp(root: string, user: string, password: string): Promise<GitHttpServer> {
  const expected = `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
  const state = { refused: 0 };
  const server = http.createServer((req, res) => {
    if (req.headers.authorization !== expected) {
      state.refused++;
      res.writeHead(401, { 'www-authenticate': 'Basic realm="git"' }).end();
      return;
    }
    const url = new URL(req.url ?? '/', 'http://x');
    const cgi = spawn('/usr/lib/git-core/git-http-backend', [], {
      env: {
        GIT_PROJECT_ROOT: root,
        GIT_HTTP_EXPORT_ALL: '1',
        PATH_INFO: decodeURIComponent(url.pathname),
        QUERY_STRING: url.search.slice(1),
        REQUEST_METHOD: req.method ?? 'GET',
        CONTENT_TYPE: req.headers['content-type'] ?? '',
        REMOTE_USER: user,
        REMOTE_ADDR: '127.0.0.1',
        PATH: process.env.PATH ?? '/usr/bin:/bin',
      },
      stdio: ['pipe', 'pipe', 'ignore'],
    });
    req.pipe(cgi.stdin!);
    // CGI output: headers, a blank line, then the body.
    let head = Buffer.alloc(0);
    let started = false;
    cgi.stdout!.on('data', (chunk: Buffer) => {
      if (started) return void res.write(chunk);
      head = Buffer.concat([head, chunk]);
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) return;
      started = true;
      const headers: Record<string, string> = {};
      let status = 200;
      for (const line of head.subarray(0, end).toString('latin1').split('\r\n')) {
        const i = line.indexOf(':');
        if (i < 0) continue;
        const k = line.slice(0, i).trim();
        const v = line.slice(i + 1).trim();
        if (k.toLowerCase() === 'status') status = Number(v.split(' ')[0]);
        else headers[k] = v;
      }
      res.writeHead(status, headers);
      res.write(head.subarray(end + 4));
    });
    cgi.on('close', () => res.end());
  });
  const port = await freePort();
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
  return {
    url: (repo) => `http://127.0.0.1:${port}/${repo}`,
    get refused() {
      return state.refused;
    },
    stop: () => new Promise<void>((r) => server.close(() => r())),
  };
}

export interface SshServer {
  port: number;
  /** The client key's private half (OpenSSH format), for a kubernetes.io/ssh-auth Secret. */
  privateKey: string;
  /** `127.0.0.1 ssh-ed25519 …` for known_hosts. */
  knownHosts: string;
  /** `ssh://root@127.0.0.1:<port><path>` */
  url(path: string): string;
  stop(): Promise<void>;
}

/** A real sshd on a private loopback port that takes one client key (made here) for the current user. */
export async function startSshd(dir: string): Promise<SshServer> {
  await mkdir(dir, { recursive: true });
  await mkdir('/run/sshd', { recursive: true });
  await runOk('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(dir, 'host')]);
  await runOk('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(dir, 'client')]);
  const { readFile } = await import('node:fs/promises');
  await writeFile(join(dir, 'authorized_keys'), await readFile(join(dir, 'client.pub')));
  const port = await freePort();
  await writeFile(
    join(dir, 'sshd_config'),
    [`Port ${port}`, 'ListenAddress 127.0.0.1', `HostKey ${join(dir, 'host')}`, `AuthorizedKeysFile ${join(dir, 'authorized_keys')}`, `PidFile ${join(dir, 'pid')}`, 'StrictModes no', 'UsePAM no', 'PasswordAuthentication no', 'KbdInteractiveAuthentication no', 'PermitRootLogin prohibit-password', ''].join('\n'),
  );
  const sshd: ChildProcess = spawn('/usr/sbin/sshd', ['-D', '-e', '-f', join(dir, 'sshd_config')], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  sshd.stderr!.on('data', (c: Buffer) => (log += c.toString()));
  for (let i = 0; i < 100 && !log.includes('listening'); i++) await new Promise((r) => setTimeout(r, 50));
  if (!log.includes('listening')) throw new Error(`sshd did not start: ${log}`);
  const hostPub = (await readFile(join(dir, 'host.pub'), 'utf8')).trim().split(' ').slice(0, 2).join(' ');
  const user = process.env.USER ?? 'root';
  return {
    port,
    privateKey: await readFile(join(dir, 'client'), 'utf8'),
    knownHosts: `[127.0.0.1]:${port} ${hostPub}\n`,
    url: (path) => `ssh://${user}@127.0.0.1:${port}${path}`,
    stop: async () => {
      sshd.kill('SIGTERM');
      await new Promise((r) => sshd.once('close', r));
    },
  };
}

/** A bare repo under `root` with one commit of `files`; returns its name. */
export async function bareRepo(root: string, name: string, files: Record<string, string>): Promise<string> {
  const work = join(root, `${name}.work`);
  await mkdir(work, { recursive: true });
  await runOk('git', ['init', '-q', '-b', 'main', work]);
  for (const [p, c] of Object.entries(files)) await writeFile(join(work, p), c);
  await runOk('git', ['-C', work, 'add', '-A']);
  await runOk('git', ['-C', work, '-c', 'user.name=t', '-c', 'user.email=t@t', 'commit', '-q', '-m', 'first']);
  await runOk('git', ['clone', '-q', '--bare', work, join(root, `${name}.git`)]);
  return `${name}.git`;
}
