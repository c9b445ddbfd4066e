import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { gunzipSync } from 'node:zlib';
import { randomBytes } from 'node:crypto';
import { ParallelGzip } from './pgzip.js';

async function gzip(data: Buffer, pieces = 7): Promise<Buffer> {
  const parts: Buffer[] = [];
  const step = Math.max(1, Math.ceil(data.length / pieces));
  for (let i = 0; i < data.length; i += step) parts.push(data.subarray(i, i + step));
  const out: Buffer[] = [];
  await pipeline(Readable.from(parts), new ParallelGzip(6), async (src: AsyncIterable<Buffer>) => {
    for await (const c of src) out.push(c);
  });
  return Buffer.concat(out);
}

const BLOCK = 512 * 1024;
for (const size of [0, 1, 1000, BLOCK - 1, BLOCK, BLOCK + 1, 3 * BLOCK, 3 * BLOCK + 17]) {
  test(`parallel gzip round-trips ${size} bytes as one gzip member`, async () => {
    // Half random, half repetitive: exercises both stored and compressed blocks and the cross-block dictionary.
    const data = Buffer.concat([randomBytes(Math.floor(size / 2)), Buffer.alloc(size - Math.floor(size / 2), 'abcabcabd')]);
    const gz = await gzip(data);
    assert.equal(gz[0], 0x1f);
    assert.equal(gz[1], 0x8b);
    assert.equal(gz.readUInt32LE(gz.length - 4), size % 2 ** 32);
    assert.deepEqual(gunzipSync(gz), data);
  });
}

test('parallel gzip output depends only on the input, not on how it was chunked', async () => {
  const data = Buffer.concat([randomBytes(BLOCK), Buffer.alloc(2 * BLOCK, 'xyz')]);
  const a = await gzip(data, 3);
  const b = await gzip(data, 101);
  assert.deepEqual(a, b);
});

test('the dictionary makes repeated data across blocks compress', async () => {
  const chunk = randomBytes(16 * 1024);
  const data = Buffer.concat(Array.from({ length: 128 }, () => chunk)); // 2 MiB, 4 blocks, one 16 KiB pattern
  const gz = await gzip(data);
  assert.ok(gz.length < 64 * 1024, `expected strong compression, got ${gz.length} bytes`);
});

test('feed copies each chunk before it returns, and waits for a reader that lags', async () => {
  const data = Buffer.concat([randomBytes(BLOCK), Buffer.alloc(3 * BLOCK, 'feed')]);
  const gz = new ParallelGzip(1);
  const out: Buffer[] = [];
  let most = 0;
  const reading = (async () => {
    for await (const c of gz as AsyncIterable<Buffer>) {
      out.push(c);
      await new Promise((r) => setTimeout(r, 2));
    }
  })();
  const scratch = Buffer.alloc(100 * 1024);
  for (let at = 0; at < data.length; at += scratch.length) {
    const n = data.copy(scratch, 0, at);
    await gz.feed(scratch.subarray(0, n));
    most = Math.max(most, gz.readableLength);
    // The caller's buffer is its own again: what gzip took must not change with it.
    scratch.fill(0x55);
  }
  gz.end();
  await reading;
  assert.deepEqual(gunzipSync(Buffer.concat(out)), data);
  assert.ok(most <= gz.readableHighWaterMark + BLOCK, `${most} bytes waited for the reader`);
});
