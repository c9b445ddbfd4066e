// The CLI's JavaScript entry, started by bin/strata with `--` before strata's own arguments.
import { existsSync, readFileSync } from 'node:fs';
import module from 'node:module';
import { homedir } from 'node:os';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { dirname, join } from 'node:path';

const args = process.argv.slice(2);
if (args[0] === '--') args.shift();
// `strata version` needs nothing but the version: no CLI framework, no modules, no compile cache.
if (args.length === 1 && (args[0] === 'version' || args[0] === '--version')) {
  process.stdout.write(`${JSON.parse(readFileSync(join(dirname(fileURLToPath(import.meta.url)), '..', 'package.json'), 'utf8')).version}\n`);
  process.exit(0);
}
// Node.js 22.1+ keeps compiled code between runs (most of a short command's time is compiling strata's modules), in
// strata's own data dir rather than $TMPDIR. A user with no home (no passwd entry, HOME unset) runs without it: the
// command itself then says what it needs.
function userHome() {
  try {
    return homedir();
  } catch {
    return undefined;
  }
}
const data = process.env.XDG_DATA_HOME || (userHome() ? join(userHome(), '.local', 'share') : undefined);
const home = process.env.STRATA_HOME || (data && join(data, 'strata'));
if (home) module.enableCompileCache?.(join(home, 'cache', 'node-compile'));

const entry = join(dirname(fileURLToPath(import.meta.url)), '..', 'dist', 'src', 'cli', 'main.js');
if (!existsSync(entry)) {
  process.stderr.write('strata: error: not built yet; run `npm ci && npm run build` in the strata checkout\n');
  process.exit(1);
}
const { main } = await import(pathToFileURL(entry).href);
process.exitCode = await main(args);
