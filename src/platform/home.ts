import { homedir } from 'node:os';
import { join } from 'node:path';

/** `$STRATA_HOME`, else the user's data dir: where strata keeps images, caches and the fleet. */
export function strataHome(env: NodeJS.ProcessEnv = process.env): string {
  return env.STRATA_HOME || join(env.XDG_DATA_HOME || join(homedir(), '.local', 'share'), 'strata');
}
