import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { run, runOk, tempDir } from '../harness/proc.js';
import { PROJECT_ROOT } from '../../src/version.js';
import { freePort, startRegistry } from '../../src/devtools/registry.js';
import { writeApp } from '../../src/demo/demo.js';

const STRATA = join(PROJECT_ROOT, 'bin', 'strata');

test('out of the box: `strata build myapp --path ./app` makes the default Node.js builder once, builds, and the app serves HTTP 200', { timeout: 900_000 }, async () => {
  const t = await tempDir('strata-default-');
  const env = { ...process.env, STRATA_HOME: join(t.path, 'home'), STRATA_DEBOOTSTRAP_CACHE: process.env.STRATA_DEBOOTSTRAP_CACHE || '/tmp/strata-debootstrap-cache' };
  try {
    const app = join(t.path, 'app');
    await mkdir(app);
    await writeFile(join(app, 'package.json'), JSON.stringify({ name: 'plain', version: '1.0.0', scripts: { start: 'node server.js' } }));
    await writeFile(join(app, 'server.js'), "require('http').createServer((q, s) => s.end('out of the box on ' + process.version)).listen(process.env.PORT || 8080)");
    const built = await run(STRATA, ['build', 'myapp', '--path', app], { env });
    assert.equal(built.code, 0, built.stderr + built.stdout);
    assert.match(built.stdout, /Making strata\/builder:nodejs once: .*about 740 MB.*strata builder suggest/);
    assert.match(built.stdout, /Node\.js 22\.23\.3 \("22" from the buildpack's default\)/);
    assert.match(await runOk(STRATA, ['config', 'default-builder'], { env }), /strata\/builder:nodejs/);
    const again = await run(STRATA, ['build', 'myapp', '--path', app], { env });
    assert.doesNotMatch(again.stdout, /Making strata\/builder:nodejs/, 'made once');

    const port = await freePort();
    const server = spawn(STRATA, ['run', 'myapp', '--env', `PORT=${port}`], { env, stdio: 'ignore' });
    let status = 0;
    let body = '';
    for (let i = 0; i < 120 && status !== 200; i++) {
      await new Promise((r) => setTimeout(r, 500));
      ({ status, body } = await fetch(`http://127.0.0.1:${port}/`).then(async (r) => ({ status: r.status, body: await r.text() }), () => ({ status: 0, body: '' })));
    }
    server.kill('SIGTERM');
    await new Promise((r) => server.once('close', r));
    assert.equal(status, 200);
    assert.match(body, /out of the box on v22\.23\.3/);

    // For amd64 and arm64 with no other flag: the default builder is made again for both (its bases, Node.js and
    // lifecycle), and the index's arm64 image is really arm64: its Node.js, on its own Debian, answers arm64 under qemu.
    const multi = `oci:${join(t.path, 'multi')}:1`;
    const both = await run(STRATA, ['build', multi, '--path', app, '--platform', 'linux/amd64,linux/arm64'], { env });
    assert.equal(both.code, 0, both.stderr + both.stdout);
    const index = JSON.parse(await runOk('skopeo', ['inspect', '--raw', multi])) as { manifests: { platform: { architecture: string } }[] };
    assert.deepEqual(index.manifests.map((m) => m.platform.architecture), ['amd64', 'arm64']);
    await runOk('skopeo', ['copy', '--override-arch', 'arm64', multi, `oci:${join(t.path, 'arm')}:1`]);
    await runOk('umoci', ['unpack', '--image', `${join(t.path, 'arm')}:1`, join(t.path, 'arm-bundle')]);
    const rootfs = join(t.path, 'arm-bundle', 'rootfs');
    const arch = await runOk(join(PROJECT_ROOT, '.tools', 'qemu-aarch64-static'), ['-L', rootfs, join(rootfs, 'layers', 'strata_node-engine', 'node', 'bin', 'node'), '-p', 'process.arch + " " + process.version'], { env: { PATH: '/usr/bin:/bin' } });
    assert.equal(arch.trim(), 'arm64 v22.23.3');
    assert.match(await runOk('file', ['-b', join(rootfs, 'cnb', 'lifecycle', 'launcher')]), /ARM aarch64/);

    // The demo's yarn app with --publish: the index and both images (their run images' layers copied from the local
    // store) in a registry, where skopeo picks each platform's; yarn ran on this machine's Node.js, and the arm64
    // image's Node.js loads the modules it installed.
    const demoApp = join(t.path, 'demo-app');
    await writeApp(demoApp);
    // yarn reaches the npm registry from the sandbox: through this machine's CAs, as the demo does.
    await runOk(STRATA, ['config', 'ca-certificates', process.env.NODE_EXTRA_CA_CERTS || process.env.SSL_CERT_FILE || '/etc/ssl/certs/ca-certificates.crt'], { env });
    const registry = await startRegistry();
    try {
      const pushed = await run(STRATA, ['build', `${registry.host}/multi/app:1`, '--path', demoApp, '--platform', 'linux/amd64,linux/arm64', '--publish'], { env });
      assert.equal(pushed.code, 0, pushed.stderr + pushed.stdout);
      for (const a of ['amd64', 'arm64']) {
        const c = JSON.parse(await runOk('skopeo', ['inspect', '--tls-verify=false', '--override-arch', a, '--config', `docker://${registry.host}/multi/app:1`])) as { architecture: string };
        assert.equal(c.architecture, a);
      }
      await runOk('skopeo', ['copy', '--all', '--src-tls-verify=false', `docker://${registry.host}/multi/app:1`, `oci:${join(t.path, 'pulled')}:all`]);
      await runOk('skopeo', ['copy', '--src-tls-verify=false', '--override-arch', 'arm64', `docker://${registry.host}/multi/app:1`, `oci:${join(t.path, 'pulled-arm')}:1`]);
      await runOk('umoci', ['unpack', '--image', `${join(t.path, 'pulled-arm')}:1`, join(t.path, 'pulled-arm-bundle')]);
      const armRoot = join(t.path, 'pulled-arm-bundle', 'rootfs');
      const express = join(armRoot, 'layers', 'strata_yarn-install', 'modules', 'node_modules', 'express');
      const loaded = await runOk(join(PROJECT_ROOT, '.tools', 'qemu-aarch64-static'), ['-L', armRoot, join(armRoot, 'layers', 'strata_node-engine', 'node', 'bin', 'node'), '-e', `require(${JSON.stringify(express)}); console.log(process.arch, typeof require(${JSON.stringify(express)}))`], { env: { PATH: '/usr/bin:/bin' } });
      assert.equal(loaded.trim(), 'arm64 function');
    } finally {
      await registry.stop();
    }
  } finally {
    await t.cleanup();
  }
});
