import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { run, runOk, tempDir } from '../harness/proc.js';
import { PROJECT_ROOT } from '../../src/version.js';
import { freePort } from '../../src/devtools/registry.js';

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
  } finally {
    await t.cleanup();
  }
});
