/**
 * A running VM's counters over time, bounded: the latest sample, and a series of samples at least
 * `stepMs` apart. When the series would exceed COUNTER_HISTORY_POINTS, every other point goes and
 * `stepMs` doubles: the same span at half the resolution, so memory stays constant however long
 * the VM runs.
 */
export const COUNTER_HISTORY_POINTS = 256;

export interface CounterSample { wallMs: number; instructions: number; cycles: number; virtualTimeNs: number }

export class CounterHistory {
  private readonly kept: CounterSample[] = [];
  latest: CounterSample | null = null;
  /** Wall milliseconds between kept points (doubles each time the series is halved). */
  stepMs: number;
  constructor(stepMs: number) { this.stepMs = stepMs; }

  add(p: CounterSample): void {
    this.latest = p;
    const last = this.kept[this.kept.length - 1];
    if (last && p.wallMs - last.wallMs < this.stepMs) return;
    this.kept.push(p);
    if (this.kept.length > COUNTER_HISTORY_POINTS) {
      // Keep the first point and every other one after it.
      let n = 0;
      for (let i = 0; i < this.kept.length; i += 2) this.kept[n++] = this.kept[i];
      this.kept.length = n;
      this.stepMs *= 2;
    }
  }

  /** The series, oldest first, ending with the latest sample. */
  points(): CounterSample[] {
    const last = this.kept[this.kept.length - 1];
    return this.latest && this.latest !== last ? [...this.kept, this.latest] : [...this.kept];
  }
}
