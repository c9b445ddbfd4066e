import { spawn } from 'node:child_process';
import { existsSync, readlinkSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { sleep, StrataError } from '../oci/errors.js';
import { PROJECT_ROOT } from '../version.js';

/**
 * debootstrap's second stage for another architecture (its first stage ran with --foreign), run under qemu-user with
 * no emulator registered on this machine: in a user, mount and pid namespace of its own (ids mapped one to one, so
 * the tree's owners are the real ones) a private binfmt_misc instance (Linux 6.7+) sends that architecture's programs
 * to qemu, and it goes when the namespace does. `container=lxc` tells debootstrap to make no device nodes, which a
 * user namespace may not.
 */

/** binfmt_misc's registration of qemu for an architecture's ELF programs (F: qemu opened now, usable in the chroot). */
const BINFMT: Record<string, { qemu: string; magic: string; mask: string }> = {
  arm64: {
    qemu: 'qemu-aarch64-static',
    magic: '\\x7fELF\\x02\\x01\\x01\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x02\\x00\\xb7\\x00',
    mask: '\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\x00\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xfe\\xff\\xff\\xff',
  },
};

const SCRIPT = 'read -r go && [ "$go" = go ] && mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc && printf "%s" "$STRATA_BINFMT" > /proc/sys/fs/binfmt_misc/register && exec chroot "$0" /debootstrap/debootstrap --second-stage';

export function qemuFor(arch: string): string {
  const b = BINFMT[arch];
  if (!b) throw new StrataError(`no emulator known for ${arch}: strata makes bases for this machine's architecture and arm64`);
  const path = join(PROJECT_ROOT, '.tools', b.qemu);
  if (!existsSync(path)) throw new StrataError(`${b.qemu} is not at ${path}; run scripts/setup.sh (it takes it out of Debian's qemu-user-static)`);
  return path;
}

export async function foreignSecondStage(root: string, arch: string, what: string): Promise<void> {
  const b = BINFMT[arch]!;
  const qemu = qemuFor(arch);
  const ownUserNs = readlinkSync('/proc/self/ns/user');
  await new Promise<void>((resolve, reject) => {
    let err = '';
    const child = spawn('unshare', ['--user', '--mount', '--pid', '--fork', '--mount-proc', 'sh', '-c', SCRIPT, root], {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', container: 'lxc', STRATA_BINFMT: `:strata-${arch}:M::${b.magic}:${b.mask}:${qemu}:F` },
    });
    for (const out of [child.stdout, child.stderr]) out.on('data', (c: Buffer) => (err = (err + c.toString()).slice(-4000)));
    child.on('error', (e) => reject(new StrataError(`${what}: unshare: ${e.message}`)));
    child.on('close', (code) => (code === 0 ? resolve() : reject(new StrataError(`${what}: the second stage under ${b.qemu} failed (exit ${code}): ${err.trim().split('\n').pop() ?? ''}`))));
    child.stdin.on('error', () => undefined);
    // The ids are mapped from here once unshare has made the namespace (root may map them all), then it goes on.
    const map = async (): Promise<void> => {
      const pid = child.pid!;
      for (let i = 0; i < 200 && readlinkSync(`/proc/${pid}/ns/user`) === ownUserNs; i++) await sleep(10);
      await writeFile(`/proc/${pid}/uid_map`, '0 0 65536\n');
      await writeFile(`/proc/${pid}/gid_map`, '0 0 65536\n');
      child.stdin.end('go\n');
    };
    map().catch((e: Error) => {
      child.stdin.end();
      reject(new StrataError(`${what}: cannot map the ids of its user namespace: ${e.message}`));
    });
  });
}
