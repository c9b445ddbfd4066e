import { spawn, spawnSync } from 'node:child_process';
import type { Socket } from 'node:net';
import { randomBytes } from 'node:crypto';
import { accessSync, constants as fsc, existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm, rmdir, writeFile } from 'node:fs/promises';
import { processAlive } from '../oci/fsutil.js';
import { makeMountPoints } from '../oci/confined.js';
import { join } from 'node:path';
import { StrataError } from '../oci/errors.js';
import { runCommand } from '../oci/command.js';
import { LIFECYCLE_GATE } from '../lifecycle/gate.js';
import { DEFAULT_LIMITS, type SandboxLimits } from './sandboxlimits.js';
import type { EngineClient } from '../oci/engine/client.js';

/** A host dir seen at another path inside the sandbox. */
export interface Mount {
  source: string;
  destination: string;
  readonly?: boolean;
}

export interface SandboxRun {
  args: string[];
  env: string[];
  uid: number;
  gid: number;
  cwd: string;
  mounts: Mount[];
  /** `host` shares the host's network (like pack's default on Linux); `none` gives only loopback. */
  network: 'host' | 'none';
  /** Caps for everything the program starts (default: `DEFAULT_LIMITS`). */
  limits?: SandboxLimits;
  /** Where its stdout and stderr go; default: ours. */
  output?: (chunk: Buffer) => void;
  /**
   * A Dockerfile's RUN (an image extension): the root is writable (an overlay the caller made) and the program has
   * the capabilities a Docker build's RUN has, so package managers work; runc only.
   */
  dockerfileStep?: boolean;
  /** Told once the sandbox process is running: the caller's own work in the meantime then does not delay its start. */
  started?: () => void;
  /**
   * Started before its inputs are ready (runc only: `holds`). Until `release` resolves, the mount at `destination`
   * is an empty dir only root may read, so nothing in the sandbox can see or race what the host is still writing there;
   * then the host binds the mount's real source in (propagated into the sandbox) and tells strata's lifecycle to go
   * on on its stdin (STRATA_LIFECYCLE_GATE). Resolving false cancels the run: the lifecycle exits without running.
   */
  hold?: { destination: string; release: Promise<boolean> };
}

/** Runs one program in isolation and returns its exit code; output goes to ours. */
export interface Executor {
  readonly name: string;
  /** Whether `run` takes a `hold`: a sandbox started ahead of its inputs. */
  readonly holds?: boolean;
  run(spec: SandboxRun): Promise<number>;
}

/**
 * runc in a mount namespace of its own, where an empty dir is mounted on itself in a peer group of its own: bound
 * into the container as a slave, it shows nothing until the host binds something onto it in that namespace (nsenter),
 * which then appears in the container too. The mounts live only in that namespace, so they go when runc does, however
 * strata ends; the empty dir carries its owner's pid for a later strata to remove (reapOrphans). The shell says on
 * fd 3 when the mount is in place.
 */
const HELD_RUNC = 'mount --bind "$0" "$0" && mount --make-shared "$0" && echo ready >&3 && exec 3>&- runc "$@"';

let setprivThere: boolean | undefined;

/**
 * The command line that starts `cmd` so that it dies with this process (PR_SET_PDEATHSIG through util-linux's
 * setpriv, where it is installed): a strata killed with SIGKILL leaves no sandbox or child build running.
 */
export function tiedToUs(cmd: string, args: string[]): [string, string[]] {
  setprivThere ??= spawnSync('setpriv', ['--version'], { stdio: 'ignore' }).status === 0;
  return setprivThere ? ['setpriv', ['--pdeathsig', 'KILL', '--', cmd, ...args]] : [cmd, args];
}

/**
 * A container outlives a runc killed under it, and runc outlives a strata killed with SIGKILL. So beside each
 * container waits a small shell reading a pipe from strata: when strata dies, however, the pipe closes and the shell
 * kills the container, so a killed build leaves nothing running. It is itself killed when the container ends.
 */
function guardian(root: string, id: string) {
  const g = spawn('sh', ['-c', 'read -r _ || runc --root "$0" kill "$1" KILL 2>/dev/null', root, id], { stdio: ['pipe', 'ignore', 'ignore'], detached: true });
  g.on('error', () => undefined);
  g.stdin.on('error', () => undefined);
  // Neither the shell nor its pipe keeps this process alive.
  g.unref();
  (g.stdin as Socket).unref();
  return g;
}

const DEFAULT_CAPS: string[] = [];
/** The capabilities a RUN of a Docker build has (Docker's default set). */
const DOCKERFILE_CAPS = ['CAP_CHOWN', 'CAP_DAC_OVERRIDE', 'CAP_FSETID', 'CAP_FOWNER', 'CAP_MKNOD', 'CAP_NET_RAW', 'CAP_SETGID', 'CAP_SETUID', 'CAP_SETFCAP', 'CAP_SETPCAP', 'CAP_NET_BIND_SERVICE', 'CAP_SYS_CHROOT', 'CAP_KILL', 'CAP_AUDIT_WRITE'];

/**
 * runc from Debian, on an unpacked image rootfs mounted read-only: fresh pid, ipc, uts and mount namespaces, no
 * capabilities, no new privileges, the build's dirs bind-mounted in, /tmp a tmpfs. Chosen over bubblewrap because it
 * takes an OCI runtime config (the same shape Docker and Podman use) and returns the program's exit code as its own.
 */
export class RuncExecutor implements Executor {
  readonly name = 'runc';
  readonly holds = true;

  constructor(
    private readonly rootfs: string,
    private readonly stateDir: string,
  ) {}

  async run(spec: SandboxRun): Promise<number> {
    await mkdir(this.stateDir, { recursive: true });
    await reapOrphans(this.stateDir);
    const bundle = await mkdtemp(join(this.stateDir, `bundle-${process.pid}-`));
    // The owner's pid is in the name, so a later strata can tell a container whose owner was killed.
    const id = `strata-${process.pid}-${randomBytes(4).toString('hex')}`;
    const limits = spec.limits ?? DEFAULT_LIMITS;
    const heldSource = spec.hold && spec.mounts.find((m) => m.destination === spec.hold!.destination)?.source;
    if (spec.hold && !heldSource) throw new StrataError(`sandbox: nothing is mounted at ${spec.hold.destination} to hold back`);
    const held = spec.hold ? await mkdtemp(join(this.stateDir, `gate-${process.pid}-`)) : undefined;
    const bind = (m: Mount) =>
      held && m.destination === spec.hold?.destination
        ? { destination: m.destination, type: 'bind', source: held, options: ['rbind', 'rslave', 'nosuid', 'nodev', m.readonly ? 'ro' : 'rw'] }
        : { destination: m.destination, type: 'bind', source: m.source, options: ['rbind', 'nosuid', 'nodev', m.readonly ? 'ro' : 'rw'] };
    const config = {
      ociVersion: '1.0.2',
      process: {
        terminal: false,
        user: { uid: spec.uid, gid: spec.gid },
        args: spec.args,
        env: spec.hold ? [...spec.env, `${LIFECYCLE_GATE}=1`] : spec.env,
        cwd: spec.cwd,
        noNewPrivileges: true,
        capabilities: spec.dockerfileStep && spec.uid === 0 ? { bounding: DOCKERFILE_CAPS, effective: DOCKERFILE_CAPS, permitted: DOCKERFILE_CAPS } : { bounding: DEFAULT_CAPS, effective: DEFAULT_CAPS, permitted: DEFAULT_CAPS, ambient: DEFAULT_CAPS },
        // Within this machine's hard limits (root cannot raise them here).
        rlimits: [{ type: 'RLIMIT_NOFILE', hard: 4096, soft: 4096 }],
      },
      root: { path: this.rootfs, readonly: !spec.dockerfileStep },
      hostname: 'strata',
      mounts: [
        { destination: '/proc', type: 'proc', source: 'proc' },
        { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
        { destination: '/dev/pts', type: 'devpts', source: 'devpts', options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620'] },
        { destination: '/dev/shm', type: 'tmpfs', source: 'shm', options: ['nosuid', 'noexec', 'nodev', 'mode=1777', 'size=65536k'] },
        { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', 'ro'] },
        { destination: '/tmp', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'nodev', 'mode=1777'] },
        ...(spec.network === 'host' ? ['/etc/resolv.conf', '/etc/hosts'].map((f) => bind({ source: f, destination: f, readonly: true })) : []),
        ...spec.mounts.map(bind),
      ],
      linux: {
        namespaces: [{ type: 'pid' }, { type: 'ipc' }, { type: 'uts' }, { type: 'mount' }, ...(spec.network === 'none' ? [{ type: 'network' }] : [])],
        ...(cgroupsUsable() ? { resources: { pids: { limit: limits.pids }, memory: { limit: limits.memoryBytes } } } : {}),
        maskedPaths: ['/proc/kcore', '/proc/keys', '/proc/timer_list', '/sys/firmware'],
        readonlyPaths: ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'],
      },
    };
    await writeFile(join(bundle, 'config.json'), JSON.stringify(config));
    let releaseFailed: unknown;
    let ended = false;
    let filling: Promise<void> | undefined;
    try {
      const code = await new Promise<number>((resolve, reject) => {
        const runcArgs = ['--root', join(this.stateDir, 'runc-state'), 'run', '--bundle', bundle, id];
        const out = spec.output ? 'pipe' : 'inherit';
        const child = held
          ? spawn('unshare', ['--mount', '--propagation', 'private', '--', 'sh', '-c', HELD_RUNC, held, ...runcArgs], { stdio: ['pipe', out, out, 'pipe'] })
          : spawn('runc', runcArgs, { stdio: ['ignore', out, out] });
        child.once('spawn', () => spec.started?.());
        if (spec.hold && held && heldSource) {
          const gate = child.stdin!;
          gate.on('error', () => undefined);
          const ready = new Promise<boolean>((resolve) => {
            const said = child.stdio[3] as NodeJS.ReadableStream;
            said.once('data', () => resolve(true));
            said.once('end', () => resolve(false));
            said.on('error', () => resolve(false));
          });
          // The real dir is bound in before the lifecycle is told to go on: it never reads the empty one.
          const open = async (): Promise<boolean> => {
            if (!(await spec.hold!.release.catch(() => false)) || !(await ready) || ended) return false;
            filling = runCommand('nsenter', ['--target', String(child.pid), '--mount', '--', 'mount', '--bind', heldSource, held]);
            try {
              await filling;
              return true;
            } catch (err) {
              releaseFailed = err;
              return false;
            }
          };
          void open().then((go) => gate.end(go ? 'go\n' : ''));
        }
        const guard = guardian(join(this.stateDir, 'runc-state'), id);
        if (spec.output) for (const out of [child.stdout!, child.stderr!]) out.on('data', spec.output);
        // Ctrl-C and SIGTERM reach the sandboxed program (runc passes them on). A program running as PID 1 of its
        // namespace ignores signals it has no handler for, so after a grace period the container is killed.
        let killer: NodeJS.Timeout | undefined;
        const forward = (sig: NodeJS.Signals) => () => {
          child.kill(sig);
          killer ??= setTimeout(() => {
            spawn('runc', ['--root', join(this.stateDir, 'runc-state'), 'kill', id, 'KILL'], { stdio: 'ignore' }).on('error', () => undefined);
          }, 3000);
        };
        const onInt = forward('SIGINT');
        const onTerm = forward('SIGTERM');
        process.on('SIGINT', onInt).on('SIGTERM', onTerm);
        child.on('error', (e: NodeJS.ErrnoException) => reject(new StrataError(e.code === 'ENOENT' ? `${held ? 'unshare' : 'runc'} is not installed (apt-get install ${held ? 'util-linux' : 'runc'}), or use --executor host` : `runc: ${e.message}`)));
        child.on('close', (code, signal) => {
          guard?.kill('SIGKILL');
          if (killer) clearTimeout(killer);
          process.off('SIGINT', onInt).off('SIGTERM', onTerm);
          resolve(code ?? (signal ? 128 : 1));
        });
      });
      if (releaseFailed) throw releaseFailed;
      return code;
    } finally {
      await rm(bundle, { recursive: true, force: true });
      ended = true;
      if (held) {
        // A release still to come finds the run over and binds nothing. The mounts went with runc's namespace.
        await filling?.catch(() => undefined);
        await rmdir(held).catch(() => undefined);
      }
    }
  }
}

/**
 * No isolation: the program runs directly on this machine with the same mounts expressed as paths. For CI that already
 * runs inside the build image; the dirs must then be the real ones (`/workspace`, `/layers`).
 */
export class HostExecutor implements Executor {
  readonly name = 'host';

  async run(spec: SandboxRun): Promise<number> {
    return new Promise<number>((resolve, reject) => {
      const ids = process.getuid?.() === 0 ? { uid: spec.uid, gid: spec.gid } : {};
      const env = Object.fromEntries(spec.env.map((e) => [e.slice(0, e.indexOf('=')), e.slice(e.indexOf('=') + 1)]));
      const child = spawn(spec.args[0]!, spec.args.slice(1), { cwd: spec.cwd, env, stdio: ['ignore', 'inherit', 'inherit'], ...ids });
      child.on('error', (e) => reject(new StrataError(`host executor: ${spec.args[0]}: ${e.message}`)));
      child.on('close', (code) => resolve(code ?? 1));
    });
  }
}

/**
 * Any Docker-API engine (Docker, or Podman's service): each phase is a container of the builder image with the
 * build dirs bound in, run as the builder's user, removed afterwards.
 */
export class EngineExecutor implements Executor {
  readonly name = 'docker';

  constructor(
    private readonly engine: EngineClient,
    private readonly image: string,
  ) {}

  async run(spec: SandboxRun): Promise<number> {
    const id = await this.engine.createContainer({
      Image: this.image,
      Entrypoint: [spec.args[0]],
      Cmd: spec.args.slice(1),
      Env: spec.env,
      User: `${spec.uid}:${spec.gid}`,
      WorkingDir: spec.cwd,
      HostConfig: { Binds: spec.mounts.map((m) => `${m.source}:${m.destination}:${m.readonly ? 'ro' : 'rw'}`), NetworkMode: spec.network, PidsLimit: (spec.limits ?? DEFAULT_LIMITS).pids, Memory: (spec.limits ?? DEFAULT_LIMITS).memoryBytes },
    });
    return this.engine.runContainer(id, process.stdout, process.stderr);
  }
}

/**
 * Rootless: bubblewrap maps the one user we are onto the build user inside a user namespace (runc would need the
 * container's root mapped, and detect and build must not run as root), with the same read-only rootfs and binds.
 */
export class BwrapExecutor implements Executor {
  readonly name = 'bwrap';

  constructor(private readonly rootfs: string) {}

  async run(spec: SandboxRun): Promise<number> {
    // Over a read-only root bwrap cannot make a missing mount point; it is made in the unpacked rootfs (ours) first.
    makeMountPoints(this.rootfs, spec.mounts.map((m) => m.destination), 'sandbox rootfs');
    const args = [
      '--unshare-user', '--uid', String(spec.uid), '--gid', String(spec.gid),
      '--unshare-pid', '--unshare-ipc', '--unshare-uts', ...(spec.network === 'none' ? ['--unshare-net'] : []),
      '--die-with-parent', '--new-session',
      '--ro-bind', this.rootfs, '/',
      // A sticky, world-writable /tmp, as on any Linux system (bwrap's own default is 0755).
      '--proc', '/proc', '--dev', '/dev', '--perms', '1777', '--tmpfs', '/tmp',
      // Over a read-only root bwrap can only bind onto files that are there already.
      ...(spec.network === 'host' ? ['/etc/resolv.conf', '/etc/hosts'].filter((f) => existsSync(join(this.rootfs, f))).flatMap((f) => ['--ro-bind-try', f, f]) : []),
      ...spec.mounts.flatMap((m) => [m.readonly ? '--ro-bind' : '--bind', m.source, m.destination]),
      '--chdir', spec.cwd,
      '--clearenv',
      ...spec.env.flatMap((e) => ['--setenv', e.slice(0, e.indexOf('=')), e.slice(e.indexOf('=') + 1)]),
      '--', ...spec.args,
    ];
    // No cgroup without root: processes are capped by RLIMIT_NPROC, which counts this user's processes.
    const pids = (spec.limits ?? DEFAULT_LIMITS).pids;
    return new Promise<number>((resolve, reject) => {
      const child = spawn('prlimit', [`--nproc=${pids}:${pids}`, '--', 'bwrap', ...args], { stdio: ['ignore', 'inherit', 'inherit'] });
      child.on('error', (e: NodeJS.ErrnoException) => reject(new StrataError(e.code === 'ENOENT' ? 'bubblewrap is not installed (apt-get install bubblewrap); strata uses it when not run as root' : `bwrap: ${e.message}`)));
      child.on('close', (code, signal) => resolve(code ?? (signal ? 128 : 1)));
    });
  }
}

/** The daemonless sandbox for this process: runc as root, bubblewrap (rootless) otherwise. */
export function sandboxExecutor(rootfs: string, stateDir: string): Executor {
  return process.getuid?.() === 0 ? new RuncExecutor(rootfs, stateDir) : new BwrapExecutor(rootfs);
}

let cgroups: boolean | undefined;

/**
 * Whether runc can put a container in a cgroup of its own with pids and memory limits: cgroup v2 with both
 * controllers, or v1 with writable pids and memory hierarchies. Without them (an unprivileged container) runc would
 * refuse to start, so the limits are left out with one warning.
 */
function cgroupsUsable(): boolean {
  if (cgroups !== undefined) return cgroups;
  const v2 = readFileSafe('/sys/fs/cgroup/cgroup.controllers');
  const writable = (p: string) => {
    try {
      accessSync(p, fsc.W_OK);
      return true;
    } catch {
      return false;
    }
  };
  cgroups = v2 !== undefined ? /\bpids\b/.test(v2) && /\bmemory\b/.test(v2) && writable('/sys/fs/cgroup') : writable('/sys/fs/cgroup/pids') && writable('/sys/fs/cgroup/memory');
  if (!cgroups) process.stderr.write('Warning: no writable cgroup for pids and memory; the sandbox runs without those limits\n');
  return cgroups;
}

function readFileSafe(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

/**
 * Containers whose strata was killed (SIGKILL, a crash) keep running under runc until someone stops them: each run
 * first kills and deletes those whose owner's pid is gone, and removes their bundles.
 */
export async function reapOrphans(stateDir: string): Promise<string[]> {
  const root = join(stateDir, 'runc-state');
  let names: string[];
  try {
    names = await readdir(root);
  } catch {
    names = [];
  }
  const reaped: string[] = [];
  for (const id of names) {
    const m = /^strata-(\d+)-[0-9a-f]+$/.exec(id);
    if (!m || processAlive(Number(m[1]))) continue;
    await new Promise<void>((resolve) => {
      const child = spawn('runc', ['--root', root, 'delete', '--force', id], { stdio: 'ignore' });
      child.on('error', () => resolve());
      child.on('close', () => resolve());
    });
    reaped.push(id);
  }
  for (const b of await readdir(stateDir).catch(() => [] as string[])) {
    const m = /^(bundle|gate)-(\d+)-/.exec(b);
    if (!m || processAlive(Number(m[2]))) continue;
    // A gate is an empty dir (its mounts were only ever in runc's own namespace): never removed recursively.
    if (m[1] === 'gate') await rmdir(join(stateDir, b)).catch(() => undefined);
    else await rm(join(stateDir, b), { recursive: true, force: true });
  }
  return reaped;
}
