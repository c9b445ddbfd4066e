import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseManifest, selectPlatform, encodeJson, type ImageIndex } from './manifest.js';
import { parseConfig, withLabels } from './config.js';
import { MediaType } from './mediatype.js';
import { sha256 } from './digest.js';

const D = (c: string) => `sha256:${c.repeat(64)}` as `sha256:${string}`;

test('parses an OCI manifest without mediaType (as umoci writes it) by its shape', () => {
  const bytes = Buffer.from(JSON.stringify({ schemaVersion: 2, config: { mediaType: MediaType.OciConfig, digest: D('a'), size: 3 }, layers: [] }));
  const m = parseManifest(bytes, undefined, 'x');
  assert.equal(m.kind, 'manifest');
  assert.equal(m.mediaType, MediaType.OciManifest);
  assert.equal(m.digest, sha256(bytes));
});

test('takes the media type from Content-Type for a Docker manifest list', () => {
  const bytes = Buffer.from(JSON.stringify({ schemaVersion: 2, manifests: [] }));
  const m = parseManifest(bytes, `${MediaType.DockerManifestList}; charset=utf-8`, 'x');
  assert.equal(m.kind, 'index');
  assert.equal(m.mediaType, MediaType.DockerManifestList);
});

test('rejects unknown media types, schema 1 and broken descriptors with the place named', () => {
  assert.throws(() => parseManifest(Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/x-foo' })), undefined, 'reg/img:1'), /reg\/img:1: unknown manifest media type "application\/x-foo"/);
  assert.throws(() => parseManifest(Buffer.from(JSON.stringify({ schemaVersion: 1 })), undefined, 'x'), /schemaVersion 1/);
  assert.throws(() => parseManifest(Buffer.from('{nope'), undefined, 'x'), /not valid JSON/);
  const bad = { schemaVersion: 2, mediaType: MediaType.OciManifest, config: { mediaType: MediaType.OciConfig, digest: 'sha256:zz', size: 1 }, layers: [] };
  assert.throws(() => parseManifest(Buffer.from(JSON.stringify(bad)), undefined, 'x'), /not sha256/);
});

test('unknown fields survive a read-modify-write of manifest and config', () => {
  const doc = { schemaVersion: 2, mediaType: MediaType.OciManifest, config: { mediaType: MediaType.OciConfig, digest: D('a'), size: 3, 'x-extra': 1 }, layers: [], 'x-vendor': { keep: true } };
  const m = parseManifest(Buffer.from(JSON.stringify(doc)), undefined, 'x');
  assert.equal(m.kind, 'manifest');
  const back = JSON.parse(encodeJson(m.kind === 'manifest' ? m.manifest : {}).toString()) as Record<string, unknown>;
  assert.deepEqual(back['x-vendor'], { keep: true });
  const cfg = parseConfig(Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] }, 'moby.buildkit.info': 'x', config: { Env: ['A=1'], Healthcheck: { Test: ['x'] } } })), 'c');
  const changed = withLabels(cfg, { a: 'b' });
  const out = JSON.parse(encodeJson(changed).toString()) as { config: Record<string, unknown> } & Record<string, unknown>;
  assert.equal(out['moby.buildkit.info'], 'x');
  assert.deepEqual(out.config.Healthcheck, { Test: ['x'] });
  assert.deepEqual(out.config.Labels, { a: 'b' });
  assert.equal(cfg.config?.Labels, undefined, 'input left untouched');
});

test('platform selection by os/arch/variant', () => {
  const index: ImageIndex = {
    schemaVersion: 2,
    manifests: [
      { mediaType: MediaType.OciManifest, digest: D('1'), size: 1, platform: { os: 'linux', architecture: 'amd64' } },
      { mediaType: MediaType.OciManifest, digest: D('2'), size: 1, platform: { os: 'linux', architecture: 'arm', variant: 'v6' } },
      { mediaType: MediaType.OciManifest, digest: D('3'), size: 1, platform: { os: 'linux', architecture: 'arm', variant: 'v7' } },
      { mediaType: MediaType.OciManifest, digest: D('4'), size: 1, platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } },
      { mediaType: MediaType.OciManifest, digest: D('5'), size: 1, platform: { os: 'windows', architecture: 'amd64' } },
    ],
  };
  assert.equal(selectPlatform(index, { os: 'linux', architecture: 'amd64' })?.digest, D('1'));
  assert.equal(selectPlatform(index, { os: 'linux', architecture: 'arm', variant: 'v7' })?.digest, D('3'));
  assert.equal(selectPlatform(index, { os: 'linux', architecture: 'arm', variant: 'v6' })?.digest, D('2'));
  assert.equal(selectPlatform(index, { os: 'linux', architecture: 'arm64' })?.digest, D('4'));
  assert.equal(selectPlatform(index, { os: 'windows', architecture: 'amd64' })?.digest, D('5'));
  assert.equal(selectPlatform(index, { os: 'linux', architecture: 's390x' }), undefined);
});
