import { before, after } from 'node:test';
import { startRegistry, type RegistryAuth, type TestRegistry } from '../../src/devtools/registry.js';
import { tempDir } from './proc.js';

export { startRegistry, type RegistryAuth, type TestRegistry };

/**
 * Registers before/after hooks that start a registry and a temp work dir for the calling test file; the returned
 * object is filled in once the hooks have run. `auth` may be a function, for settings known only once an earlier
 * hook has run (a token server's port).
 */
export function registryFixture(auth: RegistryAuth | (() => RegistryAuth) = {}): { reg: TestRegistry; work: string } {
  const ctx = {} as { reg: TestRegistry; work: string };
  let cleanup: (() => Promise<void>) | undefined;
  before(async () => {
    ctx.reg = await startRegistry(typeof auth === 'function' ? auth() : auth);
    const dir = await tempDir();
    ctx.work = dir.path;
    cleanup = dir.cleanup;
  });
  after(async () => {
    await ctx.reg?.stop();
    await cleanup?.();
  });
  return ctx;
}
