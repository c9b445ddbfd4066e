// Builds that run side by side, builds that are killed, and exit codes that must reach the caller.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmod, mkdir, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { probeBuilder, STRATA } from '../harness/probe.js';
import { run, runOk, tempDir } from '../harness/proc.js';
import { startRegistry } from '../harness/registry.js';
import { startFaultProxy } from '../harness/faultproxy.js';
import { hostToolImageFiles, makeLayoutImage } from '../harness/images.js';
import { OciLayout } from '../../src/oci/layout.js';
import { copyImage } from '../../src/oci/copy.js';

test('parallel builds of one builder not yet unpacked all succeed, and parallel builds of one image all save their cache', { timeout: 300_000 }, async () => {
  const t = await tempDir('strata-parallel-');
  try {
    const p = await probeBuilder(t.path, {});
    const many = await Promise.all(Array.from({ length: 8 }, (_, i) => run(STRATA, ['build', `par-${i}`, '--builder', p.builder, '--path', p.app], { env: p.env })));
    for (const [i, r] of many.entries()) assert.equal(r.code, 0, `build ${i}: ${r.stderr}${r.stdout}`);
    // `layers` holds each layer unpacked once; the rest is one assembled rootfs per image.
    const rootfsDir = join(t.path, 'home', 'rootfs');
    assert.deepEqual((await readdir(rootfsDir)).filter((n) => !n.endsWith('.lock') && n !== 'layers').length, 1, 'the builder was assembled once');
    const layers = (await readdir(join(rootfsDir, 'layers'))).filter((n) => !n.endsWith('.lock'));
    assert.ok(layers.length > 0 && layers.every((n) => /^[0-9a-f]{64}$/.test(n)), `each layer unpacked once, no temp dir left: ${layers.join(' ')}`);
    const same = await Promise.all(Array.from({ length: 6 }, () => run(STRATA, ['build', 'same', '--builder', p.builder, '--path', p.app], { env: p.env })));
    for (const r of same) {
      assert.equal(r.code, 0, r.stderr + r.stdout);
      assert.doesNotMatch(r.stdout + r.stderr, /was not saved/);
    }
    const cacheDirs = await readdir(join(t.path, 'home', 'cache', 'builds'));
    assert.equal(cacheDirs.length, 2 + 8 - 1, 'one cache per image');
    for (const d of cacheDirs) assert.deepEqual((await readdir(join(t.path, 'home', 'cache', 'builds', d))).filter((n) => n !== 'committed'), [], `no staging left in ${d}`);
  } finally {
    await t.cleanup();
  }
});

test('a build killed with SIGKILL mid-build: its sandbox stops with it, and the next run removes its container and build dir', { timeout: 180_000 }, async () => {
  const t = await tempDir('strata-killed-');
  try {
    const p = await probeBuilder(t.path, { build: `if [ -n "\${HANG:-}" ]; then echo started > /out/started; busybox sleep 120; fi\nmkdir -p "$1/l"; printf '[types]\\nlaunch = true\\n' > "$1/l.toml"` });
    const child = spawn(STRATA, ['build', 'killed', '--builder', p.builder, '--path', p.app, '--env', 'HANG=1', '--volume', `${p.out}:/out:rw`], { env: p.env, stdio: 'ignore' });
    for (let i = 0; i < 600 && !(await stat(join(p.out, 'started')).catch(() => undefined)); i++) await new Promise((r) => setTimeout(r, 100));
    assert.ok(await stat(join(p.out, 'started')), 'the build reached bin/build');
    // bin/strata execs node, so the child's pid is strata's own.
    process.kill(child.pid!, 'SIGKILL');
    await new Promise((r) => child.on('close', r));
    const state = join(t.path, 'home', 'run', 'runc-state');
    const running = async () => (await readdir(state).catch(() => [] as string[])).filter((n) => n.startsWith('strata-'));
    const [id] = await running();
    assert.ok(id, 'the killed build left its container behind');
    // The sandbox dies with strata (runc is started with a parent-death signal): within seconds, not at the next build.
    const status = async () => {
      const r = await run('runc', ['--root', state, 'state', id]);
      return r.code === 0 ? (JSON.parse(r.stdout) as { status: string }).status : 'gone';
    };
    for (let i = 0; i < 100 && (await status()) === 'running'; i++) await new Promise((r) => setTimeout(r, 100));
    assert.notEqual(await status(), 'running', 'the container of a killed build stops with it');
    assert.equal((await readdir(join(t.path, 'home', 'builds'))).length, 1, 'and its build dir');
    const next = await run(STRATA, ['build', 'next', '--builder', p.builder, '--path', p.app], { env: p.env });
    assert.equal(next.code, 0, next.stderr + next.stdout);
    assert.deepEqual(await running(), [], 'the orphaned container was killed and deleted');
    assert.deepEqual(await readdir(join(t.path, 'home', 'builds')), [], 'the dead build dir was removed');
    assert.deepEqual((await readdir(join(t.path, 'home', 'run'))).filter((n) => n.startsWith('bundle-')), []);
  } finally {
    await t.cleanup();
  }
});

test('strata run passes on the app\'s exit code; an unknown --process or a failing runtime is one line and non-zero', { timeout: 120_000 }, async () => {
  const t = await tempDir('strata-run-');
  try {
    const p = await probeBuilder(t.path, {
      build: `mkdir -p "$1/l"; printf '[types]\\nlaunch = true\\n' > "$1/l.toml"
printf '[[processes]]\\ntype = "web"\\ncommand = ["bash", "-c", "exit 3"]\\ndefault = true\\n[[processes]]\\ntype = "ok"\\ncommand = ["bash", "-c", "echo fine"]\\n' > "$1/launch.toml"`,
    });
    await runOk(STRATA, ['build', 'exits', '--builder', p.builder, '--path', p.app], { env: p.env });
    const three = await run(STRATA, ['run', 'exits'], { env: p.env });
    assert.equal(three.code, 3);
    const ok = await run(STRATA, ['run', 'exits', '--process', 'ok'], { env: p.env });
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, /fine/);
    const unknown = await run(STRATA, ['run', 'exits', '--process', 'nope'], { env: p.env });
    assert.equal(unknown.code, 1);
    assert.equal(unknown.stderr.trim(), 'strata: error: --process nope: exits has no such process (it has ok, web)');
    const broken = await run(STRATA, ['run', 'exits', '--', '/no/such/program'], { env: p.env });
    assert.notEqual(broken.code, 0);
    // --platform chooses from an index; this machine's own is the only one it can run (no emulation is registered).
    const hostArch = process.arch === 'x64' ? 'amd64' : process.arch;
    assert.equal((await run(STRATA, ['run', 'exits', '--process', 'ok', '--platform', `linux/${hostArch}`], { env: p.env })).code, 0);
    const other = hostArch === 'amd64' ? 'arm64' : 'amd64';
    const foreign = await run(STRATA, ['run', 'exits', '--platform', `linux/${other}`], { env: p.env });
    assert.equal(foreign.code, 1);
    assert.equal(foreign.stderr.trim(), `strata: error: --platform linux/${other}: this machine runs linux/${hostArch} images only (another architecture needs emulation, which strata does not register)`);
  } finally {
    await t.cleanup();
  }
});

test('bad input is one line naming the file or flag: ports, --volume, builder.toml, package.toml, a buildpack without bin/detect, env-file lines', { timeout: 120_000 }, async () => {
  const t = await tempDir('strata-bad-');
  try {
    const env = { ...process.env, STRATA_HOME: join(t.path, 'home') };
    const one = (r: { code: number; stderr: string }, re: RegExp) => {
      assert.notEqual(r.code, 0);
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
      assert.match(r.stderr.trim(), re);
    };
    one(await run(STRATA, ['image', 'copy', `oci:${t.path}/x:1`, '127.0.0.1:99999/x:1'], { env }), /^strata: error: invalid image reference "127\.0\.0\.1:99999\/x:1": port 99999 is out of range/);
    await mkdir(join(t.path, 'app'));
    one(await run(STRATA, ['build', 'x', '--path', join(t.path, 'app'), '--volume', '/nonexistent-dir:/mnt'], { env }), /^strata: error: --volume "\/nonexistent-dir:\/mnt": \/nonexistent-dir does not exist$/);
    const bp = join(t.path, 'bp');
    await mkdir(join(bp, 'bin'), { recursive: true });
    await writeFile(join(bp, 'buildpack.toml'), 'api = "0.10"\n[buildpack]\nid = "test/nodetect"\nversion = "1.0.0"\n');
    await writeFile(join(bp, 'bin', 'build'), '#!/bin/sh\n');
    await chmod(join(bp, 'bin', 'build'), 0o755);
    await writeFile(join(t.path, 'package.toml'), `[buildpack]\nuri = "${bp}"\n`);
    one(await run(STRATA, ['buildpack', 'package', `oci:${t.path}/pkg:1`, '--config', join(t.path, 'package.toml')], { env }), /buildpack\.toml: test\/nodetect@1\.0\.0 has no bin\/detect/);
    await writeFile(join(t.path, 'plan9.toml'), `[buildpack]\nuri = "${bp}"\n[platform]\nos = "plan9"\n`);
    one(await run(STRATA, ['buildpack', 'package', `oci:${t.path}/pkg:1`, '--config', join(t.path, 'plan9.toml')], { env }), /plan9\.toml: \[platform\] os "plan9" is not linux or windows$/);
    await writeFile(join(t.path, 'builder.toml'), `[[buildpacks]]\nuri = "${bp}"\n[[order]]\n[[order.group]]\nid = "x"\n[build]\nimage = "oci:${t.path}/b:1"\nimagee = "typo"\n[[run.images]]\nimage = "r"\n`);
    one(await run(STRATA, ['builder', 'create', `oci:${t.path}/builder:1`, '--config', join(t.path, 'builder.toml')], { env }), /builder\.toml \[build\]: unknown key "imagee" \(expected image, env\)$/);
    await writeFile(join(t.path, 'builder2.toml'), `[[buildpacks]]\nuri = "${bp}"\n[[order]]\n[[order.group]]\nid = "x"\nversoin = "1"\n[build]\nimage = "oci:${t.path}/b:1"\n[[run.images]]\nimage = "r"\n`);
    one(await run(STRATA, ['builder', 'create', `oci:${t.path}/builder:1`, '--config', join(t.path, 'builder2.toml')], { env }), /unknown key "versoin"/);
    // A config.toml cut short is said by any command, not only by one that needs a setting from it.
    await mkdir(join(t.path, 'home-cfg'), { recursive: true });
    await writeFile(join(t.path, 'home-cfg', 'config.toml'), 'default-builder = "b"\n[run-image-mirr');
    one(await run(STRATA, ['images'], { env: { ...env, STRATA_HOME: join(t.path, 'home-cfg') } }), /^strata: error: .*home-cfg\/config\.toml: invalid TOML at line 2/);
    await writeFile(join(t.path, 'lines.env'), 'GOOD=1\nNOT_SET_ANYWHERE_12345\n');
    const lines = await run(STRATA, ['build', 'x', '--env-file', join(t.path, 'lines.env'), '--path', join(t.path, 'app'), '--builder', `oci:${t.path}/nobuilder:1`], { env });
    assert.match(lines.stderr, /Warning: --env-file .*lines\.env line 2: NOT_SET_ANYWHERE_12345 has no "=" and is not set in this environment; left out/);
  } finally {
    await t.cleanup();
  }
});

test('build --publish whose previous image cannot be read (every answer cut short) fails in one line instead of building cold', { timeout: 120_000 }, async () => {
  const t = await tempDir('strata-prev-');
  const reg = await startRegistry();
  try {
    const p = await probeBuilder(t.path, {});
    const first = await run(STRATA, ['build', `${reg.host}/prev/app:1`, '--builder', p.builder, '--path', p.app, '--publish'], { env: p.env });
    assert.equal(first.code, 0, first.stderr + first.stdout);
    const proxy = await startFaultProxy(reg.host, (_n, req) => (req.method === 'GET' && req.url?.includes('/manifests/') ? 'cut' : undefined));
    try {
      const second = await run(STRATA, ['build', `${proxy.host}/prev/app:1`, '--builder', p.builder, '--path', p.app, '--publish'], { env: p.env });
      assert.notEqual(second.code, 0);
      assert.doesNotMatch(second.stdout, /No previous image/);
      assert.match(second.stderr.trim(), /^strata: error: previous image 127\.0\.0\.1:\d+\/prev\/app:1 cannot be read: .*gave up after \d+ attempts$/);
    } finally {
      await proxy.stop();
    }
  } finally {
    await reg.stop();
    await t.cleanup();
  }
});

test('strata as a uid with no passwd entry and no HOME: each command runs or says in one line what to set, never a stack trace', { timeout: 60_000 }, async () => {
  const t = await tempDir('strata-nohome-');
  try {
    const uid = 4322;
    await assert.rejects(runOk('getent', ['passwd', String(uid)]), 'the uid has no passwd entry');
    await runOk('chmod', ['755', t.path]);
    const as = (args: string[], env: NodeJS.ProcessEnv = {}) => run(STRATA, args, { uid, gid: uid, cwd: '/', env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env } });
    assert.equal((await as(['version'])).code, 0);
    for (const args of [['images'], ['build', 'x', '--path', t.path], ['fleet', 'images'], ['config', 'default-builder', 'r.example/b']]) {
      const r = await as(args);
      assert.equal(r.code, 1, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, /^strata: .*no home directory .*: set (STRATA_HOME|STRATA_CONFIG_HOME), or HOME\n$/, args.join(' '));
    }
    // Reading config needs no home: there is none to read.
    const read = await as(['config', 'default-builder']);
    assert.equal(read.code, 0, read.stderr);
    assert.equal(read.stdout.trim(), 'null');
    // Given a place of its own, it works.
    const home = join(t.path, 'home');
    await mkdir(home);
    await runOk('chown', [`${uid}:${uid}`, home]);
    const listed = await as(['images'], { STRATA_HOME: home });
    assert.equal(listed.code, 0, listed.stderr);
  } finally {
    await t.cleanup();
  }
});

test('an environment bigger than a process can be given is one line: an --env-file or project.toml value before the build, a launch env file before the export', { timeout: 180_000 }, async () => {
  const t = await tempDir('strata-e2big-');
  try {
    const p = await probeBuilder(t.path, {
      build: `mkdir -p "$1/l/env.launch"; printf '[types]\\nlaunch = true\\n' > "$1/l.toml"
if [ -n "\${BIG_LAUNCH:-}" ]; then busybox head -c 307200 /dev/zero > "$1/l/env.launch/HUGE"; fi
printf '[[processes]]\\ntype = "web"\\ncommand = ["bash", "-c", "echo web"]\\ndefault = true\\n' > "$1/launch.toml"`,
    });
    // Through --env-file: an argument that big could not even reach strata.
    await writeFile(join(t.path, 'big.env'), `BIG=${'x'.repeat(300 * 1024)}\n`);
    const flag = await run(STRATA, ['build', 'e2big', '--builder', p.builder, '--path', p.app, '--env-file', join(t.path, 'big.env')], { env: p.env });
    assert.equal(flag.code, 1);
    assert.match(flag.stderr, /^strata: error: --env-file .*big\.env line 1: BIG: the value is 307200 bytes; Linux limits one variable to 128 KiB/);
    assert.equal(flag.stderr.trim().split('\n').length, 1);
    // The same from project.toml, which no flag checks on the way in.
    await writeFile(join(p.app, 'project.toml'), `[_]\nschema-version = "0.2"\n[[io.buildpacks.build.env]]\nname = "BIG"\nvalue = "${'x'.repeat(300 * 1024)}"\n`);
    const project = await run(STRATA, ['build', 'e2big', '--builder', p.builder, '--path', p.app], { env: p.env });
    assert.equal(project.code, 1);
    assert.match(project.stderr, /^strata: error: project\.toml \[\[io\.buildpacks\.build\.env\]\] BIG: 301 KiB; a process can be given at most 128 KiB per variable\n$/);
    await rm(join(p.app, 'project.toml'));
    const launch = await run(STRATA, ['build', 'e2big', '--builder', p.builder, '--path', p.app, '--env', 'BIG_LAUNCH=1'], { env: p.env });
    assert.notEqual(launch.code, 0);
    assert.match(launch.stderr, /^strata: error: buildpack test\/probe: layer "l" env\.launch\/HUGE: 301 KiB; a process can be given at most 128 KiB per variable; the image could not start\n$/m);
    assert.doesNotMatch(await runOk(STRATA, ['images'], { env: p.env }), /e2big/, 'nothing exported');
  } finally {
    await t.cleanup();
  }
});

test('rebase --publish reads the run image from its registry first: a damaged local copy of it does not stop the rebase', { timeout: 180_000 }, async () => {
  const t = await tempDir('strata-rebase-pub-');
  const reg = await startRegistry();
  try {
    const p = await probeBuilder(t.path, {});
    const run2 = await makeLayoutImage(join(t.path, 'run2'), 'run', [await hostToolImageFiles(), { 'etc/v2': 'patched\n' }], { 'io.buildpacks.rebasable': 'true' });
    await runOk(STRATA, ['image', 'copy', `oci:${p.images}:run`, `${reg.host}/run:1`], { env: p.env });
    await runOk(STRATA, ['image', 'copy', `oci:${join(t.path, 'run2')}:run`, `${reg.host}/run:2`], { env: p.env });
    const built = await run(STRATA, ['build', `${reg.host}/app:1`, '--builder', p.builder, '--path', p.app, '--publish', '--run-image', `${reg.host}/run:1`], { env: p.env });
    assert.equal(built.code, 0, built.stderr + built.stdout);
    // The same run image in the local store (as `base create` leaves one), its top layer damaged on disk.
    const local = await OciLayout.open(join(t.path, 'home', 'images'), { create: true });
    await copyImage(run2.layout, 'run', local, `${reg.host}/run:2`);
    const manifest = await local.getManifest(`${reg.host}/run:2`);
    const top = manifest.kind === 'manifest' ? manifest.manifest.layers.at(-1)!.digest : '';
    await writeFile(join(t.path, 'home', 'images', 'blobs', 'sha256', top.slice(7)), 'damaged');
    const rebased = await run(STRATA, ['rebase', `${reg.host}/app:1`, '--publish', '--run-image', `${reg.host}/run:2`, '--force'], { env: p.env });
    assert.equal(rebased.code, 0, rebased.stderr + rebased.stdout);
    assert.match(rebased.stdout, new RegExp(`Rebased ${reg.host.replace(/\./g, '\\.')}/app:1 onto ${reg.host.replace(/\./g, '\\.')}/run@sha256:`));
  } finally {
    await reg.stop();
    await t.cleanup();
  }
});
