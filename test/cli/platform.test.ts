// strata build --platform: an image for another architecture, built on this machine's builder with no emulation.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { probeBuilder, STRATA } from '../harness/probe.js';
import { run, runOk, tempDir } from '../harness/proc.js';
import { makeLayoutImage } from '../harness/images.js';
import { writeBuildpack } from '../harness/buildpacks.js';

const LAYER = `mkdir -p "$1/l"; echo l > "$1/l/f"; printf '[types]\\nlaunch = true\\n' > "$1/l.toml"
printf '[[processes]]\\ntype = "web"\\ncommand = ["bash", "-c", "echo web"]\\ndefault = true\\n' > "$1/launch.toml"`;

test('build --platform linux/arm64: buildpacks are told the target, the image stands on the arm64 run image with the aarch64 launcher; a buildpack without arm64 is refused', { timeout: 300_000 }, async () => {
  const t = await tempDir('strata-cross-');
  try {
    const p = await probeBuilder(t.path, {
      detect: 'echo "$CNB_TARGET_OS/$CNB_TARGET_ARCH" > /out/detect-target',
      build: `echo "$CNB_TARGET_ARCH" > /out/build-target\n${LAYER}`,
    });
    const env = { env: p.env };
    await makeLayoutImage(p.images, 'run-arm64', [{ 'etc/os-release': 'ID=debian\nARCH=arm64\n' }], { 'io.buildpacks.rebasable': 'true' }, [], { os: 'linux', architecture: 'arm64' });
    await runOk(STRATA, ['manifest', 'create', `oci:${p.images}:run-multi`, `oci:${p.images}:run`, `oci:${p.images}:run-arm64`, '--publish'], env);
    const app = `oci:${join(t.path, 'app-layout')}:arm`;
    const built = await run(STRATA, ['build', app, '--builder', p.builder, '--path', p.app, '--run-image', `oci:${p.images}:run-multi`, '--platform', 'linux/arm64', '--volume', `${p.out}:/out:rw`], env);
    assert.equal(built.code, 0, built.stderr + built.stdout);
    assert.equal(await readFile(join(p.out, 'detect-target'), 'utf8'), 'linux/arm64\n');
    assert.equal(await readFile(join(p.out, 'build-target'), 'utf8'), 'arm64\n');
    const config = JSON.parse(await runOk('skopeo', ['inspect', '--config', app])) as { architecture: string; os: string; rootfs: { diff_ids: string[] } };
    assert.equal(config.architecture, 'arm64');
    const runConfig = JSON.parse(await runOk('skopeo', ['inspect', '--config', `oci:${p.images}:run-arm64`])) as { rootfs: { diff_ids: string[] } };
    assert.equal(config.rootfs.diff_ids[0], runConfig.rootfs.diff_ids[0], 'on the arm64 run image');
    await runOk('umoci', ['unpack', '--image', `${join(t.path, 'app-layout')}:arm`, join(t.path, 'bundle')]);
    assert.match(await runOk('file', ['-b', join(t.path, 'bundle', 'rootfs', 'cnb', 'lifecycle', 'launcher')]), /ARM aarch64.*statically linked/);

    // Both at once: one build per platform, one index of them under the name.
    const both = `oci:${join(t.path, 'app-layout')}:both`;
    const two = await run(STRATA, ['build', both, '--builder', p.builder, '--path', p.app, '--run-image', `oci:${p.images}:run-multi`, '--platform', 'linux/amd64,linux/arm64', '--volume', `${p.out}:/out:rw`], env);
    assert.equal(two.code, 0, two.stderr + two.stdout);
    assert.match(two.stdout, /===> PLATFORM linux\/amd64[\s\S]*===> PLATFORM linux\/arm64/);
    const index = JSON.parse(await runOk('skopeo', ['inspect', '--raw', both])) as { manifests: { digest: string; platform: { architecture: string } }[] };
    assert.deepEqual(index.manifests.map((m) => m.platform.architecture), ['amd64', 'arm64']);
    for (const arch of ['amd64', 'arm64']) {
      const c = JSON.parse(await runOk('skopeo', ['inspect', '--override-arch', arch, '--config', both])) as { architecture: string };
      assert.equal(c.architecture, arch);
    }

    // A run image with no arm64 image, and a buildpack that declares amd64 only: each one line.
    const single = await run(STRATA, ['build', `oci:${join(t.path, 'app-layout')}:x`, '--builder', p.builder, '--path', p.app, '--run-image', `oci:${p.images}:run`, '--platform', 'linux/arm64'], env);
    assert.notEqual(single.code, 0);
    assert.match(single.stderr, /run image oci:.*:run has no linux\/arm64 image \(it is linux\/amd64\); for --platform linux\/arm64 it must be an index holding one/);
    const amdOnly = await writeBuildpack(join(t.path, 'amd-only'), { id: 'test/amd-only', api: '0.10', toml: '[[targets]]\nos = "linux"\narch = "amd64"\n', build: LAYER });
    const refused = await run(STRATA, ['build', `oci:${join(t.path, 'app-layout')}:y`, '--builder', p.builder, '--path', p.app, '--run-image', `oci:${p.images}:run-multi`, '--platform', 'linux/arm64', '--buildpack', amdOnly], env);
    assert.notEqual(refused.code, 0, refused.stderr + refused.stdout);
    assert.match(refused.stdout + refused.stderr, /test\/amd-only@1\.0\.0: no target matches the run image \(linux\/arm64\)/);
  } finally {
    await t.cleanup();
  }
});
