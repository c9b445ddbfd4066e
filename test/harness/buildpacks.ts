import { chmod, mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PROJECT_ROOT } from '../../src/version.js';
import { run, runOk, tempDir, type RunResult } from './proc.js';

/** The unprivileged user buildpacks run as in these tests (the detector and builder refuse root). */
export const CNB_UID = 1000;

let runtime: Promise<string> | undefined;

/**
 * Where the build user can run the lifecycle from: the checkout itself when that user can read it, otherwise a copy
 * of what the lifecycle needs at run time (a CI checkout under /root is not readable by uid 1000).
 */
export function lifecycleRoot(): Promise<string> {
  runtime ??= (async () => {
    const probe = await run('test', ['-r', join(PROJECT_ROOT, 'bin', 'lifecycle')], { uid: CNB_UID, gid: CNB_UID });
    if (probe.code === 0) return PROJECT_ROOT;
    const copy = await mkdtemp(join(tmpdir(), 'strata-runtime-'));
    await chmod(copy, 0o755);
    for (const part of ['bin', 'dist', 'node_modules', 'package.json']) await runOk('cp', ['-a', join(PROJECT_ROOT, part), copy]);
    process.once('exit', () => rmSync(copy, { recursive: true, force: true }));
    return copy;
  })();
  return runtime;
}

export interface BuildpackSpec {
  id: string;
  version?: string;
  api?: string;
  /** bash body of bin/detect (default: pass) */
  detect?: string;
  /** bash body of bin/build (default: nothing) */
  build?: string;
  /** extra TOML appended to buildpack.toml, e.g. [[order]] for a composite */
  toml?: string;
  /** extra keys in the [buildpack] table */
  buildpackKeys?: string;
  composite?: boolean;
}

export async function writeBuildpack(buildpacksDir: string, spec: BuildpackSpec): Promise<string> {
  const version = spec.version ?? '1.0.0';
  const dir = join(buildpacksDir, spec.id.replace(/\//g, '_'), version);
  await mkdir(join(dir, 'bin'), { recursive: true });
  await writeFile(join(dir, 'buildpack.toml'), `api = "${spec.api ?? '0.12'}"\n[buildpack]\nid = "${spec.id}"\nversion = "${version}"\n${spec.buildpackKeys ?? ''}\n${spec.toml ?? ''}\n`);
  if (!spec.composite) {
    for (const [name, body] of [['detect', spec.detect ?? 'exit 0'], ['build', spec.build ?? 'exit 0']] as const) {
      await writeFile(join(dir, 'bin', name), `#!/usr/bin/env bash\nset -eu\n${body}\n`);
      await chmod(join(dir, 'bin', name), 0o755);
    }
  }
  return dir;
}

export interface ExtensionSpec {
  id: string;
  version?: string;
  api?: string;
  /** bash body of bin/detect; without it the extension passes with its detect/plan.toml */
  detect?: string;
  /** bash body of bin/generate; without it its generate/ dir is its output */
  generate?: string;
  /** Files under the extension's root (detect/plan.toml, generate/run.Dockerfile, …). */
  files?: Record<string, string>;
}

/** An image extension at `<extensionsDir>/<escaped id>/<version>/`; returns its dir. */
export async function writeExtension(extensionsDir: string, spec: ExtensionSpec): Promise<string> {
  const version = spec.version ?? '1.0.0';
  const dir = join(extensionsDir, spec.id.replace(/\//g, '_'), version);
  await mkdir(join(dir, 'bin'), { recursive: true });
  await writeFile(join(dir, 'extension.toml'), `api = "${spec.api ?? '0.12'}"\n[extension]\nid = "${spec.id}"\nversion = "${version}"\n`);
  for (const [name, body] of [['detect', spec.detect], ['generate', spec.generate]] as const) {
    if (body === undefined) continue;
    await writeFile(join(dir, 'bin', name), `#!/usr/bin/env bash\nset -eu\n${body}\n`);
    await chmod(join(dir, 'bin', name), 0o755);
  }
  for (const [rel, text] of Object.entries(spec.files ?? {})) {
    await mkdir(join(dir, rel, '..'), { recursive: true });
    await writeFile(join(dir, rel), text);
  }
  return dir;
}

export interface Workspace {
  root: string;
  app: string;
  layers: string;
  platform: string;
  buildpacks: string;
  extensions: string;
  buildConfig: string;
  /** Writes order.toml from groups of `id@version[?]` (`?` = optional), and `[[order-extensions]]` from `extensions`. */
  order(groups: string[][], extensions?: string[][]): Promise<string>;
  /** Runs a lifecycle phase as the build user with the workspace's dirs as flags. */
  phase(name: string, extra?: string[], env?: Record<string, string>, options?: { order?: boolean; root?: boolean }): Promise<RunResult>;
  launch(argv0: string, args: string[], env?: Record<string, string>): Promise<RunResult>;
  cleanup(): Promise<void>;
}

export function orderToml(groups: string[][], key = 'order'): string {
  return groups
    .map((g) => `[[${key}]]\n${g.map((e) => {
      const optional = e.endsWith('?');
      const [id, version] = e.replace(/\?$/, '').split('@');
      return `  [[${key}.group]]\n  id = "${id}"\n  version = "${version ?? '1.0.0'}"\n${optional ? '  optional = true\n' : ''}`;
    }).join('')}`)
    .join('\n');
}

export async function workspace(): Promise<Workspace> {
  const t = await tempDir('strata-lc-');
  const root = t.path;
  const ws = {
    root,
    app: join(root, 'workspace'),
    layers: join(root, 'layers'),
    platform: join(root, 'platform'),
    buildpacks: join(root, 'buildpacks'),
    extensions: join(root, 'extensions'),
    buildConfig: join(root, 'build-config'),
  };
  for (const d of Object.values(ws)) await mkdir(d, { recursive: true });
  const baseEnv = (extra: Record<string, string> = {}): NodeJS.ProcessEnv => ({ PATH: '/usr/local/bin:/usr/bin:/bin', HOME: root, CNB_PLATFORM_API: '0.15', ...extra });
  // Only what root created: a blanket chown -R would move every ctime and so every layer fingerprint.
  const chown = () => runOk('find', [root, '!', '-user', String(CNB_UID), '-exec', 'chown', '-h', `${CNB_UID}:${CNB_UID}`, '{}', '+']);
  return {
    ...ws,
    async order(groups, extensions = []) {
      const path = join(root, 'order.toml');
      await writeFile(path, `${orderToml(groups)}\n${orderToml(extensions, 'order-extensions')}`);
      return path;
    },
    async phase(name, extra = [], env = {}, options = {}) {
      await chown();
      const flags = ['-app', ws.app, '-layers', ws.layers, '-platform', ws.platform, '-buildpacks', ws.buildpacks, '-build-config', ws.buildConfig, '-log-level', 'debug'];
      if (name === 'detector') flags.push('-extensions', ws.extensions);
      if (name === 'detector' && options.order !== false) flags.push('-order', join(root, 'order.toml'));
      const user = options.root ? {} : { uid: CNB_UID, gid: CNB_UID };
      return run(join(await lifecycleRoot(), 'dist', 'lifecycle', name), [...flags, ...extra], { ...user, env: baseEnv(env), cwd: root });
    },
    async launch(argv0, args, env = {}) {
      await chown();
      const dir = join(root, 'process');
      await mkdir(dir, { recursive: true });
      const link = join(dir, argv0);
      await runOk('ln', ['-sf', join(await lifecycleRoot(), 'dist', 'lifecycle', 'launcher'), link]);
      return run(link, args, { uid: CNB_UID, gid: CNB_UID, env: baseEnv({ CNB_LAYERS_DIR: ws.layers, CNB_APP_DIR: ws.app, PATH: `/cnb/process:/usr/local/bin:/usr/bin:/bin`, ...env }), cwd: root });
    },
    cleanup: t.cleanup,
  };
}

/** Runs a test body in a fresh workspace and removes it afterwards. */
export async function withWorkspace(fn: (ws: Workspace) => Promise<void>): Promise<void> {
  const ws = await workspace();
  try {
    await fn(ws);
  } finally {
    await ws.cleanup();
  }
}
