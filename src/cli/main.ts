import { Command, CommanderError } from 'commander';
import { VERSION } from '../version.js';
import { PACK_ALIASES, takeGlobals } from './globals.js';
import { reportError } from './output.js';

type Register = (program: Command) => void;

/**
 * Each top-level command's module, loaded only when that command runs: `strata version` loads nothing, `strata
 * rebase` never loads the fleet's database or HTTP server. Help and unknown commands load them all.
 */
const COMMANDS: Record<string, () => Promise<Register>> = {
  image: () => import('./image.js').then((m) => m.registerImageCommands),
  login: () => import('./login.js').then((m) => m.registerLoginCommands),
  buildpack: () => import('./buildpack.js').then((m) => m.registerBuildpackCommands),
  builder: () => import('./builder.js').then((m) => m.registerBuilderCommands),
  base: () => import('./base.js').then((m) => m.registerBaseCommands),
  build: () => import('./build.js').then((m) => m.registerBuildCommand),
  run: () => import('./run.js').then((m) => m.registerRunCommand),
  images: () => import('./app.js').then((m) => m.registerAppCommands),
  config: () => import('./config.js').then((m) => m.registerConfigCommand),
  manifest: () => import('./manifest.js').then((m) => m.registerManifestCommands),
  fleet: () => import('./fleet.js').then((m) => m.registerFleetCommands),
};
const ALIASES: Record<string, string> = { logout: 'login', rmi: 'images', inspect: 'images', rebase: 'images', sbom: 'images' };

export async function buildProgram(only?: string): Promise<Command> {
  const program = new Command('strata')
    .description('Cloud Native Buildpacks without a Docker engine: build, publish, inspect and rebase OCI images')
    .version(VERSION, '--version', 'print the strata version')
    .exitOverride()
    .configureOutput({ outputError: (str, write) => write(`strata: error: ${str.replace(/^error: /, '').trim()}\n`) })
    .showHelpAfterError(false);
  program
    .command('version')
    .description('print the strata version')
    .action(() => {
      process.stdout.write(`${VERSION}\n`);
    });
  program
    .command('completion <shell>')
    .description('print a completion script for bash, zsh or fish (e.g. `source <(strata completion bash)`)')
    .action(async (shell: string) => {
      const { completionScript } = await import('./completion.js');
      process.stdout.write(completionScript(shell, await buildProgram()));
    });
  program
    .command('report')
    .description('print what to include in a bug report: versions, platform, tools and config')
    .action(async () => {
      const { report } = await import('./report.js');
      process.stdout.write(await report());
    });
  // A config file that cannot be read is said before any command runs (not only by the ones that happen to need a
  // setting); `config` itself reports it while letting the file be fixed.
  program.hook('preAction', async (_root, action) => {
    let top = action;
    while (top.parent && top.parent !== program) top = top.parent;
    if (['config', 'version', 'completion', 'report'].includes(top.name())) return;
    const { readConfig } = await import('../platform/config.js');
    await readConfig();
  });
  const key = only ? (ALIASES[only] ?? only) : undefined;
  const wanted = key === 'version' || key === 'report' ? [] : key && COMMANDS[key] ? [key] : Object.keys(COMMANDS);
  for (const name of wanted) (await COMMANDS[name]!())(program);
  return program;
}

export async function main(argvIn: string[]): Promise<number> {
  // A reader that went away (`strata fleet logs … | head`) ends the command quietly, as it does any Unix tool.
  for (const stream of [process.stdout, process.stderr]) {
    stream.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EPIPE') process.exit(0);
    });
  }
  let argv = argvIn;
  // The lifecycle keeps the Platform API's Go-style single-dash flags, which commander does not parse.
  if (argv[0] === 'lifecycle') {
    const { lifecycleMain } = await import('../lifecycle/cli.js');
    return lifecycleMain('lifecycle', argv.slice(1));
  }
  argv = takeGlobals(argv);
  const verb = argv.findIndex((a) => !a.startsWith('-'));
  const alias = verb >= 0 ? PACK_ALIASES[argv[verb]!] : undefined;
  if (alias) argv = [...argv.slice(0, verb), ...alias, ...argv.slice(verb + 1)];
  // The first word that is not a flag names the command; version needs no module at all.
  const first = argv.find((a) => !a.startsWith('-'));
  const program = await buildProgram(first ?? (argv.includes('--version') ? 'version' : undefined));
  try {
    await program.parseAsync(argv, { from: 'user' });
    // Commands that pass on a child's status (`strata run`) set it here.
    return Number(process.exitCode ?? 0);
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode;
    return reportError(err);
  }
}
