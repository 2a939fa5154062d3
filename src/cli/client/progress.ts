/**
 * How the client commands show work in progress (an Operation's `progress`, a migration's phases
 * and bytes): a live bar on stderr when stderr is a terminal (cli-progress), otherwise one line
 * per change, so logs and pipes get readable text and never carriage returns. stdout is left to
 * the command's result (the table or JSON printed at the end).
 *
 * Contract: `update` may be called any number of times; `stop` once, before the result is printed.
 */
import { SingleBar } from 'cli-progress';

export interface ProgressView {
  /** `fraction` in 0..1; `label`: what is happening now (a state or a phase and its numbers). */
  update(fraction: number, label: string): void;
  stop(): void;
}

/**
 * A view on `stream` (stderr by default): a bar on a TTY; elsewhere a line per change, or nothing
 * with `lines: false` (for work whose result line says all). `title` prefixes both.
 */
export function progressView(title: string, opts: { lines?: boolean; stream?: NodeJS.WriteStream } = {}): ProgressView {
  const stream = opts.stream ?? process.stderr;
  if (!stream.isTTY && opts.lines === false) return { update() {}, stop() {} };
  if (!stream.isTTY) {
    let last = '';
    return {
      update(_fraction, label) {
        const line = `${title}: ${label}`;
        if (line !== last) stream.write(`${line}\n`);
        last = line;
      },
      stop() {},
    };
  }
  const bar = new SingleBar({
    stream, format: `${title} [{bar}] {percentage}% {label}`, barsize: 30, hideCursor: true, clearOnComplete: false,
    // cli-progress redraws on a timer; the poll loop calls update about ten times a second.
    fps: 10,
  });
  bar.start(100, 0, { label: '' });
  return {
    update(fraction, label) { bar.update(Math.round(Math.max(0, Math.min(1, fraction)) * 100), { label }); },
    stop() { bar.stop(); },
  };
}

const MiB = 1024 * 1024;
const mib = (n: number) => `${(n / MiB).toFixed(1)} MiB`;

/** A migration's progress as a fraction and a label, from its phase and the stats it reports. */
export function migrationProgress(phase: string, stats: Record<string, unknown> | null | undefined): [number, string] {
  const s = stats ?? {};
  const num = (k: string) => (typeof s[k] === 'number' ? (s[k] as number) : undefined);
  const total = num('total'), remaining = num('remaining'), transferred = num('transferred'), round = num('round');
  if (phase === 'completed') return [1, 'completed'];
  const parts = [phase];
  if (round !== undefined) parts.push(`round ${round}`);
  if (transferred !== undefined) parts.push(`${mib(transferred)} sent`);
  if (remaining !== undefined) parts.push(`${mib(remaining)} dirty`);
  const expected = num('expectedDowntimeMs');
  if (expected !== undefined) parts.push(`downtime ~${expected.toFixed(1)} ms`);
  // Pre-copy converges when the dirty set is small against what the VM has: the share of its
  // memory already clean is the best single number of how far along it is.
  const fraction = total && remaining !== undefined ? 1 - Math.min(remaining, total) / total : 0;
  return [fraction, parts.join(', ')];
}
