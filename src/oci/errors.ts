// Errors that reach the user as a single line. `exitCode` lets the CLI and the lifecycle map a failure to the
// spec's exit codes without parsing messages.
export class StrataError extends Error {
  readonly exitCode: number;
  constructor(message: string, exitCode = 1, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'StrataError';
    this.exitCode = exitCode;
  }
}

export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
