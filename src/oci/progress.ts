import { Transform, type Readable } from 'node:stream';

/**
 * Long work that says how far it got: a task per layer (or blob), advanced by the bytes that went through. The CLI
 * draws it on a terminal; elsewhere (CI logs, `-q`) it is one plain line per task, or nothing.
 */
export interface Progress {
  /** A task of `total` bytes (or steps); `label` is also the plain line shown where nothing is drawn. */
  task(label: string, total: number, unit?: ProgressUnit): ProgressTask;
  /** Drawn as it goes (a terminal). Work that already logs a line of its own shows a task only then. */
  readonly live?: boolean;
}

/** What a task counts: bytes (shown in MB with a rate), or steps of some work (shown as n/N). */
export type ProgressUnit = 'bytes' | 'steps';

export interface ProgressTask {
  advance(bytes: number): void;
  done(): void;
}

/** The same stream, counting what goes through into `task`; the source's errors come through too. */
export function counted(source: Readable, task: ProgressTask): Readable {
  const through = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      task.advance(chunk.length);
      cb(null, chunk);
    },
  });
  source.on('error', (err) => through.destroy(err));
  return source.pipe(through);
}

/** Progress as plain lines: each task's label once, when it starts. */
export function lineProgress(line: (text: string) => void): Progress {
  return {
    task(label) {
      line(label);
      return { advance: () => undefined, done: () => undefined };
    },
  };
}
