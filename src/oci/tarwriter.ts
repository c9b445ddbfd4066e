import { closeSync, readSync } from 'node:fs';
import { openRegular } from './confined.js';
import { StrataError } from './errors.js';

/** One entry of a layer, already placed at its in-image path (relative, no leading slash). */
export type LayerEntry =
  | { type: 'directory'; path: string; mode: number; uid?: number; gid?: number }
  | { type: 'file'; path: string; mode: number; size: number; source: string | Buffer; uid?: number; gid?: number; /** The file's name in messages, when `source` is a descriptor-relative path. */ display?: string }
  | { type: 'symlink'; path: string; target: string; uid?: number; gid?: number }
  | { type: 'link'; path: string; target: string; uid?: number; gid?: number };

const BLOCK = 512;
/**
 * A fresh buffer per read (when the caller gives none to reuse) stays allocated until V8 collects it. Under the mmap
 * threshold bin/strata sets (128 KiB), malloc hands a freed one to the next read; 1 MiB ones were each a mapping of
 * their own, and a 131 MB tree read that way held 35-55 MB more at its peak.
 */
const READ_CHUNK = 1 << 16;
const MAX_OCTAL_11 = 0o77777777777;
const MAX_OCTAL_7 = 0o7777777;

export interface TarHeaderFields {
  mtime: Date;
  uid: number;
  gid: number;
}

function writeOctal(buf: Buffer, offset: number, width: number, value: number): void {
  // width-1 octal digits then NUL, as POSIX ustar writes numeric fields.
  buf.write(value.toString(8).padStart(width - 1, '0'), offset, width - 1, 'ascii');
  buf[offset + width - 1] = 0;
}

function paxRecord(key: string, value: string): string {
  const body = ` ${key}=${value}\n`;
  let len = Buffer.byteLength(body);
  let total = len + String(len).length;
  if (String(total).length !== String(len).length) total = len + String(total).length;
  return `${total}${body}`;
}

/** Splits a long path into ustar's prefix (≤155 bytes) and name (≤100 bytes) at a slash, if it can be. */
function splitUstar(path: string): { name: string; prefix: string } | undefined {
  const bytes = Buffer.byteLength(path);
  if (bytes <= 100) return { name: path, prefix: '' };
  for (let i = path.indexOf('/'); i >= 0; i = path.indexOf('/', i + 1)) {
    const prefix = path.slice(0, i);
    const name = path.slice(i + 1);
    if (Buffer.byteLength(prefix) <= 155 && Buffer.byteLength(name) <= 100 && name.length > 0) return { name, prefix };
  }
  return undefined;
}

interface RawHeader {
  path: string;
  type: '0' | '1' | '2' | '5' | 'x';
  mode: number;
  size: number;
  linkname: string;
  uid: number;
  gid: number;
  mtime: number;
}

function encodeHeader(h: RawHeader): Buffer {
  const buf = Buffer.alloc(BLOCK);
  const split = splitUstar(h.path) ?? { name: h.path.slice(0, 100), prefix: '' };
  buf.write(split.name, 0, 100, 'utf8');
  writeOctal(buf, 100, 8, h.mode & 0o7777);
  writeOctal(buf, 108, 8, Math.min(h.uid, MAX_OCTAL_7));
  writeOctal(buf, 116, 8, Math.min(h.gid, MAX_OCTAL_7));
  writeOctal(buf, 124, 12, Math.min(h.size, MAX_OCTAL_11));
  writeOctal(buf, 136, 12, Math.min(Math.max(0, h.mtime), MAX_OCTAL_11));
  buf.fill(0x20, 148, 156);
  buf.write(h.type, 156, 1, 'ascii');
  buf.write(h.linkname, 157, 100, 'utf8');
  buf.write('ustar\u000000', 257, 8, 'ascii');
  // uname/gname stay empty: owners are numeric only, so the layer does not depend on the build machine's users.
  buf.write(split.prefix, 345, 155, 'utf8');
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += buf[i]!;
  buf.write(`${sum.toString(8).padStart(6, '0')}\u0000 `, 148, 8, 'ascii');
  return buf;
}

function padding(size: number): Buffer | undefined {
  const rem = size % BLOCK;
  return rem === 0 ? undefined : Buffer.alloc(BLOCK - rem);
}

/** Header blocks for one entry: a PAX extended header first when a field does not fit ustar. */
function headerBlocks(h: RawHeader): Buffer[] {
  const pax: string[] = [];
  if (!splitUstar(h.path)) pax.push(paxRecord('path', h.path));
  if (Buffer.byteLength(h.linkname) > 100) pax.push(paxRecord('linkpath', h.linkname));
  if (h.size > MAX_OCTAL_11) pax.push(paxRecord('size', String(h.size)));
  if (h.uid > MAX_OCTAL_7) pax.push(paxRecord('uid', String(h.uid)));
  if (h.gid > MAX_OCTAL_7) pax.push(paxRecord('gid', String(h.gid)));
  if (pax.length === 0) return [encodeHeader(h)];
  const body = Buffer.from(pax.join(''));
  const base = h.path.split('/').filter(Boolean).pop() ?? 'entry';
  const paxHeader = encodeHeader({ path: `PaxHeaders/${base}`.slice(0, 100), type: 'x', mode: 0o644, size: body.length, linkname: '', uid: 0, gid: 0, mtime: h.mtime });
  return [paxHeader, body, ...(padding(body.length) ? [padding(body.length)!] : []), encodeHeader(h)];
}

/**
 * Serialises layer entries as a POSIX ustar stream (PAX records only where a value does not fit), byte for byte
 * the same for the same entries. File contents are read in bounded chunks, synchronously: reads from the page cache
 * are memory copies, and keeping them off libuv's thread pool leaves those threads to the gzip workers.
 *
 * With `readInto`, file contents are read into that one buffer, and a chunk yielded from it holds only until the
 * generator is resumed: for a consumer that copies or hashes each chunk before asking for the next, a layer's worth
 * of fresh buffers (which V8 frees only when a collection finds them, so they pile up as resident memory) is not made.
 */
export async function* tarStream(entries: AsyncIterable<LayerEntry>, fields: TarHeaderFields, readInto?: Buffer): AsyncGenerator<Buffer> {
  const mtime = Math.floor(fields.mtime.getTime() / 1000);
  for await (const e of entries) {
    const uid = e.uid ?? fields.uid;
    const gid = e.gid ?? fields.gid;
    if (e.type === 'directory') {
      yield* headerBlocks({ path: e.path.endsWith('/') ? e.path : `${e.path}/`, type: '5', mode: e.mode, size: 0, linkname: '', uid, gid, mtime });
    } else if (e.type === 'symlink') {
      yield* headerBlocks({ path: e.path, type: '2', mode: 0o777, size: 0, linkname: e.target, uid, gid, mtime });
    } else if (e.type === 'link') {
      yield* headerBlocks({ path: e.path, type: '1', mode: 0o644, size: 0, linkname: e.target, uid, gid, mtime });
    } else if (Buffer.isBuffer(e.source)) {
      yield* headerBlocks({ path: e.path, type: '0', mode: e.mode, size: e.source.length, linkname: '', uid, gid, mtime });
      if (e.source.length > 0) yield e.source;
      const pad = padding(e.source.length);
      if (pad) yield pad;
    } else {
      yield* headerBlocks({ path: e.path, type: '0', mode: e.mode, size: e.size, linkname: '', uid, gid, mtime });
      yield* fileContent(e.source, e.size, e.display ?? e.source, readInto);
      const pad = padding(e.size);
      if (pad) yield pad;
    }
  }
  yield Buffer.alloc(BLOCK * 2);
}

/**
 * A file's bytes, opened without following a link and refused unless it is a regular file: a tree walked earlier
 * may have changed since, and a FIFO put in a file's place would block the writer forever.
 */
function* fileContent(path: string, size: number, display: string, readInto: Buffer | undefined): Generator<Buffer> {
  let fd: number;
  try {
    fd = openRegular(path, display).fd;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new StrataError(`${display}: vanished while being added to a layer`, 1, { cause: err });
    throw err;
  }
  try {
    let remaining = size;
    while (remaining > 0) {
      const buf = readInto ? readInto.subarray(0, Math.min(readInto.length, remaining)) : Buffer.allocUnsafe(Math.min(READ_CHUNK, remaining));
      const n = readSync(fd, buf, 0, buf.length, null);
      if (n === 0) throw new StrataError(`${display}: file shrank while being added to a layer`);
      remaining -= n;
      yield n === buf.length ? buf : buf.subarray(0, n);
    }
    const probe = Buffer.allocUnsafe(1);
    if (readSync(fd, probe, 0, 1, null) !== 0) throw new StrataError(`${display}: file grew while being added to a layer`);
  } finally {
    closeSync(fd);
  }
}
