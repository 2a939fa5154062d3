/**
 * Test harness: runs one static RV32 ELF as a U-mode process on a bare hart, with an Sv32 page
 * table built here, a Linux initial stack, demand-paged stack and brk heap, and write / exit /
 * exit_group / brk serviced natively (everything else returns -ENOSYS). It exists so that the
 * hart can be checked against qemu-riscv32 before the guest OS; it is not the guest OS.
 */
import { parseElf32 } from '../isa/elf.js';
import { PhysMem, PAGE_SIZE } from '../mmu/phys.js';
import { CAUSE } from '../mmu/mmu.js';
import { Engine, Hart, NATIVE_M, PRIV_U, StopReason } from '../cpu/hart.js';
import { buildInitialStack } from '../guest/initial-stack.js';
import { COUNTER_NAMES } from '../uarch/costs.js';

const STACK_TOP = 0x80000000;
const STACK_LIMIT = STACK_TOP - 8 * 1024 * 1024;
const ENOSYS = 38;

export interface HarnessResult {
  stdout: Buffer;
  stderr: Buffer;
  /** Exit status as a shell reports it: the exit code, or 128 + signal. */
  status: number;
  counters: Record<string, number>;
  hart: Hart;
}

export interface HarnessOptions {
  argv?: string[];
  env?: string[];
  memoryBytes?: number;
  maxInstructions?: number;
  /** Instructions per Hart.run call (default 1,000,000). */
  slice?: number;
  /** Execution engine (default: the hart's default, jit). */
  engine?: Engine;
}

class Process {
  readonly mem: PhysMem;
  readonly hart: Hart;
  private nextFrame = 1;
  private readonly root: number;
  private readonly frames = new Map<number, number>(); // vpn -> frame
  brkStart = 0;
  brk = 0;
  stdout: Buffer[] = [];
  stderr: Buffer[] = [];

  constructor(memoryBytes: number) {
    this.mem = PhysMem.ofSize(memoryBytes);
    this.hart = new Hart(this.mem);
    this.root = this.allocFrame();
  }

  allocFrame(): number {
    const f = this.nextFrame++;
    if ((f + 1) * PAGE_SIZE > this.mem.size) throw new Error('harness out of physical memory');
    return f;
  }

  /** Maps user page `va` with permissions rwx (bits R=2 W=4 X=8); returns the frame. */
  map(va: number, perms: number): number {
    const vpn = va >>> 12;
    const existing = this.frames.get(vpn);
    if (existing !== undefined) return existing;
    const l1 = this.root * PAGE_SIZE + (vpn >>> 10) * 4;
    let pte1 = this.mem.read32(l1);
    if ((pte1 & 1) === 0) {
      pte1 = (this.allocFrame() << 10) | 1;
      this.mem.write32(l1, pte1);
    }
    const frame = this.allocFrame();
    this.mem.write32((pte1 >>> 10) * PAGE_SIZE + (vpn & 0x3ff) * 4, (frame << 10) | perms | 0x10 | 1);
    this.frames.set(vpn, frame);
    return frame;
  }

  /** Physical address of user va (page must be mapped), or -1. */
  phys(va: number): number {
    const f = this.frames.get(va >>> 12);
    return f === undefined ? -1 : f * PAGE_SIZE + (va & 0xfff);
  }

  read(va: number, len: number): Buffer | null {
    const out = Buffer.alloc(len);
    for (let i = 0; i < len; i++) {
      const pa = this.phys((va + i) >>> 0);
      if (pa < 0) return null;
      out[i] = this.mem.u8[pa];
    }
    return out;
  }

  writeBytes(va: number, bytes: Uint8Array, perms: number): void {
    for (let i = 0; i < bytes.length; i++) {
      const a = (va + i) >>> 0;
      this.map(a, perms);
      this.mem.u8[this.phys(a)] = bytes[i];
    }
  }
}

/** Runs `elfBytes` to completion (or until maxInstructions, which is an error). */
export function runUserProgram(elfBytes: Uint8Array, opts: HarnessOptions = {}): HarnessResult {
  const elf = parseElf32(elfBytes);
  const p = new Process(opts.memoryBytes ?? 64 * 1024 * 1024);
  const h = p.hart;
  let end = 0;
  for (const s of elf.segments) {
    const perms = (s.readable ? 2 : 0) | (s.writable ? 4 : 0) | (s.executable ? 8 : 0);
    for (let a = s.vaddr & ~0xfff; a < s.vaddr + s.memsz; a += PAGE_SIZE) p.map(a, perms);
    p.writeBytes(s.vaddr, elf.bytes.subarray(s.offset, s.offset + s.filesz), perms);
    end = Math.max(end, s.vaddr + s.memsz);
  }
  p.brkStart = p.brk = (end + 0xfff) & ~0xfff;
  const random = new Uint8Array(16).map((_, i) => (i * 37 + 11) & 0xff);
  const stack = buildInitialStack(elf, opts.argv ?? ['prog'], opts.env ?? [], random, STACK_TOP);
  p.writeBytes(stack.sp, stack.bytes, 6);

  if (opts.engine) h.engine = opts.engine;
  h.satp = 0x80000000 | (p['root'] as number);
  h.mcounteren = 7;
  h.scounteren = 7;
  h.nativeTraps = NATIVE_M;
  h.priv = PRIV_U;
  h.pc = elf.entry;
  h.x[2] = stack.sp;

  const max = opts.maxInstructions ?? 2e9;
  let status = -1;
  while (status < 0) {
    const r = h.run(opts.slice ?? 1_000_000);
    if ((h.ctr[0]) > max) throw new Error(`program did not finish within ${max} instructions`);
    if (r === StopReason.Budget) continue;
    if (r !== StopReason.Trap) throw new Error(`unexpected stop reason ${r}`);
    const cause = h.mcause;
    const resume = (pc: number) => { h.pc = pc; h.priv = PRIV_U; };
    if (cause === CAUSE.ecallU) {
      const x = h.x;
      const nr = x[17];
      const ret = (v: number) => { x[10] = v; resume((h.mepc + 4) | 0); };
      if (nr === 64) {
        const buf = p.read(x[11] >>> 0, x[12] >>> 0);
        if (buf === null) ret(-14);
        else if (x[10] === 1) { p.stdout.push(buf); ret(buf.length); }
        else if (x[10] === 2) { p.stderr.push(buf); ret(buf.length); }
        else ret(-9);
      } else if (nr === 93 || nr === 94) {
        status = x[10] & 0xff;
      } else if (nr === 214) {
        const want = x[10] >>> 0;
        if (want >= p.brkStart && want < STACK_LIMIT) p.brk = want;
        ret(p.brk);
      } else {
        ret(-ENOSYS);
      }
    } else if (cause === CAUSE.loadPage || cause === CAUSE.storePage || cause === CAUSE.fetchPage) {
      const addr = h.mtval >>> 0;
      const inStack = addr >= STACK_LIMIT && addr < STACK_TOP;
      const inHeap = addr >= p.brkStart && addr < ((p.brk + 0xfff) & ~0xfff);
      if (cause !== CAUSE.fetchPage && (inStack || inHeap)) { p.map(addr, 6); resume(h.mepc); } else status = 128 + 11;
    } else if (cause === CAUSE.illegal) {
      status = 128 + 4;
    } else if (cause === CAUSE.breakpoint) {
      status = 128 + 5;
    } else if (cause === CAUSE.loadMisaligned || cause === CAUSE.storeMisaligned) {
      status = 128 + 7;
    } else {
      status = 128 + 11;
    }
  }
  const counters: Record<string, number> = {};
  COUNTER_NAMES.forEach((n, i) => { counters[n] = h.ctr[i]; });
  return { stdout: Buffer.concat(p.stdout), stderr: Buffer.concat(p.stderr), status, counters, hart: h };
}
