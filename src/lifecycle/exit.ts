import { StrataError } from '../oci/errors.js';
import { SpecError } from '../spec/toml.js';

/** Exit codes of the Platform API (spec §14); the reference lifecycle's choices where a range is given. */
export const Exit = {
  Generic: 1,
  InvalidArgs: 3,
  PlatformApi: 11,
  BuildpackApi: 12,
  DetectFailed: 20,
  DetectBuildpackError: 21,
  DetectError: 22,
  AnalyzeError: 32,
  RestoreError: 42,
  BuildpackBuildFailed: 51,
  BuildError: 52,
  ExportError: 62,
  RebaseError: 72,
  LaunchError: 82,
} as const;

/** Gives an error the phase's exit code unless it already carries a more specific one (11, 12, …). */
export function phaseError(err: unknown, code: number): StrataError {
  if (err instanceof StrataError && !(err instanceof SpecError) && err.exitCode !== 1) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new StrataError(message, code, { cause: err });
}
