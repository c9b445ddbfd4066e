import { spawn } from 'node:child_process';
import { StrataError } from './errors.js';

/** Runs a system command (mount, nsenter), failing with its first line of stderr. */
export function runCommand(cmd: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    let err = '';
    const child = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    child.stderr.on('data', (c: Buffer) => (err += c.toString()));
    child.on('error', (e) => reject(new StrataError(`${cmd}: ${e.message}`)));
    child.on('close', (code) => (code === 0 ? resolve() : reject(new StrataError(`${cmd} ${args[0]}: ${err.trim().split('\n')[0] || `exit ${code}`}`))));
  });
}
