import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MAX_PACKAGES, sbomFormat, sbomPackages } from './sbom.js';

test('packages from the three SBOM formats the Buildpack API names', () => {
  assert.equal(sbomFormat('launch/acme_node/deps/sbom.cdx.json'), 'cdx');
  assert.equal(sbomFormat('x/sbom.spdx.json'), 'spdx');
  assert.equal(sbomFormat('x/sbom.syft.json'), 'syft');
  assert.equal(sbomFormat('x/sbom.json'), undefined);
  const cdx = JSON.stringify({ components: [{ name: 'a', version: '1', licenses: [{ license: { id: 'MIT' } }, { expression: 'Apache-2.0 OR MIT' }] }, { version: '2' }] });
  assert.deepEqual(sbomPackages(cdx, 'cdx'), [{ name: 'a', version: '1', licenses: ['MIT', 'Apache-2.0 OR MIT'] }]);
  const spdx = JSON.stringify({ packages: [{ name: 'b', versionInfo: '2', licenseDeclared: 'BSD-3-Clause', licenseConcluded: 'NOASSERTION' }] });
  assert.deepEqual(sbomPackages(spdx, 'spdx'), [{ name: 'b', version: '2', licenses: ['BSD-3-Clause'] }]);
  const syft = JSON.stringify({ artifacts: [{ name: 'c', version: '3', licenses: ['ISC', { value: 'MIT' }] }] });
  assert.deepEqual(sbomPackages(syft, 'syft'), [{ name: 'c', version: '3', licenses: ['ISC', 'MIT'] }]);
});

test('an SBOM from an image is not trusted: wrong types, bad JSON and huge lists give what is well-formed, capped', () => {
  assert.deepEqual(sbomPackages('{not json', 'cdx'), []);
  assert.deepEqual(sbomPackages('[1,2]', 'cdx'), []);
  assert.deepEqual(sbomPackages(JSON.stringify({ components: [{ name: { toString: 1 } }, { name: 5 }, { name: 'x'.repeat(2000) }, 'str', null] }), 'cdx'), []);
  const many = JSON.stringify({ components: Array.from({ length: MAX_PACKAGES + 50 }, (_, i) => ({ name: `p${i}` })) });
  assert.equal(sbomPackages(many, 'cdx').length, MAX_PACKAGES);
});
