import { test } from 'node:test';
import assert from 'node:assert/strict';
import { resolveGroup, type DetectedElement } from './resolve.js';
import type { PlanSection } from '../spec/buildplan.js';

interface Spec {
  status?: DetectedElement['status'];
  optional?: boolean;
  extension?: boolean;
  provides?: string[];
  requires?: (string | [string, Record<string, unknown>])[];
  or?: { provides?: string[]; requires?: string[] }[];
}

function section(provides: string[] = [], requires: Spec['requires'] = []): PlanSection {
  return {
    provides: provides.map((name) => ({ name })),
    requires: requires.map((r) => (typeof r === 'string' ? { name: r, metadata: {} } : { name: r[0], metadata: r[1] })),
  };
}

function el(id: string, s: Spec = {}): DetectedElement {
  return {
    id,
    version: '1.0.0',
    api: '0.12',
    optional: s.optional ?? false,
    extension: s.extension ?? false,
    status: s.status ?? 'pass',
    plan: { sections: [section(s.provides, s.requires), ...(s.or ?? []).map((o) => section(o.provides, o.requires))] },
  };
}

const ids = (v: ReturnType<typeof resolveGroup>): string[] => (v.ok ? v.group.map((e) => e.id) : []);
const entries = (v: ReturnType<typeof resolveGroup>): string[] => (v.ok ? v.entries.map((e) => `${e.requires[0]!.name}:${e.providers.map((p) => p.id).join('+')}<-${e.requires.length}`) : []);

interface Case {
  name: string;
  group: DetectedElement[];
  ok: boolean;
  error?: boolean;
  ids?: string[];
  entries?: string[];
}

const cases: Case[] = [
  { name: 'one passing buildpack, empty plan', group: [el('A')], ok: true, ids: ['A'], entries: [] },
  { name: 'a required buildpack that fails fails the group', group: [el('A'), el('B', { status: 'fail' })], ok: false, error: false },
  { name: 'a required buildpack that errors fails the group with an error', group: [el('A'), el('B', { status: 'error' })], ok: false, error: true },
  { name: 'a failing optional buildpack is dropped', group: [el('A'), el('B', { status: 'fail', optional: true })], ok: true, ids: ['A'] },
  { name: 'an erroring optional buildpack is dropped, not fatal', group: [el('A', { status: 'error', optional: true }), el('B')], ok: true, ids: ['B'] },
  { name: 'all optional and all failing: nothing passed', group: [el('A', { status: 'fail', optional: true }), el('B', { status: 'fail', optional: true })], ok: false, error: false },
  { name: 'only an extension passed: not a group', group: [el('X', { extension: true, optional: true }), el('A', { status: 'fail', optional: true })], ok: false },
  { name: 'provide then require makes one entry', group: [el('A', { provides: ['node'] }), el('B', { requires: ['node'] })], ok: true, ids: ['A', 'B'], entries: ['node:A<-1'] },
  { name: 'a required unmet require fails the trial', group: [el('A', { requires: ['node'] })], ok: false, error: false },
  { name: 'an optional unmet require drops that buildpack', group: [el('A', { requires: ['node'], optional: true }), el('B')], ok: true, ids: ['B'], entries: [] },
  { name: 'a required unused provide fails the trial', group: [el('A', { provides: ['node'] })], ok: false },
  { name: 'an optional unused provide drops that buildpack', group: [el('A', { provides: ['node'], optional: true }), el('B')], ok: true, ids: ['B'] },
  { name: 'a buildpack may satisfy its own require', group: [el('A', { provides: ['node'], requires: ['node'] })], ok: true, entries: ['node:A<-1'] },
  { name: 'a require before its provider is unmet', group: [el('B', { requires: ['node'] }), el('A', { provides: ['node'] })], ok: false },
  {
    name: 'an or alternative is used when the top-level pair cannot hold',
    group: [el('A', { requires: ['python'], or: [{ provides: ['node'] }] }), el('B', { requires: ['node'] })],
    ok: true,
    entries: ['node:A<-1'],
  },
  {
    name: 'the first holding alternative wins',
    group: [el('A', { provides: ['node'], or: [{ provides: ['node', 'npm'] }] }), el('B', { requires: ['node'] })],
    ok: true,
    entries: ['node:A<-1'],
  },
  {
    name: 'alternatives are tried depth-first, the first element outermost',
    group: [el('A', { provides: ['x'], or: [{ provides: ['y'] }] }), el('B', { requires: ['y'], or: [{ requires: ['x'] }] })],
    ok: true,
    entries: ['x:A<-1'],
  },
  {
    name: "optional applies to an element's last alternative only: an earlier one is tried before dropping it",
    group: [el('A', { optional: true, requires: ['zzz'], or: [{ provides: ['node'] }] }), el('B', { requires: ['node'] })],
    ok: true,
    ids: ['A', 'B'],
  },
  { name: 'two providers of one name are both listed', group: [el('A', { provides: ['node'] }), el('B', { provides: ['node'] }), el('C', { requires: ['node'] })], ok: true, entries: ['node:A+B<-1'] },
  { name: 'two requires of one name share an entry', group: [el('A', { provides: ['node'] }), el('B', { requires: ['node'] }), el('C', { requires: ['node'] })], ok: true, entries: ['node:A<-2'] },
  {
    name: 'dropping an optional provider leaves a required requirer unmet',
    group: [el('A', { optional: true, provides: ['node'], requires: ['zzz'] }), el('B', { requires: ['node'] })],
    ok: false,
  },
  { name: "an extension's unused provide drops it instead of failing", group: [el('X', { extension: true, provides: ['tool'] }), el('A')], ok: true, ids: ['A'] },
  {
    name: 'entries come out in first-seen order',
    group: [el('A', { provides: ['b', 'a'] }), el('B', { requires: ['a', 'b'] })],
    ok: true,
    entries: ['b:A<-1', 'a:A<-1'],
  },
  { name: 'every element dropped: the trial fails', group: [el('A', { optional: true, requires: ['x'] }), el('B', { optional: true, provides: ['y'] })], ok: false },
  { name: 'a passing optional does not rescue a failing required one', group: [el('A', { optional: true }), el('B', { status: 'fail' })], ok: false },
  {
    name: "a provider's later provide of the same name after being required is unmet",
    group: [el('A', { provides: ['x'] }), el('B', { requires: ['x'] }), el('C', { provides: ['x'] })],
    ok: false,
  },
  {
    name: 'an unmet or-alternative of an optional buildpack falls back to dropping it',
    group: [el('A', { optional: true, requires: ['q'], or: [{ requires: ['r'] }] }), el('B')],
    ok: true,
    ids: ['B'],
  },
];

for (const c of cases) {
  test(`plan resolution: ${c.name}`, () => {
    const v = resolveGroup(c.group);
    assert.equal(v.ok, c.ok, v.ok ? `resolved to ${ids(v).join(',')}` : v.reason);
    if (!v.ok && c.error !== undefined) assert.equal(v.error, c.error);
    if (c.ids) assert.deepEqual(ids(v), c.ids);
    if (c.entries) assert.deepEqual(entries(v), c.entries);
  });
}

test('plan resolution keeps require metadata and drops nothing from it', () => {
  const v = resolveGroup([el('A', { provides: ['node'] }), el('B', { requires: [['node', { version: '20.x', build: true }]] })]);
  assert.ok(v.ok);
  assert.deepEqual(v.entries[0]!.requires[0]!.metadata, { version: '20.x', build: true });
});
