import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Digest } from './digest.js';
import { annotated, findEntries, indexOf, ManifestLists, withEntries, withoutEntries, type ListEntry, type ManifestList } from './manifestlist.js';

const d = (c: string): Digest => `sha256:${c.repeat(64)}` as Digest;
const entry = (c: string, arch: string, source = `r.example/app@${d(c)}`): ListEntry => ({ source, descriptor: { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: d(c), size: 100, platform: { os: 'linux', architecture: arch } } });
const empty: ManifestList = { name: 'r.example/app:1', format: 'oci', entries: [] };

test('entries: a digest added again replaces its entry; rm and annotate find entries by digest or by the name added', () => {
  let list = withEntries(empty, [entry('a', 'amd64'), entry('b', 'arm64')]);
  list = withEntries(list, [{ ...entry('a', 'amd64'), source: 'oci:/x@' + d('a') }]);
  assert.deepEqual(list.entries.map((e) => e.descriptor.digest), [d('b'), d('a')]);
  assert.equal(findEntries(list, 'oci:/x').length, 1);
  assert.throws(() => findEntries(list, d('c')), /has no entry sha256:c{64} \(it has: sha256:b{64}, sha256:a{64}\)/);
  list = annotated(list, d('b'), { variant: 'v8', annotations: { k: 'v' } });
  assert.deepEqual(list.entries[0]!.descriptor.platform, { os: 'linux', architecture: 'arm64', variant: 'v8' });
  assert.deepEqual(list.entries[0]!.descriptor.annotations, { k: 'v' });
  assert.deepEqual(withoutEntries(list, [d('b')]).entries.map((e) => e.descriptor.digest), [d('a')]);
});

test('the index is the same bytes for the same list, in the format asked for', () => {
  const list = withEntries(empty, [entry('a', 'amd64')]);
  const a = indexOf(list);
  assert.deepEqual(indexOf(structuredClone(list)).bytes, a.bytes);
  assert.equal(JSON.parse(a.bytes.toString()).mediaType, 'application/vnd.oci.image.index.v1+json');
  assert.equal(indexOf({ ...list, format: 'docker' }).mediaType, 'application/vnd.docker.distribution.manifest.list.v2+json');
});

test('lists are kept as files written whole; a damaged one is one line saying how to remove it', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'strata-lists-'));
  try {
    const lists = new ManifestLists(dir);
    assert.equal(await lists.get(empty.name), undefined);
    await lists.put(withEntries(empty, [entry('a', 'amd64')]));
    assert.equal((await lists.get(empty.name))?.entries.length, 1);
    const [file] = await readdir(dir);
    await writeFile(join(dir, file!), '{not json');
    await assert.rejects(lists.get(empty.name), /unreadable .*strata manifest remove r\.example\/app:1/);
    assert.equal(await lists.remove(empty.name), true);
    assert.equal(await lists.remove(empty.name), false);
    assert.deepEqual(await readdir(dir), []);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
