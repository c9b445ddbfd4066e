import { createHash } from 'node:crypto';
import { spawn } from 'node:child_process';
import { createReadStream } from 'node:fs';
import { readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { cachedDir } from '../oci/fsutil.js';
import { imageTime } from '../oci/config.js';
import { join } from 'node:path';
import { StrataError } from '../oci/errors.js';
import { NORMALISED_MTIME, treeEntries, writeLayerFile, type LayerEntry } from '../oci/layer.js';
import { foreignArchitecture, hostPlatform, type PlatformWanted } from '../oci/manifest.js';
import { foreignSecondStage, qemuFor } from './foreignstage.js';
import { appendLayers, emptyConfig, emptyManifest, writeImage, type AddedLayer } from '../oci/mutate.js';
import type { ImageStore } from '../oci/store.js';
import type { Digest } from '../oci/digest.js';
import type { Logger } from '../lifecycle/log.js';
import type { Progress, ProgressTask } from '../oci/progress.js';
import { createInterface } from 'node:readline';

export interface BaseOptions {
  distro: string;
  buildPackages: string[];
  runPackages: string[];
  uid: number;
  gid: number;
  mirror: string;
  /** Where debootstrap trees are kept between runs. */
  cacheDir: string;
  log: Logger;
  /** Shows debootstrap's phases as they go, when drawn live (a terminal). */
  progress?: Progress;
  /** Another architecture than this machine's (`--platform linux/arm64`): debootstrap's foreign stages, emulated. */
  platform?: PlatformWanted;
}

/** The architecture a base is made for, when it is not this machine's. */
function foreignArch(opts: BaseOptions): string | undefined {
  return foreignArchitecture(opts.platform) ? opts.platform!.architecture : undefined;
}

const MARKER = '.strata-complete';
const PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** The Debian mirror apt on this machine uses (deb822 or one-line sources), else deb.debian.org. */
export async function hostMirror(): Promise<string> {
  const deb822 = await readFile('/etc/apt/sources.list.d/debian.sources', 'utf8').catch(() => '');
  const m = /^URIs:\s*(\S+)/m.exec(deb822) ?? /^deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+\S+\s+main/m.exec(await readFile('/etc/apt/sources.list', 'utf8').catch(() => ''));
  return m?.[1] ?? 'http://deb.debian.org/debian';
}

/** Runs a command, failing with the last line it wrote; `fd3` gets the lines of a status pipe on descriptor 3. */
function exec(cmd: string, args: string[], what: string, fd3?: (line: string) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    let err = '';
    const child = spawn(cmd, args, { stdio: ['ignore', fd3 ? 'pipe' : 'ignore', 'pipe', ...(fd3 ? ['pipe' as const] : [])] });
    for (const out of [child.stdout, child.stderr]) out?.on('data', (c: Buffer) => (err = (err + c.toString()).slice(-4000)));
    const status = child.stdio[3];
    if (fd3 && status && 'on' in status) createInterface({ input: status as NodeJS.ReadableStream }).on('line', fd3);
    child.on('error', (e: NodeJS.ErrnoException) => reject(new StrataError(e.code === 'ENOENT' ? `${cmd} is not installed (apt-get install ${cmd})` : `${what}: ${e.message}`)));
    child.on('close', (code) => (code === 0 ? resolve() : reject(new StrataError(`${what} failed (exit ${code}): ${err.trim().split('\n').pop() ?? ''}`))));
  });
}

/**
 * debootstrap's progress as debian-installer reads it (`--debian-installer`: `P: now end PHASE` and `PF: what` on
 * descriptor 3), as one task per phase: downloading, unpacking, configuring. Its `E:` lines name a failure better
 * than the last line of the log.
 */
export class InstallerStatus {
  private pending?: { now: number; end: number; phase: string };
  private current?: { phase: string; task: ProgressTask; at: number };
  private error: { args: string[]; text?: string } | undefined;

  constructor(private readonly progress: Progress) {}

  line(l: string): void {
    const p = /^P: (\d+) (\d+) (\S+)/.exec(l);
    if (p) {
      this.pending = { now: Number(p[1]), end: Number(p[2]), phase: p[3]! };
      return;
    }
    if (l.startsWith('PF: ') && this.pending) {
      this.step(this.pending, l.slice(4));
      this.pending = undefined;
      return;
    }
    if (/^E: /.test(l)) this.error = { args: [] };
    else if (l.startsWith('EA: ') && this.error) this.error.args.push(l.slice(4));
    else if (l.startsWith('EF: ') && this.error) {
      const args = [...this.error.args];
      this.error.text = l.slice(4).replace(/%s/g, () => args.shift() ?? '');
    }
  }

  /** The failure debootstrap reported, when it did. */
  get failure(): string | undefined {
    return this.error?.text;
  }

  end(): void {
    this.current?.task.done();
    this.current = undefined;
  }

  private step(p: { now: number; end: number; phase: string }, what: string): void {
    if (this.current?.phase !== p.phase) {
      this.current?.task.done();
      this.current = { phase: p.phase, task: this.progress.task(`debootstrap: ${what}`, p.end, 'steps'), at: 0 };
    }
    if (p.now > this.current.at) {
      this.current.task.advance(p.now - this.current.at);
      this.current.at = p.now;
    }
  }
}

/**
 * Removes what makes two debootstraps of the same packages differ: logs, caches, apt lists, backup files, the
 * machine id, and the password-change day in /etc/shadow — so the layer depends only on the package versions.
 */
async function normalise(root: string): Promise<void> {
  const wipe = async (dir: string, keep: (n: string) => boolean = () => false): Promise<void> => {
    for (const n of await readdir(join(root, dir)).catch(() => [] as string[])) if (!keep(n)) await rm(join(root, dir, n), { recursive: true, force: true });
  };
  await wipe('var/cache/apt');
  await wipe('var/lib/apt/lists');
  await wipe('var/log');
  await wipe('var/cache/debconf', (n) => !n.endsWith('-old'));
  await wipe('var/lib/dpkg', (n) => !n.endsWith('-old'));
  await rm(join(root, 'var/cache/ldconfig/aux-cache'), { force: true });
  await writeFile(join(root, 'etc/machine-id'), '');
  const shadow = await readFile(join(root, 'etc/shadow'), 'utf8').catch(() => undefined);
  if (shadow !== undefined) await writeFile(join(root, 'etc/shadow'), shadow.replace(/^([^:\n]*:[^:\n]*:)\d*:/gm, '$1:'));
}

/** A debootstrap tree for these packages, made once and kept in the cache (made in a temp dir, then renamed in). */
export async function debootstrapTree(distro: string, packages: string[], opts: BaseOptions): Promise<string> {
  const list = [...new Set(packages)].sort();
  const arch = foreignArch(opts);
  if (arch) qemuFor(arch);
  const key = createHash('sha256').update(`${distro}\n${opts.mirror}\n${list.join(',')}${arch ? `\n${arch}` : ''}`).digest('hex').slice(0, 16);
  const dir = join(opts.cacheDir, `${distro}${arch ? `-${arch}` : ''}-${key}`);
  const { made } = await cachedDir(dir, MARKER, async (tmp) => {
    opts.log.info(`Running debootstrap ${distro}${arch ? ` for ${arch}` : ''}${list.length ? ` with ${list.join(', ')}` : ''} from ${opts.mirror} (cached afterwards)`);
    const args = [...(arch ? [`--arch=${arch}`, '--foreign'] : []), '--variant=minbase', ...(list.length ? [`--include=${list.join(',')}`] : []), distro, tmp, opts.mirror];
    if (opts.progress?.live) {
      // The same run with its status on a pipe: only where the messages go differs, not the tree.
      const status = new InstallerStatus(opts.progress);
      try {
        await exec('debootstrap', ['--debian-installer', ...args], `debootstrap ${distro}`, (l) => status.line(l));
      } catch (err) {
        throw status.failure ? new StrataError(`debootstrap ${distro} failed: ${status.failure}`) : err;
      } finally {
        status.end();
      }
    } else {
      await exec('debootstrap', args, `debootstrap ${distro}`);
    }
    if (arch) {
      opts.log.info(`Configuring the ${arch} tree under emulation (debootstrap's second stage; a minute or more)`);
      await foreignSecondStage(tmp, arch, `debootstrap ${distro} for ${arch}`);
    }
    await normalise(tmp);
  });
  if (!made) opts.log.info(`Using the cached ${distro} tree ${dir}`);
  return dir;
}

/** `/etc/os-release` fields, for the distro labels. */
export async function osRelease(root: string): Promise<Record<string, string>> {
  const text = await readFile(join(root, 'etc/os-release'), 'utf8').catch(() => readFile(join(root, 'usr/lib/os-release'), 'utf8'));
  return Object.fromEntries(text.split('\n').map((l) => /^([A-Z_]+)="?(.*?)"?$/.exec(l)).filter((m): m is RegExpExecArray => m !== null).map((m) => [m[1]!, m[2]!]));
}

/** The cnb user and group, added to copies of the tree's passwd, group and shadow, with its home. */
async function* userEntries(root: string, uid: number, gid: number): AsyncGenerator<LayerEntry> {
  const add = async (file: string, line: string): Promise<Buffer> => {
    const text = await readFile(join(root, file), 'utf8');
    const name = line.split(':')[0]!;
    const kept = text.split('\n').filter((l) => l && !l.startsWith(`${name}:`));
    return Buffer.from(`${[...kept, line].join('\n')}\n`);
  };
  const passwd = await add('etc/passwd', `cnb:x:${uid}:${gid}:CNB user:/home/cnb:/bin/bash`);
  const group = await add('etc/group', `cnb:x:${gid}:`);
  const shadow = await add('etc/shadow', 'cnb:*::0:99999:7:::');
  yield { type: 'directory', path: 'etc', mode: 0o755, uid: 0, gid: 0 };
  yield { type: 'file', path: 'etc/group', mode: 0o644, size: group.length, source: group, uid: 0, gid: 0 };
  yield { type: 'file', path: 'etc/passwd', mode: 0o644, size: passwd.length, source: passwd, uid: 0, gid: 0 };
  yield { type: 'file', path: 'etc/shadow', mode: 0o640, size: shadow.length, source: shadow, uid: 0, gid: 42 };
  yield { type: 'directory', path: 'home', mode: 0o755, uid: 0, gid: 0 };
  yield { type: 'directory', path: 'home/cnb', mode: 0o755, uid, gid };
}

/**
 * One base image: the debootstrap tree as a layer (owners kept, times normalised), the cnb user as a second, and
 * the config and labels the spec asks of build and run images.
 */
export async function baseImage(kind: 'build' | 'run', root: string, opts: BaseOptions, store: ImageStore, tag: string | undefined, work: string): Promise<Digest> {
  const release = await osRelease(root);
  const distroName = release.ID ?? 'debian';
  const distroVersion = release.VERSION_ID ?? opts.distro;
  const id = `io.strata.${distroName}.${opts.distro}`;
  const added: AddedLayer[] = [];
  const layer = async (entries: AsyncIterable<LayerEntry>, createdBy: string): Promise<void> => {
    const file = join(work, `${kind}-${added.length}.tar.gz`);
    const info = await writeLayerFile(entries, file, { mtime: NORMALISED_MTIME });
    const descriptor = { mediaType: info.mediaType, digest: info.digest, size: info.size };
    await store.putBlob(descriptor, async (start, end) => createReadStream(file, { start, end: end - 1 }));
    added.push({ descriptor, diffID: info.diffID, history: { created: imageTime(NORMALISED_MTIME), created_by: createdBy } });
  };
  const packages = kind === 'build' ? opts.buildPackages : opts.runPackages;
  await layer(treeEntries(root, { owners: true, include: (rel) => rel !== MARKER }), `debootstrap --variant=minbase ${opts.distro}${packages.length ? ` --include=${packages.join(',')}` : ''}`);
  await layer(userEntries(root, opts.uid, opts.gid), `cnb user ${opts.uid}:${opts.gid}`);
  const { config, manifest } = appendLayers(emptyConfig(opts.platform ?? hostPlatform(), NORMALISED_MTIME), emptyManifest(), added);
  const env = [`PATH=${PATH}`, ...(kind === 'build' ? [`CNB_USER_ID=${opts.uid}`, `CNB_GROUP_ID=${opts.gid}`, `CNB_STACK_ID=${id}`] : [])];
  const labels: Record<string, string> = {
    'io.buildpacks.base.id': id,
    'io.buildpacks.base.distro.name': distroName,
    'io.buildpacks.base.distro.version': distroVersion,
    'io.buildpacks.base.maintainer': 'strata',
    'io.buildpacks.base.description': `${release.PRETTY_NAME ?? `${distroName} ${distroVersion}`} ${kind} image, made by strata base create`,
    'io.buildpacks.stack.id': id,
    ...(kind === 'run' ? { 'io.buildpacks.rebasable': 'true' } : {}),
  };
  return (await writeImage(store, { ...config, config: { User: `${opts.uid}:${opts.gid}`, Env: env, WorkingDir: kind === 'build' ? '/home/cnb' : '/', Labels: labels } }, manifest, tag)).digest;
}
