// Image extensions through strata's own CLI, with no daemon: a builder made with [[extensions]] and
// [[order-extensions]]; an app built on it whose run image an extension switched; and Dockerfiles applied to the
// build image (the build sees what they made) and to the run image (the app image carries it), cached for the next
// build, with rebase refused unless the Dockerfiles say the run image stays rebasable.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { orderToml, writeBuildpack, writeExtension } from '../harness/buildpacks.js';
import { hostToolImageFiles, makeLayoutImage } from '../harness/images.js';
import { STRATA } from '../harness/probe.js';
import { PROJECT_ROOT } from '../../src/version.js';
import { run, runOk, tempDir } from '../harness/proc.js';

/** Small build and run images (busybox, bash) in a layout under root, and any more run images named in `extra`. */
async function baseImages(root: string, extra: Record<string, Record<string, string>> = {}): Promise<string> {
  const images = join(root, 'images');
  const tools = await hostToolImageFiles();
  await makeLayoutImage(images, 'build', [tools], {}, ['CNB_USER_ID=1000', 'CNB_GROUP_ID=1000']);
  for (const [tag, files] of [['run', {}], ...Object.entries(extra)] as const) await makeLayoutImage(images, tag, [tools, ...(Object.keys(files).length ? [files] : [])], { 'io.buildpacks.rebasable': 'true' });
  return images;
}

test('a builder with an extension whose run.Dockerfile is FROM <image> alone: the app is built on that run image', { timeout: 300_000 }, async () => {
  const t = await tempDir('strata-ext-');
  try {
    const root = t.path;
    const images = await baseImages(root, { 'run-tiny': { 'etc/flavour': 'tiny\n' } });
    const bp = await writeBuildpack(join(root, 'bps'), {
      id: 'test/web',
      api: '0.10',
      detect: 'printf \'[[requires]]\\nname = "tiny-base"\\n\' > "$2"',
      build: `printf '[[processes]]\\ntype = "web"\\ncommand = ["bash", "-c", "cat /etc/flavour"]\\ndefault = true\\n' > "$1/launch.toml"`,
    });
    const tiny = await writeExtension(join(root, 'exts'), { id: 'test/tiny', files: { 'detect/plan.toml': '[[provides]]\nname = "tiny-base"\n', 'generate/run.Dockerfile': `FROM oci:${images}:run-tiny\n` } });
    const builderToml = (ext: string, id: string) =>
      `[[buildpacks]]\nuri = "${bp}"\n${orderToml([['test/web']])}\n[[extensions]]\nuri = "${ext}"\n${orderToml([[id]], 'order-extensions')}\n[build]\nimage = "oci:${images}:build"\n[[run.images]]\nimage = "oci:${images}:run"\n`;
    await writeFile(join(root, 'builder.toml'), builderToml(tiny, 'test/tiny'));
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
    const meta = JSON.parse(await runOk(STRATA, ['inspect', 'tiny-app', '-o', 'json'], { env })) as { local_info: { run_images: { name: string }[]; extensions: { id: string }[] } };
    assert.match(JSON.stringify(meta.local_info.run_images), /run-tiny/, 'the label names the chosen run image');
    assert.deepEqual(meta.local_info.extensions.map((e) => e.id), ['test/tiny']);
    assert.match(await runOk(STRATA, ['inspect', 'tiny-app'], { env }), /Extensions:\n\s+ID\s+VERSION\s+HOMEPAGE\n\s+test\/tiny\s+1\.0\.0/);

    // --buildpack rewrites the order and keeps the builder's extensions; --extension names them (from the builder, or a dir).
    for (const flags of [['--buildpack', 'test/web'], ['--extension', 'test/tiny@1.0.0'], ['--extension', tiny]]) {
      const r = await run(STRATA, ['build', 'tiny-app-2', '--builder', `oci:${root}/builder:tiny`, '--path', app, ...flags], { env });
      assert.equal(r.code, 0, `${flags.join(' ')}: ${r.stderr}${r.stdout}`);
      assert.match(r.stdout, /run-tiny.* \(chosen by an extension\)/, flags.join(' '));
    }
    const unknown = await run(STRATA, ['build', 'tiny-app-2', '--builder', `oci:${root}/builder:tiny`, '--path', app, '--extension', 'test/none'], { env });
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /^strata: .*--extension test\/none: not in the builder, and not a directory or \.tgz\n$/);

  } finally {
    await t.cleanup();
  }
});

const BUILD_DOCKERFILE = `ARG base_image
FROM \${base_image}
SHELL ["/bin/bash", "-c"]
USER root
ARG color
RUN echo "the build extension ran as $(id -u) with color=$color" > /usr/ext-build.txt
COPY note.txt /opt/notes/
ARG user_id
USER \${user_id}
`;

const runDockerfile = (rebasable: boolean) => `ARG base_image
FROM \${base_image}
SHELL ["/bin/bash", "-c"]
USER root
RUN echo "from the run extension" > /usr/ext-run.txt && busybox rm /bin/mkdir
${rebasable ? 'LABEL io.buildpacks.rebasable=true\n' : ''}USER 1000:1000
`;

test('Dockerfiles applied with no daemon: the build sees what build.Dockerfile made, the app image carries what run.Dockerfile made, cached on rebuild', { timeout: 300_000 }, async () => {
  const t = await tempDir('strata-extend-');
  try {
    const root = t.path;
    const images = await baseImages(root);
    const bp = await writeBuildpack(join(root, 'bps'), {
      id: 'test/web',
      api: '0.10',
      build: `mkdir -p "$1/l"; { cat /usr/ext-build.txt; cat /opt/notes/note.txt; } > "$1/l/seen"; printf '[types]\\nlaunch = true\\n' > "$1/l.toml"
printf '[[processes]]\\ntype = "web"\\ncommand = ["bash", "-c", "cat /usr/ext-run.txt /layers/test_web/l/seen; [ -e /bin/mkdir ] && echo has-mkdir || echo no-mkdir"]\\ndefault = true\\n' > "$1/launch.toml"`,
    });
    const ext = (id: string, rebasable: boolean) =>
      writeExtension(join(root, 'exts'), {
        id,
        files: { 'generate/build.Dockerfile': BUILD_DOCKERFILE, 'generate/run.Dockerfile': runDockerfile(rebasable), 'generate/extend-config.toml': '[[build.args]]\nname = "color"\nvalue = "blue"\n', 'generate/context.build/note.txt': 'a note from the context\n' },
      });
    const builderToml = (dir: string, id: string) =>
      `[[buildpacks]]\nuri = "${bp}"\n${orderToml([['test/web']])}\n[[extensions]]\nuri = "${dir}"\n${orderToml([[id]], 'order-extensions')}\n[build]\nimage = "oci:${images}:build"\n[[run.images]]\nimage = "oci:${images}:run"\n`;
    // The note extension goes into its builder as an extension package (.cnb), as pack's `extension package` makes one.
    const cnb = join(root, 'note.cnb');
    assert.match(await runOk(STRATA, ['buildpack', 'package', cnb, '--path', await ext('test/note', true), '--format', 'file'], { env: { ...process.env, STRATA_HOME: join(root, 'home') } }), /Successfully created package .*note\.cnb \(test\/note@1\.0\.0, extension\)/);
    await runOk(STRATA, ['buildpack', 'package', `oci:${root}/pkg:note`, '--path', join(root, 'exts', 'test_note', '1.0.0')], { env: { ...process.env, STRATA_HOME: join(root, 'home') } });
    const pkgLabels = (JSON.parse(await runOk('skopeo', ['inspect', '--config', `oci:${root}/pkg:note`])) as { config: { Labels: Record<string, string> } }).config.Labels;
    assert.deepEqual(Object.keys(JSON.parse(pkgLabels['io.buildpacks.extension.layers']!) as object), ['test/note'], 'an extension package labels its layer as an extension');
    assert.equal(pkgLabels['io.buildpacks.buildpack.layers'], undefined);
    await writeFile(join(root, 'b1.toml'), builderToml(cnb, 'test/note'));
    await writeFile(join(root, 'b2.toml'), builderToml(await ext('test/sticky', false), 'test/sticky'));
    const env = { ...process.env, STRATA_HOME: join(root, 'home') };
    await runOk(STRATA, ['builder', 'create', `oci:${root}/builder:note`, '--config', join(root, 'b1.toml')], { env });
    await runOk(STRATA, ['builder', 'create', `oci:${root}/builder:sticky`, '--config', join(root, 'b2.toml')], { env });
    const app = join(root, 'app');
    await mkdir(app, { recursive: true });
    await writeFile(join(app, 'index.txt'), 'hi');

    const first = await run(STRATA, ['build', 'ext-app', '--builder', `oci:${root}/builder:note`, '--path', app], { env });
    assert.equal(first.code, 0, first.stderr + first.stdout);
    assert.match(first.stdout, /Extended the build image with test\/note/);
    assert.match(first.stdout, /Extended the run image with test\/note/);
    const ran = await run(STRATA, ['run', 'ext-app'], { env });
    assert.equal(ran.code, 0, ran.stderr);
    assert.equal(ran.stdout, 'from the run extension\nthe build extension ran as 0 with color=blue\na note from the context\nno-mkdir\n');

    // Nothing changed: both extended images come from the cache, and the app image is the same.
    const again = await run(STRATA, ['build', 'ext-app', '--builder', `oci:${root}/builder:note`, '--path', app], { env });
    assert.equal(again.code, 0, again.stderr + again.stdout);
    assert.match(again.stdout, /Reused the build image extended by test\/note \(cached\)/);
    assert.match(again.stdout, /Reused the run image extended by test\/note \(cached\)/);
    const digest = (out: string) => /sha256:[0-9a-f]{64}/.exec(out.slice(out.lastIndexOf('Saved')))?.[0];
    assert.match(digest(first.stdout + first.stderr) ?? '', /^sha256:/, first.stdout);
    assert.equal(digest(again.stdout + again.stderr), digest(first.stdout + first.stderr), 'a rebuild with nothing changed gives the same image');

    // A run.Dockerfile that does not say the image stays rebasable: the app image says it is not, and rebase refuses.
    const sticky = await run(STRATA, ['build', 'sticky-app', '--builder', `oci:${root}/builder:sticky`, '--path', app], { env });
    assert.equal(sticky.code, 0, sticky.stderr + sticky.stdout);
    const rebase = await run(STRATA, ['rebase', 'sticky-app', '--run-image', `oci:${images}:run`], { env });
    assert.notEqual(rebase.code, 0);
    assert.match(rebase.stderr, /^strata: .*sticky-app is labelled io\.buildpacks\.rebasable=false/m);
    assert.equal(rebase.stderr.trim().split('\n').length, 1, rebase.stderr);
  } finally {
    await t.cleanup();
  }
});

test('the curl example: Debian base images, the extension installs curl into both, a buildpack after it calls curl, and the app image has it', { timeout: 900_000 }, async () => {
  const t = await tempDir('strata-curl-');
  try {
    const root = t.path;
    // debootstrap's tree is kept between runs, as in the base tests.
    const env = { ...process.env, STRATA_HOME: join(root, 'home'), STRATA_DEBOOTSTRAP_CACHE: process.env.STRATA_DEBOOTSTRAP_CACHE || '/tmp/strata-debootstrap-cache' };
    const bases = join(root, 'bases');
    await runOk(STRATA, ['base', 'create', '--build-image', `oci:${bases}:build`, '--run-image', `oci:${bases}:run`], { env });
    const bp = await writeBuildpack(join(root, 'bps'), {
      id: 'examples/needs-curl',
      api: '0.10',
      detect: 'printf \'[[requires]]\\nname = "curl"\\n\' > "$2"',
      build: `mkdir -p "$1/seen"; curl --version | head -1 > "$1/seen/curl"; printf '[types]\\nlaunch = true\\n' > "$1/seen.toml"
printf '[[processes]]\\ntype = "web"\\ncommand = ["bash", "-c", "cat /layers/examples_needs-curl/seen/curl; curl --version | head -1"]\\ndefault = true\\n' > "$1/launch.toml"`,
    });
    await writeFile(
      join(root, 'builder.toml'),
      `[[buildpacks]]\nuri = "${bp}"\n${orderToml([['examples/needs-curl']])}\n[[extensions]]\nuri = "${join(PROJECT_ROOT, 'examples', 'extensions', 'curl')}"\n${orderToml([['examples/curl@0.1.0']], 'order-extensions')}\n[build]\nimage = "oci:${bases}:build"\n[[run.images]]\nimage = "oci:${bases}:run"\n`,
    );
    await runOk(STRATA, ['builder', 'create', `oci:${root}/builder:curl`, '--config', join(root, 'builder.toml')], { env });
    const app = join(root, 'app');
    await mkdir(app, { recursive: true });
    await writeFile(join(app, 'index.txt'), 'hi');
    const built = await run(STRATA, ['build', 'curl-app', '--builder', `oci:${root}/builder:curl`, '--path', app], { env });
    assert.equal(built.code, 0, built.stderr + built.stdout);
    const ran = await run(STRATA, ['run', 'curl-app'], { env });
    assert.equal(ran.code, 0, ran.stderr);
    const [atBuild, atRun] = ran.stdout.trim().split('\n');
    assert.match(atBuild ?? '', /^curl \d+\.\d+/, 'the build called curl');
    assert.match(atRun ?? '', /^curl \d+\.\d+/, 'the app image has curl');
  } finally {
    await t.cleanup();
  }
});
