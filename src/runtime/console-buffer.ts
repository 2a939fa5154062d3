/**
 * A VM's console output so far, bounded: keeps the most recent `capacity` bytes (default 1 MiB)
 * of each port and says when older bytes were dropped. Output that arrives before anyone listens
 * is therefore never lost, only bounded.
 */
export const DEFAULT_CONSOLE_BYTES = 1 << 20;

export class ConsoleBuffer {
  private readonly chunks: Uint8Array[][] = [[], []];
  private readonly sizes = [0, 0];
  /** Bytes ever written per port, and whether some were dropped. */
  readonly total = [0, 0];
  readonly truncated = [false, false];

  constructor(readonly capacity = DEFAULT_CONSOLE_BYTES) {}

  push(port: number, bytes: Uint8Array): void {
    const list = this.chunks[port];
    list.push(bytes);
    this.sizes[port] += bytes.length;
    this.total[port] += bytes.length;
    while (this.sizes[port] > this.capacity) {
      const over = this.sizes[port] - this.capacity;
      const first = list[0];
      if (first.length <= over) { list.shift(); this.sizes[port] -= first.length; } else { list[0] = first.subarray(over); this.sizes[port] -= over; }
      this.truncated[port] = true;
    }
  }

  /** The retained bytes of `port` (0 = stdout, 1 = stderr). */
  bytes(port: number): Buffer {
    return Buffer.concat(this.chunks[port]);
  }
}
