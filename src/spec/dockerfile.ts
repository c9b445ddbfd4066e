import { SpecError } from './toml.js';

/**
 * The Dockerfiles image extensions generate (`build.Dockerfile`, `run.Dockerfile`), read as the extension spec allows
 * them: one `FROM`, then only ADD, ARG, COPY, ENV, LABEL, RUN, SHELL, USER and WORKDIR. They come from extension code,
 * so anything else is refused with the file and line. Written here: the subset is small (instructions, `\`
 * continuations, comments, JSON or shell form), and a general Dockerfile parser would accept what the spec does not.
 */

export const ALLOWED = ['ADD', 'ARG', 'COPY', 'ENV', 'LABEL', 'RUN', 'SHELL', 'USER', 'WORKDIR'] as const;
export type Keyword = (typeof ALLOWED)[number] | 'FROM';

export interface Instruction {
  keyword: Keyword;
  /** Everything after the keyword, continuations joined. */
  args: string;
  /** JSON (exec) form, when the arguments are a JSON array of strings. */
  json?: string[];
  /** Where it starts, 1-based. */
  line: number;
}

export interface Dockerfile {
  kind: 'build' | 'run';
  file: string;
  instructions: Instruction[];
  /** The image FROM names, as written. */
  from: string;
  /** FROM ${base_image}: the file extends the image it is given rather than naming another. */
  extendsBase: boolean;
}

const MAX_BYTES = 1 << 20;

/** `${base_image}` or `$base_image`. */
const BASE_IMAGE = /^\$(\{base_image\}|base_image)$/;

export function parseDockerfile(text: string, file: string, kind: 'build' | 'run'): Dockerfile {
  if (Buffer.byteLength(text) > MAX_BYTES) throw new SpecError(`${file}: larger than 1 MiB`);
  const lines = text.split('\n');
  const instructions: Instruction[] = [];
  for (let i = 0; i < lines.length; i++) {
    let line = lines[i]!.replace(/\r$/, '');
    const start = i + 1;
    if (/^\s*(#|$)/.test(line)) continue;
    // A trailing backslash joins the next line; comment lines inside a continuation are skipped, as Docker does.
    while (/\\\s*$/.test(line) && i + 1 < lines.length) {
      line = line.replace(/\\\s*$/, '');
      i++;
      while (/^\s*#/.test(lines[i]!) && i + 1 < lines.length) i++;
      line += lines[i]!.replace(/\r$/, '');
    }
    const m = /^\s*([A-Za-z]+)(?:\s+(.*))?$/.exec(line);
    if (!m) throw new SpecError(`${file}:${start}: not an instruction: ${line.trim().slice(0, 80)}`);
    const keyword = m[1]!.toUpperCase();
    if (keyword !== 'FROM' && !(ALLOWED as readonly string[]).includes(keyword)) {
      throw new SpecError(`${file}:${start}: ${keyword} is not allowed in an extension's ${kind}.Dockerfile (only FROM, ${ALLOWED.join(', ')})`);
    }
    const args = (m[2] ?? '').trim();
    if (!args) throw new SpecError(`${file}:${start}: ${keyword} needs arguments`);
    let json: string[] | undefined;
    if (args.startsWith('[')) {
      try {
        const v = JSON.parse(args) as unknown;
        if (Array.isArray(v) && v.every((x) => typeof x === 'string')) json = v as string[];
      } catch {
        // Shell form that happens to start with "[".
      }
    }
    instructions.push({ keyword: keyword as Keyword, args, ...(json ? { json } : {}), line: start });
  }
  const froms = instructions.filter((x) => x.keyword === 'FROM');
  if (froms.length !== 1) throw new SpecError(`${file}: ${froms.length ? `${froms.length} FROM instructions` : 'no FROM instruction'}; an extension's Dockerfile has exactly one`);
  const fromAt = instructions.indexOf(froms[0]!);
  const before = instructions.slice(0, fromAt).find((x) => x.keyword !== 'ARG');
  if (before) throw new SpecError(`${file}:${before.line}: ${before.keyword} before FROM (only ARG may come first)`);
  const fromArgs = froms[0]!.args.split(/\s+/);
  if (fromArgs.length !== 1) throw new SpecError(`${file}:${froms[0]!.line}: FROM takes one image here (no AS, no --platform)`);
  const from = fromArgs[0]!;
  const extendsBase = BASE_IMAGE.test(from);
  if (extendsBase && !instructions.slice(0, fromAt).some((x) => /^base_image(=|$)/.test(x.args))) throw new SpecError(`${file}:${froms[0]!.line}: FROM \${base_image} needs ARG base_image before it`);
  if (kind === 'build' && !extendsBase) throw new SpecError(`${file}:${froms[0]!.line}: a build.Dockerfile must be FROM \${base_image}, not ${from}`);
  if (!extendsBase && from.includes('$')) throw new SpecError(`${file}:${froms[0]!.line}: FROM ${from}: the only variable FROM may name is base_image`);
  return { kind, file, instructions, from, extendsBase };
}

/** Whether a Dockerfile has anything to apply after its FROM. */
export const hasInstructions = (d: Pick<Dockerfile, 'instructions'>): boolean => d.instructions.findIndex((x) => x.keyword === 'FROM') < d.instructions.length - 1;

/** The run image a group's run.Dockerfiles select (platform spec, detector), and which of them still apply. */
export interface RunImageChoice {
  /** The image named by the last run.Dockerfile that is not FROM ${base_image}; undefined keeps the analyzed one. */
  image?: string;
  /** A Dockerfile from that one on has instructions to apply to the run image. */
  extend: boolean;
  /** Indexes of the Dockerfiles before the one that switched: they have no effect and are not applied. */
  ignored: number[];
}

/** Walks back from the last run.Dockerfile: the last switch wins, and everything before it is moot. */
export function chooseRunImage(files: Pick<Dockerfile, 'from' | 'extendsBase' | 'instructions'>[]): RunImageChoice {
  let image: string | undefined;
  let extend = false;
  const ignored: number[] = [];
  for (let i = files.length - 1; i >= 0; i--) {
    const f = files[i]!;
    if (image !== undefined) {
      ignored.unshift(i);
      continue;
    }
    extend ||= hasInstructions(f);
    if (!f.extendsBase) image = f.from;
  }
  return { ...(image !== undefined ? { image } : {}), extend, ignored };
}
