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
  /** An extension's bin/generate failed. */
  GenerateFailed: 91,
  /** Any other generation error (a Dockerfile the spec does not allow, say). */
  GenerateError: 92,
  /** The extender (applying Dockerfiles to the build or run image). */
  ExtendError: 102,
} as const;
