// A no-op rebuild does no work proportional to layer size: cached layers come back by rename from the stash, an
// untouched layer is reused by fingerprint, a rewritten-but-equal one by its tar digest without compressing it.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { probeBuilder, STRATA } from '../harness/probe.js';
import { run, tempDir } from '../harness/proc.js';

const BUILD = `L="$1"
if [ -f "$L/big.toml" ] && [ -f "$L/big/data" ]; then echo "big: reused"; else
  mkdir -p "$L/big/bin" "$L/big/pkg"; busybox dd if=/dev/zero of="$L/big/data" bs=1M count=8 2>/dev/null
  echo tool > "$L/big/pkg/tool"; busybox ln -s ../pkg/tool "$L/big/bin/tool"; echo "big: made"; fi
printf '[types]\\nlaunch = true\\ncache = true\\n' > "$L/big.toml"
mkdir -p "$L/touchy/env"
printf 'same' > "$L/touchy/env/VALUE"
printf '[types]\\nlaunch = true\\n' > "$L/touchy.toml"
printf '[[processes]]\\ntype = "web"\\ncommand = ["bash", "-c", "echo web"]\\ndefault = true\\n' > "$L/launch.toml"`;

test('a no-op rebuild: cached layers renamed into place (not extracted), unchanged layers not read, equal rewrites not compressed', { timeout: 180_000 }, async () => {
  const t = await tempDir('strata-noop-');
  try {
    const p = await probeBuilder(t.path, { build: BUILD });
    const build = () => run(STRATA, ['build', 'noop', '--builder', p.builder, '--path', p.app, '--verbose'], { env: p.env });
    const first = await build();
    assert.equal(first.code, 0, first.stderr + first.stdout);
    assert.match(first.stdout, /big: made/);
    const second = await build();
    assert.equal(second.code, 0, second.stderr);
    assert.match(second.stdout, /big: reused/);
    assert.match(second.stdout, /stash: test_probe\/big put in place \(\w+\), not extracted/);
    assert.match(second.stdout, /Reusing layer 'test\/probe:big' \(\w+, unchanged: not read\)/);
    assert.match(second.stdout, /Reusing layer 'test\/probe:touchy' \(\w+, same content\)/, 'rewritten with the same bytes: reused by its tar digest');
    const digest = (out: string) => /digest (sha256:[0-9a-f]+)/.exec(out)?.[1];
    assert.equal(digest(second.stdout), digest(first.stdout));

    // A stashed layer that changed since (its fingerprint no longer matches) is not used: the cache's tar is.
    const stash = join(t.path, 'home', 'cache', 'stash');
    const key = (await readdir(stash))[0]!;
    await appendFile(join(stash, key, 'test_probe', 'big', 'data'), 'tampered');
    const third = await build();
    assert.equal(third.code, 0, third.stderr);
    assert.doesNotMatch(third.stdout, /big put in place/);
    assert.match(third.stdout, /Restored test\/probe:big from the cache/);
    assert.equal(digest(third.stdout), digest(first.stdout), 'the cache, not the tampered stash, made the layer');
  } finally {
    await t.cleanup();
  }
});
