import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { StrataError } from '../oci/errors.js';
import { parseResource, resourceKey, type Parsed } from './resources.js';

/**
 * Reads kpack YAML from files, directories (their `.yaml`, `.yml` and `.json` files, not recursively, as
 * `kubectl apply -f DIR`) or `-` (stdin). Everything is parsed and checked before anything is applied; the first
 * problem is one line naming the file, the document and the field.
 */
export async function readManifests(paths: string[], stdin: () => Promise<string> = readStdin): Promise<Parsed[]> {
  const files: { name: string; text: string }[] = [];
  for (const p of paths) {
    if (p === '-') {
      files.push({ name: '<stdin>', text: await stdin() });
      continue;
    }
    const st = await stat(p).catch(() => undefined);
    if (!st) throw new StrataError(`-f ${p}: no such file or directory`);
    if (st.isDirectory()) {
      const names = (await readdir(p)).filter((n) => /\.(ya?ml|json)$/.test(n)).sort();
      if (!names.length) throw new StrataError(`-f ${p}: the directory holds no .yaml, .yml or .json files`);
      for (const n of names) files.push({ name: join(p, n), text: await readFile(join(p, n), 'utf8') });
    } else {
      files.push({ name: p, text: await readFile(p, 'utf8') });
    }
  }
  const out: Parsed[] = [];
  const seen = new Map<string, string>();
  for (const f of files) {
    for (const p of parseManifestText(f.text, f.name)) {
      const k = resourceKey(p.resource.meta);
      const before = seen.get(k);
      if (before) throw new StrataError(`${f.name}: ${p.resource.meta.kind} ${p.resource.meta.name} is declared twice (also in ${before})`);
      seen.set(k, f.name);
      out.push(p);
    }
  }
  return out;
}

/** The documents of one YAML text; empty documents (a trailing `---`) are skipped. */
export function parseManifestText(text: string, file: string): Parsed[] {
  const out: Parsed[] = [];
  const docs = parseAllDocuments(text, { prettyErrors: false });
  if (!Array.isArray(docs)) throw new StrataError(`${file}: not YAML`);
  for (const [i, doc] of docs.entries()) {
    const where = docs.length > 1 ? `${file} (document ${i + 1})` : file;
    const err = doc.errors[0];
    if (err) {
      const line = err.linePos?.[0]?.line;
      throw new StrataError(`${file}${line ? `:${line}` : ''}: invalid YAML: ${err.message.split('\n')[0]}`);
    }
    const value: unknown = doc.toJS();
    if (value === null || value === undefined) continue;
    // A kubectl List of items is taken apart, as `kubectl apply` does.
    if (typeof value === 'object' && (value as { kind?: unknown }).kind === 'List' && Array.isArray((value as { items?: unknown }).items)) {
      for (const [j, item] of ((value as { items: unknown[] }).items).entries()) out.push(parseResource(item, `${where} items[${j}]`));
      continue;
    }
    out.push(parseResource(value, where));
  }
  return out;
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin as AsyncIterable<Buffer>) chunks.push(c);
  return Buffer.concat(chunks).toString('utf8');
}
