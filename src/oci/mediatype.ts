export const MediaType = {
  OciManifest: 'application/vnd.oci.image.manifest.v1+json',
  OciIndex: 'application/vnd.oci.image.index.v1+json',
  OciConfig: 'application/vnd.oci.image.config.v1+json',
  OciLayerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  OciLayer: 'application/vnd.oci.image.layer.v1.tar',
  OciLayerZstd: 'application/vnd.oci.image.layer.v1.tar+zstd',
  OciLayerNondistributableGzip: 'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip',
  DockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  DockerManifestList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  DockerConfig: 'application/vnd.docker.container.image.v1+json',
  DockerLayerGzip: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
  DockerLayer: 'application/vnd.docker.image.rootfs.diff.tar',
  DockerForeignLayerGzip: 'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip',
} as const;

export type ManifestMediaType =
  | typeof MediaType.OciManifest
  | typeof MediaType.DockerManifest;
export type IndexMediaType = typeof MediaType.OciIndex | typeof MediaType.DockerManifestList;

export function isManifestType(mt: string | undefined): mt is ManifestMediaType {
  return mt === MediaType.OciManifest || mt === MediaType.DockerManifest;
}

export function isIndexType(mt: string | undefined): mt is IndexMediaType {
  return mt === MediaType.OciIndex || mt === MediaType.DockerManifestList;
}

/** Every manifest type we read, in the Accept header: some registries 404 when the stored type is not listed. */
export const MANIFEST_ACCEPT = [
  MediaType.OciManifest,
  MediaType.OciIndex,
  MediaType.DockerManifest,
  MediaType.DockerManifestList,
].join(', ');

/** The same layer bytes under each family's name; zstd has no Docker name. */
const LAYER_PAIRS: [oci: string, docker: string][] = [
  [MediaType.OciLayerGzip, MediaType.DockerLayerGzip],
  [MediaType.OciLayer, MediaType.DockerLayer],
  [MediaType.OciLayerNondistributableGzip, MediaType.DockerForeignLayerGzip],
];

/** A layer media type in the OCI or Docker family (`undefined`: it has no name there), unknown types as they are. */
export function layerTypeIn(mediaType: string, docker: boolean): string | undefined {
  const pair = LAYER_PAIRS.find(([o, d]) => o === mediaType || d === mediaType);
  if (pair) return docker ? pair[1] : pair[0];
  if (docker && mediaType.startsWith('application/vnd.oci.')) return undefined;
  return mediaType;
}
