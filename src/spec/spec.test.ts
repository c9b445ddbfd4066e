import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ApiVersion, buildpackApi, platformApi } from './api.js';
import { checkId, parseDescriptor } from './buildpack.js';
import { parseLaunch } from './launch.js';
import { parseLayerToml } from './layer.js';
import { parseProject } from './project.js';
import { parseRunToml, parseStackToml } from './run.js';
import { parseToml } from './toml.js';
import { readPlanFile, writeBuildpackPlan, writePlanFile } from './plan.js';
import { parseGroupFile, readGroupFile, writeGroupFile } from './group.js';
import { readAnalyzed, writeAnalyzed } from './analyzed.js';
import { parseExecdOutput } from './execd.js';
import { parseBuildPlan } from './buildplan.js';
import { targetMatches } from './target.js';

const toml = (s: string) => parseToml(s, 'x.toml');

test('API versions: parsing, the major-0 exact-match rule, and exit codes 11 and 12', () => {
  assert.equal(ApiVersion.parse('0.12').toString(), '0.12');
  assert.equal(ApiVersion.parse('1').toString(), '1.0');
  assert.ok(ApiVersion.parse('0.10').atLeast('0.9'));
  assert.ok(!ApiVersion.parse('0.6').supportedBy(['0.7', '0.8']));
  assert.ok(ApiVersion.parse('1.1').supportedBy(['1.3']));
  assert.ok(!ApiVersion.parse('1.4').supportedBy(['1.3']));
  assert.throws(() => platformApi(undefined), (e: Error & { exitCode?: number }) => e.exitCode === 11);
  assert.throws(() => platformApi('0.16'), (e: Error & { exitCode?: number }) => e.exitCode === 11);
  assert.throws(() => buildpackApi('0.6', 'bp'), (e: Error & { exitCode?: number }) => e.exitCode === 12);
  assert.equal(platformApi('0.15').toString(), '0.15');
});

test('buildpack.toml: both exec-env spellings, arch-variant, stacks as targets, inferred linux, composite orders', () => {
  const a = parseDescriptor(toml('api = "0.12"\n[buildpack]\nid = "a/b"\nversion = "1.0.0"\nexec-env = ["test"]\n[[targets]]\nos = "linux"\narch = "arm"\narch-variant = "v7"\n'), 'a.toml', '/x', 'buildpack', true);
  assert.deepEqual(a.execEnv, ['test']);
  assert.deepEqual(a.targets, [{ os: 'linux', arch: 'arm', variant: 'v7' }]);
  const b = parseDescriptor(toml('api = "0.12"\n[buildpack]\nid = "b"\nversion = "1"\n[[buildpack.exec-env]]\nname = "production"\n'), 'b.toml', '/x', 'buildpack', true);
  assert.deepEqual(b.execEnv, ['production']);
  assert.deepEqual(b.targets, [{ os: 'linux' }], 'linux inferred from bin/build');
  const c = parseDescriptor(toml('api = "0.10"\n[buildpack]\nid = "c"\nversion = "1"\n[[stacks]]\nid = "io.buildpacks.stacks.bionic"\n'), 'c.toml', '/x', 'buildpack', true);
  assert.deepEqual(c.targets, [{ os: 'linux', arch: 'amd64', distros: [{ name: 'ubuntu', version: '18.04' }] }]);
  const d = parseDescriptor(toml('api = "0.12"\n[buildpack]\nid = "d"\nversion = "1"\n[[order]]\n[[order.group]]\nid = "a/b"\nversion = "1.0.0"\noptional = true\n'), 'd.toml', '/x', 'buildpack', false);
  assert.deepEqual(d.order, [{ group: [{ id: 'a/b', version: '1.0.0', optional: true }] }]);
});

test('buildpack.toml errors are one line naming the file', () => {
  const bad: [string, RegExp][] = [
    ['api = "0.12"\n[buildpack]\nid = "app"\nversion = "1"\n', /bp\.toml: id "app" is reserved/],
    ['api = "0.12"\n[buildpack]\nid = "a b"\nversion = "1"\n', /bp\.toml: id "a b" may hold only/],
    ['api = "0.12"\n[buildpack]\nid = "a"\n', /bp\.toml \[buildpack\]: "version" is required/],
    ['api = "0.12"\n[buildpack]\nid = "a"\nversion = "1"\nsbom-formats = ["text/plain"]\n', /sbom-formats: "text\/plain" is not one of/],
    ['api = "0.12"\n[buildpack]\nid = "a"\nversion = "1"\nclear-env = "yes"\n', /"clear-env" must be true or false/],
  ];
  for (const [text, re] of bad) assert.throws(() => parseDescriptor(parseToml(text, 'bp.toml'), 'bp.toml', '/x', 'buildpack', true), (e: Error) => re.test(e.message) && !e.message.includes('\n'));
  assert.throws(() => parseToml('api = \n', 'broken.toml'), /broken\.toml: invalid TOML at line 1/);
  assert.throws(() => parseDescriptor(toml('api = "0.3"\n[buildpack]\nid = "a"\nversion = "1"\n'), 'bp.toml', '/x', 'buildpack', true), (e: Error & { exitCode?: number }) => e.exitCode === 12);
});

test('launch.toml follows the API: string commands and direct before 0.9, arrays after; types and defaults validated', () => {
  const old = parseLaunch(toml('[[processes]]\ntype = "web"\ncommand = "bundle exec rackup"\ndirect = false\n'), 'l.toml', ApiVersion.parse('0.8'));
  assert.deepEqual(old.processes[0]!.command, ['bundle exec rackup']);
  assert.equal(old.processes[0]!.direct, false);
  const now = parseLaunch(toml('[[processes]]\ntype = "web"\ncommand = ["node", "app.js"]\nargs = ["--x"]\ndefault = true\nworking-dir = "/srv"\n[[slices]]\npaths = ["*.js"]\n[[labels]]\nkey = "k"\nvalue = "v"\n'), 'l.toml', ApiVersion.parse('0.12'));
  assert.deepEqual(now.processes[0], { type: 'web', command: ['node', 'app.js'], args: ['--x'], direct: true, default: true, workingDir: '/srv' });
  assert.deepEqual(now.slices, [{ paths: ['*.js'] }]);
  assert.deepEqual(now.labels, [{ key: 'k', value: 'v' }]);
  assert.throws(() => parseLaunch(toml('[[processes]]\ntype = "w"\ncommand = ["x"]\ndirect = true\n'), 'l.toml', ApiVersion.parse('0.9')), /"direct" is not allowed/);
  assert.throws(() => parseLaunch(toml('[[processes]]\ntype = "w"\ncommand = ["x"]\n[[processes]]\ntype = "w"\ncommand = ["y"]\n'), 'l.toml', ApiVersion.parse('0.12')), /declared twice/);
  assert.throws(() => parseLaunch(toml('[[labels]]\nkey = "k"\n[[labels]]\nkey = "k"\n'), 'l.toml', ApiVersion.parse('0.12')), /label "k" is declared twice/);
});

test('<layer>.toml: types default to false; the old top-level form is ignored with a warning, as the reference does', () => {
  assert.deepEqual(parseLayerToml(toml('[metadata]\nv = 1\n'), 'l.toml'), { types: { launch: false, build: false, cache: false }, metadata: { v: 1 } });
  const old = parseLayerToml(toml('launch = true\nbuild = true\ncache = true\n'), 'l.toml');
  assert.deepEqual(old.types, { launch: false, build: false, cache: false });
  assert.match(old.warning ?? '', /^l\.toml: "launch", "build", "cache" at the top level is the old format and is ignored/);
});

test('buildpack ids: "_" as the reference takes it; reserved names and path tricks refused', () => {
  for (const id of ['simple_buildpack', 'my.org/node_js-1', 'a/b/c']) assert.doesNotThrow(() => checkId(id, 'buildpack.toml'), id);
  for (const id of ['app', 'config', 'sbom', '..', 'a/../b', 'a//b', '/a', 'a b', 'a$b', '']) assert.throws(() => checkId(id, 'buildpack.toml'), /buildpack\.toml: id/, id);
});

test('build plans: or alternatives; a top-level version in requires is refused; extensions may not require', () => {
  const p = parseBuildPlan(toml('[[provides]]\nname = "a"\n[[or]]\n[[or.requires]]\nname = "b"\n[or.requires.metadata]\nv = "1"\n'), 'plan');
  assert.equal(p.sections.length, 2);
  assert.deepEqual(p.sections[1]!.requires, [{ name: 'b', metadata: { v: '1' } }]);
  assert.throws(() => parseBuildPlan(toml('[[requires]]\nname = "a"\nversion = "1"\n'), 'plan'), /top-level "version"/);
  assert.throws(() => parseBuildPlan(toml('[[requires]]\nname = "a"\n'), 'plan', true), /extension may only provide/);
});

test('project.toml: descriptor 0.2 and the older form; include with exclude is refused', () => {
  const p = parseProject(
    toml('[_]\nschema-version = "0.2"\nid = "app"\n[io.buildpacks]\nbuilder = "b:1"\nexclude = ["*.md"]\n[[io.buildpacks.group]]\nid = "x"\nversion = "1"\n[[io.buildpacks.pre.group]]\nuri = "docker://y"\n[[io.buildpacks.build.env]]\nname = "K"\nvalue = "V"\n'),
    'project.toml',
  );
  assert.equal(p.builder, 'b:1');
  assert.deepEqual(p.exclude, ['*.md']);
  assert.deepEqual(p.group, [{ id: 'x', version: '1' }]);
  assert.deepEqual(p.pre, [{ uri: 'docker://y' }]);
  assert.deepEqual(p.env, [{ name: 'K', value: 'V' }]);
  const old = parseProject(toml('[project]\nid = "old"\n[build]\ninclude = ["src"]\n[[build.buildpacks]]\nid = "z"\n[[build.env]]\nname = "A"\nvalue = "B"\n'), 'project.toml');
  assert.equal(old.id, 'old');
  assert.deepEqual(old.include, ['src']);
  assert.deepEqual(old.group, [{ id: 'z' }]);
  assert.deepEqual(old.env, [{ name: 'A', value: 'B' }]);
  assert.throws(() => parseProject(toml('[_]\nschema-version = "0.2"\n[io.buildpacks]\ninclude = ["a"]\nexclude = ["b"]\n'), 'project.toml'), /project\.toml: set include or exclude, not both/);
  // An env entry with no value is a mistake said in one line, not a variable silently set empty.
  assert.throws(() => parseProject(toml('[_]\nschema-version = "0.2"\n[[io.buildpacks.build.env]]\nname = "K"\n'), 'project.toml'), /project\.toml.*env K has no value; give value = "" to set it empty/);
  assert.deepEqual(parseProject(toml('[_]\nschema-version = "0.2"\n[[io.buildpacks.build.env]]\nname = "K"\nvalue = ""\n'), 'project.toml').env, [{ name: 'K', value: '' }]);
});

test('run.toml and stack.toml; mirrors need an image', () => {
  assert.deepEqual(parseRunToml(toml('[[images]]\nimage = "r/run:1"\nmirrors = ["m/run:1"]\n'), 'run.toml'), [{ image: 'r/run:1', mirrors: ['m/run:1'] }]);
  assert.deepEqual(parseStackToml(toml('[run-image]\nimage = "r/run"\n'), 'stack.toml'), [{ image: 'r/run', mirrors: [] }]);
  assert.throws(() => parseRunToml(toml('[[images]]\nmirrors = ["m"]\n'), 'run.toml'), /mirrors need an image/);
});

test('group.toml, plan.toml and analyzed.toml round-trip', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'strata-spec-'));
  try {
    await writeGroupFile(join(dir, 'group.toml'), { group: [{ id: 'a', version: '1', api: '0.12', homepage: 'h' }], groupExtensions: [] });
    assert.deepEqual((await readGroupFile(join(dir, 'group.toml'))).group, [{ id: 'a', version: '1', api: '0.12', homepage: 'h' }]);
    const plan = { entries: [{ providers: [{ id: 'a', version: '1' }], requires: [{ name: 'n', metadata: { v: '2' } }] }] };
    await writePlanFile(join(dir, 'plan.toml'), plan);
    assert.deepEqual(JSON.parse(JSON.stringify(await readPlanFile(join(dir, 'plan.toml')))), plan);
    const analyzed = { runImage: { reference: 'r@sha256:1', image: 'r', target: { os: 'linux', arch: 'amd64', distro: { name: 'debian', version: '12' } } } };
    await writeAnalyzed(join(dir, 'analyzed.toml'), analyzed);
    assert.deepEqual(JSON.parse(JSON.stringify(await readAnalyzed(join(dir, 'analyzed.toml')))), analyzed);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('exec.d output and target matching', () => {
  assert.deepEqual(parseExecdOutput('A = "1"\nB_2 = "x y"\n', 'p'), { A: '1', B_2: 'x y' });
  assert.throws(() => parseExecdOutput('A = 1\n', 'p'), /must be a string/);
  assert.ok(targetMatches({ os: 'linux' }, { os: 'linux', arch: 'arm64' }));
  assert.ok(!targetMatches({ os: 'linux', arch: 'amd64' }, { os: 'linux', arch: 'arm64' }));
  assert.ok(targetMatches({ distros: [{ name: 'debian' }] }, { os: 'linux', distro: { name: 'debian', version: '12' } }));
  assert.ok(!targetMatches({ distros: [{ name: 'ubuntu', version: '22.04' }] }, { os: 'linux', distro: { name: 'debian', version: '12' } }));
});

test('group.toml: an unparsable or unsupported buildpack API fails with exit 12, naming the file and buildpack', () => {
  const group = (api: string) => toml(`[[group]]\nid = "a/b"\nversion = "1"\napi = "${api}"\n`);
  assert.equal(parseGroupFile(group('0.12'), 'group.toml').group[0]!.api, '0.12');
  for (const api of ['0.2wrongapiblabla', '0.2', '9.0']) {
    assert.throws(() => parseGroupFile(group(api), 'group.toml'), (e: Error & { exitCode?: number }) => e.exitCode === 12 && /group\.toml: buildpack a\/b@1/.test(e.message), api);
  }
});

test('project.toml: schema 0.3; the deprecated [[io.buildpacks.env.build]] still read in 0.2 with a warning; unknown keys warned about', () => {
  const v3 = parseProject(toml('[_]\nschema-version = "0.3"\nid = "app"\nsource-url = "https://x"\n[io.buildpacks]\nbuilder = "b:1"\n[[io.buildpacks.build.env]]\nname = "K"\nvalue = "V"\n'), 'project.toml');
  assert.equal(v3.schemaVersion, '0.3');
  assert.deepEqual(v3.env, [{ name: 'K', value: 'V' }]);
  assert.deepEqual(v3.warnings, []);
  const v2 = parseProject(toml('[_]\nschema-version = "0.2"\nauthor = "typo"\n[_.metadata]\nfree = "ok"\n[io.buildpacks]\nbuilders = "typo"\n[[io.buildpacks.env.build]]\nname = "OLD"\nvalue = "1"\n'), 'project.toml');
  assert.deepEqual(v2.env, [{ name: 'OLD', value: '1' }]);
  assert.deepEqual(v2.warnings, [
    'project.toml: [[io.buildpacks.env.build]] is deprecated; use [[io.buildpacks.build.env]]',
    'project.toml: not part of schema-version 0.2, ignored: _.author, io.buildpacks.builders',
  ]);
  const env3 = parseProject(toml('[_]\nschema-version = "0.3"\n[[io.buildpacks.env.build]]\nname = "OLD"\nvalue = "1"\n'), 'project.toml');
  assert.deepEqual(env3.env, [], '0.3 dropped the old form');
  assert.match(env3.warnings.join('\n'), /ignored: io\.buildpacks\.env/);
  assert.throws(() => parseProject(toml('[_]\nschema-version = "0.4"\n'), 'project.toml'), /schema-version 0\.4 is not supported \(0\.1, 0\.2 and 0\.3 are\)/);
});

test('an empty plan.toml is an empty file, as the reference lifecycle writes it', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'strata-plan-'));
  try {
    await writePlanFile(join(dir, 'plan.toml'), { entries: [] });
    assert.equal(await readFile(join(dir, 'plan.toml'), 'utf8'), '');
    assert.deepEqual(await readPlanFile(join(dir, 'plan.toml')), { entries: [] });
    // A buildpack's own plan keeps `entries = []`, as conformance has it.
    await writeBuildpackPlan(join(dir, 'bp.toml'), { entries: [] });
    assert.match(await readFile(join(dir, 'bp.toml'), 'utf8'), /^entries = \[\s*\]/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
