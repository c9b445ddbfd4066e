import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tempDir } from '../harness/proc.js';
import { runDemo } from '../../src/demo/demo.js';

test('the demo end to end: build, BOM, rebuild reusing node_modules, rebase in milliseconds, HTTP 200; a fleet of three rebuilt on a commit and rebased on a run-image push', { timeout: 900_000 }, async () => {
  const home = await tempDir('strata-demo-home-');
  process.env.STRATA_DEBOOTSTRAP_CACHE ||= '/tmp/strata-debootstrap-cache';
  try {
    // runDemo checks the story's own claims as it goes (the SBOM names Node.js, the modules layer is reused) and throws otherwise.
    const r = await runDemo({ home: home.path });
    assert.equal(r.httpStatus, 200);
    assert.match(r.body, /Hello from Node\.js v20\.20\.2, built by strata/);
    assert.ok(r.rebaseMs < 2000, `rebase took ${r.rebaseMs} ms`);
    for (const row of ['default/cart 1 build succeeded CONFIG', 'default/catalog 2 build succeeded COMMIT', 'default/cart 2 rebase succeeded STACK', 'default/checkout 2 rebase succeeded STACK']) assert.ok(r.fleet.includes(row), `fleet history: ${row}`);
  } finally {
    await home.cleanup();
  }
});
