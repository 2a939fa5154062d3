/**
 * The user-level hypervisor (the VMM): device models reached through MMIO and SBI hypercall exits.
 * They see the exiting vCPU only through the VM-control access API (vm-control.ts), so whether an
 * exit came through the KHV or straight from the guest, and whether a field access is direct or a
 * KHV call, is decided by the KHV's maps, never here. Devices:
 * - console: the guest kernel writes bytes into a ring in guest RAM (head/tail words plus data,
 *   one ring per port) and writes the port mask to DOORBELL; one doorbell exit drains the rings.
 * - power: writing POWER_OFF (or POWER_FAIL) powers the VM off.
 * - timer and reset (SBI): set_timer writes the vCPU's timer deadline and clears its pending VS
 *   timer interrupt; system_reset powers off; other SBI calls return SBI_ERR_NOT_SUPPORTED.
 * - block: one virtio-mmio block device per disk (virtio-blk.ts).
 */
import { IRQ } from '../cpu/csr.js';
import { BLOCK_OFFSET, BLOCK_STRIDE, CONSOLE_OFFSET, CONSOLE_PORTS, POWER_FAIL, POWER_OFF, POWER_OFFSET, RING_DATA, RING_HEADER, ringGpa, SBI, SBI_ERR_NOT_SUPPORTED } from './platform.js';
import { VmFault } from './exits.js';
import { EXIT_CODE, VmControl } from './vm-control.js';
import { DeviceRam, VirtioBlk } from './virtio-blk.js';

/** Guest-physical memory as the VMM sees it (its mapping of the VM's RAM). */
export type GuestRam = DeviceRam;

export type ConsoleListener = (port: number, bytes: Uint8Array) => void;

export class Uhv {
  /** Set when the guest powered off: 'off' or 'fail'. */
  power: 'on' | 'off' | 'fail' = 'on';
  readonly counters = { doorbells: 0, consoleBytes: [0, 0] };

  /** `blocks`: the VM's block devices, disk n at BLOCK_OFFSET + n * BLOCK_STRIDE. */
  constructor(private readonly ram: GuestRam, private readonly onConsole: ConsoleListener, readonly blocks: readonly VirtioBlk[] = []) {}

  /**
   * Handles one exit routed to the UHV, through `c` only.
   * Raises: VmFault('mmio-unsupported-instruction') for an access to no device register.
   */
  handleExit(c: VmControl): void {
    if (c.exitReason() === EXIT_CODE.Hypercall) {
      this.sbi(c);
      c.advancePc(4);
      return;
    }
    const q = c.qualification();
    const { size, reg, write } = q;
    const value = write ? c.reg(reg) & (size === 4 ? -1 : (1 << (size * 8)) - 1) : 0;
    let r = this.access(q.offset, size, write, value);
    if (!write) {
      if (size < 4) r = q.signed ? (r << (32 - size * 8)) >> (32 - size * 8) : r & ((1 << (size * 8)) - 1);
      c.setReg(reg, r);
    }
    c.advancePc(q.length);
  }

  /** SBI calls (RISC-V SBI v2.0): a7 = extension, a6 = function, a0/a1 = arguments; a0 = error, a1 = value. */
  private sbi(c: VmControl): void {
    const eid = c.reg(17), fid = c.reg(16);
    if (eid === SBI.TIME && fid === 0) {
      c.setTimerDeadline((c.reg(11) >>> 0) * 2 ** 32 + (c.reg(10) >>> 0));
      c.setInterruptPending(IRQ.VSTI, false);
      c.setReg(10, 0);
    } else if (eid === SBI.SRST && fid === 0) {
      this.power = c.reg(11) === 0 ? 'off' : 'fail';
      c.setReg(10, 0);
    } else {
      c.setReg(10, SBI_ERR_NOT_SUPPORTED);
    }
    c.setReg(11, 0);
  }

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
    const n = Math.floor((offset - BLOCK_OFFSET) / BLOCK_STRIDE);
    if (offset >= BLOCK_OFFSET && n < this.blocks.length) {
      try {
        return this.blocks[n].access(offset - BLOCK_OFFSET - n * BLOCK_STRIDE, size, write, value);
      } catch (e) {
        if (e instanceof RangeError) throw new VmFault('mmio-unsupported-instruction', e.message);
        throw e;
      }
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
