/**
 * Technique 3 (syscall lookahead, US20240028336A1), the part after a syscall handler ran: while
 * the next ecall is within `window` instructions and everything before it is viable, emulate
 * those instructions on the saved user registers (lookahead.ts), handle that syscall here, and go
 * on, saving the two privilege crossings a return to user mode and the next ecall would cost.
 */
import type { Khv } from '../hypervisor/khv.js';
import { COSTS } from '../uarch/costs.js';
import { PERCPU } from './layout.js';
import { LookaheadScanner } from './lookahead.js';
import type { Process } from './process.js';
import type { Cpu } from './scheduler.js';
import type { SyscallCall } from './syscall-abi.js';

/** Counters of syscall lookahead (technique 3). */
export interface LookaheadStats {
  syscallsMerged: number;
  crossingsAvoided: number;
  instructionsEmulated: number;
  instructionsScanned: number;
  chainEnds: Record<string, number>;
}

/** The technique's settings for one chain. */
export interface ChainLimits { window: number; allowForwardBranches: boolean; maxChain: number }

export class SyscallChain {
  readonly stats: LookaheadStats = { syscallsMerged: 0, crossingsAvoided: 0, instructionsEmulated: 0, instructionsScanned: 0, chainEnds: {} };
  private readonly scanner = new LookaheadScanner();
  /** The user registers a chain works on, and their a0-a5 as syscall arguments. */
  private readonly regs = new Int32Array(32);
  private readonly args = this.regs.subarray(10, 16);

  /** `dispatch` runs syscall `nr` natively and returns a0 (the kernel's dispatcher). */
  constructor(private readonly khv: Khv, private readonly dispatch: (call: SyscallCall, nr: number) => number) {}

  /**
   * After a syscall of `p` on `c` returned `result` (no context switch, no pending CONTINUE):
   * chains the syscalls that follow. Returns the user's a0 and the cycles the scans, emulation
   * and handlers cost.
   */
  run(c: Cpu, p: Process, result: number, limits: ChainLimits): { result: number; cost: number } {
    const h = c.vcpu.hart;
    const f = c.frame;
    const stats = this.stats;
    const end = (why: string) => { stats.chainEnds[why] = (stats.chainEnds[why] ?? 0) + 1; };
    const regs = this.regs;
    let cost = 0;
    for (let merged = 0; ; merged++) {
      if (merged >= limits.maxChain) { end('maxChain'); break; }
      regs.set(f.subarray(0, 32));
      regs[0] = 0;
      regs[10] = result;
      const scan = this.scanner.scan(h, regs, h.vsepc, limits.window, limits.allowForwardBranches);
      stats.instructionsScanned += scan.scanned;
      cost += scan.scanned * COSTS.lookaheadDecode;
      if (scan.ecallPc === null) { end(scan.end!); break; }
      // Commit: the emulated instructions' stores, registers and pc become the process's state.
      this.scanner.commit((pa, byte) => { h.mem.u8[pa] = byte; this.khv.nativeWrite(pa); });
      f.set(regs.subarray(1), 1);
      h.vsepc = (scan.ecallPc + 4) | 0;
      stats.instructionsEmulated += scan.emulated;
      cost += scan.emulated * COSTS.lookaheadEmulate;
      stats.syscallsMerged++;
      stats.crossingsAvoided += 2;
      const call: SyscallCall = { cpu: c, p, a: this.args, copied: 0 };
      result = this.dispatch(call, regs[17]);
      cost += COSTS.gateBase + Math.ceil(call.copied / COSTS.gateBytesPerCycle);
      if (c.switched) { end('contextSwitch'); break; }
      if (f[PERCPU.CONTINUE >> 2] !== 0) { end('continuedWrite'); break; }
    }
    return { result, cost };
  }
}
