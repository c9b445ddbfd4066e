import { execFile } from 'node:child_process';
import { createReadStream, realpathSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { join, resolve, sep } from 'node:path';
import type { Readable } from 'node:stream';
import { ConfinedDir } from '../oci/confined.js';
import { StrataError, errorMessage } from '../oci/errors.js';
import { extractLayer } from '../oci/extract.js';
import { openRequired } from '../oci/images.js';
import { openTarget, parseTarget, type StoreOptions } from '../oci/target.js';
import { send } from '../oci/registry/http.js';
import { blobLoginFor, gitLoginFor, NO_CREDENTIALS, type Credentials } from './credentials.js';
import type { SourceSpec } from './resources.js';

/**
 * Where an Image's source comes from, resolved and fetched: a git revision to its commit (the real `git`), a
 * registry image to its digest, a blob by URL; each with the credentials of the Image's service account. Git never
 * prompts (a missing credential fails at once, with git's own reason, instead of a build that hangs: kpack#1224),
 * speaks only http(s), ssh, git and file (never a remote helper that runs commands), and gets its credentials from a
 * private askpass or key file that is removed when it returns.
 */

export interface SourceAccess {
  credentials: Credentials;
  /** Where ssh host keys first seen are kept (trust on first use), when a Secret carries no known_hosts. */
  knownHosts: string;
  /** A scratch dir of our own for credential files (made 0700, removed after each git call). */
  scratch: string;
}

const GIT_ENV = {
  GIT_TERMINAL_PROMPT: '0',
  GIT_ASKPASS: '/bin/false',
  SSH_ASKPASS: '/bin/false',
  GIT_SSH_COMMAND: 'ssh -o BatchMode=yes -o StrictHostKeyChecking=accept-new',
  GIT_CONFIG_NOSYSTEM: '1',
  GIT_ALLOW_PROTOCOL: 'http:https:ssh:git:file',
};

const shellQuote = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;

/** The environment that gives git the login for `url`, and a cleanup that removes its files. */
async function gitLoginEnv(url: string, access: SourceAccess): Promise<{ env: Record<string, string>; done: () => Promise<void> }> {
  const login = gitLoginFor(url, access.credentials.git);
  if (!login) return { env: {}, done: async () => undefined };
  await mkdir(access.scratch, { recursive: true, mode: 0o700 });
  const dir = await mkdtemp(join(access.scratch, 'git-'));
  await chmod(dir, 0o700);
  const done = () => rm(dir, { recursive: true, force: true });
  try {
    if (login.auth.kind === 'basic') {
      // git asks its askpass program for the user and the password; the values stay in git's own environment.
      const askpass = join(dir, 'askpass');
      await writeFile(askpass, '#!/bin/sh\ncase "$1" in\n  Username*) printf %s "$STRATA_GIT_USERNAME" ;;\n  *) printf %s "$STRATA_GIT_PASSWORD" ;;\nesac\n', { mode: 0o700 });
      return { env: { GIT_ASKPASS: askpass, STRATA_GIT_USERNAME: login.auth.username, STRATA_GIT_PASSWORD: login.auth.password }, done };
    }
    const key = join(dir, 'key');
    await writeFile(key, login.auth.privateKey.endsWith('\n') ? login.auth.privateKey : `${login.auth.privateKey}\n`, { mode: 0o600 });
    let known = access.knownHosts;
    let strict = 'accept-new';
    if (login.auth.knownHosts) {
      known = join(dir, 'known_hosts');
      await writeFile(known, login.auth.knownHosts, { mode: 0o600 });
      strict = 'yes';
    }
    const ssh = `ssh -F /dev/null -i ${shellQuote(key)} -o IdentitiesOnly=yes -o BatchMode=yes -o UserKnownHostsFile=${shellQuote(known)} -o StrictHostKeyChecking=${strict}`;
    return { env: { GIT_SSH_COMMAND: ssh }, done };
  } catch (err) {
    await done();
    throw err;
  }
}

async function git(args: string[], url: string, access: SourceAccess, options: { cwd?: string; timeoutMs?: number } = {}): Promise<string> {
  const login = await gitLoginEnv(url, access);
  try {
    return await new Promise((resolve, reject) => {
      // `-c credential.helper=`: no helper of this machine's user answers for a fleet's repository.
      execFile('git', ['-c', 'credential.helper=', ...args], { cwd: options.cwd, env: { ...process.env, ...GIT_ENV, ...login.env }, timeout: options.timeoutMs ?? 120_000, maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
        if (err) {
          const why = (stderr || errorMessage(err)).trim().split('\n').filter(Boolean).pop() ?? 'failed';
          reject(new StrataError(`git ${args[0]}: ${why}${(err as { killed?: boolean }).killed ? ' (timed out)' : ''}`));
        } else resolve(stdout);
      });
    });
  } finally {
    await login.done();
  }
}

const SHA_RE = /^[0-9a-f]{40}$/;

/** A branch, tag or commit of a git repository, as the commit it names now. */
export async function resolveGit(url: string, revision: string, access: SourceAccess): Promise<string> {
  if (SHA_RE.test(revision)) return revision;
  const out = await git(['ls-remote', '--', url, revision, `refs/heads/${revision}`, `refs/tags/${revision}`, `refs/tags/${revision}^{}`], url, access, { timeoutMs: 60_000 });
  const refs = new Map(out.split('\n').filter(Boolean).map((l) => l.split('\t').reverse() as [string, string]));
  const sha = refs.get(`refs/tags/${revision}^{}`) ?? refs.get(`refs/heads/${revision}`) ?? refs.get(`refs/tags/${revision}`) ?? refs.get(revision);
  if (!sha) throw new StrataError(`git ${url}: no branch, tag or commit "${revision}"`);
  return sha;
}

/** The tree of one commit in `dir` (no .git kept): fetched by commit where the server allows, else by cloning. */
export async function fetchGit(url: string, commit: string, dir: string, access: SourceAccess, submodules = false): Promise<void> {
  await mkdir(dir, { recursive: true });
  await git(['init', '-q'], url, access, { cwd: dir });
  try {
    await git(['fetch', '-q', '--depth=1', '--', url, commit], url, access, { cwd: dir });
  } catch {
    // Servers that refuse a fetch by commit (git daemon's default) serve every ref.
    await git(['fetch', '-q', '--', url, '+refs/heads/*:refs/remotes/origin/*', '+refs/tags/*:refs/tags/*'], url, access, { cwd: dir });
  }
  await git(['-c', 'advice.detachedHead=false', 'checkout', '-q', commit], url, access, { cwd: dir });
  if (submodules) await git(['-c', 'protocol.file.allow=user', 'submodule', 'update', '-q', '--init', '--recursive', '--depth=1'], url, access, { cwd: dir, timeoutMs: 600_000 });
  await rm(join(dir, '.git'), { recursive: true, force: true });
}

/** A registry source's tag as a digest reference. */
export async function resolveRegistrySource(image: string, store: StoreOptions): Promise<string> {
  const target = parseTarget(image);
  if (target.kind !== 'registry') throw new StrataError(`spec.source.registry.image ${image}: must be a registry image`);
  const t = await openTarget(target, store);
  const m = await t.store.getManifest(t.id);
  return `${target.ref.name}@${m.digest}`;
}

/** A source image's layers unpacked, whiteouts applied, as kpack does with `source.registry`. */
export async function fetchRegistrySource(digestRef: string, dir: string, store: StoreOptions): Promise<void> {
  const { image } = await openRequired(digestRef, store);
  await mkdir(dir, { recursive: true });
  for (const [i, desc] of image.manifest.manifest.layers.entries()) {
    await extractLayer(await image.store.getBlob(desc), dir, { chown: false, label: `source ${digestRef} layer ${i + 1}`, diffID: image.config.rootfs.diff_ids[i]! });
  }
}

/** A tar or tar.gz blob from http(s):// or file://, unpacked with its first `strip` path components dropped. */
export async function fetchBlob(url: string, strip: number, dir: string, credentials: Credentials = NO_CREDENTIALS): Promise<void> {
  let stream: Readable;
  if (url.startsWith('file://')) stream = createReadStream(new URL(url));
  else {
    const login = blobLoginFor(url, credentials.blobs);
    const res = await send({ method: 'GET', url: new URL(url), followRedirects: true, timeoutMs: 60_000, ...(login ? { headers: { authorization: login.header } } : {}) });
    if (res.status !== 200) {
      res.body.resume();
      throw new StrataError(`blob ${url}: HTTP ${res.status}`);
    }
    stream = res.body;
  }
  const into = join(dir, '.blob');
  await mkdir(into, { recursive: true });
  await extractLayer(stream, into, { chown: false, label: `blob ${url}`, whiteouts: false });
  // Dropping leading components: each must be the one directory at its level.
  let root = into;
  for (let i = 0; i < strip; i++) {
    const names = await readdir(root);
    if (names.length !== 1) throw new StrataError(`blob ${url}: stripComponents ${strip}: level ${i + 1} holds ${names.length} entries, not one directory`);
    root = join(root, names[0]!);
  }
  for (const n of await readdir(root)) await rename(join(root, n), join(dir, n));
  await rm(into, { recursive: true, force: true });
}

/** The dir to build from: the source root, or its `subPath`, which must be a real directory (not a link out). */
export function buildDir(sourceDir: string, spec: SourceSpec): string {
  if (!spec.subPath) return sourceDir;
  const ok = ConfinedDir.with(sourceDir, (d) => {
    try {
      return d.isDirectory(spec.subPath!);
    } catch {
      return false;
    }
  });
  if (!ok) throw new StrataError(`spec.source.subPath ${spec.subPath}: not a directory in the source`);
  return join(sourceDir, spec.subPath);
}

/** The local path a source names (a `file://` blob or git URL, or a git path), or undefined for a remote one. */
export function localPathOf(source: SourceSpec): string | undefined {
  const url = source.git?.url ?? source.blob?.url;
  if (!url) return undefined;
  if (url.startsWith('file://')) return decodeURIComponent(new URL(url).pathname);
  if (url.startsWith('/')) return url;
  return undefined;
}

/**
 * Whether a local source may be read for a resource applied over the network: its real path (links resolved) must be
 * inside one of the directories the operator allowed (`fleet serve --allow-local-source DIR`).
 */
export function localSourceAllowed(path: string, allowed: string[]): boolean {
  let real: string;
  try {
    real = realpathSync(path);
  } catch {
    // Not there (yet): judge the path as written, with `..` taken out.
    real = resolve(path);
  }
  return allowed.some((dir) => {
    let root: string;
    try {
      root = realpathSync(dir);
    } catch {
      return false;
    }
    return real === root || real.startsWith(root.endsWith(sep) ? root : `${root}${sep}`);
  });
}
