import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parse } from 'smol-toml';
import { withWorkspace, writeBuildpack, writeExtension, orderToml, type Workspace } from '../harness/buildpacks.js';

const withWs = withWorkspace;

const groupIds = async (ws: Workspace): Promise<string[]> => ((parse(await readFile(join(ws.layers, 'group.toml'), 'utf8')) as { group: { id: string }[] }).group ?? []).map((g) => g.id);

test('conformance 1: every phase exits 11 without a supported CNB_PLATFORM_API; 12 for a buildpack API it does not support', () =>
  withWs(async (ws) => {
    await writeBuildpack(ws.buildpacks, { id: 'old/bp', api: '0.3' });
    await ws.order([['old/bp']]);
    for (const phase of ['detector', 'builder']) {
      const r = await ws.phase(phase, [], { CNB_PLATFORM_API: '0.3' });
      assert.equal(r.code, 11, `${phase}: ${r.stderr}`);
      assert.match(r.stderr, /Platform API 0\.3 is not supported/);
    }
    const unset = await ws.phase('detector', [], { CNB_PLATFORM_API: '' });
    assert.equal(unset.code, 11);
    const r = await ws.phase('detector');
    assert.equal(r.code, 12, r.stderr);
    assert.match(r.stderr, /buildpack\.toml: Buildpack API 0\.3 is not supported/);
  }));

test('conformance 2: a flag beats its env var, which beats the default; <layers> defaults follow the final -layers', () =>
  withWs(async (ws) => {
    await writeBuildpack(ws.buildpacks, { id: 'a' });
    await ws.order([['a']]);
    const r = await ws.phase('detector', [], { CNB_LAYERS_DIR: '/nonexistent/layers' });
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(await groupIds(ws), ['a'], 'group.toml written under the -layers flag, not CNB_LAYERS_DIR');
    const viaEnv = await ws.phase('detector', [], { CNB_GROUP_PATH: join(ws.root, 'env-group.toml') });
    assert.equal(viaEnv.code, 0, viaEnv.stderr);
    assert.match(await readFile(join(ws.root, 'env-group.toml'), 'utf8'), /id = "a"/);
    const bad = await ws.phase('detector', ['-no-such-flag']);
    assert.equal(bad.code, 3);
  }));

test('conformance 3: the detector reads <layers>/order.toml when there is one', () =>
  withWs(async (ws) => {
    await writeBuildpack(ws.buildpacks, { id: 'from-layers' });
    await writeFile(join(ws.layers, 'order.toml'), orderToml([['from-layers']]));
    const r = await ws.phase('detector', [], {}, { order: false });
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(await groupIds(ws), ['from-layers']);
  }));

test('conformance 4: 0 passes, 100 fails, others error; the first passing group is written with id, version and api, failed optionals removed', () =>
  withWs(async (ws) => {
    await writeBuildpack(ws.buildpacks, { id: 'fails', detect: 'exit 100' });
    await writeBuildpack(ws.buildpacks, { id: 'passes', version: '2.0.0', api: '0.10', buildpackKeys: 'homepage = "https://example.com/passes"' });
    await writeBuildpack(ws.buildpacks, { id: 'opt-fails', detect: 'exit 100' });
    await writeBuildpack(ws.buildpacks, { id: 'second' });
    await ws.order([['fails', 'passes@2.0.0'], ['opt-fails?', 'passes@2.0.0', 'second'], ['second']]);
    const r = await ws.phase('detector');
    assert.equal(r.code, 0, r.stderr + r.stdout);
    const group = JSON.parse(JSON.stringify(parse(await readFile(join(ws.layers, 'group.toml'), 'utf8')))) as { group: Record<string, unknown>[] };
    assert.deepEqual(group.group, [
      { id: 'passes', version: '2.0.0', api: '0.10', homepage: 'https://example.com/passes' },
      { id: 'second', version: '1.0.0', api: '0.12' },
    ]);
    assert.match(r.stdout, /2 of 3 buildpacks participating|passes 2\.0\.0/);
  }));

test('conformance 5: all groups failing gives 20, or 21 when a buildpack errored', () =>
  withWs(async (ws) => {
    await writeBuildpack(ws.buildpacks, { id: 'no', detect: 'exit 100' });
    await writeBuildpack(ws.buildpacks, { id: 'broken', detect: 'echo "detect blew up" >&2; exit 3' });
    await ws.order([['no']]);
    const fail = await ws.phase('detector');
    assert.equal(fail.code, 20, fail.stderr);
    await ws.order([['no'], ['broken']]);
    const err = await ws.phase('detector');
    assert.equal(err.code, 21, err.stderr);
    assert.match(err.stdout, /detect blew up/, "an erroring buildpack's output is shown");
  }));

test('conformance 5: a required buildpack whose targets exclude the run image is an error (21)', () =>
  withWs(async (ws) => {
    await writeBuildpack(ws.buildpacks, { id: 'windows-only', toml: '[[targets]]\nos = "windows"\n' });
    await ws.order([['windows-only']]);
    const r = await ws.phase('detector');
    assert.equal(r.code, 21, r.stderr + r.stdout);
    assert.match(r.stdout, /windows-only@1\.0\.0: no target matches the run image/);
  }));

test('conformance 6: composites expand depth-first; a failed optional composite is skipped and the rest still tried', () =>
  withWs(async (ws) => {
    for (const id of ['e', 'b', 'c', 'd', 'f']) await writeBuildpack(ws.buildpacks, { id });
    await writeBuildpack(ws.buildpacks, { id: 'a', detect: 'exit 100' });
    await writeBuildpack(ws.buildpacks, { id: 'o', composite: true, toml: orderToml([['a', 'b'], ['c', 'd']]) });
    await ws.order([['e', 'o', 'f']]);
    let r = await ws.phase('detector');
    assert.equal(r.code, 0, r.stderr + r.stdout);
    assert.deepEqual(await groupIds(ws), ['e', 'c', 'd', 'f']);

    await writeBuildpack(ws.buildpacks, { id: 'x', detect: 'exit 100' });
    await writeBuildpack(ws.buildpacks, { id: 'oo', composite: true, toml: orderToml([['x']]) });
    await ws.order([['e', 'oo?', 'f']]);
    r = await ws.phase('detector');
    assert.equal(r.code, 0, r.stderr + r.stdout);
    assert.deepEqual(await groupIds(ws), ['e', 'f']);
  }));

test('conformance 7: a buildpack in several groups and twice in one runs bin/detect once', () =>
  withWs(async (ws) => {
    const count = join(ws.root, 'count');
    await writeBuildpack(ws.buildpacks, { id: 'counted', detect: `echo run >> ${count}; exit 0` });
    await writeBuildpack(ws.buildpacks, { id: 'no', detect: 'exit 100' });
    await writeBuildpack(ws.buildpacks, { id: 'comp', composite: true, toml: orderToml([['counted']]) });
    await ws.order([['counted', 'no'], ['counted', 'comp', 'counted']]);
    const r = await ws.phase('detector');
    assert.equal(r.code, 0, r.stderr + r.stdout);
    assert.deepEqual(await groupIds(ws), ['counted']);
    assert.equal((await readFile(count, 'utf8')).trim().split('\n').length, 1);
  }));

test('conformance 8-10: plans from real detect scripts: requires meet provides, optional droppers vanish, or-alternatives, plan.toml per name', () =>
  withWs(async (ws) => {
    const plan = (body: string) => `cat > "$CNB_BUILD_PLAN_PATH" <<'TOML'\n${body}\nTOML`;
    await writeBuildpack(ws.buildpacks, { id: 'node', detect: plan('[[provides]]\nname = "node"\n[[or]]\n[[or.provides]]\nname = "node"\n[[or.provides]]\nname = "npm"') });
    await writeBuildpack(ws.buildpacks, { id: 'wants-python', detect: plan('[[requires]]\nname = "python"') });
    await writeBuildpack(ws.buildpacks, { id: 'my-app', detect: plan('[[requires]]\nname = "node"\n[requires.metadata]\nversion = "20.x"\nlaunch = true') });
    await ws.order([['node', 'wants-python?', 'my-app']]);
    const r = await ws.phase('detector');
    assert.equal(r.code, 0, r.stderr + r.stdout);
    assert.deepEqual(await groupIds(ws), ['node', 'my-app']);
    const p = JSON.parse(JSON.stringify(parse(await readFile(join(ws.layers, 'plan.toml'), 'utf8')))) as { entries: { providers: { id: string }[]; requires: { name: string; metadata?: Record<string, unknown> }[] }[] };
    assert.equal(p.entries.length, 1);
    assert.deepEqual(p.entries[0]!.providers.map((x) => x.id), ['node']);
    assert.deepEqual(p.entries[0]!.requires, [{ name: 'node', metadata: { version: '20.x', launch: true } }]);

    await ws.order([['node', 'wants-python']]);
    const unmet = await ws.phase('detector');
    assert.equal(unmet.code, 20, 'a required buildpack with an unmet require fails the group');
    await writeBuildpack(ws.buildpacks, { id: 'bad-plan', detect: plan('[[requires]]\nname = "x"\nversion = "1"') });
    await ws.order([['bad-plan']]);
    assert.equal((await ws.phase('detector')).code, 21, 'a top-level version in requires is a detect error');
  }));

test('conformance 12-14: the detect environment: CNB_* vars, cwd, platform env, build-config defaults, clear-env, no lifecycle secrets', () =>
  withWs(async (ws) => {
    const dump = (name: string) => `env > ${join(ws.root, name)}; pwd > ${join(ws.root, name)}.cwd`;
    await writeBuildpack(ws.buildpacks, { id: 'env/dump', detect: dump('env.txt') });
    await writeBuildpack(ws.buildpacks, { id: 'env/clear', detect: dump('clear.txt'), buildpackKeys: 'clear-env = true' });
    await mkdir(join(ws.platform, 'env'), { recursive: true });
    await writeFile(join(ws.platform, 'env', 'FOO'), 'from-platform');
    await writeFile(join(ws.platform, 'env', 'PATH'), '/opt/user/bin');
    await mkdir(join(ws.buildConfig, 'env'), { recursive: true });
    await writeFile(join(ws.buildConfig, 'env', 'BAR'), 'operator-default');
    await writeFile(join(ws.buildConfig, 'env', 'FOO'), 'operator-loses');
    await ws.order([['env/dump', 'env/clear']]);
    const r = await ws.phase('detector', [], { CNB_REGISTRY_AUTH: '{"r.example":"Basic c2VjcmV0"}', CNB_EXEC_ENV: 'test' });
    assert.equal(r.code, 0, r.stderr + r.stdout);
    const env = Object.fromEntries((await readFile(join(ws.root, 'env.txt'), 'utf8')).trim().split('\n').map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
    assert.equal(env.CNB_BUILDPACK_DIR, join(ws.buildpacks, 'env_dump', '1.0.0'));
    assert.equal(env.CNB_PLATFORM_DIR, ws.platform);
    assert.match(env.CNB_BUILD_PLAN_PATH ?? '', /plan\.toml$/);
    assert.equal(env.CNB_TARGET_OS, 'linux');
    assert.ok(env.CNB_TARGET_ARCH);
    assert.equal(env.CNB_EXEC_ENV, 'test');
    assert.equal(env.FOO, 'from-platform', 'user env overrides, the operator default does not');
    assert.equal(env.BAR, 'operator-default');
    assert.match(env.PATH ?? '', /^\/opt\/user\/bin:/, 'a PATH file is prepended');
    assert.equal(env.CNB_REGISTRY_AUTH, undefined, 'credentials never reach buildpacks');
    assert.equal((await readFile(join(ws.root, 'env.txt.cwd'), 'utf8')).trim(), ws.app);
    const clear = await readFile(join(ws.root, 'clear.txt'), 'utf8');
    assert.doesNotMatch(clear, /FOO=from-platform/);
    assert.match(clear, /BAR=operator-default/, 'build-config env applies even with clear-env');
  }));

test('exec-env filtering skips a buildpack silently; system.toml adds pre and post buildpacks to every group', () =>
  withWs(async (ws) => {
    const marker = join(ws.root, 'ran-test-only');
    await writeBuildpack(ws.buildpacks, { id: 'test-only', detect: `touch ${marker}`, buildpackKeys: 'exec-env = ["test"]' });
    await writeBuildpack(ws.buildpacks, { id: 'main' });
    await writeBuildpack(ws.buildpacks, { id: 'sys/pre' });
    await writeBuildpack(ws.buildpacks, { id: 'sys/post', detect: 'exit 100' });
    await ws.order([['test-only', 'main']]);
    const system = join(ws.root, 'system.toml');
    await writeFile(system, '[[system.pre.buildpacks]]\nid = "sys/pre"\nversion = "1.0.0"\n[[system.post.buildpacks]]\nid = "sys/post"\nversion = "1.0.0"\noptional = true\n');
    const r = await ws.phase('detector', ['-system', system]);
    assert.equal(r.code, 0, r.stderr + r.stdout);
    assert.deepEqual(await groupIds(ws), ['sys/pre', 'main']);
    await assert.rejects(readFile(marker), 'the test-only buildpack never ran in production');
    const inTest = await ws.phase('detector', ['-system', system], { CNB_EXEC_ENV: 'test' });
    assert.equal(inTest.code, 0);
    assert.deepEqual(await groupIds(ws), ['sys/pre', 'test-only', 'main']);
  }));

test('conformance 38: the detector refuses to run as root', () =>
  withWs(async (ws) => {
    await writeBuildpack(ws.buildpacks, { id: 'a' });
    await ws.order([['a']]);
    const r = await ws.phase('detector', [], {}, { root: true });
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /refusing to run as root/);
  }));

const CURL_RUN = 'ARG base_image\nFROM ${base_image}\nUSER root\nRUN apt-get install -y curl\nARG user_id\nUSER ${user_id}\n';

test('extensions: [[order-extensions]] tried before each group, [[group-extensions]] written, their provides meet requires, and generate writes Dockerfiles', () =>
  withWs(async (ws) => {
    await writeExtension(ws.extensions, { id: 'vim', detect: 'exit 100' });
    await writeExtension(ws.extensions, {
      id: 'curl',
      detect: 'printf \'[[provides]]\\nname = "curl"\\n\' > "$2"; echo "ext dir $CNB_EXTENSION_DIR"',
      generate: `echo "plan: $(cat "$CNB_BP_PLAN_PATH" | tr '\\n' ' ')"
printf '%s' '${CURL_RUN}' > "$CNB_OUTPUT_DIR/run.Dockerfile"
printf 'ARG base_image\\nFROM \${base_image}\\nRUN echo build\\n' > "$CNB_OUTPUT_DIR/build.Dockerfile"
printf '[[build.args]]\\nname = "color"\\nvalue = "blue"\\n' > "$CNB_OUTPUT_DIR/extend-config.toml"`,
    });
    await writeBuildpack(ws.buildpacks, { id: 'needs-curl', detect: 'printf \'[[requires]]\\nname = "curl"\\n[requires.metadata]\\nversion = "8"\\n\' > "$2"' });
    await writeBuildpack(ws.buildpacks, { id: 'plain' });
    await ws.order([['needs-curl'], ['plain']], [['vim'], ['curl']]);
    await writeFile(join(ws.layers, 'analyzed.toml'), '[run-image]\nreference = "reg.example/run@sha256:' + 'a'.repeat(64) + '"\nimage = "reg.example/run"\n[run-image.target]\nos = "linux"\narch = "amd64"\n');
    const r = await ws.phase('detector');
    assert.equal(r.code, 0, r.stderr + r.stdout);
    const group = JSON.parse(JSON.stringify(parse(await readFile(join(ws.layers, 'group.toml'), 'utf8')))) as Record<string, unknown>;
    assert.deepEqual(group, { group: [{ id: 'needs-curl', version: '1.0.0', api: '0.12' }], 'group-extensions': [{ id: 'curl', version: '1.0.0', api: '0.12' }] });
    // What the extension provides is its to satisfy: the buildpacks' plan no longer holds it.
    assert.doesNotMatch(await readFile(join(ws.layers, 'plan.toml'), 'utf8'), /curl/);
    assert.match(r.stdout, /plan: \[\[entries\]\] name = "curl"\s+\[entries\.metadata\] version = "8"/);
    assert.equal(await readFile(join(ws.layers, 'generated', 'curl', 'run.Dockerfile'), 'utf8'), CURL_RUN);
    assert.match(await readFile(join(ws.layers, 'generated', 'curl', 'build.Dockerfile'), 'utf8'), /RUN echo build/);
    assert.match(await readFile(join(ws.layers, 'generated', 'curl', 'extend-config.toml'), 'utf8'), /color/);
    const analyzed = parse(await readFile(join(ws.layers, 'analyzed.toml'), 'utf8')) as { 'run-image': Record<string, unknown> };
    assert.equal(analyzed['run-image'].extend, true, 'the run image is to be extended');
    assert.equal(analyzed['run-image'].image, 'reg.example/run', 'and not switched');
  }));

test('extensions: a run.Dockerfile that is FROM <image> alone switches the run image; an earlier one is moot (.ignore); without bin/detect or bin/generate their dirs stand in', () =>
  withWs(async (ws) => {
    await writeExtension(ws.extensions, { id: 'curl', files: { 'generate/run.Dockerfile': CURL_RUN } });
    await writeExtension(ws.extensions, { id: 'tiny', files: { 'detect/plan.toml': '[[provides]]\nname = "tiny"\n', 'generate/run.Dockerfile': 'FROM reg.example/run:tiny\n' } });
    await writeBuildpack(ws.buildpacks, { id: 'a', detect: 'printf \'[[requires]]\\nname = "tiny"\\n\' > "$2"' });
    await ws.order([['a']], [['curl', 'tiny']]);
    await writeFile(join(ws.layers, 'analyzed.toml'), '[run-image]\nreference = "reg.example/run@sha256:' + 'a'.repeat(64) + '"\nimage = "reg.example/run"\n[run-image.target]\nos = "linux"\n');
    const r = await ws.phase('detector');
    assert.equal(r.code, 0, r.stderr + r.stdout);
    assert.deepEqual(((parse(await readFile(join(ws.layers, 'group.toml'), 'utf8')) as { 'group-extensions': { id: string }[] })['group-extensions']).map((e) => e.id), ['curl', 'tiny']);
    const analyzed = parse(await readFile(join(ws.layers, 'analyzed.toml'), 'utf8')) as { 'run-image': Record<string, unknown> };
    assert.deepEqual({ ...analyzed['run-image'] }, { reference: 'reg.example/run:tiny', image: 'reg.example/run:tiny' }, 'switched: digest and target cleared for the restorer');
    assert.equal(await readFile(join(ws.layers, 'generated', 'curl', 'run.Dockerfile.ignore'), 'utf8'), CURL_RUN);
    assert.match(r.stdout, /Run image switched by an extension: reg\.example\/run:tiny/);
  }));

test('extensions: a Dockerfile the spec does not allow is exit 92 naming the extension and line; a failing bin/generate is 91; an extension that requires is dropped', () =>
  withWs(async (ws) => {
    await writeExtension(ws.extensions, { id: 'bad', generate: 'printf "ARG base_image\\nFROM \\${base_image}\\nCMD [\\"sh\\"]\\n" > "$CNB_OUTPUT_DIR/build.Dockerfile"' });
    await writeExtension(ws.extensions, { id: 'broken', generate: 'echo "cannot" >&2; exit 3' });
    await writeExtension(ws.extensions, { id: 'greedy', detect: 'printf \'[[requires]]\\nname = "x"\\n\' > "$2"', generate: 'exit 9' });
    await writeBuildpack(ws.buildpacks, { id: 'a' });
    await ws.order([['a']], [['bad']]);
    const bad = await ws.phase('detector');
    assert.equal(bad.code, 92, bad.stderr + bad.stdout);
    assert.match(bad.stderr, /extension bad@1\.0\.0: bad@1\.0\.0 build\.Dockerfile:3: CMD is not allowed/);
    await ws.order([['a']], [['broken']]);
    const broken = await ws.phase('detector');
    assert.equal(broken.code, 91, broken.stderr);
    assert.match(broken.stderr, /extension broken@1\.0\.0: bin\/generate exited 3/);
    // An extension may only provide: one that requires errs, so (being optional) it is left out.
    await ws.order([['a']], [['greedy']]);
    const greedy = await ws.phase('detector');
    assert.equal(greedy.code, 0, greedy.stderr + greedy.stdout);
    assert.doesNotMatch(await readFile(join(ws.layers, 'group.toml'), 'utf8'), /greedy/);
  }));

test('extensions, hostile: a generated Dockerfile that is a link out of its dir is refused (92); a context that is a link, or holds links, brings nothing of this machine', () =>
  withWs(async (ws) => {
    await writeExtension(ws.extensions, { id: 'sneaky', generate: 'ln -s /etc/passwd "$CNB_OUTPUT_DIR/run.Dockerfile"' });
    await writeBuildpack(ws.buildpacks, { id: 'a' });
    await ws.order([['a']], [['sneaky']]);
    const r = await ws.phase('detector');
    assert.equal(r.code, 92, r.stderr + r.stdout);
    assert.match(r.stderr, /extension sneaky@1\.0\.0: .*run\.Dockerfile/);
    assert.doesNotMatch(r.stderr + r.stdout, /root:x:0:0/, 'nothing of /etc/passwd is read out');
    await writeExtension(ws.extensions, {
      id: 'contexts',
      generate: 'printf "ARG base_image\\nFROM \\${base_image}\\nCOPY . /x/\\n" > "$CNB_OUTPUT_DIR/build.Dockerfile"; mkdir "$CNB_OUTPUT_DIR/context.build"; ln -s /etc/shadow "$CNB_OUTPUT_DIR/context.build/shadow"; echo ok > "$CNB_OUTPUT_DIR/context.build/fine"; ln -s / "$CNB_OUTPUT_DIR/context.run"',
    });
    await ws.order([['a']], [['contexts']]);
    const c = await ws.phase('detector');
    assert.equal(c.code, 0, c.stderr + c.stdout);
    const { readdir, lstat } = await import('node:fs/promises');
    assert.deepEqual(await readdir(join(ws.layers, 'generated', 'contexts', 'context.build')), ['fine'], 'the link in the context is left out');
    assert.equal(await lstat(join(ws.layers, 'generated', 'contexts', 'context.run')).catch(() => undefined), undefined, 'a context that is a link is not copied');
  }));
