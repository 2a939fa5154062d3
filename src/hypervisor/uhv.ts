/**
 * The user-level hypervisor (the VMM): device models reached through MMIO exits that the KHV
 * forwards. Devices:
 * - console: the guest kernel writes bytes into a ring in guest RAM (head/tail words plus data,
 *   one ring per port) and writes the port mask to DOORBELL; one doorbell exit drains the rings.
 * - power: writing POWER_OFF (or POWER_FAIL) powers the VM off.
 */
import { CONSOLE_OFFSET, CONSOLE_PORTS, POWER_FAIL, POWER_OFF, POWER_OFFSET, RING_DATA, RING_HEADER, ringGpa } from './platform.js';
import { VmFault } from './exits.js';

/** Guest-physical memory as the VMM sees it (its mapping of the VM's RAM). */
export interface GuestRam {
  read32(gpa: number): number;
  write32(gpa: number, v: number): void;
  readBytes(gpa: number, len: number): Uint8Array;
}

export type ConsoleListener = (port: number, bytes: Uint8Array) => void;

export class Uhv {
  /** Set when the guest powered off: 'off' or 'fail'. */
  power: 'on' | 'off' | 'fail' = 'on';
  readonly counters = { doorbells: 0, consoleBytes: [0, 0] };

  constructor(private readonly ram: GuestRam, private readonly onConsole: ConsoleListener) {}

  /**
   * An MMIO access at `offset` into the device region. Returns the value of a read.
   * Raises: VmFault('mmio-unsupported-instruction') for an access to no device register.
   */
  access(offset: number, size: number, write: boolean, value: number): number {
    if (offset === CONSOLE_OFFSET && size === 4) {
      if (!write) return 0;
      this.counters.doorbells++;
      for (let p = 0; p < CONSOLE_PORTS; p++) if (value & (1 << p)) this.drain(p);
      return 0;
    }
    if (offset === POWER_OFFSET && size === 4) {
      if (!write) return 0;
      if ((value & 0xffff) === POWER_OFF) this.power = 'off';
      else if ((value & 0xffff) === POWER_FAIL) this.power = 'fail';
      return 0;
    }
    throw new VmFault('mmio-unsupported-instruction', `no device register at device offset 0x${offset.toString(16)} (size ${size})`);
  }

  /** Moves everything between the ring's tail and head to the listener. */
  private drain(port: number): void {
    const base = ringGpa(port);
    const head = this.ram.read32(base) >>> 0;
    const tail = this.ram.read32(base + 4) >>> 0;
    const n = (head - tail) >>> 0;
    if (n === 0) return;
    if (n > RING_DATA) throw new VmFault('mmio-unsupported-instruction', `console ring ${port} claims ${n} bytes, more than it holds`);
    const out = new Uint8Array(n);
    const start = tail % RING_DATA;
    const first = Math.min(n, RING_DATA - start);
    out.set(this.ram.readBytes(base + RING_HEADER + start, first), 0);
    if (first < n) out.set(this.ram.readBytes(base + RING_HEADER, n - first), first);
    this.ram.write32(base + 4, head | 0);
    this.counters.consoleBytes[port] += n;
    this.onConsole(port, out);
  }
}
