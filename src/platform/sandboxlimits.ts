/** What one sandboxed run may use: a fork bomb or a runaway build stops at these, not at the host's limits. */
export interface SandboxLimits {
  /** Processes and threads. */
  pids: number;
  /** Memory in bytes (runc only: it needs a cgroup, which rootless bubblewrap has none of). */
  memoryBytes: number;
}

export const DEFAULT_LIMITS: SandboxLimits = { pids: 1024, memoryBytes: 4 * 2 ** 30 };
