// pack's global flags, old verbs, completion and report, on any command.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { STRATA } from '../harness/probe.js';
import { run, runOk, tempDir } from '../harness/proc.js';

test('global flags anywhere on any command; pack\'s old verbs; --version; report; completion for bash (run in bash), zsh and fish', async () => {
  const t = await tempDir('strata-globals-');
  try {
    const env = { ...process.env, STRATA_HOME: join(t.path, 'home'), PACK_HOME: join(t.path, 'pack') };
    for (const args of [['-v', 'builder', 'suggest'], ['builder', 'suggest', '--no-color', '--timestamps'], ['--force-color', 'suggest-builders', '-q']]) {
      const r = await run(STRATA, args, { env });
      assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stdout, /paketobuildpacks\/builder-jammy-base/);
    }
    assert.match(await runOk(STRATA, ['--version'], { env }), /^\d+\.\d+\.\d+\n$/);
    await runOk(STRATA, ['set-default-builder', 'some/builder:1'], { env });
    assert.equal(JSON.parse(await runOk(STRATA, ['config', 'default-builder'], { env })), 'some/builder:1');
    await runOk(STRATA, ['trust-builder', 'some/builder:1'], { env });
    assert.equal(await runOk(STRATA, ['list-trusted-builders'], { env }), 'some/builder:1\n');
    assert.match(await runOk(STRATA, ['inspect-builder', '--help'], { env }), /Usage: strata builder inspect/);
    const report = await runOk(STRATA, ['report'], { env });
    assert.match(report, /^Strata:\n {2}Version: \d/);
    assert.match(report, /runc: runc version/);
    assert.match(report, /default-builder = "some\/builder:1"/);
    const words = await runOk('bash', ['-c', `source <(${STRATA} completion bash); COMP_WORDS=(strata builder ""); COMP_CWORD=2; _strata; echo "\${COMPREPLY[@]}"`], { env });
    for (const w of ['create', 'inspect', 'suggest', '--verbose']) assert.ok(words.split(' ').map((x) => x.trim()).includes(w), `${w} in ${words}`);
    assert.match(await runOk(STRATA, ['completion', 'zsh'], { env }), /bashcompinit/);
    assert.match(await runOk(STRATA, ['completion', 'fish'], { env }), /complete -c strata -n '__fish_seen_subcommand_from builder' -a inspect/);
    const bad = await run(STRATA, ['completion', 'tcsh'], { env });
    assert.equal(bad.stderr.trim(), 'strata: error: completion "tcsh": use bash, zsh or fish');
  } finally {
    await t.cleanup();
  }
});
