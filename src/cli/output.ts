import { StrataError } from '../oci/errors.js';

/** Prints a failure as one line (no stack unless STRATA_DEBUG is set) and returns the exit code to use. */
export function reportError(err: unknown): number {
  const debug = Boolean(process.env.STRATA_DEBUG);
  if (err instanceof StrataError) {
    process.stderr.write(`strata: error: ${err.message}\n`);
    if (debug && err.stack) process.stderr.write(`${err.stack}\n`);
    return err.exitCode;
  }
  const e = err as { code?: string; message?: string; stack?: string };
  if (e?.code === 'commander.helpDisplayed' || e?.code === 'commander.version') return 0;
  process.stderr.write(`strata: error: ${(e?.message ?? String(err)).split('\n')[0]}\n`);
  if (debug && e?.stack) process.stderr.write(`${e.stack}\n`);
  return 1;
}

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}
