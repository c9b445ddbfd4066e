import type { Command } from 'commander';
import { StrataError } from '../oci/errors.js';
import { login, logout } from '../oci/registry/login.js';
import { Reference } from '../oci/reference.js';

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin as AsyncIterable<Buffer>) chunks.push(c);
  return Buffer.concat(chunks).toString('utf8');
}

/** `docker.io`, `index.docker.io` and `https://host/v1/` all mean one registry key, as in the Docker CLI. */
function registryName(text: string): string {
  const host = text.replace(/^[a-z]+:\/\//, '').replace(/\/.*$/, '');
  if (!host) throw new StrataError(`"${text}" is not a registry host; give one like registry.example.com or 127.0.0.1:5000`);
  return Reference.parse(`${host}/x`).registry;
}

/** `strata login` / `strata logout`: the Docker CLI's config.json, so docker, podman and strata share logins. */
export function registerLoginCommands(program: Command): void {
  program
    .command('login <registry>')
    .description('check credentials against a registry and save them in Docker\'s config.json (or its credential helper)')
    .requiredOption('-u, --username <user>', 'user name')
    .option('--password-stdin', 'read the password from standard input (the only way: passwords on the command line leak)')
    .option('--insecure-registry', 'the registry uses plain HTTP or a certificate that does not verify')
    .action(async (reg: string, opts: { username: string; passwordStdin?: boolean; insecureRegistry?: boolean }) => {
      if (!opts.passwordStdin) throw new StrataError('strata login: pass the password on standard input with --password-stdin');
      const password = (await readStdin()).replace(/\r?\n$/, '');
      if (!password) throw new StrataError('strata login: --password-stdin read an empty password');
      const registry = registryName(reg);
      const where = await login(registry, opts.username, password, { insecure: opts.insecureRegistry ?? false });
      process.stdout.write(`Login Succeeded (${registry}, saved in ${where})\n`);
    });
  program
    .command('logout <registry>')
    .description('remove the saved credentials for a registry')
    .action(async (reg: string) => {
      const registry = registryName(reg);
      const where = await logout(registry);
      process.stdout.write(`Removed login credentials for ${registry} from ${where}\n`);
    });
}
