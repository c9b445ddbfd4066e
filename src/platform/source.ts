import { cp } from 'node:fs/promises';
import { relative, sep } from 'node:path';
import ignore from 'ignore';
import { StrataError } from '../oci/errors.js';

/**
 * Whether a relative path is selected by project.toml's include (keep only matches) or exclude (drop matches), each a
 * list of gitignore patterns with git's own semantics (negation, character classes, escapes, anchoring, dir-only
 * patterns), as the `ignore` library implements them and pack reads them.
 */
export function sourceFilter(include: string[], exclude: string[]): (rel: string, isDir: boolean) => boolean {
  if (include.length && exclude.length) throw new StrataError('project.toml: set include or exclude, not both');
  const exc = ignore().add(exclude);
  const inc = ignore().add(include);
  return (rel, isDir) => {
    const probe = isDir ? `${rel}/` : rel;
    if (exclude.length) return !exc.ignores(probe);
    if (!include.length) return true;
    // A directory is walked into when something below it could still match.
    return isDir || inc.ignores(probe);
  };
}

/** Copies the app source into the build's workspace, leaving out what project.toml excludes (before the build, as the spec asks). */
export async function copySource(from: string, to: string, include: string[], exclude: string[]): Promise<void> {
  const keep = sourceFilter(include, exclude);
  await cp(from, to, {
    recursive: true,
    verbatimSymlinks: true,
    filter: async (src) => {
      const rel = relative(from, src).split(sep).join('/');
      if (!rel) return true;
      const { lstat } = await import('node:fs/promises');
      return keep(rel, (await lstat(src)).isDirectory());
    },
  });
}
