import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, writeFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { run, runOk, tempDir } from '../harness/proc.js';
import { PROJECT_ROOT } from '../../src/version.js';
import { assembleNodeBuildpacks, makeNodeMirror, nodeBuilderToml } from '../../src/platform/nodejs.js';
import { makeLayoutImage } from '../harness/images.js';

const STRATA = join(PROJECT_ROOT, 'bin', 'strata');
const work = await tempDir('strata-nodebp-');
const env = { ...process.env, STRATA_HOME: join(work.path, 'home'), STRATA_DEBOOTSTRAP_CACHE: process.env.STRATA_DEBOOTSTRAP_CACHE || '/tmp/strata-debootstrap-cache' };
const mirror = join(work.path, 'mirror');
const builder = `oci:${work.path}/builder:1`;
// The buildpacks fetch from a file:// mirror the sandbox sees at /mirror.
const fetchFlags = ['--env', 'BP_DEPENDENCY_MIRROR=file:///mirror', '--volume', `${mirror}:/mirror`];

before(async () => {
  const deps = await makeNodeMirror(mirror, { node: ['20.19.5'], yarn: '1.22.19', npm: '10.9.2' }, () => undefined);
  const dirs = await assembleNodeBuildpacks(join(work.path, 'bps'), deps);
  const images = join(work.path, 'bases');
  await runOk(STRATA, ['base', 'create', '--build-image', `oci:${images}:build`, '--run-image', `oci:${images}:run`], { env });
  await writeFile(join(work.path, 'builder.toml'), nodeBuilderToml(dirs, `oci:${images}:build`, `oci:${images}:run`, 'test'));
  await runOk(STRATA, ['builder', 'create', builder, '--config', join(work.path, 'builder.toml')], { env });
});

after(() => work.cleanup());

async function app(name: string, files: Record<string, string>): Promise<string> {
  const dir = join(work.path, 'apps', name);
  await mkdir(dir, { recursive: true });
  for (const [f, c] of Object.entries(files)) await writeFile(join(dir, f), c);
  return dir;
}

const server = "require('http').createServer((q, s) => s.end('ok ' + process.version)).listen(process.env.PORT || 8080)";

test('an npm app: node-engine from .nvmrc, npm ci into a modules layer reused on rebuild, a web process from package.json', { timeout: 300_000 }, async () => {
  const dir = await app('npm', {
    'package.json': JSON.stringify({ name: 'n', version: '1.0.0', main: 'index.js', license: 'MIT' }),
    'package-lock.json': JSON.stringify({ name: 'n', version: '1.0.0', lockfileVersion: 3, requires: true, packages: { '': { name: 'n', version: '1.0.0', license: 'MIT' } } }),
    '.nvmrc': '20',
    'index.js': server,
  });
  const first = await run(STRATA, ['build', 'npm-app', '--builder', builder, '--path', dir, ...fetchFlags], { env });
  assert.equal(first.code, 0, first.stderr + first.stdout);
  assert.match(first.stdout, /Node\.js 20\.19\.5 \("20" from \.nvmrc\)/);
  assert.match(first.stdout, /---> npm ci/);
  assert.match(first.stdout, /web process: node index\.js/);
  const second = await run(STRATA, ['build', 'npm-app', '--builder', builder, '--path', dir, ...fetchFlags], { env });
  assert.equal(second.code, 0, second.stderr);
  assert.match(second.stdout, /package-lock\.json unchanged: reusing node_modules/);
  assert.match(second.stdout, /reusing the cached Node\.js 20\.19\.5 layer/);
  assert.match(second.stdout, /Reusing layer 'strata\/npm-install:modules'/);
  assert.match(second.stdout, /Reusing layer 'strata\/node-engine:node'/);
  const bom = await runOk(STRATA, ['inspect', 'npm-app', '--bom'], { env });
  assert.match(bom, /"name": "node",\s*"version": "20\.19\.5"/);
  assert.match(bom, /"id": "MIT"/);
});

test('bad input fails the build naming the buildpack and the fix: no matching engine, checksum mismatch, yarn.lock out of sync, nothing to build', { timeout: 300_000 }, async () => {
  const yarnLock = '# yarn lockfile v1\n\n\n';
  const noVersion = await app('nover', { 'package.json': JSON.stringify({ name: 'x', version: '1.0.0', engines: { node: '>=23' } }), 'index.js': server });
  const r1 = await run(STRATA, ['build', 'nover', '--builder', builder, '--path', noVersion, ...fetchFlags], { env });
  assert.notEqual(r1.code, 0);
  assert.match(r1.stdout + r1.stderr, /strata\/node-engine: no Node\.js in this buildpack satisfies ">=23" \(from package\.json engines\.node\)/);

  const unsynced = await app('unsynced', { 'package.json': JSON.stringify({ name: 'y', version: '1.0.0', dependencies: { 'left-pad': '1.3.0' } }), 'yarn.lock': yarnLock, 'index.js': server });
  const r2 = await run(STRATA, ['build', 'unsynced', '--builder', builder, '--path', unsynced, ...fetchFlags], { env });
  assert.notEqual(r2.code, 0);
  assert.match(r2.stdout + r2.stderr, /strata\/yarn-install: yarn install --frozen-lockfile failed: if yarn\.lock is out of sync/);

  // A mirror that serves another file than the one listed.
  const bad = join(work.path, 'bad-mirror');
  await runOk('cp', ['-r', mirror, bad]);
  const tarball = join(bad, 'nodejs.org/dist/v20.19.5/node-v20.19.5-linux-x64.tar.gz');
  await writeFile(tarball, Buffer.concat([await readFile(tarball), Buffer.from('tampered')]));
  const ok = await app('ok', { 'package.json': JSON.stringify({ name: 'z', version: '1.0.0' }), 'index.js': server });
  const r3 = await run(STRATA, ['build', 'tampered', '--builder', builder, '--path', ok, '--clear-cache', '--env', 'BP_DEPENDENCY_MIRROR=file:///mirror', '--volume', `${bad}:/mirror`], { env });
  assert.notEqual(r3.code, 0);
  assert.match(r3.stdout + r3.stderr, /strata\/node-engine: checksum mismatch for node\.tar\.gz/);
  assert.doesNotMatch(await runOk(STRATA, ['images'], { env }), /tampered|nover|unsynced/, 'nothing was saved');

  const empty = await app('empty', { 'README.md': 'no code' });
  const r4 = await run(STRATA, ['build', 'empty', '--builder', builder, '--path', empty], { env });
  assert.equal(r4.code, 20);
  assert.match(r4.stderr, /no buildpack in .* detected this app/);
});

test('an npm app for linux/arm64 on this amd64 machine: node-engine installs Node.js for arm64 to launch and this machine\'s to build; the image is arm64 and its Node.js answers arm64 under qemu', { timeout: 300_000 }, async () => {
  const images = join(work.path, 'bases');
  await makeLayoutImage(images, 'run-arm64', [{ 'etc/os-release': 'ID=debian\nVERSION_ID="12"\n' }], { 'io.buildpacks.rebasable': 'true', 'io.buildpacks.base.distro.name': 'debian', 'io.buildpacks.base.distro.version': '12' }, [], { os: 'linux', architecture: 'arm64' });
  await runOk(STRATA, ['manifest', 'create', `oci:${images}:run-multi`, `oci:${images}:run`, `oci:${images}:run-arm64`, '--publish'], { env });
  const dir = await app('npm-arm64', {
    'package.json': JSON.stringify({ name: 'a', version: '1.0.0', main: 'index.js', license: 'MIT' }),
    'package-lock.json': JSON.stringify({ name: 'a', version: '1.0.0', lockfileVersion: 3, requires: true, packages: { '': { name: 'a', version: '1.0.0', license: 'MIT' } } }),
    'index.js': server,
  });
  // Buildpacks with Node.js for both architectures (a version the npm registry has for both).
  const deps = await makeNodeMirror(mirror, { node: ['20.20.2'], npm: '10.9.2', arches: ['amd64', 'arm64'] }, () => undefined);
  const dirs = await assembleNodeBuildpacks(join(work.path, 'bps-multi'), deps);
  await writeFile(join(work.path, 'builder-multi.toml'), nodeBuilderToml(dirs, `oci:${images}:build`, `oci:${images}:run-multi`, 'test, two architectures'));
  const multi = `oci:${work.path}/builder-multi:1`;
  await runOk(STRATA, ['builder', 'create', multi, '--config', join(work.path, 'builder-multi.toml')], { env });
  const image = `oci:${join(work.path, 'arm64-app')}:1`;
  const r = await run(STRATA, ['build', image, '--builder', multi, '--path', dir, '--run-image', `oci:${images}:run-multi`, '--platform', 'linux/arm64', ...fetchFlags], { env });
  assert.equal(r.code, 0, r.stderr + r.stdout);
  assert.match(r.stdout, /for arm64; the build runs Node\.js 20\.20\.2 for amd64/);
  assert.match(r.stdout, /---> npm ci/);
  assert.equal((JSON.parse(await runOk('skopeo', ['inspect', '--config', image])) as { architecture: string }).architecture, 'arm64');
  const bundle = join(work.path, 'arm64-bundle');
  await runOk('umoci', ['unpack', '--image', `${join(work.path, 'arm64-app')}:1`, bundle]);
  const node = join(bundle, 'rootfs', 'layers', 'strata_node-engine', 'node', 'bin', 'node');
  assert.match(await runOk('file', ['-b', node]), /ARM aarch64/);
  assert.equal((await runOk(join(PROJECT_ROOT, '.tools', 'qemu-aarch64-static'), ['-L', '/usr/aarch64-linux-gnu', node, '-p', 'process.arch'])).trim(), 'arm64');
  // This machine's Node.js served the build only: it is not in the image.
  assert.equal(await readFile(join(bundle, 'rootfs', 'layers', 'strata_node-engine', 'node-build', 'bin', 'node')).then(() => 'there', () => 'absent'), 'absent');
});
