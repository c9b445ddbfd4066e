import { Command, CommanderError } from 'commander';
import { VERSION } from '../version.js';
import { registerImageCommands } from './image.js';
import { registerLoginCommands } from './login.js';
import { registerBuildpackCommands } from './buildpack.js';
import { registerBuilderCommands } from './builder.js';
import { registerBaseCommands } from './base.js';
import { registerBuildCommand } from './build.js';
import { registerRunCommand } from './run.js';
import { registerAppCommands } from './app.js';
import { registerConfigCommand } from './config.js';
import { registerFleetCommands } from './fleet.js';
import { reportError } from './output.js';

export function buildProgram(): Command {
  const program = new Command('strata')
    .description('Cloud Native Buildpacks without a Docker engine: build, publish, inspect and rebase OCI images')
    .exitOverride()
    .configureOutput({ outputError: (str, write) => write(`strata: error: ${str.replace(/^error: /, '').trim()}\n`) })
    .showHelpAfterError(false);
  program
    .command('version')
    .description('print the strata version')
    .action(() => {
      process.stdout.write(`${VERSION}\n`);
    });
  registerImageCommands(program);
  registerLoginCommands(program);
  registerBuildpackCommands(program);
  registerBuilderCommands(program);
  registerBaseCommands(program);
  registerBuildCommand(program);
  registerRunCommand(program);
  registerAppCommands(program);
  registerConfigCommand(program);
  registerFleetCommands(program);
  return program;
}

export async function main(argv: string[]): Promise<number> {
  // The lifecycle keeps the Platform API's Go-style single-dash flags, which commander does not parse.
  if (argv[0] === 'lifecycle') {
    const { lifecycleMain } = await import('../lifecycle/cli.js');
    return lifecycleMain('lifecycle', argv.slice(1));
  }
  const program = buildProgram();
  try {
    await program.parseAsync(argv, { from: 'user' });
    // Commands that pass on a child's status (`strata run`) set it here.
    return Number(process.exitCode ?? 0);
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode;
    return reportError(err);
  }
}
