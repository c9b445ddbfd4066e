/**
 * Flags pack takes on every command (`-v`, `-q`, `--timestamps`, `--no-color`, `--force-color`): taken out of argv
 * wherever they stand, before the command's own parsing, and read by the commands that print.
 */
export interface Globals {
  verbose: boolean;
  quiet: boolean;
  timestamps: boolean;
  /** strata prints no colour; the flags are accepted so pack's scripts run unchanged. */
  color: boolean | undefined;
}

export const globals: Globals = { verbose: false, quiet: false, timestamps: false, color: undefined };

const FLAGS: Record<string, (g: Globals) => void> = {
  '-v': (g) => (g.verbose = true),
  '--verbose': (g) => (g.verbose = true),
  '-q': (g) => (g.quiet = true),
  '--quiet': (g) => (g.quiet = true),
  '--timestamps': (g) => (g.timestamps = true),
  '--no-color': (g) => (g.color = false),
  '--force-color': (g) => (g.color = true),
};

/** argv without the global flags (up to a `--`, after which everything is the command's), which set `globals`. */
export function takeGlobals(argv: string[]): string[] {
  const out: string[] = [];
  const words: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    // `strata run IMAGE ARGS…`: what follows the image is the app's, flags included.
    if (a === '--' || (words[0] === 'run' && words.length === 2)) {
      out.push(...argv.slice(i));
      break;
    }
    const set = FLAGS[a];
    if (set) set(globals);
    else {
      out.push(a);
      if (!a.startsWith('-')) words.push(a);
    }
  }
  return out;
}

/** A line as the global flags want it: with the time in front under --timestamps. */
export function stamp(line: string): string {
  return globals.timestamps ? `${new Date().toISOString()} ${line}` : line;
}

/** pack's old top-level verbs, as the words strata takes for them. */
export const PACK_ALIASES: Record<string, string[]> = {
  'inspect-image': ['inspect'],
  'inspect-builder': ['builder', 'inspect'],
  'inspect-buildpack': ['buildpack', 'inspect'],
  'create-builder': ['builder', 'create'],
  'package-buildpack': ['buildpack', 'package'],
  'suggest-builders': ['builder', 'suggest'],
  'set-default-builder': ['config', 'default-builder'],
  'trust-builder': ['config', 'trusted-builders', 'add'],
  'untrust-builder': ['config', 'trusted-builders', 'remove'],
  'list-trusted-builders': ['config', 'trusted-builders', 'list'],
  'set-run-image-mirrors': ['config', 'run-image-mirrors', 'add'],
};
