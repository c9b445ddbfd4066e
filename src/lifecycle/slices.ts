import { lstatSync, readdirSync } from 'node:fs';
import { isAbsolute, join, relative } from 'node:path';
import type { Slice } from '../spec/launch.js';
import type { Logger } from './log.js';

/** Go's filepath.Match, which slices use: `*` and `?` stop at `/`, `[...]` classes, `\` escapes. */
export function globToRegExp(glob: string): RegExp {
  let re = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else if (c === '\\' && i + 1 < glob.length) re += `\\${glob[++i]}`;
    else if (c === '[') {
      const end = glob.indexOf(']', i + 2);
      if (end < 0) {
        re += '\\[';
        continue;
      }
      let cls = glob.slice(i + 1, end);
      if (cls.startsWith('^')) cls = `^${cls.slice(1)}`;
      re += `[${cls.replace(/\\/g, '\\\\')}]`;
      i = end;
    } else re += c.replace(/[.+^${}()|]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

function walk(dir: string, rel: string, out: { path: string; dir: boolean }[]): void {
  for (const name of readdirSync(dir).sort()) {
    const path = rel ? `${rel}/${name}` : name;
    const isDir = lstatSync(join(dir, name)).isDirectory();
    out.push({ path, dir: isDir });
    if (isDir) walk(join(dir, name), path, out);
  }
}

function withParents(paths: Iterable<string>): Set<string> {
  const out = new Set<string>();
  for (const p of paths) {
    out.add(p);
    const parts = p.split('/');
    for (let i = 1; i < parts.length; i++) out.add(parts.slice(0, i).join('/'));
  }
  return out;
}

/**
 * Splits the app dir into the paths of each slice layer, then the rest (spec §9.1): a slice claims what its globs
 * match that no earlier slice claimed, a matched directory with everything in it; the last set always exists.
 * Paths are relative to the app dir and include the parent dirs each layer needs.
 */
export async function appSlices(appDir: string, slices: Slice[], log: Logger): Promise<string[][]> {
  const all: { path: string; dir: boolean }[] = [];
  walk(appDir, '', all);
  const claimed = new Set<string>();
  const out: string[][] = [];
  for (const [i, slice] of slices.entries()) {
    const patterns = slice.paths.map((p) => {
      const rel = isAbsolute(p) ? relative(appDir, p) : p;
      if (rel.startsWith('..')) log.warn(`slice ${i + 1}: "${p}" is outside the app dir and matches nothing`);
      return globToRegExp(rel.replace(/^\.\//, ''));
    });
    const mine: string[] = [];
    const matchedDirs: string[] = [];
    for (const e of all) {
      if (claimed.has(e.path)) continue;
      const inMatchedDir = matchedDirs.some((d) => e.path.startsWith(`${d}/`));
      if (inMatchedDir || patterns.some((re) => re.test(e.path))) {
        mine.push(e.path);
        if (e.dir) matchedDirs.push(e.path);
      }
    }
    for (const p of mine) claimed.add(p);
    if (!mine.length) log.warn(`slice ${i + 1} (${slice.paths.join(', ')}) matches no files`);
    out.push([...withParents(mine)]);
  }
  const rest = all.filter((e) => !claimed.has(e.path)).map((e) => e.path);
  out.push([...withParents(rest)]);
  return out;
}
