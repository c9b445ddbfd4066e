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
