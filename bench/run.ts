// `npm run bench`: strata against reference tools measured in the same run, reported as ratios of medians.

import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { treeEntries, writeLayerFile } from '../src/oci/layer.js';
import { lifecycleBench } from './lifecycle.js';
import { fleetBench } from './fleet.js';
import { fleetListBench } from './fleetlist.js';
import { fleetMachinesBench } from './fleetpg.js';
import { userBench } from './user.js';

const RUNS = Number(process.env.BENCH_RUNS ?? 5);
const TREE_MB = Number(process.env.BENCH_TREE_MB ?? 100);

/** A seeded PRNG, so every machine benchmarks the same tree. */
function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** About TREE_MB of files shaped like an app's: many small text files, some larger binaries, nested dirs. */
async function makeTree(root: string): Promise<void> {
  const marker = join(root, '.complete');
  if (existsSync(marker)) return;
  await rm(root, { recursive: true, force: true });
  const rand = prng(42);
  const words = Array.from({ length: 4000 }, () => Math.floor(rand() * 1e9).toString(36));
  let total = 0;
  let n = 0;
  while (total < TREE_MB * 1024 * 1024) {
    const dir = join(root, `pkg${n % 97}`, `mod${n % 13}`);
    await mkdir(dir, { recursive: true });
    let data: Buffer;
    if (n % 10 === 0) {
      data = Buffer.alloc(4 * Math.floor(50_000 + rand() * 200_000));
      for (let i = 0; i < data.length; i += 4) data.writeUInt32LE(Math.floor(rand() * 4294967296), i);
    } else {
      const parts: string[] = [];
      const len = 2000 + Math.floor(rand() * 40000);
      let l = 0;
      while (l < len) {
        const w = words[Math.floor(rand() * words.length)]!;
        parts.push(w);
        l += w.length + 1;
      }
      data = Buffer.from(parts.join(' '));
    }
    await writeFile(join(dir, `file${n}.dat`), data);
    total += data.length;
    n++;
  }
  await writeFile(marker, '');
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

async function time(fn: () => Promise<void> | void): Promise<number> {
  const t0 = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

/** BENCH_ONLY=layer,lifecycle,user,fleet-list,fleet,fleet-pg runs only those parts (default: all). */
const ONLY = new Set((process.env.BENCH_ONLY ?? '').split(',').filter(Boolean));
const wanted = (part: string): boolean => !ONLY.size || ONLY.has(part);

async function main(): Promise<void> {
  const base = join(tmpdir(), 'strata-bench');
  await mkdir(base, { recursive: true });
  if (wanted('layer') || wanted('lifecycle') || wanted('user')) await layerBench(base);
  if (wanted('fleet-list')) await fleetListBench(RUNS);
  if (wanted('fleet')) await fleetBench();
  if (wanted('fleet-pg')) await fleetMachinesBench();
}

async function layerBench(base: string): Promise<void> {
  const tree = join(base, 'tree');
  await mkdir(base, { recursive: true });
  await makeTree(tree);
  execFileSync('sync');
  const out = join(base, 'out');
  await mkdir(out, { recursive: true });
  const layout = join(base, 'umoci');
  await rm(layout, { recursive: true, force: true });
  execFileSync('umoci', ['init', '--layout', layout]);
  execFileSync('umoci', ['new', '--image', `${layout}:base`]);

  const strata: number[] = [];
  const strata6: number[] = [];
  const pigz: number[] = [];
  const pigz1: number[] = [];
  const umoci: number[] = [];
  let size = 0;
  // Warm the page cache so every tool reads from memory alike.
  execFileSync('bash', ['-c', `tar -C ${tree} -cf - . > /dev/null`]);
  for (let i = 0; i < RUNS; i++) {
    strata.push(await time(async () => {
      const info = await writeLayerFile(treeEntries(tree), join(out, 'strata.tgz'));
      size = info.uncompressedSize;
    }));
    strata6.push(await time(async () => {
      await writeLayerFile(treeEntries(tree), join(out, 'strata6.tgz'), { level: 6 });
    }));
    pigz1.push(await time(() => {
      // The reference: the layer compressed and its digest taken, as a registry push needs it.
      execFileSync('bash', ['-c', `set -o pipefail; tar -C ${tree} -cf - . | pigz -1 | tee ${join(out, 'pigz1.tgz')} | sha256sum > /dev/null`]);
    }));
    pigz.push(await time(() => {
      execFileSync('bash', ['-c', `tar -C ${tree} -cf - . | pigz -6 > ${join(out, 'pigz.tgz')}`]);
    }));
    umoci.push(await time(() => {
      execFileSync('umoci', ['insert', '--image', `${layout}:base`, '--tag', `run${i}`, tree, '/tree']);
    }));
  }
  const s = median(strata);
  const p = median(pigz);
  const u = median(umoci);
  const row = (name: string, t: number): string => `${name.padEnd(28)} ${t.toFixed(3).padStart(8)} s  ${(size / 1e6 / t).toFixed(0).padStart(5)} MB/s`;
  process.stdout.write(`layer creation, ${(size / 1e6).toFixed(0)} MB tree, median of ${RUNS} runs\n`);
  const s6 = median(strata6);
  const p1 = median(pigz1);
  process.stdout.write(`${row('strata writeLayer (gzip -1)', s)}\n${row('strata writeLayer (gzip -6)', s6)}\n`);
  process.stdout.write(`${row('tar -c | pigz -6 (default)', p)}\n${row('tar -c | pigz -1 | sha256sum', p1)}\n${row('umoci insert', u)}\n`);
  process.stdout.write(`ratio strata (default, -1) / tar|pigz (default, -6): ${(s / p).toFixed(2)}x  (target <= 1.25x)\n`);
  process.stdout.write(`ratio layer export, strata (gzip -1) / tar | pigz -1 | sha256sum: ${(s / p1).toFixed(2)}x  (target <= 1.25x); strata -6 / pigz -6: ${(s6 / p).toFixed(2)}x\n`);
  process.stdout.write(`ratio strata / umoci insert: ${(s / u).toFixed(2)}x\n`);
  if (wanted('lifecycle')) await lifecycleBench(base, tree, RUNS);
  if (wanted('user')) await userBench(base, RUNS);
}

main().catch((err: unknown) => {
  process.stderr.write(`bench failed: ${(err as Error).message}\n`);
  process.exit(1);
});
