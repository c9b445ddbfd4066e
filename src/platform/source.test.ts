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

test('exclude gives what `git check-ignore` gives: negation, character classes, escapes, anchors, dir-only patterns', async () => {
  const { mkdtemp, rm, writeFile } = await import('node:fs/promises');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const { execFileSync } = await import('node:child_process');
  const patterns = ['*.log', '!keep.log', 'tmp/', '/root-only.txt', 'file[0-9].txt', '\\#hash', 'docs/**/draft*', 'a/**/b', '*.swp', '!important/*.swp', 'build', ' trailing-space\\ '];
  const paths = ['x.log', 'keep.log', 'sub/keep.log', 'sub/x.log', 'tmp/a', 'sub/tmp/a', 'root-only.txt', 'sub/root-only.txt', 'file1.txt', 'fileA.txt', '#hash', 'docs/a/b/draft1.md', 'docs/final.md', 'a/b', 'a/x/y/b', 'a/x/c', 'x.swp', 'important/y.swp', 'build/out.js', 'sub/build', ' trailing-space ', 'src/index.js'];
  const dir = await mkdtemp(join(tmpdir(), 'strata-gitignore-'));
  try {
    execFileSync('git', ['init', '-q', dir]);
    await writeFile(join(dir, '.gitignore'), `${patterns.join('\n')}\n`);
    let ignored: string[] = [];
    try {
      ignored = execFileSync('git', ['-C', dir, 'check-ignore', '--no-index', '--stdin'], { input: paths.join('\n'), encoding: 'utf8' }).split('\n').filter(Boolean);
    } catch (err) {
      // Exit 1 means none is ignored.
      ignored = String((err as { stdout?: string }).stdout ?? '').split('\n').filter(Boolean);
    }
    const keep = sourceFilter([], patterns);
    for (const p of paths) assert.equal(!keep(p, false), ignored.includes(p), `${p}: git says ${ignored.includes(p) ? 'ignored' : 'kept'}`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
