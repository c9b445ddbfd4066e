import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseDockerfile } from '../spec/dockerfile.js';
import { applyDockerfiles, keyValues, resolveUser, substitute } from './extend.js';
import type { Logger } from './log.js';

const quiet = { level: 'info', info: () => undefined, warn: () => undefined, debug: () => undefined, error: () => undefined } as unknown as Logger;

test('variables as a Dockerfile has them: $x, ${x}, ${x:-word}, ${x:+word}, and \\$', () => {
  const v = { a: '1', e: '' };
  assert.equal(substitute('$a-${a}-${b:-none}-${a:+set}-${e:-empty}-${b:+x}-\\$a', v), '1-1-none-set-empty--$a');
});

test('KEY=VALUE pairs with quotes and escapes, and the old KEY VALUE form', () => {
  assert.deepEqual(keyValues('A=1 B="two words" C=three\\ words D=\'q\'', 'x'), [['A', '1'], ['B', 'two words'], ['C', 'three words'], ['D', 'q']]);
  assert.deepEqual(keyValues('NAME some long value', 'x'), [['NAME', 'some long value']]);
  assert.throws(() => keyValues('A="open', 'f:3'), /f:3: an unclosed "/);
  assert.throws(() => keyValues('A=1 junk', 'f:3'), /f:3: "junk" is not KEY=VALUE/);
});

test('users by number or by name from the image\'s own files; root even without /etc/passwd; a link there is not followed', async () => {
  const root = await mkdtemp(join(tmpdir(), 'strata-users-'));
  try {
    assert.deepEqual(resolveUser('root', root), { uid: 0, gid: 0 });
    assert.deepEqual(resolveUser('1000:1001', root), { uid: 1000, gid: 1001 });
    assert.throws(() => resolveUser('cnb', root), /no user cnb in the image's \/etc\/passwd/);
    await mkdir(join(root, 'etc'));
    await writeFile(join(root, 'etc', 'passwd'), 'root:x:0:0::/root:/bin/sh\ncnb:x:1000:1000::/home/cnb:/bin/bash\n');
    await writeFile(join(root, 'etc', 'group'), 'cnb:x:1000:\nstaff:x:50:\n');
    assert.deepEqual(resolveUser('cnb', root), { uid: 1000, gid: 1000 });
    assert.deepEqual(resolveUser('cnb:staff', root), { uid: 1000, gid: 50 });
    // An image whose /etc/passwd points at this machine's: refused, never read.
    await rm(join(root, 'etc', 'passwd'));
    await symlink('/etc/passwd', join(root, 'etc', 'passwd'));
    assert.throws(() => resolveUser('daemon', root), /passwd/);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});

test('the config instructions, COPY from a context, and a planted link in that context copied as nothing', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'strata-apply-'));
  try {
    const root = join(dir, 'root');
    const context = join(dir, 'context');
    await mkdir(root);
    await mkdir(join(context, 'conf'), { recursive: true });
    await writeFile(join(context, 'conf', 'a.txt'), 'A');
    await symlink('/etc/shadow', join(context, 'conf', 'shadow'));
    await symlink('/etc/shadow', join(context, 'steal'));
    const text = 'ARG base_image\nFROM ${base_image}\nARG flavour=plain\nENV GREETING="hello ${flavour}" PATH=/opt/bin:/usr/bin\nLABEL io.buildpacks.rebasable=true org.example.by=ext\nWORKDIR /srv\nCOPY conf ./conf/\nRUN make it\nUSER 1000:1000\n';
    const runs: { args: string[]; env: string[]; uid: number; cwd: string }[] = [];
    const out = await applyDockerfiles({
      kind: 'run',
      config: { architecture: 'amd64', os: 'linux', config: { User: '1000:1000', Env: ['PATH=/usr/bin'] }, rootfs: { type: 'layers', diff_ids: [] } },
      dockerfiles: [{ extension: 'ext', dockerfile: parseDockerfile(text, 'ext run.Dockerfile', 'run'), args: { flavour: 'spicy', unused: 'x' }, context }],
      root,
      run: async (step) => {
        runs.push(step);
        return 0;
      },
      log: quiet,
    });
    assert.deepEqual(out.config.config?.Env, ['GREETING=hello spicy', 'PATH=/opt/bin:/usr/bin']);
    assert.equal(out.config.config?.Labels?.['org.example.by'], 'ext');
    assert.equal(out.config.config?.Labels?.['io.buildpacks.rebasable'], 'true');
    assert.equal(out.config.config?.WorkingDir, '/srv');
    assert.equal(out.config.config?.User, '1000:1000');
    assert.equal(await readFile(join(root, 'srv', 'conf', 'a.txt'), 'utf8'), 'A');
    await assert.rejects(readFile(join(root, 'srv', 'conf', 'shadow')), 'a link in the context is not copied, nor followed');
    assert.equal(runs.length, 1);
    assert.deepEqual(runs[0]!.args, ['/bin/sh', '-c', 'make it']);
    assert.equal(runs[0]!.uid, 1000, 'RUN as the image\'s user, as in a Docker build');
    assert.equal(runs[0]!.cwd, '/srv');
    assert.ok(runs[0]!.env.includes('flavour=spicy') && !runs[0]!.env.some((e) => e.startsWith('unused=')), 'only declared args reach RUN');
    // Naming a link as the source is an error, not a silent copy of what it points at.
    const steal = parseDockerfile('ARG base_image\nFROM ${base_image}\nCOPY steal /x\nUSER 1000\n', 'ext run.Dockerfile', 'run');
    await assert.rejects(applyDockerfiles({ kind: 'run', config: { architecture: 'amd64', os: 'linux', config: {}, rootfs: { type: 'layers', diff_ids: [] } }, dockerfiles: [{ extension: 'ext', dockerfile: steal, args: {}, context }], root, run: async () => 0, log: quiet }), /ext run\.Dockerfile:3: steal is a link/);
    await assert.rejects(readFile(join(root, 'x')));
    // A run image left as root is refused; no label means not rebasable.
    const asRoot = parseDockerfile('ARG base_image\nFROM ${base_image}\nRUN x\n', 'ext run.Dockerfile', 'run');
    await assert.rejects(applyDockerfiles({ kind: 'run', config: { architecture: 'amd64', os: 'linux', config: {}, rootfs: { type: 'layers', diff_ids: [] } }, dockerfiles: [{ extension: 'ext', dockerfile: asRoot, args: {}, context }], root, run: async () => 0, log: quiet }), /the run image's user is root/);
    const failing = parseDockerfile('ARG base_image\nFROM ${base_image}\nRUN false\n', 'ext build.Dockerfile', 'build');
    await assert.rejects(applyDockerfiles({ kind: 'build', config: { architecture: 'amd64', os: 'linux', config: {}, rootfs: { type: 'layers', diff_ids: [] } }, dockerfiles: [{ extension: 'ext', dockerfile: failing, args: {}, context }], root, run: async () => 3, log: quiet }), (err: Error & { exitCode?: number }) => /ext build\.Dockerfile:3: RUN exited 3/.test(err.message) && err.exitCode === 102);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
