import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { StrataError } from '../oci/errors.js';
import { cachedDir, WHOLE_FILE_READ } from '../oci/fsutil.js';
import { strataHome } from '../oci/images.js';

export function isRemoteUri(uri: string): boolean {
  return /^https?:\/\//.test(uri);
}

async function sha256File(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const c of createReadStream(path, WHOLE_FILE_READ) as AsyncIterable<Buffer>) h.update(c);
  return h.digest('hex');
}

/**
 * A buildpack archive named by an http(s) uri (builder.toml, package.toml, --buildpack), downloaded once into
 * `$STRATA_HOME/cache/downloads` and used from there: hashed as it streams in, kept under a temp name until complete,
 * and checked against that hash each time it is used again, so a damaged cache entry is fetched anew, never used.
 */
export async function downloaded(uri: string, home = strataHome()): Promise<string> {
  const key = createHash('sha256').update(uri).digest('hex').slice(0, 32);
  const name = basename(new URL(uri).pathname) || 'download';
  const dest = join(home, 'cache', 'downloads', key);
  for (let attempt = 0; attempt < 2; attempt++) {
    const { dir } = await cachedDir(dest, '.complete', async (tmp) => {
      let res: Response;
      try {
        res = await fetch(uri, { redirect: 'follow' });
      } catch (err) {
        throw new StrataError(`buildpack uri ${uri}: ${(err as Error & { cause?: Error }).cause?.message ?? (err as Error).message}`);
      }
      if (!res.ok || !res.body) throw new StrataError(`buildpack uri ${uri}: HTTP ${res.status} ${res.statusText}`);
      const h = createHash('sha256');
      const hashing = new Transform({
        transform(c: Buffer, _e, done) {
          h.update(c);
          done(null, c);
        },
      });
      await pipeline(Readable.fromWeb(res.body as import('node:stream/web').ReadableStream), hashing, createWriteStream(join(tmp, name)));
      await writeFile(join(tmp, 'sha256'), h.digest('hex'));
    });
    const file = join(dir, name);
    const want = (await readFile(join(dir, 'sha256'), 'utf8')).trim();
    if ((await sha256File(file).catch(() => '')) === want) return file;
    // Damaged since it was stored: drop it and fetch again.
    await rm(dir, { recursive: true, force: true });
  }
  throw new StrataError(`buildpack uri ${uri}: the download does not match itself twice; check ${dest}`);
}
