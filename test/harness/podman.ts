import { spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import http from 'node:http';
import { runOk, tempDir } from './proc.js';

export interface PodmanService {
  /** `unix://…` for DOCKER_HOST */
  dockerHost: string;
  /** Runs the podman CLI on the service's own storage. */
  podman(args: string[]): Promise<string>;
  stop(): Promise<void>;
}

function ping(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = http.request({ socketPath, path: '/_ping', method: 'GET' }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on('error', () => resolve(false));
    req.end();
  });
}

/**
 * Podman's Docker-compatible API on a private socket and private storage (vfs, so no kernel overlay is needed), with
 * the containers.conf this machine needs: runc, cgroupfs and ulimits within the host's hard limits.
 */
export async function startPodmanService(): Promise<PodmanService> {
  const dir = await tempDir('strata-podman-');
  const conf = join(dir.path, 'containers.conf');
  await writeFile(
    conf,
    '[containers]\ndefault_ulimits = ["nofile=20000:20000", "nproc=20000:20000"]\npids_limit = 0\n[engine]\nruntime = "runc"\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\n',
  );
  const registries = join(dir.path, 'registries.conf');
  await writeFile(registries, 'unqualified-search-registries = []\n');
  const env = { ...process.env, CONTAINERS_CONF: conf, CONTAINERS_REGISTRIES_CONF: registries };
  const base = ['--root', join(dir.path, 'store'), '--runroot', join(dir.path, 'run'), '--storage-driver', 'vfs'];
  const socket = join(dir.path, 'podman.sock');
  const child = spawn('podman', [...base, 'system', 'service', '--time=0', `unix://${socket}`], { env, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (c: Buffer) => (stderr += c.toString()));
  const deadline = Date.now() + 20_000;
  while (!(await ping(socket))) {
    if (child.exitCode !== null) throw new Error(`podman system service exited: ${stderr}`);
    if (Date.now() > deadline) throw new Error(`podman system service did not answer within 20s: ${stderr}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    dockerHost: `unix://${socket}`,
    podman: (args) => runOk('podman', [...base, ...args], { env }),
    async stop() {
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await exited;
      }
      await dir.cleanup();
    },
  };
}
