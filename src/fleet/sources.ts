import { execFile } from 'node:child_process';
import { createReadStream } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { ConfinedDir } from '../oci/confined.js';
import { StrataError, errorMessage } from '../oci/errors.js';
import { extractLayer } from '../oci/extract.js';
import { resolveImage } from '../oci/image.js';
import { openTarget, parseTarget, type StoreOptions } from '../oci/target.js';
import { send } from '../oci/registry/http.js';
import type { SourceSpec } from './resources.js';

/**
 * Where an Image's source comes from, resolved and fetched: a git revision to its commit (the real `git`), a
 * registry image to its digest, a blob by URL. Git never prompts (a missing credential fails at once, with git's
 * own reason, instead of a build that hangs: kpack#1224).
 */

const GIT_ENV = {
  GIT_TERMINAL_PROMPT: '0',
  GIT_ASKPASS: '/bin/false',
  SSH_ASKPASS: '/bin/false',
  GIT_SSH_COMMAND: 'ssh -o BatchMode=yes -o StrictHostKeyChecking=accept-new',
  GIT_CONFIG_NOSYSTEM: '1',
};

function git(args: string[], options: { cwd?: string; timeoutMs?: number } = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('git', args, { cwd: options.cwd, env: { ...process.env, ...GIT_ENV }, timeout: options.timeoutMs ?? 120_000, maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      if (err) {
        const why = (stderr || errorMessage(err)).trim().split('\n').filter(Boolean).pop() ?? 'failed';
        reject(new StrataError(`git ${args[0]}: ${why}${(err as { killed?: boolean }).killed ? ' (timed out)' : ''}`));
      } else resolve(stdout);
    });
  });
}

const SHA_RE = /^[0-9a-f]{40}$/;

/** A branch, tag or commit of a git repository, as the commit it names now. */
export async function resolveGit(url: string, revision: string): Promise<string> {
  if (SHA_RE.test(revision)) return revision;
  const out = await git(['ls-remote', '--', url, revision, `refs/heads/${revision}`, `refs/tags/${revision}`, `refs/tags/${revision}^{}`], { timeoutMs: 60_000 });
  const refs = new Map(out.split('\n').filter(Boolean).map((l) => l.split('\t').reverse() as [string, string]));
  const sha = refs.get(`refs/tags/${revision}^{}`) ?? refs.get(`refs/heads/${revision}`) ?? refs.get(`refs/tags/${revision}`) ?? refs.get(revision);
  if (!sha) throw new StrataError(`git ${url}: no branch, tag or commit "${revision}"`);
  return sha;
}

/** The tree of one commit in `dir` (no .git kept): fetched by commit where the server allows, else by cloning. */
export async function fetchGit(url: string, commit: string, dir: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  await git(['init', '-q'], { cwd: dir });
  try {
    await git(['fetch', '-q', '--depth=1', '--', url, commit], { cwd: dir });
  } catch {
    // Servers that refuse a fetch by commit (git daemon's default) serve every ref.
    await git(['fetch', '-q', '--', url, '+refs/heads/*:refs/remotes/origin/*', '+refs/tags/*:refs/tags/*'], { cwd: dir });
  }
  await git(['-c', 'advice.detachedHead=false', 'checkout', '-q', commit], { cwd: dir });
  const { rm } = await import('node:fs/promises');
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
  const t = await openTarget(parseTarget(digestRef), store);
  const image = await resolveImage(t.store, t.id);
  await mkdir(dir, { recursive: true });
  for (const [i, desc] of image.manifest.manifest.layers.entries()) {
    await extractLayer(await t.store.getBlob(desc), dir, { chown: false, label: `source ${digestRef} layer ${i + 1}`, diffID: image.config.rootfs.diff_ids[i]! });
  }
}

/** A tar or tar.gz blob from http(s):// or file://, unpacked with its first `strip` path components dropped. */
export async function fetchBlob(url: string, strip: number, dir: string): Promise<void> {
  let stream: Readable;
  if (url.startsWith('file://')) stream = createReadStream(new URL(url));
  else {
    const res = await send({ method: 'GET', url: new URL(url), followRedirects: true, timeoutMs: 60_000 });
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
  const { readdir, rename, rm } = await import('node:fs/promises');
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
