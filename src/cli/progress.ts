import { createRequire } from 'node:module';
import type { MultiBar } from 'cli-progress';
import { lineProgress, type Progress } from '../oci/progress.js';
import { globals } from './globals.js';

/**
 * Progress for the user at a terminal: one live bar per task (bytes, rate, time left) on stderr, drawn by cli-progress.
 * Anywhere else — a pipe, a CI log, `-q`, `--no-color`, TERM=dumb — the plain line per task strata always printed.
 */
export function cliProgress(line: (text: string) => void): Progress {
  const live = process.stderr.isTTY === true && !globals.quiet && globals.color !== false && process.env.TERM !== 'dumb' && !process.env.CI;
  if (!live) return globals.quiet ? { task: () => ({ advance: () => undefined, done: () => undefined }) } : lineProgress(line);
  let bars: MultiBar | undefined;
  let open = 0;
  const mb = (n: number) => (n / 1e6).toFixed(1);
  return {
    live: true,
    task(label, total, unit = 'bytes') {
      // Loaded only for a terminal: a build in a log never pays for the library.
      const { MultiBar: Bars, Presets } = createRequire(import.meta.url)('cli-progress') as typeof import('cli-progress');
      bars ??= new Bars(
        { stream: process.stderr, format: ' {bar} {percentage}% {done}/{size} MB {speed} MB/s ETA {left} {label}', hideCursor: true, clearOnComplete: false, stopOnComplete: false, barsize: 16, fps: 10 },
        Presets.shades_classic,
      );
      open++;
      const started = Date.now();
      // The bar counts bytes (at least one, so an empty layer shows as done rather than as nothing).
      const size = Math.max(total, 1);
      // Steps (a debootstrap's phases) show as n/N with no rate: their units are not bytes.
      const amount = unit === 'bytes' ? mb : (n: number) => String(n);
      const format = unit === 'bytes' ? undefined : { format: ' {bar} {percentage}% {done}/{size} ETA {left} {label}' };
      const bar = bars.create(size, 0, { label, done: amount(0), size: amount(total), speed: '0.0', left: '…' }, format);
      let seen = 0;
      const show = () => {
        const rate = seen / Math.max(0.001, (Date.now() - started) / 1000);
        bar.update(Math.min(seen, size), { done: amount(Math.min(seen, total)), speed: mb(rate), left: rate > 0 ? `${Math.ceil(Math.max(0, total - seen) / rate)}s` : '…' });
      };
      return {
        advance(bytes) {
          seen += bytes;
          show();
        },
        done() {
          seen = Math.max(seen, total);
          show();
          bar.update(size);
          if (--open === 0) {
            bars?.stop();
            bars = undefined;
          }
        },
      };
    },
  };
}
