import { basename } from 'node:path';
import { StrataError, errorMessage } from '../oci/errors.js';
import { LATEST_PLATFORM_API, platformApi, type ApiVersion } from '../spec/api.js';
import { Exit } from '../spec/exit.js';
import type { Phase } from './commands/common.js';
import { phaseError } from './exit.js';
import { parseFlags, type FlagValues } from './flags.js';
import { gateOpened, LIFECYCLE_GATE } from './gate.js';
import { createLogger, parseLogLevel, type Logger } from './log.js';

/**
 * The Platform API's command line: argv0 or `lifecycle <phase>` picks the phase (one file each under commands/),
 * CNB_PLATFORM_API is checked first, flags are read flag > env > default, and failures exit with the phase's code.
 */

// `rebase` is kpack's rebase container (`/cnb/process/rebase`), so strata's lifecycle image can stand in for kpack's.
// Each phase's module is loaded only when that phase runs: the detector and the builder start in every build's
// sandbox, and need none of the registry, export or cache code the other phases load.
const PHASES: Record<string, () => Promise<Phase>> = {
  analyzer: async () => (await import('./commands/analyzer.js')).analyzer,
  detector: async () => (await import('./commands/detector.js')).detector,
  restorer: async () => (await import('./commands/restorer.js')).restorer,
  builder: async () => (await import('./commands/builder.js')).builder,
  exporter: async () => (await import('./commands/exporter.js')).exporter,
  creator: async () => (await import('./commands/creator.js')).creator,
  rebaser: async () => (await import('./commands/rebaser.js')).rebaser,
  rebase: async () => (await import('./commands/kpack-rebase.js')).kpackRebase,
};

export const PHASE_NAMES = Object.keys(PHASES);

/**
 * Runs one lifecycle phase as the Platform API defines its command line, returning the exit code. CNB_PLATFORM_API
 * is checked before anything else is read.
 */
export async function runPhase(name: string, argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  // A container's umask, whatever the caller's: what the phase and the buildpacks it starts write (and so every layer
  // made of it) must not depend on who started the build.
  process.umask(0o022);
  const fail = (err: unknown, code: number): number => {
    const e = phaseError(err, code);
    process.stderr.write(`ERROR: ${name}: ${errorMessage(e)}\n`);
    if (env.STRATA_DEBUG && e.stack) process.stderr.write(`${e.stack}\n`);
    return e.exitCode;
  };
  const load = PHASES[name];
  if (!load) return fail(new StrataError(`unknown phase "${name}"; phases: ${PHASE_NAMES.join(', ')}`, Exit.InvalidArgs), Exit.InvalidArgs);
  const phase = await load();
  let api: ApiVersion;
  try {
    api = platformApi(phase.ownApi ? (env.CNB_PLATFORM_API ?? LATEST_PLATFORM_API) : env.CNB_PLATFORM_API);
  } catch (err) {
    return fail(err, Exit.PlatformApi);
  }
  let values: FlagValues;
  let log: Logger;
  try {
    values = parseFlags(name, argv, phase.flags, env);
    if (!phase.images && values.positional.length) throw new StrataError(`unexpected argument${values.positional.length > 1 ? 's' : ''} ${values.positional.map((a) => `"${a}"`).join(' ')}: ${name} takes flags only`, Exit.InvalidArgs);
    log = createLogger(parseLogLevel(values.str('log-level')));
  } catch (err) {
    return fail(err, Exit.InvalidArgs);
  }
  // A platform that started this sandbox ahead of its inputs (strata build) says `go` on stdin once they are in place;
  // nothing is read before. Anything else (stdin closed) means the run was called off.
  if (env[LIFECYCLE_GATE] === '1' && !(await gateOpened())) return Exit.Generic;
  if (phase.refuseRoot && process.getuid?.() === 0) {
    return fail(new StrataError(`refusing to run as root: buildpacks run as the build user (set by CNB_USER_ID in a builder); run ${name} as that user`, Exit.Generic), Exit.Generic);
  }
  try {
    await phase.run(values, { api, env, log });
    return 0;
  } catch (err) {
    return fail(err, phase.errorCode);
  }
}

/** `lifecycle <phase> …` or a binary named after the phase (`/cnb/lifecycle/detector`). */
export async function lifecycleMain(argv0: string, args: string[]): Promise<number> {
  const self = basename(argv0);
  if (self !== 'lifecycle') return runPhase(self, args);
  const [phase, ...rest] = args;
  if (!phase) {
    process.stderr.write(`usage: lifecycle <phase> [flags]; phases: ${PHASE_NAMES.join(', ')}\n`);
    return Exit.InvalidArgs;
  }
  return runPhase(phase, rest);
}
