import { writeToml } from './toml.js';

/** report.toml, written by the exporter and the rebaser. */
export interface ReportFile {
  image: { tags: string[]; digest?: string; imageId?: string; manifestSize?: number };
  /** strata build's own: how long each step took (a table of strata's, which other readers pass over). */
  steps?: { name: string; ms: number }[];
}

export async function writeReport(path: string, r: ReportFile): Promise<void> {
  await writeToml(path, {
    image: { tags: r.image.tags, digest: r.image.digest, 'image-id': r.image.imageId, 'manifest-size': r.image.manifestSize },
    ...(r.steps ? { strata: { steps: r.steps.map((s) => ({ name: s.name, ms: Math.round(s.ms) })) } } : {}),
  });
}
