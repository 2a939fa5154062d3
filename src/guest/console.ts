/**
 * The guest kernel's console driver: write() bytes go into the port's ring in guest RAM (the
 * layout is the platform's, hypervisor/platform.ts) and the entry stub rings the UHV's doorbell
 * once per syscall (the PENDING word of the per-CPU area). `queue` is the body of the console
 * file kind's write method (vfs.ts).
 */
import type { Khv } from '../hypervisor/khv.js';
import { CONSOLE_PORTS, RING_DATA, RING_HEADER, ringGpa } from '../hypervisor/platform.js';
import { PERCPU } from './layout.js';
import type { SyscallCall } from './syscall-abi.js';

export class ConsoleDriver {
  constructor(private readonly khv: Khv) {}

  /** Empties every ring (at boot). */
  reset(): void {
    for (let port = 0; port < CONSOLE_PORTS; port++) this.khv.fill(ringGpa(port), RING_HEADER, 0);
  }

  /**
   * Queues `bytes` (already copied from the user) on a console port's ring and asks the stub to
   * ring the doorbell. Returns how many the ring took (fewer when it is full).
   */
  queue(call: SyscallCall, port: number, bytes: Uint8Array): number {
    const khv = this.khv;
    const base = ringGpa(port);
    const head = khv.read32(base) >>> 0, tail = khv.read32(base + 4) >>> 0;
    const n = Math.min(bytes.length, RING_DATA - ((head - tail) >>> 0));
    const pos = head % RING_DATA;
    const first = Math.min(n, RING_DATA - pos);
    khv.writeBytes(base + RING_HEADER + pos, bytes.subarray(0, first));
    if (first < n) khv.writeBytes(base + RING_HEADER, bytes.subarray(first, n));
    khv.write32(base, (head + n) | 0);
    call.cpu.frame[PERCPU.PENDING >> 2] |= 1 << port;
    return n;
  }
}
