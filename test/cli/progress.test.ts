// Progress as a user sees it: live bars on a terminal (a pseudo-terminal made by `script`), and the plain line per
// layer in a log (no terminal), with no escape codes there.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { probeBuilder, STRATA } from '../harness/probe.js';
import { run, tempDir } from '../harness/proc.js';

test('pulling and unpacking a builder: live bars with rate and time left on a terminal, one plain line per layer in a log', { timeout: 180_000 }, async () => {
  const t = await tempDir('strata-progress-');
  try {
    const p = await probeBuilder(t.path, {});
    const shell = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
    // A fresh home for each run, so the builder is unpacked each time.
    const tty = await run('script', ['-qec', `${STRATA} build tty-app --builder ${shell(p.builder)} --path ${shell(p.app)}`, '/dev/null'], { env: { ...p.env, STRATA_HOME: join(t.path, 'home-tty'), TERM: 'xterm', CI: '' } });
    assert.equal(tty.code, 0, tty.stdout);
    assert.match(tty.stdout, /\d+% \| [\d.]+\/[\d.]+ MB \| [\d.]+ MB\/s \| ETA \S+ \| Pulling and unpacking layer \d+\//, 'a live bar per layer');
    assert.match(tty.stdout, /\x1b\[/, 'drawn with the terminal\'s codes');
    const log = await run(STRATA, ['build', 'log-app', '--builder', p.builder, '--path', p.app], { env: { ...p.env, STRATA_HOME: join(t.path, 'home-log') } });
    assert.equal(log.code, 0, log.stderr);
    const all = log.stdout + log.stderr;
    assert.doesNotMatch(all, /\x1b\[/, 'no escape codes in a log');
    const lines = all.split('\n').filter((l) => l.includes('Pulling and unpacking layer'));
    const layers = Number(/layer \d+\/(\d+)/.exec(lines[0] ?? '')?.[1]);
    assert.ok(layers > 0 && lines.length === layers, `one line per layer:\n${lines.join('\n')}`);
    // -q: nothing about layers at all.
    const quiet = await run('script', ['-qec', `${STRATA} -q build q-app --builder ${shell(p.builder)} --path ${shell(p.app)}`, '/dev/null'], { env: { ...p.env, STRATA_HOME: join(t.path, 'home-q'), TERM: 'xterm', CI: '' } });
    assert.equal(quiet.code, 0, quiet.stdout);
    assert.doesNotMatch(quiet.stdout, /Pulling and unpacking|ETA/);
  } finally {
    await t.cleanup();
  }
});
