import { homedir } from 'node:os';
import { StrataError } from './errors.js';

/**
 * The user's home directory: `$HOME`, else the passwd entry's. Platforms run lifecycles (and CI runs tools) as
 * arbitrary uids with neither, so "no home" is an answer, not a crash.
 */
export function userHome(env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (env.HOME) return env.HOME;
  try {
    return homedir() || undefined;
  } catch {
    return undefined;
  }
}

/** The home where a command cannot go on without one; else one line naming the variable that replaces it. */
export function needHome(variable: string, env: NodeJS.ProcessEnv = process.env): string {
  const home = userHome(env);
  if (home) return home;
  throw new StrataError(`this user (uid ${process.getuid?.() ?? '?'}) has no home directory (HOME is unset and there is no passwd entry): set ${variable}, or HOME`);
}
