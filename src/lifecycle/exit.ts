import { StrataError } from '../oci/errors.js';
import { SpecError } from '../spec/toml.js';

/** Gives an error the phase's exit code unless it already carries a more specific one (11, 12, …). */
export function phaseError(err: unknown, code: number): StrataError {
  if (err instanceof StrataError && !(err instanceof SpecError) && err.exitCode !== 1) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new StrataError(message, code, { cause: err });
}
