import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { arch, platform, release } from 'node:os';
import { configPath, packConfigPath } from '../platform/config.js';
import { VERSION } from '../version.js';

/** The first line a tool prints for its version, or "not found". */
function toolVersion(cmd: string, args: string[]): Promise<string> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: 5000 }, (err, stdout, stderr) => resolve(err ? 'not found' : (stdout || stderr).trim().split('\n')[0] ?? ''));
  });
}

/** `strata report`: what a bug report needs, as `pack report` gives it. */
export async function report(): Promise<string> {
  const tools = await Promise.all(
    ([['runc', ['--version']], ['bwrap', ['--version']], ['skopeo', ['--version']], ['umoci', ['--version']], ['git', ['--version']]] as const).map(async ([c, a]) => `  ${c}: ${await toolVersion(c, [...a])}`),
  );
  const file = async (path: string | undefined) => (path ? (await readFile(path, 'utf8').catch(() => '(none)\n')).replace(/^/gm, '  ') : '  (none)\n');
  return [
    'Strata:',
    `  Version: ${VERSION}`,
    `  Node.js: ${process.version}`,
    `  OS/Arch: ${platform()}/${arch()} (${release()})`,
    'Tools:',
    ...tools,
    `Config (${configPath() ?? 'none: no HOME'}):`,
    (await file(configPath())).trimEnd(),
    `pack config (${packConfigPath() ?? 'no HOME'}):`,
    (await file(packConfigPath())).trimEnd(),
    '',
  ].join('\n');
}
