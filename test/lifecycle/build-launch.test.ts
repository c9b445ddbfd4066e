import { test } from 'node:test';
import assert from 'node:assert/strict';
import { access, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { parse } from 'smol-toml';
import { withWorkspace, writeBuildpack, type Workspace } from '../harness/buildpacks.js';
import { PROJECT_ROOT } from '../../src/version.js';

const exists = (p: string): Promise<boolean> => access(p).then(() => true, () => false);
const plain = <T>(v: unknown): T => JSON.parse(JSON.stringify(v)) as T;

const withWs = withWorkspace;

async function detectAndBuild(ws: Workspace, order: string[][]): Promise<{ detect: string; build: { code: number; stdout: string; stderr: string } }> {
  await ws.order(order);
  const d = await ws.phase('detector');
  assert.equal(d.code, 0, `detect: ${d.stderr}${d.stdout}`);
  return { detect: d.stdout, build: await ws.phase('builder') };
}

/** A Node-like buildpack (API 0.10) and an app buildpack (API 0.12), shaped like real ones. */
async function twoBuildpacks(ws: Workspace): Promise<void> {
  const r = ws.root;
  await writeBuildpack(ws.buildpacks, {
    id: 'test/node',
    api: '0.10',
    buildpackKeys: 'sbom-formats = ["application/vnd.cyclonedx+json"]',
    detect: `printf '[[provides]]\\nname = "node"\\n[[requires]]\\nname = "node"\\n[requires.metadata]\\nversion = "20"\\n' > "$2"`,
    build: `L="$1"
cp "$3" ${r}/bp1-plan.toml
mkdir -p "$L/node/bin" "$L/node/env" "$L/node/env.build" "$L/node/env.launch/web" "$L/z-tools/env" "$L/scratch"
cat > "$L/node/bin/fake-node" <<'SH'
#!/usr/bin/env bash
echo "fake-node args: $*"
for v in GREETING SHARED OVR ONLY_BUILD EXECD_VAR WEB_ONLY CNB_APP_DIR CNB_LAYERS_DIR PROFILE_VAR; do echo "$v=\${!v:-unset}"; done
echo "PATH=$PATH"
echo "PWD=$PWD"
SH
chmod +x "$L/node/bin/fake-node"
printf from-node > "$L/node/env/NODE_HOME.override"
printf build-only > "$L/node/env.build/ONLY_BUILD"
printf hello > "$L/node/env.launch/GREETING.default"
printf web > "$L/node/env.launch/web/WEB_ONLY"
printf a > "$L/node/env/SHARED.append"; printf , > "$L/node/env/SHARED.delim"
printf one > "$L/node/env/OVR"
printf p > "$L/z-tools/env/SHARED.prepend"; printf '|' > "$L/z-tools/env/SHARED.delim"
printf '[types]\\nlaunch = true\\nbuild = true\\ncache = true\\n[metadata]\\nversion = "20.1.0"\\n' > "$L/node.toml"
printf '[types]\\nlaunch = true\\n' > "$L/z-tools.toml"
printf '[types]\\n' > "$L/scratch.toml"
echo '{"bomFormat":"CycloneDX"}' > "$L/node.sbom.cdx.json"
cat > "$L/launch.toml" <<'TOML'
[[processes]]
type = "web"
command = ["fake-node", "server.js"]
args = ["--port", "8080"]
default = true
[[processes]]
type = "worker"
command = ["fake-node"]
args = ["work"]
working-dir = "/tmp"
[[labels]]
key = "io.test.node"
value = "yes"
TOML
echo "node build done"`,
  });
  await writeBuildpack(ws.buildpacks, {
    id: 'test/app',
    api: '0.12',
    detect: `printf '[[requires]]\\nname = "node"\\n' > "$CNB_BUILD_PLAN_PATH"`,
    build: `command -v fake-node > ${r}/bp2-which
echo "$NODE_HOME $ONLY_BUILD" > ${r}/bp2-env
cp "$CNB_BP_PLAN_PATH" ${r}/bp2-plan.toml
L="$CNB_LAYERS_DIR"
mkdir -p "$L/deps/env.launch" "$L/deps/exec.d" "$L/deps/profile.d"
printf b > "$L/deps/env.launch/SHARED.append"; printf : > "$L/deps/env.launch/SHARED.delim"
printf ignored > "$L/deps/env.launch/GREETING.default"
printf two > "$L/deps/env.launch/OVR.override"
printf '[types]\\nlaunch = true\\n' > "$L/deps.toml"
printf '#!/usr/bin/env bash\\necho "EXECD_VAR = \\\\"from-execd\\\\"" >&3\\n' > "$L/deps/exec.d/set-var"
chmod +x "$L/deps/exec.d/set-var"
echo 'export PROFILE_VAR=from-profile' > "$L/deps/profile.d/p.sh"`,
  });
}

const lines = (out: string): Record<string, string> => Object.fromEntries(out.trim().split('\n').filter((l) => l.includes('=')).map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));

test('detector → builder → launcher with two real buildpacks: plans, build env, layers, metadata, SBOMs, launch env, exec.d, profile.d, args', () =>
  withWs(async (ws) => {
    await twoBuildpacks(ws);
    const { build } = await detectAndBuild(ws, [['test/node', 'test/app']]);
    assert.equal(build.code, 0, build.stderr + build.stdout);
    assert.match(build.stdout, /node build done/, 'buildpack output is streamed');

    // conformance 19: each buildpack gets its own layers dir and only the plan entries it provides
    const bp1Plan = plain<{ entries: { name: string; metadata?: { version?: string } }[] }>(parse(await readFile(join(ws.root, 'bp1-plan.toml'), 'utf8')));
    assert.deepEqual(bp1Plan.entries.map((e) => e.name), ['node', 'node']);
    assert.equal(bp1Plan.entries[0]!.metadata?.version, '20');
    assert.deepEqual(plain(parse(await readFile(join(ws.root, 'bp2-plan.toml'), 'utf8'))), { entries: [] });
    // conformance 21: build=true layers reach later buildpacks, env.build included
    assert.equal((await readFile(join(ws.root, 'bp2-which'), 'utf8')).trim(), join(ws.layers, 'test_node', 'node', 'bin', 'fake-node'));
    assert.equal((await readFile(join(ws.root, 'bp2-env'), 'utf8')).trim(), 'from-node build-only');
    // conformance 23: a layer with no types is set aside
    assert.ok(await exists(join(ws.layers, 'test_node', 'scratch.ignore')));
    assert.ok(!(await exists(join(ws.layers, 'test_node', 'scratch'))));
    // conformance 24: metadata.toml
    const md = plain<{ 'buildpack-default-process-type': string; processes: { type: string; command: string[]; args: string[]; direct: boolean; 'buildpack-id': string }[]; buildpacks: { id: string; api: string }[]; labels: { key: string }[] }>(
      parse(await readFile(join(ws.layers, 'config', 'metadata.toml'), 'utf8')),
    );
    assert.equal(md['buildpack-default-process-type'], 'web');
    assert.deepEqual(md.processes.map((p) => p.type), ['web', 'worker']);
    assert.deepEqual(md.processes[0]!.command, ['fake-node', 'server.js']);
    assert.equal(md.processes[0]!['buildpack-id'], 'test/node');
    assert.deepEqual(md.buildpacks.map((b) => `${b.id}:${b.api}`), ['test/node:0.10', 'test/app:0.12']);
    assert.deepEqual(md.labels.map((l) => l.key), ['io.test.node']);
    // conformance 26: SBOM copies
    assert.ok(await exists(join(ws.layers, 'sbom', 'launch', 'test_node', 'node', 'sbom.cdx.json')));
    assert.ok(await exists(join(ws.layers, 'sbom', 'cache', 'test_node', 'node', 'sbom.cdx.json')));

    // conformance 35-36: the launcher
    const web = await ws.launch('web', ['--inspect']);
    assert.equal(web.code, 0, web.stderr);
    assert.match(web.stdout, /^fake-node args: server\.js --inspect$/m, 'command[1:] kept, user args replace the defaults');
    const env = lines(web.stdout);
    assert.equal(env.GREETING, 'hello', '.default: the first buildpack wins');
    assert.equal(env.SHARED, 'p|a:b', 'append and prepend across two buildpacks and two layers, each with its own delim');
    assert.equal(env.OVR, 'two', 'override: the later buildpack wins');
    assert.equal(env.ONLY_BUILD, 'unset', 'env.build never reaches the launch env');
    assert.equal(env.EXECD_VAR, 'from-execd', 'exec.d output on fd 3 is applied');
    assert.equal(env.WEB_ONLY, 'web', 'env.launch/<process> applies to that process');
    assert.equal(env.CNB_APP_DIR, 'unset');
    assert.equal(env.CNB_LAYERS_DIR, 'unset');
    assert.doesNotMatch(env.PATH ?? '', /\/cnb\/process/);
    assert.equal(env.PWD, ws.app);
    const defaults = await ws.launch('web', []);
    assert.match(defaults.stdout, /^fake-node args: server\.js --port 8080$/m);
    const worker = await ws.launch('worker', []);
    assert.match(worker.stdout, /^fake-node args: work$/m);
    assert.equal(lines(worker.stdout).PWD, '/tmp', 'working-dir');
    assert.equal(lines(worker.stdout).WEB_ONLY, 'unset');
    const direct = await ws.launch('launcher', ['--', 'fake-node', 'a b', '$HOME']);
    assert.match(direct.stdout, /^fake-node args: a b \$HOME$/m, 'direct: no shell expansion');
    const shell = await ws.launch('launcher', ['echo "profile=$PROFILE_VAR execd=$EXECD_VAR"']);
    assert.equal(shell.code, 0, shell.stderr);
    assert.match(shell.stdout, /^profile=from-profile execd=from-execd$/m, 'a shell process sources profile.d');
    const none = await ws.launch('launcher', []);
    assert.equal(none.code, 82);
    assert.match(none.stderr, /no command given/);
  }));

test('conformance 19: a failing bin/build exits 51 naming the buildpack; the builder refuses root', () =>
  withWs(async (ws) => {
    await writeBuildpack(ws.buildpacks, { id: 'breaks', build: 'echo compiling; exit 7' });
    const { build } = await detectAndBuild(ws, [['breaks']]);
    assert.equal(build.code, 51);
    assert.match(build.stderr, /buildpack breaks@1\.0\.0: bin\/build exited with status 7/);
    const root = await ws.phase('builder', [], {}, { root: true });
    assert.match(root.stderr, /refusing to run as root/);
  }));

test('conformance 20: an entry in build.toml unmet goes on to the next provider; a met one does not; an unknown name fails', () =>
  withWs(async (ws) => {
    const r = ws.root;
    const provides = `printf '[[provides]]\\nname = "x"\\n' > "$CNB_BUILD_PLAN_PATH"`;
    await writeBuildpack(ws.buildpacks, { id: 'p1', detect: provides, build: `cp "$CNB_BP_PLAN_PATH" ${r}/p1.toml; [ -f ${r}/leave ] && printf '[[unmet]]\\nname = "x"\\n' > "$CNB_LAYERS_DIR/build.toml"; [ -f ${r}/bogus ] && printf '[[unmet]]\\nname = "nope"\\n' > "$CNB_LAYERS_DIR/build.toml"; true` });
    await writeBuildpack(ws.buildpacks, { id: 'p2', detect: provides, build: `cp "$CNB_BP_PLAN_PATH" ${r}/p2.toml` });
    await writeBuildpack(ws.buildpacks, { id: 'needs-x', detect: `printf '[[requires]]\\nname = "x"\\n' > "$CNB_BUILD_PLAN_PATH"` });
    let { build } = await detectAndBuild(ws, [['p1', 'p2', 'needs-x']]);
    assert.equal(build.code, 0, build.stderr);
    assert.match(await readFile(join(r, 'p1.toml'), 'utf8'), /name = "x"/);
    assert.doesNotMatch(await readFile(join(r, 'p2.toml'), 'utf8'), /name = "x"/, 'met by p1, so p2 gets nothing');
    await (await import('node:fs/promises')).writeFile(join(r, 'leave'), '');
    ({ build } = await detectAndBuild(ws, [['p1', 'p2', 'needs-x']]));
    assert.equal(build.code, 0, build.stderr);
    assert.match(await readFile(join(r, 'p2.toml'), 'utf8'), /name = "x"/, 'left unmet by p1, so p2 gets it');
    await (await import('node:fs/promises')).writeFile(join(r, 'bogus'), '');
    ({ build } = await detectAndBuild(ws, [['p1', 'p2', 'needs-x']]));
    assert.equal(build.code, 52);
    assert.match(build.stderr, /p1@1\.0\.0.*unmet "nope"/);
  }));

test('conformance 25-26: two default processes, direct on API 0.9+, undeclared SBOM formats and writes outside the layers dir fail the build with the id; API 0.8 string commands work', () =>
  withWs(async (ws) => {
    const launchToml = (body: string) => `cat > "$CNB_LAYERS_DIR/launch.toml" <<'TOML'\n${body}\nTOML`;
    const cases: [string, string, RegExp][] = [
      ['two-defaults', launchToml('[[processes]]\ntype = "a"\ncommand = ["x"]\ndefault = true\n[[processes]]\ntype = "b"\ncommand = ["y"]\ndefault = true'), /two-defaults@1\.0\.0: .*more than one default process/],
      ['direct-key', launchToml('[[processes]]\ntype = "a"\ncommand = ["x"]\ndirect = true'), /direct-key@1\.0\.0: .*"direct" is not allowed/],
      ['bad-sbom', 'echo {} > "$CNB_LAYERS_DIR/launch.sbom.spdx.json"', /bad-sbom@1\.0\.0: .*not declare in sbom-formats/],
      ['escapes', 'touch "$CNB_LAYERS_DIR/../intruder"', /escapes@1\.0\.0 wrote .*intruder, outside its layers dir/],
      ['bad-type', launchToml('[[processes]]\ntype = "a/b"\ncommand = ["x"]'), /bad-type@1\.0\.0: .*process type "a\/b"/],
    ];
    for (const [id, build, expected] of cases) {
      await writeBuildpack(ws.buildpacks, { id, build });
      const r = await detectAndBuild(ws, [[id]]);
      assert.equal(r.build.code, 52, `${id}: ${r.build.stderr}`);
      assert.match(r.build.stderr, expected);
      assert.equal(r.build.stderr.trim().split('\n').length, 1, `${id}: one line`);
    }
    await writeBuildpack(ws.buildpacks, {
      id: 'legacy',
      api: '0.8',
      build: `mkdir -p "$CNB_LAYERS_DIR/l/profile.d"; printf '[types]\\nlaunch = true\\n' > "$CNB_LAYERS_DIR/l.toml"; echo 'export LEGACY=from-profile' > "$CNB_LAYERS_DIR/l/profile.d/x.sh"
${launchToml('[[processes]]\ntype = "old"\ncommand = "echo legacy=$LEGACY"\ndefault = true')}`,
    });
    const r = await detectAndBuild(ws, [['legacy']]);
    assert.equal(r.build.code, 0, r.build.stderr);
    const out = await ws.launch('old', []);
    assert.equal(out.code, 0, out.stderr);
    assert.match(out.stdout, /^legacy=from-profile$/m, 'a non-direct API 0.8 process runs through bash with profile.d');
  }));

test('the launcher is a static binary under 1 MB and the phase links dispatch on argv0', async () => {
  const launcher = join(PROJECT_ROOT, 'dist', 'lifecycle', 'launcher');
  const st = await stat(launcher);
  assert.ok(st.size < 1 << 20, `launcher is ${st.size} bytes`);
  const { runOk } = await import('../harness/proc.js');
  assert.match(await runOk('file', ['-L', launcher]).catch(() => 'statically linked (file(1) missing)'), /statically linked|static-pie/);
});
