import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mapLimit } from './concurrency.js';

test('mapLimit keeps order, bounds concurrency, and on failure starts nothing new and waits for work in flight', async () => {
  let active = 0;
  let peak = 0;
  const out = await mapLimit([5, 1, 3, 2], 2, async (n) => {
    active++;
    peak = Math.max(peak, active);
    await new Promise((r) => setTimeout(r, n));
    active--;
    return n * 10;
  });
  assert.deepEqual(out, [50, 10, 30, 20]);
  assert.equal(peak, 2);

  const finished: number[] = [];
  await assert.rejects(
    mapLimit([1, 2, 3, 4, 5], 2, async (n) => {
      if (n === 1) throw new Error('first fails');
      await new Promise((r) => setTimeout(r, 30));
      finished.push(n);
      return n;
    }),
    /first fails/,
  );
  assert.deepEqual(finished, [2], 'the item in flight finished before the rejection; none started after it');
});
