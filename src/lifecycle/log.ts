/** The lifecycle's log: levels as the Platform API names them (`-log-level`), written to stdout like the reference. */

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

const RANK: Record<LogLevel, number> = { debug: 0, info: 1, warn: 2, error: 3 };

export interface Logger {
  debug(msg: string): void;
  info(msg: string): void;
  warn(msg: string): void;
  error(msg: string): void;
  level: LogLevel;
}

export function parseLogLevel(text: string | undefined): LogLevel {
  const v = (text ?? 'info').toLowerCase();
  if (v in RANK) return v as LogLevel;
  throw new Error(`log level "${text}" is not one of debug, info, warn, error`);
}

export function createLogger(level: LogLevel, write: (line: string) => void = (l) => process.stdout.write(l)): Logger {
  const at = (l: LogLevel, prefix: string) => (msg: string) => {
    if (RANK[l] >= RANK[level]) write(`${prefix}${msg}\n`);
  };
  return { level, debug: at('debug', ''), info: at('info', ''), warn: at('warn', 'Warning: '), error: at('error', 'ERROR: ') };
}

export const silentLogger: Logger = { level: 'error', debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined };
