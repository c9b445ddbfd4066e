import { test } from 'node:test';
import assert from 'node:assert/strict';
import { imageTime } from './config.js';

test('image config times as Go writes them: RFC 3339, no trailing zeros in the fraction', () => {
  assert.equal(imageTime(new Date(Date.UTC(1980, 0, 1, 0, 0, 1))), '1980-01-01T00:00:01Z');
  assert.equal(imageTime(new Date(Date.UTC(2024, 0, 1, 12, 30, 0, 500))), '2024-01-01T12:30:00.5Z');
  assert.equal(imageTime(new Date(Date.UTC(2024, 0, 1, 12, 30, 0, 123))), '2024-01-01T12:30:00.123Z');
});
