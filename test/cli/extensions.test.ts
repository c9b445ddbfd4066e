// Image extensions through strata's own CLI: a builder made with [[extensions]] and [[order-extensions]], an app
// built on it whose run image an extension switched, and an extension that needs Dockerfiles applied, refused in one
// line before anything is built.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { orderToml, writeBuildpack, writeExtension } from '../harness/buildpacks.js';
import { hostToolImageFiles, makeLayoutImage } from '../harness/images.js';
import { STRATA } from '../harness/probe.js';
import { run, runOk, tempDir } from '../harness/proc.js';

test('a builder with an extension whose run.Dockerfile is FROM <image> alone: the app is built on that run image', { timeout: 300_000 }, async () => {
  const t = await tempDir('strata-ext-');
  try {
    const root = t.path;
    const images = join(root, 'images');
    const tools = await hostToolImageFiles();
    await makeLayoutImage(images, 'build', [tools], {}, ['CNB_USER_ID=1000', 'CNB_GROUP_ID=1000']);
    await makeLayoutImage(images, 'run', [tools], { 'io.buildpacks.rebasable': 'true' });
    await makeLayoutImage(images, 'run-tiny', [tools, { 'etc/flavour': 'tiny\n' }], { 'io.buildpacks.rebasable': 'true' });
    const bp = await writeBuildpack(join(root, 'bps'), {
      id: 'test/web',
      api: '0.10',
      detect: 'printf \'[[requires]]\\nname = "tiny-base"\\n\' > "$2"',
      build: `printf '[[processes]]\\ntype = "web"\\ncommand = ["bash", "-c", "cat /etc/flavour"]\\ndefault = true\\n' > "$1/launch.toml"`,
    });
    const tiny = await writeExtension(join(root, 'exts'), { id: 'test/tiny', files: { 'detect/plan.toml': '[[provides]]\nname = "tiny-base"\n', 'generate/run.Dockerfile': `FROM oci:${images}:run-tiny\n` } });
    const curl = await writeExtension(join(root, 'exts'), { id: 'test/curl', files: { 'detect/plan.toml': '[[provides]]\nname = "tiny-base"\n' }, generate: 'printf "ARG base_image\\nFROM \\${base_image}\\nRUN apt-get install -y curl\\n" > "$CNB_OUTPUT_DIR/build.Dockerfile"' });
    const builderToml = (ext: string, id: string) =>
      `[[buildpacks]]\nuri = "${bp}"\n${orderToml([['test/web']])}\n[[extensions]]\nuri = "${ext}"\n${orderToml([[id]], 'order-extensions')}\n[build]\nimage = "oci:${images}:build"\n[[run.images]]\nimage = "oci:${images}:run"\n`;
    await writeFile(join(root, 'builder.toml'), builderToml(tiny, 'test/tiny'));
    await writeFile(join(root, 'builder-curl.toml'), builderToml(curl, 'test/curl'));
    const env = { ...process.env, STRATA_HOME: join(root, 'home') };
    await runOk(STRATA, ['builder', 'create', `oci:${root}/builder:tiny`, '--config', join(root, 'builder.toml')], { env });
    const inspect = await runOk(STRATA, ['builder', 'inspect', `oci:${root}/builder:tiny`], { env });
    assert.match(inspect, /Extensions:\n\s+ID\s+VERSION\s+HOMEPAGE\n\s+test\/tiny\s+1\.0\.0/);
    assert.match(inspect, /Detection Order \(Extensions\):\n └ Group #1:\n\s+└ test\/tiny@1\.0\.0/);

    const app = join(root, 'app');
    await mkdir(app, { recursive: true });
    await writeFile(join(app, 'index.txt'), 'hi');
    await chmod(app, 0o755);
    const built = await run(STRATA, ['build', 'tiny-app', '--builder', `oci:${root}/builder:tiny`, '--path', app], { env });
    assert.equal(built.code, 0, built.stderr + built.stdout);
    assert.match(built.stdout, /test\/tiny 1\.0\.0 \(extension\)/);
    assert.match(built.stdout, /Run image .*run-tiny.* \(chosen by an extension\)/);
    const ran = await run(STRATA, ['run', 'tiny-app'], { env });
    assert.equal(ran.code, 0, ran.stderr);
    assert.equal(ran.stdout.trim(), 'tiny', 'the app image sits on the run image the extension chose');
    const meta = JSON.parse(await runOk(STRATA, ['inspect', 'tiny-app', '-o', 'json'], { env })) as { local_info: { run_images: { name: string }[] } };
    assert.match(JSON.stringify(meta.local_info.run_images), /run-tiny/, 'the label names the chosen run image');

    // An extension that changes the build image needs Dockerfiles applied: refused in one line, nothing built.
    await runOk(STRATA, ['builder', 'create', `oci:${root}/builder:curl`, '--config', join(root, 'builder-curl.toml')], { env });
    const refused = await run(STRATA, ['build', 'curl-app', '--builder', `oci:${root}/builder:curl`, '--path', app], { env });
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /^strata: .*extension test\/curl: its build\.Dockerfile changes the build image, and strata cannot apply Dockerfiles yet/m);
    assert.doesNotMatch(refused.stdout, /BUILDING/);
    assert.doesNotMatch(await runOk(STRATA, ['images'], { env }), /curl-app/);
  } finally {
    await t.cleanup();
  }
});
