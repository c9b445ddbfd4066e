import { spawn } from 'node:child_process';
import type { Env } from './env.js';

export interface ExecResult {
  code: number;
  output: string;
  /** Set when the program could not be started at all (missing, not executable). */
  startError?: string;
}

const OUTPUT_LIMIT = 1 << 20;

/**
 * Runs a buildpack executable with exactly `env` (nothing inherited). Output is captured (detect: shown only when it
 * matters) or streamed through to ours (build: the user watches it live).
 */
export function runProgram(file: string, args: string[], options: { cwd: string; env: Env; stream: boolean }): Promise<ExecResult> {
  return new Promise((resolve) => {
    let output = '';
    const child = spawn(file, args, { cwd: options.cwd, env: options.env, stdio: ['ignore', options.stream ? 'inherit' : 'pipe', options.stream ? 'inherit' : 'pipe'] });
    const take = (c: Buffer): void => {
      if (output.length < OUTPUT_LIMIT) output += c.toString('utf8');
    };
    child.stdout?.on('data', take);
    child.stderr?.on('data', take);
    child.on('error', (err: NodeJS.ErrnoException) => resolve({ code: -1, output, startError: err.code === 'ENOENT' ? `${file} not found` : err.code === 'EACCES' ? `${file} is not executable` : err.message }));
    child.on('close', (code, signal) => resolve({ code: code ?? (signal ? 128 : -1), output }));
  });
}
