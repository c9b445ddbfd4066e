import { randomUUID } from 'node:crypto';
import { posix } from 'node:path';
import type { ImageConfig } from '../oci/config.js';
import { ConfinedDir } from '../oci/confined.js';
import { StrataError, errorMessage } from '../oci/errors.js';
import type { Dockerfile, Instruction } from '../spec/dockerfile.js';
import { Exit } from '../spec/exit.js';
import type { Logger } from './log.js';

/**
 * The extender (image extension spec, "Phase: Extension"): each Dockerfile of one kind applied, in group order, to
 * the image the previous one left. Instructions that only change the config (ARG, ENV, LABEL, USER, WORKDIR, SHELL)
 * are done here; RUN runs where the caller says (a sandbox whose root is the image being extended, as root unless a
 * USER says otherwise), and COPY/ADD copy from the extension's context into that root without following a link on
 * either side. What the runs change on disk the caller takes as the new layer.
 */

export interface ExtendDockerfile {
  extension: string;
  dockerfile: Dockerfile;
  /** extend-config.toml's args for this kind. */
  args: Record<string, string>;
  /** The build context: the extension's context dir for this kind, else the app dir. */
  context: string;
}

export interface ExtendStep {
  args: string[];
  env: string[];
  uid: number;
  gid: number;
  cwd: string;
}

export interface ExtendInputs {
  kind: 'build' | 'run';
  config: ImageConfig;
  dockerfiles: ExtendDockerfile[];
  /** The root being extended, as the host sees it (the overlay's merged view). */
  root: string;
  /** Runs one RUN in the sandbox over `root`; returns its exit code. */
  run: (step: ExtendStep) => Promise<number>;
  log: Logger;
}

export interface ExtendResult {
  config: ImageConfig;
  /** Every run.Dockerfile labelled the image rebasable (spec: else the extended run image is not). */
  rebasable: boolean;
}

/** `$name`, `${name}`, `${name:-word}` and `${name:+word}`, from the args and env in scope; `\$` stays a dollar. */
export function substitute(text: string, vars: Record<string, string>): string {
  return text.replace(/\\\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::([-+])([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)/g, (m, braced?: string, op?: string, word?: string, bare?: string) => {
    if (m === '\\$') return '$';
    const name = braced ?? bare!;
    const v = vars[name];
    if (op === '-') return v ? v : (word ?? '');
    if (op === '+') return v ? (word ?? '') : '';
    return v ?? '';
  });
}

/** `K=V K2="v 2"` (or the old `K V` form) into pairs; quotes and backslashes as a shell word has them. */
export function keyValues(args: string, where: string): [string, string][] {
  const words: string[] = [];
  let cur = '';
  let quote: '"' | "'" | undefined;
  let started = false;
  for (let i = 0; i < args.length; i++) {
    const c = args[i]!;
    if (quote) {
      if (c === quote) quote = undefined;
      else if (c === '\\' && quote === '"' && i + 1 < args.length) cur += args[++i];
      else cur += c;
    } else if (c === '"' || c === "'") {
      quote = c;
      started = true;
    } else if (c === '\\' && i + 1 < args.length) {
      cur += args[++i];
      started = true;
    } else if (/\s/.test(c)) {
      if (started) words.push(cur);
      cur = '';
      started = false;
    } else {
      cur += c;
      started = true;
    }
  }
  if (quote) throw new StrataError(`${where}: an unclosed ${quote}`);
  if (started) words.push(cur);
  if (words.length && !words[0]!.includes('=')) {
    // The old form: one key, and the rest of the line its value.
    const [k, ...rest] = args.trim().split(/\s+/);
    return [[k!, args.trim().slice(k!.length).trim().replace(/^(["'])(.*)\1$/, '$2')]].filter(() => rest.length > 0) as [string, string][];
  }
  return words.map((w) => {
    const eq = w.indexOf('=');
    if (eq <= 0) throw new StrataError(`${where}: "${w.slice(0, 60)}" is not KEY=VALUE`);
    return [w.slice(0, eq), w.slice(eq + 1)];
  });
}

function setEnv(env: string[], key: string, value: string): string[] {
  return [...env.filter((e) => !e.startsWith(`${key}=`)), `${key}=${value}`];
}

/** A USER value as numbers, names looked up in the image's /etc/passwd and /etc/group. */
export function resolveUser(user: string, root: string): { uid: number; gid: number } {
  const [u = '', g] = user.split(':');
  const table = (file: string) =>
    (ConfinedDir.with(root, (d) => d.readText(file, 4 << 20)) ?? '')
      .split('\n')
      .map((l) => l.split(':'))
      .filter((f) => f.length >= 4);
  const passwd = /^\d+$/.test(u) ? undefined : table('etc/passwd').find((f) => f[0] === u);
  // root is uid 0 even in an image with no /etc/passwd.
  const uid = /^\d+$/.test(u) ? Number(u) : passwd ? Number(passwd[2]) : u === 'root' ? 0 : NaN;
  if (!Number.isInteger(uid)) throw new StrataError(`USER ${user}: no user ${u} in the image's /etc/passwd`);
  let gid = passwd ? Number(passwd[3]) : uid === 0 ? 0 : uid;
  if (g !== undefined && g !== '') {
    gid = /^\d+$/.test(g) ? Number(g) : Number(table('etc/group').find((f) => f[0] === g)?.[2] ?? NaN);
    if (!Number.isInteger(gid)) throw new StrataError(`USER ${user}: no group ${g} in the image's /etc/group`);
  }
  return { uid, gid };
}

/** The image's user as the spec's user_id and group_id args give it (numbers; root when unset). */
export function imageIds(config: ImageConfig, root: string): { uid: number; gid: number } {
  const user = config.config?.User ?? '';
  return user ? resolveUser(user, root) : { uid: 0, gid: 0 };
}

/** COPY/ADD sources into the root: files and directories, no links followed, owned as `--chown` says (root). */
function copyIn(ins: Instruction, vars: Record<string, string>, context: string, root: string, workdir: string, where: string): void {
  let words = ins.json ?? ins.args.split(/\s+/);
  const flags = words.filter((w) => w.startsWith('--'));
  words = words.filter((w) => !w.startsWith('--'));
  let owner = { uid: 0, gid: 0 };
  for (const f of flags) {
    const m = /^--chown=(.+)$/.exec(f);
    if (m) owner = resolveUser(substitute(m[1]!, vars), root);
    else throw new StrataError(`${where}: ${ins.keyword} ${f} is not supported (only --chown)`);
  }
  if (words.length < 2) throw new StrataError(`${where}: ${ins.keyword} needs a source and a destination`);
  const dest = substitute(words.at(-1)!, vars);
  const sources = words.slice(0, -1).map((s) => substitute(s, vars));
  for (const s of sources) {
    if (/^[a-z]+:\/\//i.test(s)) throw new StrataError(`${where}: ADD from a URL is not supported; download it in a RUN`);
    if (ins.keyword === 'ADD' && /\.(tar|tgz|tar\.(gz|xz|bz2))$/.test(s)) throw new StrataError(`${where}: ADD of an archive (${s}) is not supported; unpack it in a RUN`);
  }
  const target = posix.resolve(workdir, dest).slice(1);
  const intoDir = dest.endsWith('/') || sources.length > 1;
  ConfinedDir.with(context, (src) =>
    ConfinedDir.with(root, (dst) => {
      const copy = (from: string, to: string): void => {
        const st = src.lstat(from);
        if (!st) throw new StrataError(`${where}: ${from || '.'} is not in the build context`);
        if (st.isDirectory()) {
          dst.mkdirp(to);
          for (const name of src.readdir(from) ?? []) copy(from ? `${from}/${name}` : name, to ? `${to}/${name}` : name);
        } else if (st.isFile()) {
          const parent = posix.dirname(to);
          if (parent !== '.') dst.mkdirp(parent);
          src.copyFileTo(from, dst, to, st.mode & 0o777);
        }
        // Links and special files in a context are left out: they could point anywhere on this machine.
        if (to && (st.isDirectory() || st.isFile())) dst.chown(to, owner.uid, owner.gid);
      };
      for (const s of sources) {
        const from = posix.normalize(s).replace(/^(\.\/|\/)+/, '').replace(/^\.$/, '');
        if (from.startsWith('..')) throw new StrataError(`${where}: ${s} is outside the build context`);
        const st = src.lstat(from);
        if (st?.isSymbolicLink()) throw new StrataError(`${where}: ${s} is a link; a build context's links are not copied`);
        // A directory's contents go into the destination; a file goes to it, or into it when it is a directory.
        copy(from, st?.isDirectory() || !intoDir ? target : posix.join(target, posix.basename(from)));
      }
    }),
  );
}

export async function applyDockerfiles(i: ExtendInputs): Promise<ExtendResult> {
  let config: ImageConfig = JSON.parse(JSON.stringify(i.config)) as ImageConfig;
  let rebasable = i.kind === 'run';
  for (const f of i.dockerfiles) {
    const ids = imageIds(config, i.root);
    // The lifecycle's own args, then the extension's from extend-config.toml.
    const given: Record<string, string> = { base_image: 'base', build_id: randomUUID(), user_id: String(ids.uid), group_id: String(ids.gid), ...f.args };
    const args: Record<string, string> = {};
    let shell = ['/bin/sh', '-c'];
    let labelledRebasable = false;
    const body = f.dockerfile.instructions.slice(f.dockerfile.instructions.findIndex((x) => x.keyword === 'FROM') + 1);
    for (const ins of body) {
      const where = `extension ${f.extension}: ${f.dockerfile.file}:${ins.line}`;
      const c = (config.config ??= {});
      const env = Object.fromEntries((c.Env ?? []).map((e) => [e.slice(0, e.indexOf('=')), e.slice(e.indexOf('=') + 1)]));
      const vars = { ...args, ...env };
      try {
        switch (ins.keyword) {
          case 'ARG': {
            const [name, def] = ins.args.split(/=(.*)/s) as [string, string | undefined];
            args[name.trim()] = given[name.trim()] ?? substitute(def ?? '', vars);
            break;
          }
          case 'ENV':
            for (const [k, v] of keyValues(ins.args, where)) c.Env = setEnv(c.Env ?? [], k, substitute(v, vars));
            break;
          case 'LABEL':
            for (const [k, v] of keyValues(ins.args, where)) {
              const value = substitute(v, vars);
              c.Labels = { ...(c.Labels ?? {}), [k]: value };
              if (k === 'io.buildpacks.rebasable') labelledRebasable = value === 'true';
            }
            break;
          case 'USER':
            c.User = substitute(ins.args.trim(), vars);
            resolveUser(c.User, i.root);
            break;
          case 'WORKDIR':
            c.WorkingDir = posix.resolve(c.WorkingDir || '/', substitute(ins.args.trim(), vars));
            ConfinedDir.with(i.root, (d) => d.mkdirp(c.WorkingDir!.slice(1)));
            break;
          case 'SHELL':
            if (!ins.json?.length) throw new StrataError(`${where}: SHELL takes a JSON array`);
            shell = ins.json;
            break;
          case 'RUN': {
            const user = c.User ? resolveUser(c.User, i.root) : { uid: 0, gid: 0 };
            // ARG values are in the environment of RUN, as in a Docker build; the image's ENV wins.
            const runEnv = Object.entries({ ...args, ...env }).map(([k, v]) => `${k}=${v}`);
            if (!runEnv.some((e) => e.startsWith('PATH='))) runEnv.push('PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin');
            i.log.info(`[${f.extension}] RUN ${ins.json ? JSON.stringify(ins.json) : ins.args}`);
            const code = await i.run({ args: ins.json ?? [...shell, ins.args], env: runEnv, uid: user.uid, gid: user.gid, cwd: c.WorkingDir || '/' });
            if (code !== 0) throw new StrataError(`${where}: RUN exited ${code}`, Exit.ExtendError);
            break;
          }
          case 'COPY':
          case 'ADD':
            copyIn(ins, vars, f.context, i.root, c.WorkingDir || '/', where);
            break;
          case 'FROM':
            break;
        }
      } catch (err) {
        if (err instanceof StrataError && err.message.startsWith('extension ')) throw err;
        throw new StrataError(`${where}: ${errorMessage(err)}`, Exit.ExtendError, { cause: err });
      }
    }
    if (i.kind === 'run') rebasable &&= labelledRebasable;
    config = { ...config, config: { ...(config.config ?? {}) } };
  }
  if (i.kind === 'run') {
    const user = config.config?.User ?? '';
    const { uid } = user ? resolveUser(user, i.root) : { uid: 0 };
    if (uid === 0) throw new StrataError(`extension ${i.dockerfiles.at(-1)!.extension}: the run image's user is root after its run.Dockerfile; end it with USER \${user_id}:\${group_id}`, Exit.ExtendError);
    config.config = { ...(config.config ?? {}), Labels: { ...(config.config?.Labels ?? {}), 'io.buildpacks.rebasable': String(rebasable) } };
  }
  return { config, rebasable };
}
