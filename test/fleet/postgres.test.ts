// The fleet's store on a real PostgreSQL server: the same schema and queries as embedded, migrations that race,
// claims that never overlap, leases and fenced writes, events between processes, the controller's lock and the key
// every machine must share.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { connectServer } from '../../src/fleet/db/server.js';
import type { FleetEvent } from '../../src/fleet/db/database.js';
import { openFleetStore } from '../../src/fleet/open.js';
import { parseManifestText } from '../../src/fleet/manifests.js';
import type { BuildInputs } from '../../src/fleet/reasons.js';
import type { FleetStore } from '../../src/fleet/store.js';
import { startPostgres, psql, type TestPostgres } from '../harness/postgres.js';
import { run, tempDir } from '../harness/proc.js';
import { STRATA } from '../harness/probe.js';

let pg: TestPostgres;
let work: { path: string; cleanup: () => Promise<void> };
const opened: FleetStore[] = [];

before(async () => {
  work = await tempDir('strata-pg-');
  pg = await startPostgres(join(work.path, 'pg'));
});

after(async () => {
  for (const s of opened) await s.close().catch(() => undefined);
  pg?.stop();
  await work?.cleanup();
});

const inputs: BuildInputs = { config: { env: [], source: { registry: { image: 'r/src' } } }, builder: 'r/b@sha256:1', buildpacks: [], runImage: 'r/run@sha256:1', lifecycle: '0.1.0' };
const image = (name: string) => `apiVersion: kpack.io/v1alpha2\nkind: Image\nmetadata: {name: ${name}}\nspec:\n  tag: r/${name}\n  builder: {kind: ClusterBuilder, name: b}\n  source: {registry: {image: r/src}}\n`;

/** A machine: its own STRATA_HOME, with the fleet's key copied in. */
async function machine(name: string, database: string, key?: string): Promise<FleetStore> {
  const home = join(work.path, name);
  await mkdir(join(home, 'fleet'), { recursive: true });
  if (key) await writeFile(join(home, 'fleet', 'key'), key, { mode: 0o600 });
  const s = await openFleetStore({ home, database });
  opened.push(s);
  return s;
}

test('migrations from several processes at once run once; the schema is the embedded one', async () => {
  const url = pg.database('migrations');
  const homes = await Promise.all([0, 1, 2, 3].map(async (i) => {
    const h = join(work.path, `mig-${i}`);
    await mkdir(join(h, 'fleet'), { recursive: true });
    await writeFile(join(h, 'fleet', 'key'), Buffer.alloc(32, 1).toString('base64'));
    return h;
  }));
  const results = await Promise.all(homes.map((h) => run(STRATA, ['fleet', 'images', '--database', url], { env: { ...process.env, STRATA_HOME: h } })));
  for (const r of results) assert.equal(r.code, 0, r.stderr);
  assert.equal(psql(url, 'select count(*) from kysely_migration'), '2');
  assert.equal(psql(url, "select string_agg(table_name, ',' order by table_name) from information_schema.tables where table_schema = 'public' and table_name not like 'kysely%'"), 'build_logs,builds,fleet_meta,resources,workers');
});

test('claims from many workers never overlap; leases lapse back to the queue; a late worker writes nothing', async () => {
  const url = pg.database('claims');
  const key = Buffer.alloc(32, 2).toString('base64');
  const a = await machine('claims-a', url, key);
  const b = await machine('claims-b', url, key);
  await a.apply(parseManifestText(Array.from({ length: 40 }, (_, i) => image(`app-${i}`)).join('---\n'), 'f.yaml').map((p) => p.resource));
  for (let i = 0; i < 40; i++) await a.createBuild({ namespace: 'default', image: `app-${i}`, kind: 'rebase', reasons: 'STACK', changes: [], inputs, priority: 1 }, () => []);
  // Eight workers on two machines claim at once until the queue is empty.
  const taken = await Promise.all(Array.from({ length: 8 }, async (_, w) => {
    const mine: string[] = [];
    for (;;) {
      const c = await (w % 2 ? b : a).claim(`w${w}`, ['rebase'], 60_000);
      if (!c) return mine;
      mine.push(c.image);
    }
  }));
  const all = taken.flat();
  assert.equal(all.length, 40);
  assert.equal(new Set(all).size, 40, 'no build was claimed twice');

  const t0 = process.hrtime.bigint();
  for (let i = 0; i < 40; i++) await a.build({ ownerKind: 'Image', namespace: 'default', image: `app-${i}`, number: 1 });
  const perCall = Number(process.hrtime.bigint() - t0) / 1e6 / 40;
  assert.ok(perCall < 50, `a round trip took ${perCall} ms`);

  // w0's builds: its lease lapses (1 ms), they go back to the queue, and w0's late writes are refused.
  const w0 = taken[0]!;
  const k = { ownerKind: 'Image' as const, namespace: 'default', image: w0[0]!, number: 1 };
  assert.ok(await a.appendLog(k, 'w0', 0, 'first attempt\n'));
  await psql(url, "update builds set lease_until = '2000-01-01T00:00:00.000Z' where worker = 'w0'");
  const back = await b.requeueExpired();
  assert.deepEqual(back.map((x) => x.image).sort(), [...w0].sort());
  assert.ok(back.every((x) => x.status === 'pending' && x.attempts === 1));
  assert.equal(await a.finish(k, 'w0', 'succeeded', {}), false, 'the late result is refused');
  assert.equal(await a.appendLog(k, 'w0', 1, 'late\n'), false, 'so is its log');
  const again = await b.claim('w9', ['rebase'], 60_000);
  assert.equal(again?.attempts, 2);
  assert.equal(await b.nextLogSeq(again!), 1, 'the next attempt\'s log follows the first');
  assert.deepEqual((await a.renewLeases('w0', 60_000)).length, 0, 'w0 holds nothing any more');
});

test('events reach every process of the fleet; the controller\'s role is one process\'s, and passes on when it goes', async () => {
  const url = pg.database('events');
  const key = Buffer.alloc(32, 3).toString('base64');
  const a = await machine('ev-a', url, key);
  const b = await machine('ev-b', url, key);
  const seen: FleetEvent[] = [];
  const stop = await b.events((e) => seen.push(e));
  await a.wake({ type: 'reconcile', refresh: true });
  await a.wake({ type: 'abort', ownerKind: 'Image', namespace: 'default', name: 'x' });
  for (let i = 0; i < 50 && seen.length < 2; i++) await new Promise((r) => setTimeout(r, 20));
  assert.deepEqual(seen, [{ type: 'reconcile', refresh: true }, { type: 'abort', ownerKind: 'Image', namespace: 'default', name: 'x' }]);
  await stop();

  const held = await a.tryControl();
  assert.ok(!('holder' in held), 'the first process takes the role');
  const other = await b.tryControl();
  assert.ok('holder' in other && /^strata /.test(other.holder), `the second is told who has it: ${JSON.stringify(other)}`);
  // The holder's connection goes (as when its machine dies): the server drops the lock, and the other takes it.
  psql(url, `select pg_terminate_backend(pid) from pg_locks where locktype = 'advisory' and classid = ${0x53545241} and granted`);
  await Promise.race([held.lost, new Promise((_, reject) => setTimeout(() => reject(new Error('the holder was not told')), 5000))]);
  const taken = await b.tryControl();
  assert.ok(!('holder' in taken), 'the standby takes the role');
  await taken.release();
});

test('every machine needs the fleet\'s key: a machine with another one, or none, is stopped with one line', async () => {
  const url = pg.database('keys');
  const s = await machine('key-a', url, Buffer.alloc(32, 4).toString('base64'));
  await s.apply(parseManifestText('apiVersion: v1\nkind: Secret\nmetadata: {name: s}\nstringData: {token: planted-value-93}\n', 's.yaml').map((p) => p.resource));
  await assert.rejects(machine('key-b', url, Buffer.alloc(32, 5).toString('base64')), /is not the key the fleet in postgres:\/\/strata@127\.0\.0\.1:\d+\/keys seals its Secrets with/);
  await assert.rejects(machine('key-c', url), /seals its Secrets with a key this machine does not have: copy the key file/);
  assert.ok(!psql(url, 'select sealed from resources').includes('planted-value-93'), 'the value is sealed on the server');
  const wrong = await run(STRATA, ['fleet', 'images', '--database', 'mysql://x'], { env: { ...process.env, STRATA_HOME: join(work.path, 'key-d') } });
  assert.equal(wrong.code, 1);
  assert.equal(wrong.stderr.trim().split('\n').length, 1);
  assert.match(wrong.stderr, /--database: expected a PostgreSQL URL/);
  const down = await run(STRATA, ['fleet', 'images'], { env: { ...process.env, STRATA_HOME: join(work.path, 'key-d'), STRATA_FLEET_DATABASE: 'postgres://strata:hunter2-secret@127.0.0.1:1/fleet' } });
  assert.equal(down.code, 1);
  assert.match(down.stderr, /the fleet database postgres:\/\/strata@127\.0\.0\.1:1\/fleet cannot be reached/);
  assert.ok(!down.stderr.includes('hunter2'), 'the password is never printed');
});

test('a server that is reachable but not a fleet database answers with one line', async () => {
  const bad = await connectServer(pg.url.replace(/\/postgres$/, '/nosuchdb')).then(
    () => 'opened',
    (err: Error) => err.message,
  );
  assert.match(bad, /cannot be reached \(database "nosuchdb" does not exist\)/);
});
