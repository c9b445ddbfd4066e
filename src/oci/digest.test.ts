import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createHash } from 'node:crypto';
import { DigestStream, VerifyingStream, parseDigest, sha256 } from './digest.js';

test('sha256 matches node crypto and parseDigest validates', () => {
  const hex = createHash('sha256').update('abc').digest('hex');
  assert.equal(sha256('abc'), `sha256:${hex}`);
  assert.equal(parseDigest(`sha256:${hex}`), `sha256:${hex}`);
  assert.throws(() => parseDigest('sha256:ABC'), /invalid digest/);
  assert.throws(() => parseDigest('md5:00'), /invalid digest/);
});

test('DigestStream hashes and counts in passing', async () => {
  const d = new DigestStream();
  const chunks: Buffer[] = [];
  await pipeline(Readable.from([Buffer.from('hello '), Buffer.from('world')]), d, async function* (src) {
    for await (const c of src) chunks.push(c as Buffer);
  });
  assert.equal(Buffer.concat(chunks).toString(), 'hello world');
  assert.equal(d.digest, sha256('hello world'));
  assert.equal(d.size, 11);
});

async function drain(s: AsyncIterable<unknown>): Promise<void> {
  for await (const _ of s) void _;
}

test('VerifyingStream accepts the right bytes and rejects wrong digest, short and long data', async () => {
  const ok = new VerifyingStream(sha256('data'), 4, 'test');
  await pipeline(Readable.from([Buffer.from('data')]), ok, drain);
  await assert.rejects(pipeline(Readable.from([Buffer.from('datx')]), new VerifyingStream(sha256('data'), 4, 'test'), drain), /corrupt/);
  await assert.rejects(pipeline(Readable.from([Buffer.from('dat')]), new VerifyingStream(sha256('data'), 4, 'test'), drain), /truncated/);
  await assert.rejects(pipeline(Readable.from([Buffer.from('datas')]), new VerifyingStream(sha256('data'), 4, 'test'), drain), /larger/);
});
