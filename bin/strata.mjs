// The CLI's JavaScript entry, started by bin/strata with `--` before strata's own arguments.
import { existsSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { dirname, join } from 'node:path';

const entry = join(dirname(fileURLToPath(import.meta.url)), '..', 'dist', 'src', 'cli', 'main.js');
if (!existsSync(entry)) {
  process.stderr.write('strata: error: not built yet; run `npm ci && npm run build` in the strata checkout\n');
  process.exit(1);
}
const args = process.argv.slice(2);
if (args[0] === '--') args.shift();
const { main } = await import(pathToFileURL(entry).href);
process.exitCode = await main(args);
