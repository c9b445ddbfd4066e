// The lifecycle's trusted phases run on their own (as kpack or Tekton run them), after buildpack code had the layers
// dir: no platform resets it for them, so their own confinement is all there is.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, readdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { registryFixture } from '../harness/registry.js';
import { makeLayoutImage } from '../harness/images.js';
import { withWorkspace, writeBuildpack, type Workspace } from '../harness/buildpacks.js';
import { run, runOk } from '../harness/proc.js';
import { PROJECT_ROOT } from '../../src/version.js';
import { copyImage } from '../../src/oci/copy.js';
import { RegistryClient } from '../../src/oci/registry/client.js';
import { sha256 } from '../../src/oci/digest.js';
import { tarBytes } from './corpus.js';

const fx = registryFixture();
const bin = (phase: string): string => join(PROJECT_ROOT, 'dist', 'lifecycle', phase);
const env = { ...process.env, CNB_PLATFORM_API: '0.15' };
const SECRET = 'LIFECYCLE-HOST-SECRET-91c2';

async function hostDir(ws: Workspace): Promise<string> {
  const host = join(ws.root, 'host');
  await mkdir(join(host, 'dir'), { recursive: true });
  await writeFile(join(host, 'secret'), SECRET, { mode: 0o600 });
  return host;
}

async function hostUntouched(host: string, files = ['dir', 'secret']): Promise<void> {
  assert.deepEqual((await readdir(host)).sort(), files);
  assert.deepEqual(await readdir(join(host, 'dir')), []);
  assert.equal(await readFile(join(host, 'secret'), 'utf8'), SECRET);
}

/** A directory cache holding `layers` for evil/bp, each a tar at the layer's in-image (here: host) path. */
async function dirCache(dir: string, layers: Record<string, Buffer>, sbom?: Buffer): Promise<void> {
  const committed = join(dir, 'committed');
  await mkdir(committed, { recursive: true });
  const records: Record<string, unknown> = {};
  for (const [name, tar] of Object.entries(layers)) {
    await writeFile(join(committed, `${sha256(tar).slice(7)}.tar`), tar);
    records[name] = { sha: sha256(tar), cache: true, data: {} };
  }
  if (sbom) await writeFile(join(committed, `${sha256(sbom).slice(7)}.tar`), sbom);
  await writeFile(join(committed, 'io.buildpacks.lifecycle.cache.metadata'), JSON.stringify({ buildpacks: [{ key: 'evil/bp', version: '1.0.0', layers: records }], ...(sbom ? { sbom: { sha: sha256(sbom) } } : {}) }));
}

test('restorer: links planted in the layers dir and cached tars aimed outside their layer touch nothing on the host', () =>
  withWorkspace(async (ws) => {
    const host = await hostDir(ws);
    const L = ws.layers.slice(1);
    await writeFile(join(ws.layers, 'group.toml'), '[[group]]\nid = "evil/bp"\nversion = "1.0.0"\napi = "0.10"\n');
    // What a bin/detect could leave: SBOM files that are links to a root-only file, the cache SBOM dir as a link.
    await mkdir(join(ws.layers, 'sbom', 'launch', 'evil_bp', 'deps'), { recursive: true });
    await mkdir(join(ws.layers, 'evil_bp'), { recursive: true });
    await symlink(join(host, 'secret'), join(ws.layers, 'sbom', 'launch', 'evil_bp', 'deps', 'sbom.cdx.json'));
    await symlink(join(host, 'dir'), join(ws.layers, 'evil_bp', 'deps'));
    await symlink(join(host, 'secret'), join(ws.layers, 'evil_bp', 'deps.sbom.cdx.json'));
    const cacheDir = join(ws.root, 'cache');
    await dirCache(
      cacheDir,
      {
        deps: await tarBytes([{ name: `${L}/evil_bp/deps/ok`, body: 'cached' }]),
        escape: await tarBytes([{ name: `${L}/evil_bp/escape/ok`, body: 'x' }, { name: `${host.slice(1)}/dir/pwned`, body: 'pwned' }]),
      },
      await tarBytes([{ name: `${L}/sbom/cache/evil_bp/deps/sbom.cdx.json`, body: '{}' }, { name: `${L}/sbom/cache/.wh...` }]),
    );
    const r = await run(bin('restorer'), ['-layers', ws.layers, '-cache-dir', cacheDir, '-log-level', 'debug'], { env });
    assert.equal(r.code, 0, r.stderr + r.stdout);
    assert.match(r.stdout, /Restored layer evil\/bp:deps from the cache/, 'the planted link was replaced by the real layer');
    assert.equal(await readFile(join(ws.layers, 'evil_bp', 'deps', 'ok'), 'utf8'), 'cached');
    assert.match(r.stderr + r.stdout, /could not restore evil\/bp:escape .*is outside .*refused/);
    assert.match(r.stderr + r.stdout, /SBOM layer not restored .*whiteout.*refused/);
    assert.match(r.stderr + r.stdout, /SBOM launch\/evil_bp\/deps\/sbom\.cdx\.json not restored: .*symbolic link.*refused/);
    await hostUntouched(host);
  }));

test('exporter: store.toml, a layer toml and a layer dir left as links are refused with the export error code', () =>
  withWorkspace(async (ws) => {
    const host = await hostDir(ws);
    await writeFile(join(host, 'secret.toml'), `[metadata]\nstolen = "${SECRET}"\n`, { mode: 0o600 });
    const runDir = join(ws.root, 'run');
    await makeLayoutImage(runDir, 'run', [{ 'etc/os-release': 'ID=debian\n' }]);
    await writeBuildpack(ws.buildpacks, {
      id: 'evil/bp',
      build: `mkdir -p "$CNB_LAYERS_DIR/rt"; echo hi > "$CNB_LAYERS_DIR/rt/f"; printf '[types]\\nlaunch = true\\n' > "$CNB_LAYERS_DIR/rt.toml"`,
    });
    await ws.order([['evil/bp']]);
    assert.equal((await ws.phase('detector')).code, 0);
    assert.equal((await ws.phase('builder')).code, 0);
    await runOk('mkdir', ['-p', join(ws.layers)]);
    await writeFile(join(ws.layers, 'analyzed.toml'), `[run-image]\nreference = "oci:${runDir}:run"\n`);
    const exportWith = () => run(bin('exporter'), ['-layers', ws.layers, '-app', ws.app, '-launcher', join(PROJECT_ROOT, 'dist', 'lifecycle', 'launcher'), `oci:${ws.root}/out:app`], { env: { ...env, CNB_EXPERIMENTAL_MODE: 'warn' } });
    await symlink(join(host, 'secret.toml'), join(ws.layers, 'evil_bp', 'store.toml'));
    const r = await exportWith();
    assert.equal(r.code, 62, r.stderr);
    assert.match(r.stderr, /store\.toml is a symbolic link.*refused/);
    assert.doesNotMatch(r.stdout + r.stderr, new RegExp(SECRET));
    await runOk('rm', [join(ws.layers, 'evil_bp', 'store.toml')]);
    await runOk('rm', ['-r', join(ws.layers, 'evil_bp', 'rt')]);
    await symlink(join(host, 'dir'), join(ws.layers, 'evil_bp', 'rt'));
    const r2 = await exportWith();
    assert.equal(r2.code, 62, r2.stderr);
    assert.match(r2.stderr, /evil_bp\/rt is not a directory.*refused/);
    await hostUntouched(host, ['dir', 'secret', 'secret.toml']);
  }));

test('creator: the detect and build children get no registry credentials, not even through /proc/$PPID/environ', () =>
  withWorkspace(async (ws) => {
    const client = new RegistryClient(fx.reg.host);
    const base = await makeLayoutImage(join(ws.root, 'run1'), 'run', [{ 'etc/os-release': 'ID=debian\n' }]);
    await copyImage(base.layout, 'run', client.repository('leak/run'), 'v1');
    // Each program looks for the secret in its own environment and in its parent's, and records what it saw.
    const look = (who: string) => `for f in /proc/self/environ /proc/$PPID/environ; do
  if tr '\\0' '\\n' < "$f" 2>/dev/null | grep -q 'LEAKY'; then echo "${who}: leaked in $f" >> "$CNB_APP_DIR_SEEN/leaks"; fi
done
echo "${who}: looked" >> "$CNB_APP_DIR_SEEN/leaks"`;
    await writeBuildpack(ws.buildpacks, {
      id: 'test/snoop',
      detect: `CNB_APP_DIR_SEEN=$PWD\n${look('detect')}`,
      build: `CNB_APP_DIR_SEEN=$PWD\n${look('build')}\nmkdir -p "$CNB_LAYERS_DIR/x"; printf '[types]\\nlaunch = true\\n' > "$CNB_LAYERS_DIR/x.toml"`,
    });
    await ws.order([['test/snoop']]);
    await runOk('chown', ['-R', '1000:1000', ws.root]);
    const creds = { CNB_REGISTRY_AUTH: '{"example.com":"Basic LEAKY-TOKEN"}', DOCKER_CONFIG: join(ws.root, 'LEAKY-docker-config') };
    const r = await run(
      bin('creator'),
      ['-layers', ws.layers, '-app', ws.app, '-buildpacks', ws.buildpacks, '-platform', ws.platform, '-build-config', ws.buildConfig, '-order', join(ws.root, 'order.toml'), '-run-image', `${fx.reg.host}/leak/run:v1`, '-launcher', join(PROJECT_ROOT, 'dist', 'lifecycle', 'launcher'), '-uid', '1000', '-gid', '1000', `${fx.reg.host}/leak/app:1`],
      { env: { ...env, ...creds } },
    );
    assert.equal(r.code, 0, r.stderr + r.stdout);
    const leaks = await readFile(join(ws.app, 'leaks'), 'utf8');
    assert.match(leaks, /detect: looked/);
    assert.match(leaks, /build: looked/);
    assert.doesNotMatch(leaks, /leaked/);
  }));
