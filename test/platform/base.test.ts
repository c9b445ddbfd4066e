import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { tempDir, run, runOk } from '../harness/proc.js';
import { writeBuildpack, orderToml } from '../harness/buildpacks.js';
import { PROJECT_ROOT } from '../../src/version.js';

const STRATA = join(PROJECT_ROOT, 'bin', 'strata');
// debootstrap takes ~22 s: its tree is kept here between test runs, as strata keeps it between `base create` runs.
const env = { ...process.env, STRATA_DEBOOTSTRAP_CACHE: process.env.STRATA_DEBOOTSTRAP_CACHE || '/tmp/strata-debootstrap-cache' };

async function runc(bundle: string, args: string[], uid: number): Promise<{ code: number; out: string }> {
  const spec = JSON.parse(await readFile(join(bundle, 'config.json'), 'utf8')) as { process: Record<string, unknown> };
  Object.assign(spec.process, { terminal: false, args, user: { uid, gid: uid }, env: ['PATH=/usr/local/bin:/usr/bin:/bin', 'CNB_PLATFORM_API=0.15', 'HOME=/home/cnb'], cwd: '/' });
  await writeFile(join(bundle, 'config.json'), JSON.stringify(spec));
  await chmod(join(bundle, 'rootfs'), 0o755);
  const id = `strata-base-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
  const r = await run('runc', ['run', '--bundle', bundle, id]);
  await run('runc', ['delete', '--force', id]);
  return { code: r.code, out: r.stdout + r.stderr };
}

test('base create makes Debian build and run images with debootstrap: cnb user, bash and coreutils inside, the base labels; a builder on them detects under runc', { timeout: 600_000 }, async () => {
  const w = await tempDir();
  try {
    const images = join(w.path, 'bases');
    const made = await run(STRATA, ['base', 'create', '--build-image', `oci:${images}:build`, '--run-image', `oci:${images}:run`], { env });
    assert.equal(made.code, 0, made.stderr);
    const again = await run(STRATA, ['base', 'create', '--build-image', `oci:${join(w.path, 'again')}:build`, '--run-image', `oci:${join(w.path, 'again')}:run`], { env });
    assert.match(again.stdout, /Using the cached bookworm tree|digest/);
    const digests = (out: string) => [...out.matchAll(/digest (sha256:[0-9a-f]+)/g)].map((m) => m[1]);
    assert.deepEqual(digests(again.stdout), digests(made.stdout), 'the same packages give the same digests');

    const build = JSON.parse(await runOk('skopeo', ['inspect', '--config', `oci:${images}:build`])) as { config: { Env: string[]; User: string; Labels: Record<string, string> }; os: string; architecture: string };
    const runCfg = JSON.parse(await runOk('skopeo', ['inspect', '--config', `oci:${images}:run`])) as { config: { Labels: Record<string, string> }; os: string; architecture: string };
    assert.ok(build.config.Env.includes('CNB_USER_ID=1000') && build.config.Env.includes('CNB_GROUP_ID=1000'));
    assert.equal(build.config.User, '1000:1000');
    for (const l of [build.config.Labels, runCfg.config.Labels]) {
      assert.equal(l['io.buildpacks.base.distro.name'], 'debian');
      assert.equal(l['io.buildpacks.base.distro.version'], '12');
      assert.equal(l['io.buildpacks.base.id'], 'io.strata.debian.bookworm');
      assert.equal(l['io.buildpacks.stack.id'], 'io.strata.debian.bookworm');
    }
    assert.equal(runCfg.config.Labels['io.buildpacks.rebasable'], 'true');
    assert.deepEqual([runCfg.os, runCfg.architecture], [build.os, build.architecture]);

    const bundle = join(w.path, 'bundle');
    await runOk('umoci', ['unpack', '--image', `${images}:build`, bundle]);
    const id = await runc(bundle, ['/bin/bash', '-c', 'id cnb; ls --version | head -1; echo HOME=$HOME; touch $HOME/w && echo writable'], 1000);
    assert.equal(id.code, 0, id.out);
    assert.match(id.out, /uid=1000\(cnb\) gid=1000\(cnb\)/);
    assert.match(id.out, /ls \(GNU coreutils\)/);
    assert.match(id.out, /writable/);

    // A builder on these bases: strata's lifecycle (with its own Node.js) detects inside the Debian build image.
    const src = join(w.path, 'src');
    const bp = await writeBuildpack(src, { id: 'test/node-like', detect: '[ -f package.json ] || exit 100' });
    await writeFile(join(w.path, 'builder.toml'), `[[buildpacks]]\nuri = "${bp}"\n${orderToml([['test/node-like']])}\n[build]\nimage = "oci:${images}:build"\n[[run.images]]\nimage = "example.com/run:bookworm"\n`);
    const builder = join(w.path, 'builder');
    const b = await run(STRATA, ['builder', 'create', `oci:${builder}:1`, '--config', join(w.path, 'builder.toml')]);
    assert.equal(b.code, 0, b.stderr);
    const labels = (JSON.parse(await runOk('skopeo', ['inspect', `oci:${builder}:1`])) as { Labels: Record<string, string> }).Labels;
    assert.equal(JSON.parse(labels['io.buildpacks.builder.metadata']!).buildpacks[0].id, 'test/node-like');
    assert.equal(labels['io.buildpacks.base.distro.name'], 'debian', 'the base labels carry over to the builder');
    assert.match(await runOk(STRATA, ['builder', 'inspect', `oci:${builder}:1`]), /└ Group #1:\n {7}└ test\/node-like@1\.0\.0/);
    const bb = join(w.path, 'builder-bundle');
    await runOk('umoci', ['unpack', '--image', `${builder}:1`, bb]);
    await writeFile(join(bb, 'rootfs', 'workspace', 'package.json'), '{}');
    const d = await runc(bb, ['/cnb/lifecycle/detector'], 1000);
    assert.equal(d.code, 0, d.out);
    assert.match(await readFile(join(bb, 'rootfs', 'layers', 'group.toml'), 'utf8'), /id = "test\/node-like"/);
  } finally {
    await w.cleanup();
  }
});

test('base create --platform linux/amd64,linux/arm64: each image an index; the arm64 tree is configured under emulation in a namespace of its own, and no emulator is left registered on the machine', { timeout: 900_000 }, async () => {
  const t = await tempDir('strata-base-arm64-');
  try {
    const e = { env: { ...env, STRATA_HOME: join(t.path, 'home') } };
    const out = await runOk(STRATA, ['base', 'create', '--build-image', `oci:${t.path}/img:build`, '--run-image', `oci:${t.path}/img:run`, '--platform', 'linux/amd64,linux/arm64'], e);
    assert.match(out, /run image oci:.*:run/);
    for (const kind of ['build', 'run']) {
      const index = JSON.parse(await runOk('skopeo', ['inspect', '--raw', `oci:${t.path}/img:${kind}`])) as { manifests: { platform: unknown }[] };
      assert.deepEqual(index.manifests.map((m) => m.platform), [{ os: 'linux', architecture: 'amd64' }, { os: 'linux', architecture: 'arm64', variant: 'v8' }]);
    }
    const arm = JSON.parse(await runOk('skopeo', ['inspect', '--override-arch', 'arm64', '--config', `oci:${t.path}/img:run`])) as { architecture: string; variant: string; config: { Labels: Record<string, string> } };
    assert.equal(arm.architecture, 'arm64');
    assert.equal(arm.config.Labels['io.buildpacks.base.distro.name'], 'debian');
    await runOk('skopeo', ['copy', '--override-arch', 'arm64', `oci:${t.path}/img:run`, `oci:${t.path}/arm:run`]);
    await runOk('umoci', ['unpack', '--image', `${t.path}/arm:run`, join(t.path, 'bundle')]);
    const rootfs = join(t.path, 'bundle', 'rootfs');
    assert.match(await runOk('file', ['-b', join(rootfs, 'usr', 'bin', 'bash')]), /ARM aarch64/);
    // Its packages were configured (dpkg ran their scripts under emulation), and its programs run on qemu with it.
    assert.match(await readFile(join(rootfs, 'var', 'lib', 'dpkg', 'status'), 'utf8'), /Package: coreutils\nEssential: yes\nStatus: install ok installed/);
    // (bash's builtins only: without a registered emulator, a program it started would not run.)
    const said = await runOk(join(PROJECT_ROOT, '.tools', 'qemu-aarch64-static'), ['-L', rootfs, join(rootfs, 'usr', 'bin', 'bash'), '-c', 'echo "$BASH_VERSION"; while read -r l; do [[ $l == cnb:* ]] && echo "$l"; done < /etc/passwd'], { env: { PATH: '/usr/bin:/bin' } });
    assert.match(said, /^5\.2\.\d+.*\ncnb:x:1000:1000:/);
    // The private binfmt_misc went with its namespace: nothing of strata's is registered here.
    const registered = await run('sh', ['-c', 'ls /proc/sys/fs/binfmt_misc 2>/dev/null']);
    assert.doesNotMatch(registered.stdout, /strata/);
  } finally {
    await t.cleanup();
  }
});
