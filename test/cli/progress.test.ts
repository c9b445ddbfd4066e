// Progress as a user sees it: live bars on a terminal (a pseudo-terminal made by `script`), and the plain line per
// layer in a log (no terminal), with no escape codes there.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { probeBuilder, STRATA } from '../harness/probe.js';
import { run, tempDir } from '../harness/proc.js';

test('pulling and unpacking a builder, and copying an image: live bars with rate and time left on a terminal, one plain line per layer in a log', { timeout: 180_000 }, async () => {
  const t = await tempDir('strata-progress-');
  try {
    const p = await probeBuilder(t.path, {});
    const shell = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
    // A fresh home for each run, so the builder is unpacked each time.
    const tty = await run('script', ['-qec', `${STRATA} build tty-app --builder ${shell(p.builder)} --path ${shell(p.app)}`, '/dev/null'], { env: { ...p.env, STRATA_HOME: join(t.path, 'home-tty'), TERM: 'xterm', CI: '' } });
    assert.equal(tty.code, 0, tty.stdout);
    assert.match(tty.stdout, /\d+% [\d.]+\/[\d.]+ MB [\d.]+ MB\/s ETA \S+ Pulling and unpacking layer \d+\//, 'a live bar per layer');
    assert.match(tty.stdout, /\x1b\[/, 'drawn with the terminal\'s codes');
    assert.match(tty.stdout, /ETA \S+ Saving layer '[^']+' \(/, 'a live bar per layer the export sends');
    const log = await run(STRATA, ['build', 'log-app', '--builder', p.builder, '--path', p.app], { env: { ...p.env, STRATA_HOME: join(t.path, 'home-log') } });
    assert.equal(log.code, 0, log.stderr);
    const all = log.stdout + log.stderr;
    assert.doesNotMatch(all, /\x1b\[/, 'no escape codes in a log');
    // Each layer once: pulled, or (strata's own lifecycle layer) unpacked from this install.
    const lines = all.split('\n').filter((l) => /(Pulling and u|U)npacking layer \d+\//.test(l));
    const layers = Number(/layer \d+\/(\d+)/.exec(lines[0] ?? '')?.[1]);
    assert.ok(layers > 0 && lines.length === layers, `one line per layer:\n${lines.join('\n')}`);
    assert.doesNotMatch(all, /Saving layer/, 'a log keeps its one "Adding layer" line per layer');
    // Copies too: a bar per blob sent on a terminal, a line per blob in a log.
    const copyTty = await run('script', ['-qec', `${STRATA} image copy ${shell(`oci:${p.images}:run`)} ${shell(`oci:${join(t.path, 'copy-tty')}:run`)}`, '/dev/null'], { env: { ...p.env, TERM: 'xterm', CI: '' } });
    assert.equal(copyTty.code, 0, copyTty.stdout);
    assert.match(copyTty.stdout, /\d+% [\d.]+\/[\d.]+ MB [\d.]+ MB\/s ETA \S+ Copying [0-9a-f]{12}/);
    const copyLog = await run(STRATA, ['image', 'copy', `oci:${p.images}:run`, `oci:${join(t.path, 'copy-log')}:run`], { env: p.env });
    assert.equal(copyLog.code, 0, copyLog.stderr);
    assert.doesNotMatch(copyLog.stderr, /\x1b\[/);
    const sent = Number(/blobs: (\d+) sent/.exec(copyLog.stdout)?.[1]);
    assert.equal(copyLog.stderr.split('\n').filter((l) => /^Copying [0-9a-f]{12} \([\d.]+ MB\)$/.test(l)).length, sent, copyLog.stderr);
    // -q: nothing about layers at all.
    const quiet = await run('script', ['-qec', `${STRATA} -q build q-app --builder ${shell(p.builder)} --path ${shell(p.app)}`, '/dev/null'], { env: { ...p.env, STRATA_HOME: join(t.path, 'home-q'), TERM: 'xterm', CI: '' } });
    assert.equal(quiet.code, 0, quiet.stdout);
    assert.doesNotMatch(quiet.stdout, /[Uu]npacking layer|ETA/);
  } finally {
    await t.cleanup();
  }
});
