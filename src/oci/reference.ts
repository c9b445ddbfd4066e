import { isDigest, type Digest } from './digest.js';
import { StrataError } from './errors.js';

// Docker's reference grammar (distribution/reference), restated as regular expressions.
const COMPONENT = '[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*';
const PATH_RE = new RegExp(`^${COMPONENT}(?:/${COMPONENT})*$`);
const DOMAIN_COMPONENT = '(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])';
const DOMAIN_RE = new RegExp(`^(?:${DOMAIN_COMPONENT}(?:\\.${DOMAIN_COMPONENT})*|\\[[a-fA-F0-9:]+\\])(?::[0-9]+)?$`);
const TAG_RE = /^[\w][\w.-]{0,127}$/;

export const DEFAULT_REGISTRY = 'docker.io';
export const DEFAULT_TAG = 'latest';

/** A fully normalised image reference: registry, repository, and a tag and/or a digest. */
export class Reference {
  private constructor(
    readonly registry: string,
    readonly repository: string,
    readonly tag: string | undefined,
    readonly digest: Digest | undefined,
  ) {}

  /**
   * Parses with Docker's normalisation: `busybox` → `docker.io/library/busybox:latest`; the first path component is a
   * registry only when it looks like a host (has `.` or `:`, or is `localhost`).
   */
  static parse(input: string, options: { defaultTag?: boolean } = {}): Reference {
    const bad = (why: string): never => {
      throw new StrataError(`invalid image reference "${input}": ${why}`);
    };
    if (input.length === 0) bad('it is empty');
    let rest = input;
    let digest: Digest | undefined;
    const at = rest.indexOf('@');
    if (at >= 0) {
      const d = rest.slice(at + 1);
      if (!isDigest(d)) bad(`"${d}" is not a sha256 digest (sha256:<64 hex digits>)`);
      digest = d as Digest;
      rest = rest.slice(0, at);
    }
    let tag: string | undefined;
    const lastSlash = rest.lastIndexOf('/');
    const colon = rest.lastIndexOf(':');
    if (colon > lastSlash) {
      tag = rest.slice(colon + 1);
      rest = rest.slice(0, colon);
      if (!TAG_RE.test(tag)) bad(`"${tag}" is not a valid tag`);
    }
    let registry = DEFAULT_REGISTRY;
    let repository = rest;
    const slash = rest.indexOf('/');
    if (slash >= 0) {
      const first = rest.slice(0, slash);
      if (/[.:]/.test(first) || first === 'localhost' || first !== first.toLowerCase()) {
        registry = first;
        repository = rest.slice(slash + 1);
      }
    }
    if (registry === 'index.docker.io') registry = DEFAULT_REGISTRY;
    if (!DOMAIN_RE.test(registry)) bad(`"${registry}" is not a valid registry host`);
    const port = /:(\d+)$/.exec(registry)?.[1];
    if (port !== undefined && (Number(port) < 1 || Number(port) > 65535)) bad(`port ${port} is out of range (1-65535)`);
    if (registry === DEFAULT_REGISTRY && !repository.includes('/')) repository = `library/${repository}`;
    if (repository !== repository.toLowerCase()) bad('repository names must be lowercase');
    if (!PATH_RE.test(repository)) bad(`"${repository}" is not a valid repository name`);
    if (`${registry}/${repository}`.length > 255) bad('the name is longer than 255 characters');
    if (tag === undefined && digest === undefined && options.defaultTag !== false) tag = DEFAULT_TAG;
    return new Reference(registry, repository, tag, digest);
  }

  /** `registry/repository`, the name without tag or digest. */
  get name(): string {
    return `${this.registry}/${this.repository}`;
  }

  /** What the manifests endpoint takes: the digest when pinned, else the tag. */
  get identifier(): string {
    return this.digest ?? this.tag ?? DEFAULT_TAG;
  }

  withTag(tag: string): Reference {
    if (!TAG_RE.test(tag)) throw new StrataError(`invalid tag "${tag}"`);
    return new Reference(this.registry, this.repository, tag, undefined);
  }

  withDigest(digest: Digest): Reference {
    return new Reference(this.registry, this.repository, undefined, digest);
  }

  withRepository(repository: string): Reference {
    return Reference.parse(`${this.registry}/${repository}${this.tag ? `:${this.tag}` : ''}${this.digest ? `@${this.digest}` : ''}`);
  }

  toString(): string {
    return `${this.name}${this.tag ? `:${this.tag}` : ''}${this.digest ? `@${this.digest}` : ''}`;
  }

  /** The short form people type (`busybox:latest` rather than `docker.io/library/busybox:latest`). */
  familiar(): string {
    let name = this.name;
    if (this.registry === DEFAULT_REGISTRY) {
      name = this.repository.startsWith('library/') ? this.repository.slice('library/'.length) : this.repository;
    }
    return `${name}${this.tag ? `:${this.tag}` : ''}${this.digest ? `@${this.digest}` : ''}`;
  }
}

/** The host the distribution API is served from; Docker Hub's API does not live at its image-name host. */
export function registryApiHost(registry: string): string {
  return registry === DEFAULT_REGISTRY ? 'registry-1.docker.io' : registry;
}

/** Loopback registries speak plain HTTP unless told otherwise, as Docker does. */
export function isLoopbackRegistry(registry: string): boolean {
  const host = registry.startsWith('[') ? registry.slice(1, registry.indexOf(']')) : registry.split(':')[0] ?? '';
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
}
