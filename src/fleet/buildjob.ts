import type { Credential } from '../oci/registry/credentials.js';

/**
 * A fleet build as a typed request and result: what the worker hands the build child (buildchild.ts) on its stdin, one
 * line of JSON followed by heartbeats, and reads back from its fd 3. Nothing goes through flags or files, so env values arrive exactly as declared (a newline
 * stays a newline) and no value or credential is written to disk or shown in a process listing.
 */
export interface BuildJob {
  /** The first tag; the image is written there and under `tags`. */
  image: string;
  tags: string[];
  /** The builder image, by digest. */
  builder: string;
  /** The run image, by digest. */
  runImage: string;
  appPath: string;
  env: Record<string, string>;
  bindings: { name: string; files: Record<string, string> }[];
  cacheImage?: string;
  cacheDir?: string;
  stashDir?: string;
  defaultProcess?: string;
  /** project.toml, a path inside the app. */
  descriptorPath?: string;
  /** kpack's creationTime: `now`, or seconds since the epoch. */
  creationTime?: string;
  /** The service account's registry logins; absent, the machine's own. */
  registries?: { registry: string; credential: Credential }[];
  insecureRegistries: string[];
  /**
   * The worker writes a newline to the child's stdin this often; a child that hears nothing for twice as long stops
   * (its worker was stopped or hung), before the worker's lease lapses and another worker takes the build.
   */
  heartbeatMs?: number;
}

export interface BuildJobResult {
  digest: string;
  buildpacks: { id: string; version: string }[];
  runImage: string;
  steps: { name: string; ms: number }[];
}
