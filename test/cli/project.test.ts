// project.toml read as pack reads it: relative buildpack paths from its own dir, its version and source in the label.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { probeBuilder, STRATA } from '../harness/probe.js';
import { run, tempDir } from '../harness/proc.js';
import { writeBuildpack } from '../harness/buildpacks.js';
import { OciLayout } from '../../src/oci/layout.js';
import { resolveImage } from '../../src/oci/image.js';

test('project.toml: a relative buildpack uri is found from the project dir, not the cwd; version and source-url reach io.buildpacks.project.metadata', { timeout: 300_000 }, async () => {
  const t = await tempDir('strata-project-');
  try {
    const p = await probeBuilder(t.path, {});
    await writeBuildpack(join(t.path, 'project-bps'), { id: 'test/relative', build: 'echo "relative buildpack ran"' });
    await writeFile(
      join(p.app, 'project.toml'),
      '[_]\nschema-version = "0.2"\nid = "app"\nversion = "1.2.3"\nsource-url = "https://example.com/app.git"\n[[io.buildpacks.group]]\nuri = "../project-bps/test_relative/1.0.0"\n',
    );
    const elsewhere = join(t.path, 'elsewhere');
    await mkdir(elsewhere);
    const out = join(t.path, 'out-layout');
    const r = await run(STRATA, ['build', `oci:${out}:app`, '--builder', p.builder, '--path', p.app], { env: p.env, cwd: elsewhere });
    assert.equal(r.code, 0, r.stderr + r.stdout);
    assert.match(r.stdout, /relative buildpack ran/);
    const image = await resolveImage(await OciLayout.open(out), 'app');
    assert.deepEqual(JSON.parse(image.config.config!.Labels!['io.buildpacks.project.metadata']!), {
      source: { type: 'project', version: { declared: '1.2.3' }, metadata: { url: 'https://example.com/app.git' } },
    });
  } finally {
    await t.cleanup();
  }
});
