import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { run } from '../harness/proc.js';
import { PROJECT_ROOT } from '../../src/version.js';

const LIB = join(PROJECT_ROOT, 'buildpacks', 'common', 'semver.sh');
const AVAILABLE = ['16.20.2', '18.19.0', '18.20.4', '20.11.0', '20.19.5', '20.20.2', '22.1.0', '22.23.3'];

/** node-engine's version choice, run in bash exactly as the buildpack runs it. */
async function resolve(range: string): Promise<string> {
  const r = await run('bash', ['-c', `source "${LIB}"; semver_resolve "$1" ${AVAILABLE.join(' ')} && echo "$REPLY" || echo NONE`, 'resolve', range]);
  return r.stdout.trim();
}

const cases: [string, string][] = [
  ['20.19.5', '20.19.5'],
  ['v22.1.0', '22.1.0'],
  ['=18.20.4', '18.20.4'],
  ['20', '20.20.2'],
  ['20.x', '20.20.2'],
  ['20.11', '20.11.0'],
  ['20.11.x', '20.11.0'],
  ['18.*', '18.20.4'],
  ['*', '22.23.3'],
  ['x', '22.23.3'],
  ['^20.11.0', '20.20.2'],
  ['^18', '18.20.4'],
  ['~20.19.0', '20.19.5'],
  ['~20', '20.20.2'],
  ['>=18 <21', '20.20.2'],
  ['>= 18 < 20', '18.20.4'],
  ['>=21', '22.23.3'],
  ['>20.19', '22.23.3'],
  ['<=20.11', '20.11.0'],
  ['<18', '16.20.2'],
  ['16 || 18', '18.20.4'],
  ['^16.0.0 || ^20.0.0', '20.20.2'],
  ['22.x || ^18.0.0', '22.23.3'],
  ['^21', 'NONE'],
  ['>=23', 'NONE'],
  ['19.x', 'NONE'],
  ['~18.19.1', 'NONE'],
];

for (const [range, want] of cases) {
  test(`node version range "${range}" → ${want}`, async () => {
    assert.equal(await resolve(range), want);
  });
}
