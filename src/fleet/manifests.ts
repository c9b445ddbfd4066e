import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { StrataError } from '../oci/errors.js';
import { parseResource } from './parse.js';
import { describe, resourceKey, type Parsed } from './resources.js';

/**
 * kpack YAML into documents, and documents into resources. Files, directories (their `.yaml`, `.yml` and `.json`
 * files, not recursively, as `kubectl apply -f DIR`) and `-` (stdin) are read here, at the CLI; the documents travel
 * as they are (to a running `fleet serve` too) and are checked by one validator, parse.ts, wherever they land.
 */

/** One document and where it came from, for messages: `fleet.yaml (document 2)`. */
export interface SourceDocument {
  where: string;
  doc: unknown;
}

/** What one apply takes: a fleet is declared in many small documents, and YAML costs far more memory than its size. */
export const MAX_APPLY_BYTES = 4 << 20;
export const MAX_DOCUMENTS = 10_000;

function tooBig(what: string, bytes: number): StrataError {
  return new StrataError(`${what}: ${(bytes / (1 << 20)).toFixed(1)} MiB is more than the ${MAX_APPLY_BYTES >> 20} MiB one fleet apply takes; split it into several files and apply them in turn`);
}

export async function readDocuments(paths: string[], stdin: () => Promise<string> = readStdin): Promise<SourceDocument[]> {
  const files: { name: string; text: string }[] = [];
  let total = 0;
  const add = async (name: string, read: () => Promise<string>, size: number) => {
    if (total + size > MAX_APPLY_BYTES) throw tooBig(`-f ${name}`, total + size);
    const text = await read();
    total += Buffer.byteLength(text);
    if (total > MAX_APPLY_BYTES) throw tooBig(`-f ${name}`, total);
    files.push({ name, text });
  };
  for (const p of paths) {
    if (p === '-') {
      await add('<stdin>', stdin, 0);
      continue;
    }
    const st = await stat(p).catch(() => undefined);
    if (!st) throw new StrataError(`-f ${p}: no such file or directory`);
    if (st.isDirectory()) {
      const names = (await readdir(p)).filter((n) => /\.(ya?ml|json)$/.test(n)).sort();
      if (!names.length) throw new StrataError(`-f ${p}: the directory holds no .yaml, .yml or .json files`);
      for (const n of names) {
        const f = join(p, n);
        await add(f, () => readFile(f, 'utf8'), (await stat(f)).size);
      }
    } else if (st.isFile()) {
      await add(p, () => readFile(p, 'utf8'), st.size);
    } else throw new StrataError(`-f ${p}: not a file or directory`);
  }
  const docs = files.flatMap((f) => documentsOf(f.text, f.name));
  if (!docs.length) throw new StrataError(`-f ${paths.join(', ')}: no resources in ${files.length === 1 ? 'it' : 'them'} (an empty file, or only comments)`);
  return docs;
}

/** The documents of one YAML (or JSON) text; empty documents (a trailing `---`) are skipped, Lists taken apart. */
export function documentsOf(text: string, file: string): SourceDocument[] {
  if (Buffer.byteLength(text) > MAX_APPLY_BYTES) throw tooBig(file, Buffer.byteLength(text));
  const out: SourceDocument[] = [];
  const docs = parseAllDocuments(text, { prettyErrors: false });
  if (!Array.isArray(docs)) throw new StrataError(`${file}: not YAML`);
  for (const [i, doc] of docs.entries()) {
    const where = docs.length > 1 ? `${file} (document ${i + 1})` : file;
    const err = doc.errors[0];
    if (err) {
      const line = err.linePos?.[0]?.line;
      // The message's first line only: the rest quotes the file, which may hold a secret.
      throw new StrataError(`${file}${line ? `:${line}` : ''}: invalid YAML: ${err.message.split('\n')[0]!.replace(/:$/, '')}`);
    }
    let value: unknown;
    try {
      value = doc.toJS({ maxAliasCount: 100 });
    } catch (e) {
      throw new StrataError(`${where}: invalid YAML: ${(e as Error).message.split('\n')[0]}`);
    }
    if (value === null || value === undefined) continue;
    // A kubectl List of items is taken apart, as `kubectl apply` does.
    if (typeof value === 'object' && (value as { kind?: unknown }).kind === 'List' && Array.isArray((value as { items?: unknown }).items)) {
      for (const [j, item] of (value as { items: unknown[] }).items.entries()) out.push({ where: `${where} items[${j}]`, doc: item });
      continue;
    }
    out.push({ where, doc: value });
    if (out.length > MAX_DOCUMENTS) throw new StrataError(`${file}: more than ${MAX_DOCUMENTS} documents; split it into several files and apply them in turn`);
  }
  return out;
}

/**
 * Documents into resources, all checked before any is used. A resource declared twice is taken from its last
 * declaration, with a warning, as `kubectl apply` of both would leave it.
 */
export function parseDocuments(docs: SourceDocument[]): { parsed: Parsed[]; warnings: string[] } {
  if (docs.length > MAX_DOCUMENTS) throw new StrataError(`${docs.length} documents: more than the ${MAX_DOCUMENTS} one fleet apply takes`);
  const byKey = new Map<string, { p: Parsed; where: string }>();
  const warnings: string[] = [];
  for (const d of docs) {
    const p = parseResource(d.doc, String(d.where).slice(0, 500));
    const k = resourceKey(p.resource.meta);
    const before = byKey.get(k);
    if (before) {
      warnings.push(`${d.where}: ${describe(p.resource.meta)} is also declared in ${before.where}; this later one is applied`);
      byKey.delete(k);
    }
    byKey.set(k, { p, where: d.where });
  }
  const parsed = [...byKey.values()].map((v) => v.p);
  return { parsed, warnings: [...parsed.flatMap((p) => p.warnings), ...warnings] };
}

/** One text's resources (tests and tools). */
export function parseManifestText(text: string, file: string): Parsed[] {
  return parseDocuments(documentsOf(text, file)).parsed;
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of process.stdin as AsyncIterable<Buffer>) {
    size += c.length;
    if (size > MAX_APPLY_BYTES) throw tooBig('-f -', size);
    chunks.push(c);
  }
  return Buffer.concat(chunks).toString('utf8');
}
