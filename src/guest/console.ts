/**
 * The guest kernel's console driver: write() bytes go into the port's ring in guest RAM (the
 * layout is the platform's, hypervisor/platform.ts) and the entry stub rings the UHV's doorbell
 * once per syscall (the PENDING word of the per-CPU area). When the VFS arrives this becomes the
 * write method of the console's open-file object.
 */
import type { Khv } from '../hypervisor/khv.js';
import { CONSOLE_PORTS, RING_DATA, RING_HEADER, ringGpa } from '../hypervisor/platform.js';
import { PROT } from './address-space.js';
import { ERRNO } from './errno.js';
import { PERCPU } from './layout.js';
import type { SyscallCall } from './syscall-abi.js';

export class ConsoleDriver {
  constructor(private readonly khv: Khv) {}

  /** Empties every ring (at boot). */
  reset(): void {
    for (let port = 0; port < CONSOLE_PORTS; port++) this.khv.fill(ringGpa(port), RING_HEADER, 0);
  }

  /**
   * Queues user bytes on a console port's ring and asks the stub to ring the doorbell. Returns
   * the number of bytes queued (at most what the ring holds); -EFAULT when nothing could be read.
   * Raises: GuestMemoryError (a memory error in the user page read).
   */
  write(call: SyscallCall, port: number, va: number, len: number): number {
    const khv = this.khv;
    const base = ringGpa(port);
    const head = khv.read32(base) >>> 0, tail = khv.read32(base + 4) >>> 0;
    const room = RING_DATA - ((head - tail) >>> 0);
    const done = call.p.mm.userSpans(va, Math.min(len, room), PROT.R, (gpa, i, chunk) => {
      const bytes = khv.readBytes(gpa, chunk);
      const pos = (head + i) % RING_DATA;
      const first = Math.min(chunk, RING_DATA - pos);
      khv.writeBytes(base + RING_HEADER + pos, bytes.subarray(0, first));
      if (first < chunk) khv.writeBytes(base + RING_HEADER, bytes.subarray(first));
    });
    if (done === 0 && len > 0) return -ERRNO.EFAULT;
    khv.write32(base, (head + done) | 0);
    call.copied += done;
    call.cpu.frame[PERCPU.PENDING >> 2] |= 1 << port;
    return done;
  }

  /** Asks the stub to dispatch the same syscall again after the doorbell (CONTINUE). */
  continueAfterFlush(call: SyscallCall): void {
    call.cpu.frame[PERCPU.CONTINUE >> 2] = 1;
  }
}
