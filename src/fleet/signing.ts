import { createPrivateKey, scryptSync, sign, type KeyObject } from 'node:crypto';
import { Readable } from 'node:stream';
import nacl from 'tweetnacl';
import { sha256, type Digest } from '../oci/digest.js';
import { StrataError, NotFoundError } from '../oci/errors.js';
import { encodeJson, type Descriptor } from '../oci/manifest.js';
import { MediaType } from '../oci/mediatype.js';
import { Reference } from '../oci/reference.js';
import type { ImageStore } from '../oci/store.js';
import type { SigningKey } from './credentials.js';

/**
 * Signing built and rebased images as kpack does with cosign, in cosign's own format (its SIGNATURE_SPEC): a simple
 * signing payload naming the image's digest, stored as a blob and referenced as the one layer of an image tagged
 * `sha256-<hex>.sig` beside the image, with the base64 signature of the payload's SHA-256 in the layer's
 * `dev.cosignproject.cosign/signature` annotation. `cosign verify --key cosign.pub` accepts what this writes. The key
 * is cosign's own (`cosign generate-key-pair`: scrypt and NaCl secretbox around a PKCS #8 key), or a plain PEM key.
 */

export const SIMPLE_SIGNING = 'application/vnd.dev.cosign.simplesigning.v1+json';
const SIGNATURE_ANNOTATION = 'dev.cosignproject.cosign/signature';

interface EncryptedKey {
  kdf: { name: string; params: { N: number; r: number; p: number }; salt: string };
  cipher: { name: string; nonce: string };
  ciphertext: string;
}

/** A cosign private key, opened with its password. */
export function openSigningKey(k: SigningKey): KeyObject {
  const pem = k.privateKey.trim();
  const m = /^-----BEGIN (ENCRYPTED (?:SIGSTORE|COSIGN) PRIVATE KEY)-----\s+([\s\S]+?)\s+-----END \1-----$/.exec(pem);
  if (!m) {
    try {
      return createPrivateKey(pem);
    } catch {
      throw new StrataError(`${k.secret}: cosign.key is neither a cosign key nor a PEM private key`);
    }
  }
  let enc: EncryptedKey;
  try {
    enc = JSON.parse(Buffer.from(m[2]!.replace(/\s+/g, ''), 'base64').toString('utf8')) as EncryptedKey;
  } catch {
    throw new StrataError(`${k.secret}: cosign.key is damaged`);
  }
  if (enc.kdf?.name !== 'scrypt' || enc.cipher?.name !== 'nacl/secretbox') throw new StrataError(`${k.secret}: cosign.key uses ${enc.kdf?.name}/${enc.cipher?.name}, not scrypt/nacl/secretbox`);
  const { N, r, p } = enc.kdf.params;
  const key = scryptSync(Buffer.from(k.password ?? ''), Buffer.from(enc.kdf.salt, 'base64'), 32, { N, r, p, maxmem: 256 * N * r + (1 << 20) });
  const opened = nacl.secretbox.open(Buffer.from(enc.ciphertext, 'base64'), Buffer.from(enc.cipher.nonce, 'base64'), key);
  if (!opened) throw new StrataError(`${k.secret}: cosign.password does not open cosign.key`);
  return createPrivateKey({ key: Buffer.from(opened), format: 'der', type: 'pkcs8' });
}

/** The payload cosign signs: the image's repository and manifest digest, and any annotations the user asked for. */
export function simpleSigningPayload(repository: string, digest: string, annotations: Record<string, string> | undefined): Buffer {
  const critical = { identity: { 'docker-reference': repository }, image: { 'docker-manifest-digest': digest }, type: 'cosign container image signature' };
  return Buffer.from(JSON.stringify({ critical, optional: annotations && Object.keys(annotations).length ? annotations : null }));
}

/** Where cosign looks for an image's signatures: `<repository>:sha256-<hex>.sig`. */
export function signatureTag(digest: string): string {
  return `${digest.replace(':', '-')}.sig`;
}

/**
 * Signs `digest` (an image in `repository`) and writes the signature image into `store` (the image's repository, or
 * the one the key's Secret names). A signature already there is kept beside the new one; the same one is not added
 * twice. Returns the signature image's reference.
 */
export async function signImage(o: { store: ImageStore; storeName: string; repository: string; digest: Digest; key: KeyObject; annotations?: Record<string, string>; dockerMediaTypes: boolean }): Promise<string> {
  const payload = simpleSigningPayload(o.repository, o.digest, o.annotations);
  const signature = sign('sha256', payload, o.key).toString('base64');
  const layer: Descriptor = { mediaType: SIMPLE_SIGNING, digest: sha256(payload), size: payload.length, annotations: { [SIGNATURE_ANNOTATION]: signature } };
  const tag = signatureTag(o.digest);
  let layers: Descriptor[] = [];
  try {
    const existing = await o.store.getManifest(tag);
    if (existing.kind === 'manifest') layers = existing.manifest.layers;
  } catch (err) {
    if (!(err instanceof NotFoundError)) throw err;
  }
  if (!layers.some((l) => l.digest === layer.digest && l.annotations?.[SIGNATURE_ANNOTATION] === signature)) layers = [...layers, layer];
  await o.store.putBlob({ mediaType: SIMPLE_SIGNING, digest: layer.digest, size: layer.size }, async () => Readable.from([payload]));
  const config = encodeJson({ architecture: '', os: '', config: {}, rootfs: { type: 'layers', diff_ids: layers.map((l) => l.digest) } });
  const configDesc: Descriptor = { mediaType: o.dockerMediaTypes ? MediaType.DockerConfig : MediaType.OciConfig, digest: sha256(config), size: config.length };
  await o.store.putBlob(configDesc, async () => Readable.from([config]));
  const manifestType = o.dockerMediaTypes ? MediaType.DockerManifest : MediaType.OciManifest;
  const manifest = encodeJson({ schemaVersion: 2, mediaType: manifestType, config: configDesc, layers });
  await o.store.putManifest(manifest, manifestType, tag);
  return `${o.storeName}:${tag}`;
}

/** The repository a key's signatures go to: the Secret's `kpack.io/cosign.repository`, else the image's own. */
export function signatureRepository(image: string, key: SigningKey): string {
  return key.repository ? Reference.parse(key.repository).name : Reference.parse(image).name;
}
