import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decide, reasonsOf, type BuildInputs, type PastBuild } from './reasons.js';

const base: BuildInputs = {
  config: { env: [{ name: 'BP_NODE_VERSION', value: '20' }], source: { git: { url: 'https://git.example/app' } } },
  commit: 'aaaa',
  builder: 'reg/builder@sha256:b1',
  buildpacks: [
    { id: 'strata/node-engine', version: '1.0.0' },
    { id: 'strata/yarn-install', version: '1.0.0' },
    { id: 'strata/procfile', version: '1.0.0' },
  ],
  runImage: 'reg/run@sha256:r1',
  lifecycle: '0.1.0',
};
const used = [base.buildpacks[0]!, base.buildpacks[2]!];

const past = (n: number, status: PastBuild['status'], inputs: BuildInputs, extra: Partial<PastBuild> = {}): PastBuild => ({
  number: n,
  status,
  inputs,
  createdAt: `2026-11-30T00:00:0${n}Z`,
  ...(status === 'succeeded' ? { usedBuildpacks: used, image: `reg/app@sha256:i${n}` } : {}),
  ...extra,
});

const with_ = (patch: Partial<BuildInputs>): BuildInputs => ({ ...base, ...patch });

const cases: [string, Parameters<typeof decide>[0], string, string][] = [
  ['first build: CONFIG', { desired: base }, 'build', 'CONFIG'],
  ['nothing changed', { desired: base, latest: past(1, 'succeeded', base), lastSuccess: past(1, 'succeeded', base) }, 'none', ''],
  ['a new commit', { desired: with_({ commit: 'bbbb' }), latest: past(1, 'succeeded', base), lastSuccess: past(1, 'succeeded', base) }, 'build', 'COMMIT'],
  ['an env change', { desired: with_({ config: { ...base.config, env: [] } }), lastSuccess: past(1, 'succeeded', base), latest: past(1, 'succeeded', base) }, 'build', 'CONFIG'],
  ['a new git url is CONFIG, not COMMIT', { desired: with_({ config: { ...base.config, source: { git: { url: 'https://git.example/other' } } } }), lastSuccess: past(1, 'succeeded', base), latest: past(1, 'succeeded', base) }, 'build', 'CONFIG'],
  ['only the run image: a rebase', { desired: with_({ runImage: 'reg/run@sha256:r2' }), lastSuccess: past(1, 'succeeded', base), latest: past(1, 'succeeded', base) }, 'rebase', 'STACK'],
  ['run image and commit: a build with both reasons', { desired: with_({ runImage: 'reg/run@sha256:r2', commit: 'cccc' }), lastSuccess: past(1, 'succeeded', base), latest: past(1, 'succeeded', base) }, 'build', 'COMMIT,STACK'],
  [
    'a used buildpack changed version: BUILDPACK',
    { desired: with_({ builder: 'reg/builder@sha256:b2', buildpacks: [{ id: 'strata/node-engine', version: '1.1.0' }, base.buildpacks[1]!, base.buildpacks[2]!] }), lastSuccess: past(1, 'succeeded', base), latest: past(1, 'succeeded', base) },
    'build',
    'BUILDPACK',
  ],
  [
    'a buildpack this app does not use changed: nothing',
    { desired: with_({ builder: 'reg/builder@sha256:b2', buildpacks: [base.buildpacks[0]!, { id: 'strata/yarn-install', version: '2.0.0' }, base.buildpacks[2]!] }), lastSuccess: past(1, 'succeeded', base), latest: past(1, 'succeeded', base) },
    'none',
    '',
  ],
  ['a new lifecycle', { desired: with_({ lifecycle: '0.2.0' }), lastSuccess: past(1, 'succeeded', base), latest: past(1, 'succeeded', base) }, 'build', 'LIFECYCLE'],
  ['the same run image digest pushed again: nothing (kpack#642)', { desired: with_({}), lastSuccess: past(1, 'succeeded', base), latest: past(1, 'succeeded', base) }, 'none', ''],
  ['a build is running: wait', { desired: with_({ commit: 'bbbb' }), lastSuccess: past(1, 'succeeded', base), latest: past(2, 'running', with_({ commit: 'bbbb' })) }, 'wait', ''],
  ['a failed build is not repeated with the same inputs', { desired: with_({ commit: 'bbbb' }), lastSuccess: past(1, 'succeeded', base), latest: past(2, 'failed', with_({ commit: 'bbbb' })) }, 'none', ''],
  [
    'after a failed build, a buildpack change still rebuilds (kpack#1198)',
    {
      desired: with_({ commit: 'bbbb', builder: 'reg/builder@sha256:b2', buildpacks: [{ id: 'strata/node-engine', version: '1.1.0' }, base.buildpacks[1]!, base.buildpacks[2]!] }),
      lastSuccess: past(1, 'succeeded', base),
      latest: past(2, 'failed', with_({ commit: 'bbbb' })),
    },
    'build',
    'COMMIT,BUILDPACK',
  ],
  ['an interrupted build is retried', { desired: with_({ commit: 'bbbb' }), lastSuccess: past(1, 'succeeded', base), latest: past(2, 'interrupted', with_({ commit: 'bbbb' })) }, 'build', 'COMMIT'],
  ['a first build that failed is not looped', { desired: base, latest: past(1, 'failed', base) }, 'none', ''],
  ['a trigger after the latest build', { desired: base, lastSuccess: past(1, 'succeeded', base), latest: past(1, 'succeeded', base), triggeredAt: '2026-11-30T01:00:00Z' }, 'build', 'TRIGGER'],
  ['a trigger older than the latest build is spent', { desired: base, lastSuccess: past(1, 'succeeded', base), latest: past(1, 'succeeded', base), triggeredAt: '2026-11-29T00:00:00Z' }, 'none', ''],
  ['a trigger retries a failed build', { desired: with_({ commit: 'bbbb' }), lastSuccess: past(1, 'succeeded', base), latest: past(2, 'failed', with_({ commit: 'bbbb' })), triggeredAt: '2026-11-30T01:00:00Z' }, 'build', 'TRIGGER,COMMIT'],
  ['a STACK change with nothing built yet is a build', { desired: base, latest: past(1, 'interrupted', base) }, 'build', 'CONFIG'],
];

for (const [what, input, action, reasons] of cases) {
  test(`build reasons: ${what}`, () => {
    const d = decide(input);
    assert.equal(d.action, action, JSON.stringify(d));
    assert.equal(reasonsOf(d.changes), reasons);
  });
}

test('each change carries old and new', () => {
  const d = decide({ desired: with_({ commit: 'bbbb', runImage: 'reg/run@sha256:r2' }), lastSuccess: past(1, 'succeeded', base), latest: past(1, 'succeeded', base) });
  assert.deepEqual(d.changes, [
    { reason: 'COMMIT', old: 'aaaa', new: 'bbbb' },
    { reason: 'STACK', old: 'reg/run@sha256:r1', new: 'reg/run@sha256:r2' },
  ]);
  const bp = decide({ desired: with_({ buildpacks: [{ id: 'strata/node-engine', version: '1.1.0' }, base.buildpacks[2]!] }), lastSuccess: past(1, 'succeeded', base) });
  assert.deepEqual(bp.changes[0], { reason: 'BUILDPACK', old: [{ id: 'strata/node-engine', version: '1.0.0' }], new: [{ id: 'strata/node-engine', version: '1.1.0' }] });
});

test("a stack whose id changed is built again, not rebased (kpack's rule)", () => {
  const base: BuildInputs = { config: { env: [], source: { registry: { image: 'r/src' } } }, builder: 'r/b@sha256:1', buildpacks: [], runImage: 'r/run@sha256:1', stackId: 'io.stack.a', lifecycle: '0.1.0' };
  const last = { number: 1, status: 'succeeded' as const, inputs: base, createdAt: '2026-01-01T00:00:00Z', image: 'r/app@sha256:9' };
  assert.equal(decide({ desired: { ...base, runImage: 'r/run@sha256:2' }, latest: last, lastSuccess: last }).action, 'rebase');
  const moved = decide({ desired: { ...base, runImage: 'r/run@sha256:2', stackId: 'io.stack.b' }, latest: last, lastSuccess: last });
  assert.equal(moved.action, 'build');
  assert.deepEqual(moved.changes.map((c) => c.reason), ['STACK']);
});
