// Errors that reach the user as a single line. `exitCode` lets the CLI and the lifecycle map a failure to the
// spec's exit codes without parsing messages. `transient` marks failures worth retrying (a reset connection, a 503).
export class StrataError extends Error {
  readonly exitCode: number;
  readonly transient: boolean;
  constructor(message: string, exitCode = 1, options?: { cause?: unknown; transient?: boolean }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'StrataError';
    this.exitCode = exitCode;
    this.transient = options?.transient ?? false;
  }
}

/** The thing asked for does not exist (a manifest, a tag, a layout): callers may treat that as "none". */
export class NotFoundError extends StrataError {}

export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}

const TRANSIENT_CODES = new Set(['ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'ECONNABORTED', 'EAI_AGAIN', 'ERR_STREAM_PREMATURE_CLOSE', 'HPE_INVALID_CONSTANT']);

/**
 * True for failures a retry may cure: network drops, stalls and errors flagged transient. A StrataError decides for
 * itself, so a layer that has already given up on retrying is not retried again by the layer above.
 */
export function isTransient(err: unknown): boolean {
  for (let e: unknown = err, depth = 0; e && depth < 4; e = (e as { cause?: unknown }).cause, depth++) {
    if (e instanceof StrataError) return e.transient;
    const code = (e as NodeJS.ErrnoException).code;
    if (code && TRANSIENT_CODES.has(code)) return true;
    if (e instanceof Error && /socket hang up|aborted/.test(e.message)) return true;
  }
  return false;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
