import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { copyImage } from '../../src/oci/copy.js';
import { RegistryClient } from '../../src/oci/registry/client.js';
import { hostToolImageFiles, makeLayoutImage, type FileSpec } from './images.js';
import { writeBuildpack } from './buildpacks.js';
import { run, runOk, type RunResult } from './proc.js';
import { STRATA } from './probe.js';

/**
 * A fleet's world on one machine: base images and buildpackages in a real registry, apps in real git repositories,
 * and `strata fleet` run with its own STRATA_HOME.
 */
export interface FleetWorld {
  root: string;
  reg: string;
  env: NodeJS.ProcessEnv;
  strata(args: string[], options?: { input?: string }): Promise<RunResult>;
  /** Makes (or replaces) a git repo with these files and one commit; returns its file:// URL. */
  repo(name: string, files: Record<string, string>): Promise<string>;
  /** A new commit in a repo made by `repo`. */
  commit(name: string, files: Record<string, string>): Promise<string>;
  /** Pushes a run image made of the tool files plus `extra`, under REG/base:run. */
  pushRun(extra?: Record<string, FileSpec>): Promise<string>;
  /** Packages a buildpack of this id/version (bash detect/build) and pushes it under REG/bp/<name>:1; `keys` go in its [buildpack] table. */
  pushBuildpack(name: string, id: string, version: string, detect: string, build: string, keys?: string): Promise<void>;
  yaml(images: { name: string; repo: string; revision?: string }[]): string;
}

export async function fleetWorld(root: string, reg: string): Promise<FleetWorld> {
  const env = { ...process.env, STRATA_HOME: join(root, 'home') };
  const tools = await hostToolImageFiles();
  const images = join(root, 'images');
  const client = new RegistryClient(reg);
  const base = await makeLayoutImage(images, 'build', [tools], { 'io.buildpacks.base.id': 'test.stack' }, ['CNB_USER_ID=1000', 'CNB_GROUP_ID=1000']);
  await copyImage(base.layout, 'build', client.repository('base'), 'build');
  let runs = 0;
  const w: FleetWorld = {
    root,
    reg,
    env,
    strata: (args, options = {}) => run(STRATA, args, { env, ...(options.input !== undefined ? { input: options.input } : {}) }),
    async repo(name, files) {
      const dir = join(root, 'git', name);
      await mkdir(dir, { recursive: true });
      await runOk('git', ['init', '-q', '-b', 'main', dir]);
      return w.commit(name, files).then(() => `file://${dir}`);
    },
    async commit(name, files) {
      const dir = join(root, 'git', name);
      for (const [p, c] of Object.entries(files)) await writeFile(join(dir, p), c);
      await runOk('git', ['-C', dir, 'add', '-A']);
      await runOk('git', ['-C', dir, '-c', 'user.name=t', '-c', 'user.email=t@t', 'commit', '-q', '-m', `commit ${Date.now()}`]);
      return (await runOk('git', ['-C', dir, 'rev-parse', 'HEAD'])).trim();
    },
    async pushRun(extra = {}) {
      const tag = `run${runs++}`;
      const img = await makeLayoutImage(images, tag, [tools, ...(Object.keys(extra).length ? [extra] : [])], { 'io.buildpacks.rebasable': 'true', 'io.buildpacks.base.id': 'test.stack' });
      await copyImage(img.layout, tag, client.repository('base'), 'run');
      return img.digest;
    },
    async pushBuildpack(name, id, version, detect, build, keys) {
      const dir = join(root, 'bps', `${name}-${version}`);
      await writeBuildpack(dir, { id, version, api: '0.10', detect, build, ...(keys ? { buildpackKeys: keys } : {}) });
      const bp = join(dir, id.replace(/\//g, '_'), version);
      await writeFile(join(dir, 'package.toml'), `[buildpack]\nuri = "${bp}"\n`);
      await runOk(STRATA, ['buildpack', 'package', `${reg}/bp/${name}:1`, '--config', join(dir, 'package.toml'), '--publish'], { env });
    },
    yaml(list) {
      const head = `apiVersion: kpack.io/v1alpha2
kind: ClusterStack
metadata: {name: base}
spec:
  id: test.stack
  buildImage: {image: ${reg}/base:build}
  runImage: {image: ${reg}/base:run}
---
apiVersion: kpack.io/v1alpha2
kind: ClusterStore
metadata: {name: store}
spec:
  sources:
  - image: ${reg}/bp/hello:1
  - image: ${reg}/bp/other:1
---
apiVersion: kpack.io/v1alpha2
kind: ClusterBuilder
metadata: {name: builder}
spec:
  tag: ${reg}/builders/test
  stack: {kind: ClusterStack, name: base}
  store: {kind: ClusterStore, name: store}
  order:
  - group: [{id: test/other}]
  - group: [{id: test/hello}]
`;
      const imgs = list.map(
        (i) => `---
apiVersion: kpack.io/v1alpha2
kind: Image
metadata: {name: ${i.name}}
spec:
  tag: ${reg}/apps/${i.name}
  builder: {kind: ClusterBuilder, name: builder}
  source:
    git: {url: "${i.repo}", revision: ${i.revision ?? 'main'}}
`,
      );
      return head + imgs.join('');
    },
  };
  await w.pushRun();
  return w;
}

/** A buildpack that makes a launch layer from the app's file and a `web` process printing it. */
export function layerBuild(file: string): string {
  return `L="$1"
mkdir -p "$L/content"
cat /workspace/${file} > "$L/content/${file}"
printf '[types]\\nlaunch = true\\n' > "$L/content.toml"
printf '[[processes]]\\ntype = "web"\\ncommand = ["cat", "/layers/content/${file}"]\\ndefault = true\\n' > "$L/launch.toml"
echo "built from $(cat /workspace/${file})"`;
}
