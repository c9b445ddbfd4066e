import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ImageConfig } from '../../oci/config.js';
import type { ImageManifest } from '../../oci/manifest.js';
import { buildDurations, buildsPerHour, changeView, coverage, filterRows, layerDiff, layerFacts, sortRows, type FleetRow } from './model.js';

const d = (c: string) => `sha256:${c.repeat(64)}`;
const row = (name: string, over: Partial<FleetRow> = {}): FleetRow => ({ namespace: 'default', name, builder: 'ClusterBuilder b', stack: 'base', ready: 'True', ...over });

test('coverage counts, per stack, the images on its current run image and where the rest sit', () => {
  const rows = [row('a', { runImage: `r/base@${d('1')}` }), row('b', { runImage: `r/base@${d('0')}` }), row('c', { runImage: `r/base@${d('1')}` }), row('d'), row('e', { stack: 'other', runImage: `r/o@${d('2')}` })];
  const [base, other, empty] = coverage(rows, new Map([['base', `r/base@${d('1')}`], ['other', `r/o@${d('3')}`], ['zzz', undefined]]));
  assert.deepEqual(base, { stack: 'base', current: `r/base@${d('1')}`, total: 4, onCurrent: 2, digests: [{ digest: d('1'), count: 2, current: true }, { digest: d('0'), count: 1, current: false }, { digest: 'not built yet', count: 1, current: false }] });
  assert.equal(other!.onCurrent, 0, 'a pushed run image no image sits on yet');
  assert.deepEqual(empty, { stack: 'zzz', total: 0, onCurrent: 0, digests: [] });
});

test('builds per hour by reason: the last 24 hours, a build under each of its reasons, older ones left out', () => {
  const now = new Date('2026-12-02T10:30:00Z');
  const out = buildsPerHour([{ createdAt: '2026-12-02T10:05:00Z', reasons: 'COMMIT,BUILDPACK' }, { createdAt: '2026-12-02T09:59:59Z', reasons: 'COMMIT' }, { createdAt: '2026-11-30T10:00:00Z', reasons: 'STACK' }], now);
  assert.equal(out.hours.length, 24);
  assert.equal(out.hours[23], Date.parse('2026-12-02T10:00:00Z') / 1000);
  assert.deepEqual(Object.keys(out.series).sort(), ['BUILDPACK', 'COMMIT']);
  assert.deepEqual(out.series.COMMIT!.slice(22), [1, 1]);
  assert.deepEqual(out.series.BUILDPACK!.slice(22), [0, 1]);
});

test('build durations: succeeded ones, oldest first, builds and rebases apart', () => {
  const out = buildDurations([
    { startedAt: '2026-12-02T10:00:10Z', finishedAt: '2026-12-02T10:00:10.5Z', kind: 'rebase', status: 'succeeded' },
    { startedAt: '2026-12-02T10:00:00Z', finishedAt: '2026-12-02T10:00:04Z', kind: 'build', status: 'succeeded' },
    { startedAt: '2026-12-02T10:00:00Z', finishedAt: '2026-12-02T10:00:09Z', kind: 'build', status: 'failed' },
    { startedAt: '2026-12-02T10:00:00Z', kind: 'build', status: 'running' },
  ]);
  assert.deepEqual(out, { at: [Date.parse('2026-12-02T10:00:00Z') / 1000, Date.parse('2026-12-02T10:00:10Z') / 1000], build: [4, null], rebase: [null, 0.5] });
  assert.deepEqual(buildDurations([{ startedAt: '2026-12-02T10:00:00.7Z', finishedAt: '2026-12-02T10:00:01.93Z', kind: 'build', status: 'succeeded' }, { startedAt: '2026-12-02T09:00:00Z', finishedAt: '2026-12-02T09:00:01Z', kind: 'build', status: 'succeeded' }], 1), { at: [Date.parse('2026-12-02T10:00:00Z') / 1000], build: [1.2], rebase: [null] }, 'the newest, rounded');
});

test('filter and sort: by name, not-ready first, newest first, by base', () => {
  const rows = [row('b', { ready: 'False', lastAt: '2026-01-01', runImage: 'x@sha256:2' }), row('a', { lastAt: '2026-03-01', lastReason: 'STACK', runImage: 'x@sha256:1' }), row('c', { ready: 'Unknown', lastAt: '2026-02-01', runImage: 'x@sha256:1' })];
  const names = (r: FleetRow[]) => r.map((x) => x.name).join('');
  assert.equal(names(sortRows(rows, 'name')), 'abc');
  assert.equal(names(sortRows(rows, 'ready')), 'bca');
  assert.equal(names(sortRows(rows, 'time')), 'acb');
  assert.equal(names(sortRows(rows, 'base')), 'acb');
  assert.equal(names(filterRows(rows, ' stack ')), 'a');
  assert.equal(names(filterRows(rows, 'false')), 'b');
  assert.equal(names(filterRows(rows, '')), 'bac');
});

function appImage(layers: { id: string; size: number }[], md: unknown): { config: ImageConfig; manifest: ImageManifest } {
  return {
    config: { architecture: 'amd64', os: 'linux', config: { Labels: { 'io.buildpacks.lifecycle.metadata': JSON.stringify(md) } }, rootfs: { type: 'layers', diff_ids: layers.map((l) => d(l.id)) } } as ImageConfig,
    manifest: { schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: d('f'), size: 1 }, layers: layers.map((l) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: d('e'), size: l.size })) } as ImageManifest,
  };
}

test('layer facts say whose each layer is; the diff of two builds says which were reused, changed, added or removed', () => {
  const md = (bp: Record<string, string>, app: string) => ({ runImage: { topLayer: d('2'), reference: '' }, app: [{ sha: d(app) }], launcher: { sha: d('l') }, config: { sha: d('c') }, buildpacks: [{ key: 'acme/node', version: '1', layers: Object.fromEntries(Object.entries(bp).map(([k, v]) => [k, { sha: d(v) }])) }] });
  const one = appImage([{ id: '1', size: 10 }, { id: '2', size: 20 }, { id: 'a', size: 5 }, { id: 'b', size: 6 }, { id: '3', size: 7 }, { id: 'l', size: 8 }, { id: 'c', size: 1 }], md({ deps: 'a', cache: 'b' }, '3'));
  const two = appImage([{ id: '1', size: 10 }, { id: '2', size: 20 }, { id: 'a', size: 5 }, { id: 'd', size: 9 }, { id: '4', size: 7 }, { id: 'l', size: 8 }, { id: 'c', size: 1 }], md({ deps: 'a', tools: 'd' }, '4'));
  const a = layerFacts(one.config, one.manifest);
  assert.deepEqual(a.map((l) => `${l.role}:${l.owner ?? ''}:${l.name}:${l.size}`), ['run image::layer 1:10', 'run image::layer 2:20', 'buildpack:acme/node:deps:5', 'buildpack:acme/node:cache:6', 'app::app:7', 'launcher::launcher:8', 'launch config::config:1']);
  const diff = layerDiff(a, layerFacts(two.config, two.manifest));
  assert.deepEqual(diff.map((c) => `${c.name}:${c.state}`), ['layer 1:reused', 'layer 2:reused', 'deps:reused', 'tools:added', 'app:changed', 'launcher:reused', 'config:reused', 'cache:removed']);
  // A label a buildpack or registry could forge changes nothing but names: unknown layers are "other".
  const forged = appImage([{ id: '9', size: 1 }], 'not json');
  assert.deepEqual(layerFacts(forged.config, forged.manifest).map((l) => l.role), ['other']);
});

test('a CONFIG change names what differs and never shows an env value', () => {
  const was = { env: [{ name: 'A', value: 'secret-ish-1' }, { name: 'B', value: 'x' }], source: { git: { url: 'https://g/x' } } };
  const now = { env: [{ name: 'A', value: 'secret-ish-2' }, { name: 'C', valueFrom: { secretKeyRef: { name: 's', key: 'k' } } }], envDigest: 'h2', source: { git: { url: 'https://g/y' } }, defaultProcess: 'web' };
  const v = changeView({ reason: 'CONFIG', old: was, new: now });
  assert.deepEqual(v, { reason: 'CONFIG', what: ['env A changed', 'env C added', 'env B removed', 'a value read from a Secret or ConfigMap changed', 'defaultProcess changed', 'source https://g/y changed'] });
  assert.doesNotMatch(JSON.stringify(v), /secret-ish/);
  assert.deepEqual(changeView({ reason: 'CONFIG', old: null, new: was }), { reason: 'CONFIG', what: ['first build', 'env A, B', 'source https://g/x'] });
  assert.deepEqual(changeView({ reason: 'COMMIT', old: 'a'.repeat(40), new: 'b'.repeat(40) }), { reason: 'COMMIT', old: 'a'.repeat(40), new: 'b'.repeat(40) });
});
