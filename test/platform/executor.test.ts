// A sandbox started ahead of its inputs (runc's `hold`): what it can see and do before the host says go, and what a
// called-off or killed run leaves behind.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { RuncExecutor, reapOrphans, type SandboxRun } from '../../src/platform/executor.js';
import { hostToolImageFiles, writeTree } from '../harness/images.js';
import { run, tempDir } from '../harness/proc.js';
import { spawn } from 'node:child_process';
import { PROJECT_ROOT } from '../../src/version.js';

async function world(root: string) {
  const rootfs = join(root, 'rootfs');
  await writeTree(rootfs, await hostToolImageFiles());
  for (const d of ['layers', 'out', 'proc', 'dev', 'sys', 'tmp']) await mkdir(join(rootfs, d), { recursive: true });
  const layers = join(root, 'layers');
  const out = join(root, 'out');
  await mkdir(layers);
  await mkdir(out);
  await chmod(out, 0o777);
  const state = join(root, 'state');
  const spec = (script: string): SandboxRun => ({
    args: ['/bin/busybox', 'sh', '-c', script],
    env: ['PATH=/bin'],
    uid: 1000,
    gid: 1000,
    cwd: '/',
    mounts: [
      { source: layers, destination: '/layers' },
      { source: out, destination: '/out' },
    ],
    network: 'none',
  });
  return { rootfs, layers, out, state, spec, executor: new RuncExecutor(rootfs, state) };
}

const mountsUnder = async (dir: string): Promise<number> => (await readFile('/proc/self/mountinfo', 'utf8')).split('\n').filter((l) => l.split(' ')[4]?.startsWith(dir)).length;

test('a held sandbox sees an empty dir it can neither read nor write until go, then the real one; nothing stays mounted', async () => {
  const t = await tempDir('strata-hold-');
  try {
    const w = await world(t.path);
    await writeFile(join(w.layers, 'before'), 'the host had this\n');
    let release!: (go: boolean) => void;
    const released = new Promise<boolean>((r) => (release = r));
    // A lifecycle that does not wait for the gate (a hostile builder's): it looks and plants at once, then later.
    const running = w.executor.run({
      ...w.spec('ls -A /layers > /out/early 2>/dev/null; touch /layers/planted 2>/dev/null && echo planted > /out/planted; echo "$STRATA_LIFECYCLE_GATE" > /out/gate; read -r said; echo "$said" > /out/said; ls -A /layers > /out/late'),
      hold: { destination: '/layers', release: released },
    });
    await new Promise((r) => setTimeout(r, 700));
    // The host writes while the sandbox runs: the analysis's analyzed.toml, a restore.
    await writeFile(join(w.layers, 'analyzed.toml'), 'written while held\n');
    release(true);
    assert.equal(await running, 0);
    assert.equal(await readFile(join(w.out, 'early'), 'utf8'), '');
    assert.equal(await readFile(join(w.out, 'planted'), 'utf8').catch(() => 'no'), 'no');
    assert.deepEqual((await readdir(w.layers)).sort(), ['analyzed.toml', 'before']);
    assert.equal(await readFile(join(w.out, 'gate'), 'utf8'), '1\n');
    assert.equal(await readFile(join(w.out, 'said'), 'utf8'), 'go\n');
    assert.equal(await readFile(join(w.out, 'late'), 'utf8'), 'analyzed.toml\nbefore\n');
    assert.equal(await mountsUnder(w.state), 0);
    assert.deepEqual((await readdir(w.state)).filter((n) => n.startsWith('gate-')), []);
  } finally {
    await t.cleanup();
  }
});

test('a held run called off hears no go and never sees the real dir; a strata killed while holding leaves no mount', async () => {
  const t = await tempDir('strata-hold-');
  try {
    const w = await world(t.path);
    await writeFile(join(w.layers, 'kept'), 'x');
    const called = await w.executor.run({ ...w.spec('read -r said; echo "[$said]" > /out/said; ls -A /layers > /out/seen 2>/dev/null; true'), hold: { destination: '/layers', release: Promise.resolve(false) } });
    assert.equal(called, 0, await readFile(join(w.out, 'said'), 'utf8').catch(() => 'nothing said'));
    assert.equal(await readFile(join(w.out, 'said'), 'utf8'), '[]\n');
    assert.equal(await readFile(join(w.out, 'seen'), 'utf8'), '');
    assert.equal(await mountsUnder(w.state), 0);

    // A strata killed while it holds a sandbox: the container goes (its guardian), and with runc's own mount namespace
    // every mount of the hold; only an empty dir is left, which the next run removes. The layers dir is untouched.
    const script = `const { RuncExecutor } = await import(${JSON.stringify(join(PROJECT_ROOT, 'dist', 'src', 'platform', 'executor.js'))});
      const spec = ${JSON.stringify(w.spec('read -r said; sleep 30'))};
      await new RuncExecutor(${JSON.stringify(w.rootfs)}, ${JSON.stringify(w.state)}).run({ ...spec, hold: { destination: '/layers', release: new Promise(() => {}) }, started: () => console.log('up') });`;
    const owner = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise((resolve) => owner.stdout.once('data', resolve));
    await new Promise((r) => setTimeout(r, 500));
    owner.kill('SIGKILL');
    await new Promise((resolve) => owner.once('close', resolve));
    for (let i = 0; i < 50 && (await run('sh', ['-c', `runc --root ${join(w.state, 'runc-state')} list -q | grep -q .`])).code === 0; i++) await new Promise((r) => setTimeout(r, 100));
    assert.equal((await run('runc', ['--root', join(w.state, 'runc-state'), 'list', '-q'])).stdout.trim(), '', 'the held container went with its owner');
    assert.equal(await mountsUnder(t.path), 0, 'no mount of the hold is left on the host');
    assert.equal((await readdir(w.state)).filter((n) => n.startsWith('gate-')).length, 1);
    await reapOrphans(w.state);
    assert.deepEqual((await readdir(w.state)).filter((n) => n.startsWith('gate-')), []);
    assert.deepEqual(await readdir(w.layers), ['kept']);
  } finally {
    await t.cleanup();
  }
});

test("strata's lifecycle with the gate set reads nothing until go; a closed stdin ends it quietly", async () => {
  const t = await tempDir('strata-hold-');
  try {
    const detector = join(PROJECT_ROOT, 'dist', 'lifecycle', 'detector');
    const env = { ...process.env, CNB_PLATFORM_API: '0.15', STRATA_LIFECYCLE_GATE: '1' };
    const args = ['-layers', join(t.path, 'layers'), '-app', t.path, '-order', join(t.path, 'no-order.toml')];
    const off = await run('sh', ['-c', `"$0" "$@" < /dev/null`, detector, ...args], { env });
    assert.equal(off.code, 1);
    assert.equal(off.stderr, '', 'called off: nothing read, nothing said');
    const on = await run('sh', ['-c', `echo go | "$0" "$@"`, detector, ...args], { env });
    assert.notEqual(on.code, 0);
    // Told to go, it goes on to its own checks (here: it will not run detection as root).
    assert.match(on.stderr, /refusing to run as root/);
  } finally {
    await t.cleanup();
  }
});
