/**
 * The packages a buildpack's SBOM document lists, in the three formats the Buildpack API names (`sbom.cdx.json`,
 * `sbom.spdx.json`, `sbom.syft.json`). Documents come from images, so anything unexpected is skipped, not trusted:
 * only strings are taken, and no document yields more than MAX_PACKAGES entries. Pure.
 */

export interface SbomPackage {
  name: string;
  version: string;
  licenses: string[];
}

export const MAX_PACKAGES = 10_000;

const str = (v: unknown): string | undefined => (typeof v === 'string' && v.length <= 1000 ? v : undefined);
const list = (v: unknown): unknown[] => (Array.isArray(v) ? v.slice(0, MAX_PACKAGES) : []);
const obj = (v: unknown): Record<string, unknown> => (typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : {});

export function sbomFormat(file: string): 'cdx' | 'spdx' | 'syft' | undefined {
  const m = /sbom\.(cdx|spdx|syft)\.json$/.exec(file);
  return m ? (m[1] as 'cdx' | 'spdx' | 'syft') : undefined;
}

export function sbomPackages(text: string, format: 'cdx' | 'spdx' | 'syft'): SbomPackage[] {
  let doc: Record<string, unknown>;
  try {
    doc = obj(JSON.parse(text));
  } catch {
    return [];
  }
  const out: SbomPackage[] = [];
  const add = (name: unknown, version: unknown, licenses: (string | undefined)[]) => {
    const n = str(name);
    if (n) out.push({ name: n, version: str(version) ?? '', licenses: licenses.filter((l): l is string => Boolean(l)) });
  };
  if (format === 'cdx') {
    for (const c of list(doc.components).map(obj)) {
      add(c.name, c.version, list(c.licenses).map(obj).map((l) => str(l.expression) ?? str(obj(l.license).id) ?? str(obj(l.license).name)));
    }
  } else if (format === 'spdx') {
    for (const p of list(doc.packages).map(obj)) {
      const licenses = [str(p.licenseDeclared), str(p.licenseConcluded)].filter((l) => l && l !== 'NOASSERTION' && l !== 'NONE');
      add(p.name, p.versionInfo, [...new Set(licenses)]);
    }
  } else {
    for (const a of list(doc.artifacts).map(obj)) add(a.name, a.version, list(a.licenses).map((l) => str(l) ?? str(obj(l).value)));
  }
  return out;
}
