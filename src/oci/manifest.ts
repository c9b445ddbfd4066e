import { sha256, isDigest, type Digest } from './digest.js';
import { StrataError } from './errors.js';
import { MediaType, isIndexType, isManifestType } from './mediatype.js';

export interface Platform {
  architecture: string;
  os: string;
  variant?: string;
  'os.version'?: string;
  'os.features'?: string[];
  [key: string]: unknown;
}

export interface Descriptor {
  mediaType: string;
  digest: Digest;
  size: number;
  urls?: string[];
  annotations?: Record<string, string>;
  platform?: Platform;
  artifactType?: string;
  [key: string]: unknown;
}

/** OCI image manifest or Docker schema 2 manifest; they share a shape. Unknown keys are kept as-is. */
export interface ImageManifest {
  schemaVersion: 2;
  mediaType?: string;
  config: Descriptor;
  layers: Descriptor[];
  annotations?: Record<string, string>;
  subject?: Descriptor;
  artifactType?: string;
  [key: string]: unknown;
}

/** OCI image index or Docker manifest list. */
export interface ImageIndex {
  schemaVersion: 2;
  mediaType?: string;
  manifests: Descriptor[];
  annotations?: Record<string, string>;
  [key: string]: unknown;
}

/** A manifest or index as stored: the exact bytes (whose hash is its digest) and the parsed form. */
export type ParsedManifest =
  | { kind: 'manifest'; mediaType: string; bytes: Buffer; digest: Digest; manifest: ImageManifest }
  | { kind: 'index'; mediaType: string; bytes: Buffer; digest: Digest; index: ImageIndex };

function checkDescriptor(d: unknown, where: string): Descriptor {
  if (typeof d !== 'object' || d === null) throw new StrataError(`${where}: descriptor is not an object`);
  const o = d as Record<string, unknown>;
  if (typeof o.mediaType !== 'string') throw new StrataError(`${where}: descriptor has no mediaType`);
  if (typeof o.digest !== 'string' || !isDigest(o.digest)) throw new StrataError(`${where}: descriptor digest "${String(o.digest)}" is not sha256`);
  if (typeof o.size !== 'number' || !Number.isSafeInteger(o.size) || o.size < 0) throw new StrataError(`${where}: descriptor size is not a non-negative integer`);
  return o as unknown as Descriptor;
}

/**
 * Parses manifest bytes. The media type comes from the document, else from the transport's Content-Type, else from
 * its shape (umoci omits `mediaType`, which OCI allows).
 */
export function parseManifest(bytes: Buffer, contentType: string | undefined, where: string): ParsedManifest {
  let doc: unknown;
  try {
    doc = JSON.parse(bytes.toString('utf8'));
  } catch {
    throw new StrataError(`${where}: manifest is not valid JSON`);
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw new StrataError(`${where}: manifest is not a JSON object`);
  const o = doc as Record<string, unknown>;
  const ct = contentType?.split(';')[0]?.trim();
  let mediaType = typeof o.mediaType === 'string' ? o.mediaType : undefined;
  if (!mediaType && ct && (isManifestType(ct) || isIndexType(ct))) mediaType = ct;
  if (!mediaType) {
    if (Array.isArray(o.manifests)) mediaType = MediaType.OciIndex;
    else if (o.config && Array.isArray(o.layers)) mediaType = MediaType.OciManifest;
  }
  if (o.schemaVersion !== 2) {
    throw new StrataError(`${where}: unsupported manifest schemaVersion ${String(o.schemaVersion)} (only schema 2 is supported)`);
  }
  const digest = sha256(bytes);
  if (isManifestType(mediaType)) {
    checkDescriptor(o.config, `${where} config`);
    if (!Array.isArray(o.layers)) throw new StrataError(`${where}: manifest has no layers array`);
    o.layers.forEach((l, i) => checkDescriptor(l, `${where} layer ${i}`));
    return { kind: 'manifest', mediaType, bytes, digest, manifest: o as unknown as ImageManifest };
  }
  if (isIndexType(mediaType)) {
    if (!Array.isArray(o.manifests)) throw new StrataError(`${where}: index has no manifests array`);
    o.manifests.forEach((m, i) => checkDescriptor(m, `${where} manifest ${i}`));
    return { kind: 'index', mediaType, bytes, digest, index: o as unknown as ImageIndex };
  }
  throw new StrataError(`${where}: unknown manifest media type "${mediaType ?? '(none)'}"`);
}

/** Serialises a manifest or index; the digest is computed over exactly these bytes. */
export function encodeJson(doc: unknown): Buffer {
  return Buffer.from(JSON.stringify(doc));
}

export interface PlatformWanted {
  os: string;
  architecture: string;
  variant?: string;
}

/** Go's GOARCH names, as image platforms use them. */
export function hostPlatform(): PlatformWanted {
  const archMap: Record<string, string> = { x64: 'amd64', arm64: 'arm64', arm: 'arm', ia32: '386', ppc64: 'ppc64le', s390x: 's390x', riscv64: 'riscv64' };
  return { os: process.platform === 'win32' ? 'windows' : process.platform, architecture: archMap[process.arch] ?? process.arch };
}

/** The default variant per architecture, so `arm64` matches a manifest that says `arm64/v8`. */
function normaliseVariant(arch: string, variant: string | undefined): string | undefined {
  if (arch === 'arm64' && (variant === undefined || variant === 'v8')) return 'v8';
  if (arch === 'arm' && variant === undefined) return 'v7';
  return variant;
}

/** Whether a platform asked for is another architecture than this machine's (undefined: this machine's). */
export function foreignArchitecture(p: PlatformWanted | undefined): boolean {
  return p !== undefined && p.architecture !== hostPlatform().architecture;
}

/** A platform as images record it: arm64 with its usual variant (v8) when none is given. */
export function withVariant(p: PlatformWanted): PlatformWanted {
  const variant = normaliseVariant(p.architecture, p.variant);
  return { os: p.os, architecture: p.architecture, ...(variant && p.architecture === 'arm64' ? { variant } : p.variant ? { variant: p.variant } : {}) };
}

/** Chooses one manifest of an index by os/arch/variant; a wanted platform without a variant accepts any variant. */
export function selectPlatform(index: ImageIndex, want: PlatformWanted): Descriptor | undefined {
  const candidates = index.manifests.filter((d) => {
    const p = d.platform;
    if (!p) return false;
    if (p.os !== want.os || p.architecture !== want.architecture) return false;
    if (want.variant === undefined) return true;
    return normaliseVariant(p.architecture, p.variant) === normaliseVariant(want.architecture, want.variant);
  });
  return candidates[0];
}
