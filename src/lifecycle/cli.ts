import { access, mkdir, readFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { StrataError, errorMessage } from '../oci/errors.js';
import { platformApi, type ApiVersion } from '../spec/api.js';
import { readAnalyzed } from '../spec/analyzed.js';
import { readGroupFile, writeGroupFile } from '../spec/group.js';
import { readOrderFile } from '../spec/order.js';
import { readPlanFile, writePlanFile } from '../spec/plan.js';
import { readSystemFile } from '../spec/system.js';
import type { ImageTarget } from '../spec/target.js';
import { build } from './build.js';
import { Detector, type BuildpackRunInputs } from './detect.js';
import { Exit, phaseError } from './exit.js';
import { parseFlags, type FlagDef, type FlagValues } from './flags.js';
import { createLogger, parseLogLevel, type Logger } from './log.js';

const inLayers = (file: string) => (v: FlagValues) => join(v.str('layers')!, file);

const COMMON: FlagDef[] = [
  { name: 'layers', env: 'CNB_LAYERS_DIR', kind: 'string', default: '/layers' },
  { name: 'log-level', env: 'CNB_LOG_LEVEL', kind: 'string', default: 'info' },
  { name: 'no-color', env: 'CNB_NO_COLOR', kind: 'bool' },
];

const BUILDPACK_PHASE: FlagDef[] = [
  { name: 'app', env: 'CNB_APP_DIR', kind: 'string', default: '/workspace' },
  { name: 'platform', env: 'CNB_PLATFORM_DIR', kind: 'string', default: '/platform' },
  { name: 'buildpacks', env: 'CNB_BUILDPACKS_DIR', kind: 'string', default: '/cnb/buildpacks' },
  { name: 'build-config', env: 'CNB_BUILD_CONFIG_DIR', kind: 'string', default: '/cnb/build-config' },
  { name: 'group', env: 'CNB_GROUP_PATH', kind: 'string', default: inLayers('group.toml') },
  { name: 'plan', env: 'CNB_PLAN_PATH', kind: 'string', default: inLayers('plan.toml') },
  { name: 'analyzed', env: 'CNB_ANALYZED_PATH', kind: 'string', default: inLayers('analyzed.toml') },
];

interface Phase {
  flags: FlagDef[];
  /** Detect and build run buildpack code; the spec's reference refuses to do that as root. */
  refuseRoot: boolean;
  errorCode: number;
  run(v: FlagValues, ctx: PhaseContext): Promise<void>;
}

interface PhaseContext {
  api: ApiVersion;
  env: NodeJS.ProcessEnv;
  log: Logger;
}

const exists = (p: string): Promise<boolean> => access(p).then(() => true, () => false);

const HOST_ARCH: Record<string, string> = { x64: 'amd64', arm64: 'arm64', arm: 'arm', ppc64: 'ppc64le', s390x: 's390x', riscv64: 'riscv64' };

/** The run image's target from analyzed.toml, falling back to this machine (linux, its arch, /etc/os-release). */
async function runTarget(analyzedPath: string): Promise<ImageTarget> {
  const analyzed = await readAnalyzed(analyzedPath);
  const t: ImageTarget = { os: 'linux', arch: HOST_ARCH[process.arch] ?? process.arch, ...(analyzed?.runImage?.target ?? {}) };
  if (!t.distro) {
    const osRelease = await readFile('/etc/os-release', 'utf8').catch(() => '');
    const field = (k: string) => new RegExp(`^${k}="?([^"\\n]*)"?$`, 'm').exec(osRelease)?.[1];
    const name = field('ID');
    const version = field('VERSION_ID');
    if (name) t.distro = { name, ...(version ? { version } : {}) };
  }
  return t;
}

function execEnv(env: NodeJS.ProcessEnv): string {
  const v = env.CNB_EXEC_ENV || 'production';
  if (v.includes('/')) throw new StrataError(`CNB_EXEC_ENV="${v}" must not contain "/"`, Exit.InvalidArgs);
  return v;
}

async function runInputs(v: FlagValues, { api, env, log }: PhaseContext): Promise<BuildpackRunInputs> {
  return {
    buildpacksDir: v.str('buildpacks')!,
    appDir: v.str('app')!,
    platformDir: v.str('platform')!,
    buildConfigDir: v.str('build-config')!,
    platformApi: api,
    target: await runTarget(v.str('analyzed')!),
    execEnv: execEnv(env),
    hostEnv: env,
    log,
  };
}

const PHASES: Record<string, Phase> = {
  detector: {
    refuseRoot: true,
    errorCode: Exit.DetectError,
    flags: [
      ...COMMON,
      ...BUILDPACK_PHASE,
      { name: 'order', env: 'CNB_ORDER_PATH', kind: 'string' },
      { name: 'system', env: 'CNB_SYSTEM_PATH', kind: 'string', default: '/cnb/system.toml' },
      { name: 'extensions', env: 'CNB_EXTENSIONS_DIR', kind: 'string', default: '/cnb/extensions' },
      { name: 'run', env: 'CNB_RUN_PATH', kind: 'string', default: '/cnb/run.toml' },
      { name: 'generated', env: 'CNB_GENERATED_DIR', kind: 'string', default: inLayers('generated') },
    ],
    async run(v, { api, env, log }) {
      const layersOrder = join(v.str('layers')!, 'order.toml');
      const orderPath = v.str('order') ?? ((await exists(layersOrder)) ? layersOrder : '/cnb/order.toml');
      const order = await readOrderFile(orderPath);
      const system = api.atLeast('0.15') ? await readSystemFile(v.str('system')!) : undefined;
      const detector = new Detector({ order: order.order, ...(system ? { system } : {}), ...(await runInputs(v, { api, env, log })) });
      const out = await detector.run();
      await writeGroupFile(v.str('group')!, { group: out.group, groupExtensions: [] });
      await writePlanFile(v.str('plan')!, out.plan);
    },
  },
  builder: {
    refuseRoot: true,
    errorCode: Exit.BuildError,
    flags: [...COMMON, ...BUILDPACK_PHASE],
    async run(v, { api, env, log }) {
      const group = await readGroupFile(v.str('group')!);
      const plan = await readPlanFile(v.str('plan')!);
      await mkdir(v.str('layers')!, { recursive: true });
      await build({ group: group.group, plan: plan.entries, layersDir: v.str('layers')!, ...(await runInputs(v, { api, env, log })) });
    },
  },
};

export const PHASE_NAMES = Object.keys(PHASES);

/**
 * Runs one lifecycle phase as the Platform API defines its command line, returning the exit code. CNB_PLATFORM_API
 * is checked before anything else is read.
 */
export async function runPhase(name: string, argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const fail = (err: unknown, code: number): number => {
    const e = phaseError(err, code);
    process.stderr.write(`ERROR: ${name}: ${errorMessage(e)}\n`);
    if (env.STRATA_DEBUG && e.stack) process.stderr.write(`${e.stack}\n`);
    return e.exitCode;
  };
  const phase = PHASES[name];
  if (!phase) return fail(new StrataError(`unknown phase "${name}"; phases: ${PHASE_NAMES.join(', ')}`, Exit.InvalidArgs), Exit.InvalidArgs);
  let api: ApiVersion;
  try {
    api = platformApi(env.CNB_PLATFORM_API);
  } catch (err) {
    return fail(err, Exit.PlatformApi);
  }
  let values: FlagValues;
  let log: Logger;
  try {
    values = parseFlags(name, argv, phase.flags, env);
    log = createLogger(parseLogLevel(values.str('log-level')));
  } catch (err) {
    return fail(err, Exit.InvalidArgs);
  }
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
