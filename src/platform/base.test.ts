import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Progress } from '../oci/progress.js';
import { InstallerStatus } from './base.js';

/** debootstrap --debian-installer's status lines, as its `progress` and `error` functions print them on fd 3. */
const STATUS = [
  'P: 0 100 DOWNREL',
  'PF: Downloading Release file',
  'I: RETRIEVING',
  'IA: Release',
  'IF: Retrieving %s',
  'P: 100 100 DOWNREL',
  'PF: Downloading Release file',
  'P: 0 5301 DOWNDEBS',
  'PF: Downloading packages',
  'P: 2650 5301 DOWNDEBS',
  'PF: Downloading packages',
  'P: 5301 5301 DOWNDEBS',
  'PF: Downloading packages',
  'P: 3 40 CONFBASE',
  'PF: Configuring base system',
  'E: COULDNTDL',
  'EA: libc6',
  'EF: Couldn\'t download package %s',
];

test("debootstrap's installer status becomes one task per phase, counted in steps, and its E: lines one message", () => {
  const tasks: { label: string; total: number; unit: string | undefined; seen: number; done: boolean }[] = [];
  const progress: Progress = {
    live: true,
    task(label, total, unit) {
      const t = { label, total, unit, seen: 0, done: false };
      tasks.push(t);
      return { advance: (n) => void (t.seen += n), done: () => void (t.done = true) };
    },
  };
  const status = new InstallerStatus(progress);
  for (const l of STATUS) status.line(l);
  status.end();
  assert.deepEqual(
    tasks.map((t) => [t.label, t.total, t.unit, t.seen, t.done]),
    [
      ['debootstrap: Downloading Release file', 100, 'steps', 100, true],
      ['debootstrap: Downloading packages', 5301, 'steps', 5301, true],
      ['debootstrap: Configuring base system', 40, 'steps', 3, true],
    ],
  );
  assert.equal(status.failure, "Couldn't download package libc6");
});
