// Makes dist/compile-cache: Node.js's compiled code for every module the lifecycle can load, which a builder's
// lifecycle layer carries read-only, so the detector and builder that start in every build's sandbox do not compile
// the lifecycle again each time. Keys are relative to the cache dir (portable), and the cache dir sits at the same
// place relative to dist/src in the checkout and in the layer, so the entries made here match there.
import module from 'node:module';
import { readdirSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const dist = join(dirname(fileURLToPath(import.meta.url)), '..', 'dist');
const result = module.enableCompileCache({ directory: join(dist, 'compile-cache'), portable: true });
if (result.status !== module.constants.compileCacheStatus.ENABLED) throw new Error(`compile cache: ${result.message ?? result.status}`);
const commands = join(dist, 'src', 'lifecycle', 'commands');
for (const f of readdirSync(commands).sort()) if (f.endsWith('.js') && !f.endsWith('.test.js')) await import(pathToFileURL(join(commands, f)).href);
await import(pathToFileURL(join(dist, 'src', 'lifecycle', 'cli.js')).href);
module.flushCompileCache();
