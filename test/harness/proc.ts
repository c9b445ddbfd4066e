import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a program to completion, never throwing on a non-zero exit: tests assert on the code. */
export interface RunOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  input?: string;
  /** Run as this user and group (the test runs as root; buildpacks must not). */
  uid?: number;
  gid?: number;
}

export function run(cmd: string, args: string[], options: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const ids = options.uid !== undefined ? { uid: options.uid, gid: options.gid ?? options.uid } : {};
    const child = execFile(cmd, args, { env: options.env ?? process.env, cwd: options.cwd, maxBuffer: 64 << 20, encoding: 'utf8', ...ids }, (err, stdout, stderr) => {
      if (err && typeof (err as { code?: unknown }).code !== 'number') {
        reject(err);
        return;
      }
      resolve({ code: err ? Number((err as { code: number }).code) : 0, stdout, stderr });
    });
    if (options.input !== undefined) child.stdin?.end(options.input);
  });
}

/** Runs a program and fails with its stderr when it exits non-zero. */
export async function runOk(cmd: string, args: string[], options: RunOptions = {}): Promise<string> {
  const r = await run(cmd, args, options);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.code}: ${r.stderr.trim()}`);
  return r.stdout;
}

export async function tempDir(prefix = 'strata-test-'): Promise<{ path: string; cleanup: () => Promise<void> }> {
  const path = await mkdtemp(join(tmpdir(), prefix));
  return { path, cleanup: () => rm(path, { recursive: true, force: true }) };
}

export { freePort } from '../../src/devtools/registry.js';

/** Polls `probe` until it gives a value (a throw counts as not yet); on timeout, fails with `context()` (a server log). */
export async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 120_000, context: () => string = () => ''): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${context() ? `; server log:\n${context()}` : ''}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}
