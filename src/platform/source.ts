import { cp } from 'node:fs/promises';
import { relative, sep } from 'node:path';
import { StrataError } from '../oci/errors.js';

/**
 * A gitignore-style pattern as project.toml's include/exclude use them: `*` and `?` within a name, `**` across dirs,
 * a leading `/` anchors to the app root, a trailing `/` means a directory (and so everything in it), and a pattern
 * without a `/` matches at any depth.
 */
export function patternToRegExp(pattern: string): RegExp {
  let p = pattern.trim();
  const dirOnly = p.endsWith('/');
  if (dirOnly) p = p.slice(0, -1);
  const anchored = p.startsWith('/') || p.slice(0, -1).includes('/');
  p = p.replace(/^\//, '');
  let re = '';
  for (let i = 0; i < p.length; i++) {
    const c = p[i]!;
    if (c === '*' && p[i + 1] === '*') {
      re += '.*';
      i++;
      if (p[i + 1] === '/') i++;
    } else if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else re += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  // A match on a directory covers what is inside it.
  return new RegExp(`^${anchored ? '' : '(?:.*/)?'}${re}${dirOnly ? '/.*' : '(?:/.*)?'}$`);
}

/** Whether a relative path is selected by include (keep only matches) or exclude (drop matches) patterns. */
export function sourceFilter(include: string[], exclude: string[]): (rel: string, isDir: boolean) => boolean {
  if (include.length && exclude.length) throw new StrataError('project.toml: set include or exclude, not both');
  const inc = include.map(patternToRegExp);
  const exc = exclude.map(patternToRegExp);
  return (rel, isDir) => {
    const probe = isDir ? `${rel}/` : rel;
    if (exc.some((r) => r.test(rel) || r.test(probe))) return false;
    if (!inc.length) return true;
    // A directory is walked into when something below it could still match.
    return isDir || inc.some((r) => r.test(rel));
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
