import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openEmbedded } from './db/embedded.js';
import { parseManifestText } from './manifests.js';
import type { BuildInputs } from './reasons.js';
import { SecretBox } from './secrets.js';
import { FleetStore } from './store.js';

const inputs: BuildInputs = { config: { env: [], source: { registry: { image: 'r/src' } } }, builder: 'r/b@sha256:1', buildpacks: [], runImage: 'r/run@sha256:1', lifecycle: '0.1.0' };
const image = (name: string, tag = `r/${name}`) => `apiVersion: kpack.io/v1alpha2\nkind: Image\nmetadata: {name: ${name}}\nspec:\n  tag: ${tag}\n  builder: {kind: ClusterBuilder, name: b}\n  source: {registry: {image: r/src}}\n`;

test('the store: resources by generation, one active build per image, claims with leases, fenced writes, history limits, logs; all after a reopen', async () => {
  const t = await mkdtemp(join(tmpdir(), 'strata-store-'));
  const box = new SecretBox(Buffer.alloc(32, 7));
  try {
    const file = join(t, 'fleet.sqlite');
    let store = new FleetStore(openEmbedded(file, join(t, 'lock')), box);
    await store.migrate();
    const docs = parseManifestText(`${image('a')}---\n${image('b')}`, 'f.yaml').map((p) => p.resource);
    assert.deepEqual((await store.apply(docs)).map((o) => o.outcome), ['created', 'created']);
    assert.deepEqual((await store.apply(docs)).map((o) => o.outcome), ['unchanged', 'unchanged']);
    const changed = parseManifestText(image('a', 'r/a2'), 'f.yaml').map((p) => p.resource);
    assert.deepEqual((await store.apply(changed)).map((o) => o.outcome), ['configured']);
    assert.equal((await store.get({ kind: 'Image', namespace: 'default', name: 'a' }))!.generation, 2);

    const b1 = await store.createBuild({ namespace: 'default', image: 'a', kind: 'build', reasons: 'CONFIG', changes: [], inputs, priority: 1 }, (n) => [`r/a2:b${n}`]);
    assert.equal(b1?.number, 1);
    assert.deepEqual(b1?.tags, ['r/a2:b1']);
    assert.equal(await store.createBuild({ namespace: 'default', image: 'a', kind: 'build', reasons: 'CONFIG', changes: [], inputs, priority: 1 }, () => []), undefined, 'a second active build is refused');
    const claimed = await store.claim('w1', ['build', 'rebase'], 60_000);
    assert.equal(claimed?.number, 1);
    assert.equal(claimed?.status, 'running');
    assert.equal(claimed?.attempts, 1);
    assert.ok(claimed!.leaseUntil! > new Date(Date.now() + 50_000).toISOString(), `lease until ${claimed!.leaseUntil}`);
    assert.equal(await store.claim('w2', ['build', 'rebase'], 60_000), undefined);
    assert.ok(await store.appendLog(claimed!, 'w1', 0, 'line one\n'));
    assert.ok(await store.appendLog(claimed!, 'w1', 1, 'line two\n'));
    assert.equal(await store.appendLog(claimed!, 'w2', 2, 'not mine\n'), false, 'a log write of another worker is refused');
    assert.equal(await store.finish(claimed!, 'w2', 'failed', { message: 'not mine' }), false, 'so is its result');
    assert.equal(await store.nextLogSeq(claimed!), 2);
    assert.deepEqual((await store.renewLeases('w1', 60_000)).map((k) => k.number), [1]);
    assert.ok(await store.finish(claimed!, 'w1', 'succeeded', { result: { image: 'r/a2@sha256:9', usedBuildpacks: [{ id: 'x', version: '1' }] } }));
    for (let n = 2; n <= 6; n++) {
      const b = await store.createBuild({ namespace: 'default', image: 'a', kind: 'rebase', reasons: 'STACK', changes: [], inputs, priority: 0 }, () => []);
      assert.equal(b?.number, n);
      await store.claim('w1', ['rebase'], 60_000);
      assert.ok(await store.finish(b!, 'w1', n % 2 ? 'failed' : 'succeeded', { message: 'x' }));
    }
    const running = await store.createBuild({ namespace: 'default', image: 'b', kind: 'build', reasons: 'CONFIG', changes: [], inputs, priority: 1 }, () => []);
    // A lease that lapses sends the build back to the queue, attempts kept; the late worker's result is refused.
    await store.claim('w9', ['build'], 1);
    await new Promise((r) => setTimeout(r, 20));
    assert.deepEqual((await store.requeueExpired()).map((b) => `${b.image} ${b.status} ${b.attempts}`), ['b pending 1']);
    assert.equal(await store.finish(running!, 'w9', 'succeeded', {}), false);
    assert.equal((await store.claim('w10', ['build'], 60_000))?.attempts, 2);
    await store.close();

    // Everything survives a reopen; a build left running by a worker that is gone goes back to the queue.
    store = new FleetStore(openEmbedded(file, join(t, 'lock')), box);
    await store.migrate();
    assert.equal(await store.requeueLeftBy((w) => w === 'w9'), 0, 'nobody else\'s');
    assert.equal(await store.requeueLeftBy((w) => w === 'w10'), 1);
    const b = (await store.build({ ownerKind: 'Image', namespace: 'default', image: 'b', number: running!.number }))!;
    assert.equal(`${b.status} ${b.attempts} ${b.worker ?? '-'}`, 'pending 2 -');
    const latest = await store.latestBuilds();
    assert.equal(latest.get('default/a')!.latest!.number, 6);
    assert.equal(latest.get('default/a')!.lastSuccess!.number, 6);
    assert.equal(latest.get('default/b')!.lastSuccess, undefined);
    assert.deepEqual(await store.readLog({ ownerKind: 'Image', namespace: 'default', image: 'a', number: 1 }, 1), [{ seq: 1, text: 'line two\n' }]);
    assert.equal(await store.pruneHistory({ ownerKind: 'Image', namespace: 'default', image: 'a' }, 2, 1), 3);
    assert.deepEqual((await store.builds({ image: 'a' })).map((b) => `${b.number}:${b.status}`), ['6:succeeded', '5:failed', '4:succeeded']);
    assert.ok(await store.trigger('default', 'a'));
    assert.ok((await store.get({ kind: 'Image', namespace: 'default', name: 'a' }))!.triggeredAt);
    assert.deepEqual(await store.delete([{ kind: 'Image', namespace: 'default', name: 'a' }, { kind: 'Image', namespace: 'default', name: 'zz' }]), ['Image/default/a']);
    assert.deepEqual(await store.builds({ image: 'a' }), []);
    await store.close();
  } finally {
    await rm(t, { recursive: true, force: true });
  }
});
