import { test } from 'node:test';
import assert from 'node:assert/strict';
import { sourceFilter } from './source.js';

test('project.toml include/exclude patterns, gitignore style', () => {
  const ex = sourceFilter([], ['*.md', '/secrets/', 'node_modules', 'build/**/*.o']);
  assert.equal(ex('README.md', false), false);
  assert.equal(ex('docs/guide.md', false), false, 'no slash: any depth');
  assert.equal(ex('secrets', true), false);
  assert.equal(ex('secrets/key.pem', false), false, 'a dir takes its contents');
  assert.equal(ex('app/secrets/ok.txt', false), true, 'a leading / anchors to the root');
  assert.equal(ex('node_modules/x/index.js', false), false);
  assert.equal(ex('build/a/b/c.o', false), false);
  assert.equal(ex('build/a/b/c.c', false), true);
  assert.equal(ex('src/index.js', false), true);
  const inc = sourceFilter(['src/', 'package.json'], []);
  assert.equal(inc('src/index.js', false), true);
  assert.equal(inc('package.json', false), true);
  assert.equal(inc('test/index.test.js', false), false);
  assert.equal(inc('test', true), true, 'dirs are walked; only matching files are kept');
  assert.throws(() => sourceFilter(['a'], ['b']), /not both/);
});
