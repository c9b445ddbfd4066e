// What a buildpack can do to the machine from inside the sandbox: fork without end, eat memory; and what strata's own
// command line must not let through to Node.js.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CNB_UID, lifecycleRoot } from '../harness/buildpacks.js';
import { probeBuilder, STRATA } from '../harness/probe.js';
import { run, runOk, tempDir } from '../harness/proc.js';

/** A builder whose one buildpack runs `detect` (bash) with /out bound to a dir the test reads afterwards. */
const sandboxBuilder = (root: string, detect: string) => probeBuilder(root, { detect, build: 'true' });

const FORK = `/cnb/lifecycle/node -e '
const { spawn } = require("child_process");
let started = 0, refused = 0;
const kids = [];
for (let i = 0; i < 400; i++) {
  const c = spawn("/bin/busybox", ["sleep", "3"]);
  c.on("error", () => refused++);
  c.on("spawn", () => started++);
  kids.push(c);
}
setTimeout(() => { require("fs").writeFileSync("/out/forks.json", JSON.stringify({ started, refused })); for (const k of kids) k.kill(); }, 1500);
'
busybox stat -c %a /tmp > /out/tmp-mode
echo hi > /tmp/probe && echo writable >> /out/tmp-mode
exit 0`;

test('the sandbox caps processes (a fork bomb stops at the pids limit) and gives a sticky, writable /tmp', { timeout: 120_000 }, async () => {
  const t = await tempDir('strata-limits-');
  try {
    const s = await sandboxBuilder(t.path, FORK);
    await runOk(STRATA, ['config', 'sandbox-pids-limit', '64'], { env: s.env });
    const r = await run(STRATA, ['build', 'forky', '--builder', s.builder, '--path', s.app, '--volume', `${s.out}:/out:rw`], { env: s.env });
    assert.equal(r.code, 0, r.stderr + r.stdout);
    const forks = JSON.parse(await readFile(join(s.out, 'forks.json'), 'utf8')) as { started: number; refused: number };
    assert.ok(forks.started < 64, `at most the limit started (${forks.started})`);
    assert.ok(forks.refused > 300, `the rest were refused (${forks.refused})`);
    assert.equal(await readFile(join(s.out, 'tmp-mode'), 'utf8'), '1777\nwritable\n');
    assert.match((await run(STRATA, ['config', 'sandbox-pids-limit', 'lots'], { env: s.env })).stderr, /sandbox-pids-limit NaN: expected a whole number/);
  } finally {
    await t.cleanup();
  }
});

test('the sandbox caps memory: a buildpack allocating past the limit is stopped and the build fails', { timeout: 120_000 }, async () => {
  const t = await tempDir('strata-limits-');
  try {
    const s = await sandboxBuilder(t.path, `/cnb/lifecycle/node -e 'const a = []; for (let i = 0; i < 40; i++) a.push(Buffer.alloc(10 << 20, 1)); require("fs").writeFileSync("/out/allocated", "400 MB")'\nexit 0`);
    await runOk(STRATA, ['config', 'sandbox-memory-limit', '128m'], { env: s.env });
    const r = await run(STRATA, ['build', 'hungry', '--builder', s.builder, '--path', s.app, '--volume', `${s.out}:/out:rw`], { env: s.env });
    assert.notEqual(r.code, 0);
    assert.equal(await readFile(join(s.out, 'allocated'), 'utf8').catch(() => 'not written'), 'not written');
  } finally {
    await t.cleanup();
  }
});

test('rootless (bubblewrap): /tmp is sticky and writable, and the pids limit holds there too', { timeout: 120_000 }, async () => {
  const t = await tempDir('strata-limits-');
  try {
    const s = await sandboxBuilder(t.path, FORK);
    await runOk('chown', ['-R', `${CNB_UID}:${CNB_UID}`, t.path]);
    await chmod(t.path, 0o755);
    const strata = join(await lifecycleRoot(), 'bin', 'strata');
    const asUser = { env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: t.path, STRATA_HOME: join(t.path, 'home') }, uid: CNB_UID, gid: CNB_UID };
    await runOk(strata, ['config', 'sandbox-pids-limit', '64'], asUser);
    const r = await run(strata, ['build', 'forky', '--builder', s.builder, '--path', s.app, '--volume', `${s.out}:/out:rw`], asUser);
    assert.equal(r.code, 0, r.stderr + r.stdout);
    assert.equal(await readFile(join(s.out, 'tmp-mode'), 'utf8'), '1777\nwritable\n');
    const forks = JSON.parse(await readFile(join(s.out, 'forks.json'), 'utf8')) as { started: number; refused: number };
    assert.ok(forks.started < 64, `at most the limit started (${forks.started})`);
  } finally {
    await t.cleanup();
  }
});

test('--env-file is read by strata, never by Node.js: NODE_OPTIONS in it runs nothing in strata, a missing file is one line', async () => {
  const t = await tempDir('strata-envfile-');
  try {
    const marker = join(t.path, 'injected');
    await writeFile(join(t.path, 'inject.cjs'), `require('fs').writeFileSync(${JSON.stringify(marker)}, 'ran in ' + process.pid)`);
    await writeFile(join(t.path, 'evil.env'), `NODE_OPTIONS=--require ${join(t.path, 'inject.cjs')}\n`);
    for (const form of [['--env-file', join(t.path, 'evil.env')], [`--env-file=${join(t.path, 'evil.env')}`]]) {
      const r = await run(STRATA, ['build', 'x', ...form, '--path', join(t.path, 'missing-app')]);
      assert.match(r.stderr.trim(), /^strata: error: --path .*missing-app: not a directory, .zip or .jar$/);
      assert.equal(await readFile(marker, 'utf8').catch(() => 'absent'), 'absent', 'the --require never ran');
    }
    const missing = await run(STRATA, ['build', 'x', '--env-file', join(t.path, 'nope.env'), '--path', t.path]);
    assert.equal(missing.stderr.trim(), `strata: error: --env-file ${join(t.path, 'nope.env')}: not found`);
    // Too big for one environment string of the buildpacks' processes (a spawn would fail with E2BIG).
    await writeFile(join(t.path, 'big.env'), `BIG=${'x'.repeat(200_000)}\n`);
    const huge = await run(STRATA, ['build', 'x', '--env-file', join(t.path, 'big.env'), '--path', t.path]);
    assert.match(huge.stderr.trim(), /^strata: error: --env-file .*big\.env line 1: BIG: the value is 200000 bytes; Linux limits one variable to 128 KiB/);
  } finally {
    await t.cleanup();
  }
});
