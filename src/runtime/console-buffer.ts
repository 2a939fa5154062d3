/**
 * A VM's console output so far, bounded: keeps the most recent `capacity` bytes (default 1 MiB,
 * HVSIM_CONSOLE_BYTES in the service) of each port in a byte ring and counts what was dropped.
 * Output that arrives before anyone listens is therefore never lost, only bounded. `push` costs
 * O(bytes pushed) whatever was pushed before; the ring grows (doubling) up to `capacity` so an
 * idle VM holds little.
 */
export const DEFAULT_CONSOLE_BYTES = 1 << 20;

export class ConsoleBuffer {
  private readonly rings: Uint8Array[] = [new Uint8Array(0), new Uint8Array(0)];
  /** Next write position in each ring, and bytes held. */
  private readonly head = [0, 0];
  private readonly held = [0, 0];
  /** Bytes ever written per port, and bytes dropped (oldest first) to stay within capacity. */
  readonly total = [0, 0];
  readonly dropped = [0, 0];

  constructor(readonly capacity = DEFAULT_CONSOLE_BYTES) {}

  /** Whether older bytes of each port were dropped. */
  get truncated(): [boolean, boolean] { return [this.dropped[0] > 0, this.dropped[1] > 0]; }

  push(port: number, bytes: Uint8Array): void {
    if (bytes.length === 0) return;
    this.total[port] += bytes.length;
    if (bytes.length >= this.capacity) {
      // Only the newest `capacity` bytes survive: the ring becomes exactly them.
      this.dropped[port] += this.held[port] + bytes.length - this.capacity;
      this.rings[port] = bytes.slice(bytes.length - this.capacity);
      this.head[port] = 0;
      this.held[port] = this.capacity;
      return;
    }
    this.grow(port, this.held[port] + bytes.length);
    const ring = this.rings[port];
    const n = ring.length;
    const first = Math.min(bytes.length, n - this.head[port]);
    ring.set(bytes.subarray(0, first), this.head[port]);
    ring.set(bytes.subarray(first), 0);
    this.head[port] = (this.head[port] + bytes.length) % n;
    const over = this.held[port] + bytes.length - n;
    if (over > 0) this.dropped[port] += over;
    this.held[port] = Math.min(n, this.held[port] + bytes.length);
  }

  /** Makes the ring of `port` hold up to `want` bytes (at most capacity), keeping its contents in order. */
  private grow(port: number, want: number): void {
    const ring = this.rings[port];
    if (ring.length >= Math.min(want, this.capacity)) return;
    const size = Math.min(this.capacity, Math.max(want, ring.length * 2, 4096));
    const next = new Uint8Array(size);
    next.set(this.bytes(port));
    this.rings[port] = next;
    this.head[port] = this.held[port] % size;
  }

  /** The retained bytes of `port` (0 = stdout, 1 = stderr), oldest first. */
  bytes(port: number): Buffer {
    const ring = this.rings[port];
    const held = this.held[port];
    const start = (this.head[port] - held + ring.length) % (ring.length || 1);
    if (start + held <= ring.length) return Buffer.from(ring.subarray(start, start + held));
    return Buffer.concat([ring.subarray(start), ring.subarray(0, this.head[port])]);
  }
}
