import { Fields, readToml, type Table } from './toml.js';

/** project-metadata.toml → the io.buildpacks.project.metadata label. */
export interface ProjectMetadata {
  source?: { type?: string; version?: Table; metadata?: Table };
}

export async function readProjectMetadata(path: string): Promise<ProjectMetadata> {
  const t = await readToml(path);
  if (!t) return {};
  const f = new Fields(t, path);
  if (!f.has('source')) return {};
  const s = f.sub('source');
  const type = s.str('type');
  const version = s.free('version');
  const metadata = s.free('metadata');
  return { source: { ...(type ? { type } : {}), ...(version ? { version } : {}), ...(metadata ? { metadata } : {}) } };
}

