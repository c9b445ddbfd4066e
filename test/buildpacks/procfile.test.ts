import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { run, tempDir } from '../harness/proc.js';
import { PROJECT_ROOT } from '../../src/version.js';

const BUILD = join(PROJECT_ROOT, 'buildpacks', 'procfile', 'bin', 'build');

async function build(files: Record<string, string>): Promise<{ code: number; launch: string; out: string }> {
  const t = await tempDir('strata-procfile-');
  try {
    const app = join(t.path, 'app');
    const layers = join(t.path, 'layers');
    await mkdir(app);
    await mkdir(layers);
    for (const [f, c] of Object.entries(files)) await writeFile(join(app, f), c);
    const r = await run('bash', [BUILD, layers], { cwd: app, env: { PATH: process.env.PATH ?? '/usr/bin:/bin', CNB_LAYERS_DIR: layers } });
    return { code: r.code, out: r.stdout + r.stderr, launch: await readFile(join(layers, 'launch.toml'), 'utf8').catch(() => '') };
  } finally {
    await t.cleanup();
  }
}

test('procfile: Procfile lines become bash processes, web is the default (else the first); quotes survive', async () => {
  const r = await build({ Procfile: 'worker: node worker.js --queue "jobs"\nweb: node server.js\n' });
  assert.equal(r.code, 0, r.out);
  assert.match(r.launch, /type = "worker"\ncommand = \["bash", "-c", "node worker\.js --queue \\"jobs\\""\]\ndefault = false/);
  assert.match(r.launch, /type = "web"\ncommand = \["bash", "-c", "node server\.js"\]\ndefault = true/);
  const noWeb = await build({ Procfile: 'clock: node clock.js\nworker: node w.js\n' });
  assert.match(noWeb.launch, /type = "clock"\ncommand = .*\ndefault = true/);
  assert.match(noWeb.launch, /type = "worker"\ncommand = .*\ndefault = false/);
});

test('procfile: without a Procfile a Node.js app gets web = node <main>, else server.js or index.js; nothing to run is an error', async () => {
  assert.match((await build({ 'package.json': '{"main": "lib/app.js"}' })).launch, /command = \["node", "lib\/app\.js"\]/);
  assert.match((await build({ 'package.json': '{}', 'index.js': '' })).launch, /command = \["node", "index\.js"\]/);
  const none = await build({ 'package.json': '{}' });
  assert.notEqual(none.code, 0);
  assert.match(none.out, /strata\/procfile: no Procfile, no "main" in package\.json and no server\.js or index\.js: add a Procfile with a web: line/);
});
