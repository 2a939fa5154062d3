/**
 * The guest kernel's process table: creating a process from an ELF (its address space, segments
 * and Linux initial stack), ending one (exit or a fatal signal), and who owns a guest page.
 */
import type { ElfImage } from '../isa/elf.js';
import { PAGE_SIZE } from '../mmu/phys.js';
import { RAM_BASE } from '../hypervisor/platform.js';
import { AddressSpace, MemoryContext, PROT, STACK_SIZE, STACK_TOP } from './address-space.js';
import { buildInitialStack } from './initial-stack.js';
import { KERNEL_REGION } from './layout.js';
import { Fatal, Process, ProcessStatus } from './process.js';
import type { SeededRandom } from './random.js';
import type { Cpu, Scheduler } from './scheduler.js';

export interface ProcessSpec {
  elf: ElfImage;
  name: string;
  argv: string[];
  env: string[];
  stdin: Uint8Array;
  /** fd 0 reads this named pipe instead of `stdin`. */
  stdinPipe?: string;
  /** fd 1 writes this named pipe instead of the console. */
  stdoutPipe?: string;
}

/** Who owns a guest page: a process (mapped at user address `va`, or null for its page tables), the kernel, or nobody. */
export type GuestPageOwner = { kind: 'process'; p: Process; va: number | null } | { kind: 'kernel' } | { kind: 'free' };

export class ProcessTable {
  /**
   * `list` is the table (the scheduler reads the same array); `ended` is told of every process
   * that ends, after `release` closed its files.
   */
  constructor(private readonly mem: MemoryContext, private readonly sched: Scheduler, private readonly random: SeededRandom,
    private readonly ended: (s: ProcessStatus) => void, readonly list: Process[], private readonly release: (p: Process) => void) {}

  /** Creates process `pid` from an ELF (page table, segments, initial stack) and queues it. Raises: Error when guest RAM is too small; OutOfHostMemory. */
  spawn(pid: number, s: ProcessSpec): Process {
    const tooSmall = () => new Error('guest memory is too small for the processes');
    const mm = AddressSpace.create(this.mem);
    if (!mm) throw tooSmall();
    const p = new Process(pid, s.name, s.stdin, mm);
    let end = 0;
    for (const seg of s.elf.segments) {
      const perms = (seg.readable ? PROT.R : 0) | (seg.writable ? PROT.W : 0) | (seg.executable ? PROT.X : 0);
      const start = seg.vaddr & ~0xfff, stop = (seg.vaddr + seg.memsz + 0xfff) & ~0xfff;
      if (stop > STACK_TOP - STACK_SIZE) throw new Error(`segment at 0x${seg.vaddr.toString(16)} overlaps the stack`);
      mm.regions.push({ start, end: stop, perms, kind: 'elf' });
      for (let a = start; a < stop; a += PAGE_SIZE) if (mm.map(a, perms) < 0) throw tooSmall();
      mm.copyOut(seg.vaddr, s.elf.bytes.subarray(seg.offset, seg.offset + seg.filesz), true);
      end = Math.max(end, stop);
    }
    mm.brkStart = mm.brk = end;
    mm.regions.push({ start: end, end, perms: PROT.R | PROT.W, kind: 'heap' });
    mm.regions.push({ start: STACK_TOP - STACK_SIZE, end: STACK_TOP, perms: PROT.R | PROT.W, kind: 'stack' });
    const stack = buildInitialStack(s.elf, s.argv, s.env, this.random.bytes(16), STACK_TOP);
    if (mm.copyOut(stack.sp, stack.bytes) !== stack.bytes.length) throw tooSmall();
    p.pc = s.elf.entry;
    p.regs[2] = stack.sp;
    this.list.push(p);
    this.sched.enqueue(p);
    return p;
  }

  /** Ends `p`, the process running on `c`, with an exit code or a fatal signal; `c` goes to the next runnable process. */
  exit(c: Cpu, p: Process, code: number | null, fatal?: Fatal): void {
    p.end(code, fatal);
    this.release(p);
    this.ended(p.status());
    p.mm.teardown();
    this.sched.switchTo(c, this.sched.next());
  }

  /** Ends a process that is not running on the calling path (it may be runnable or sleeping) with a fatal signal. */
  kill(p: Process, fatal: Fatal): void {
    p.end(null, fatal);
    this.sched.dequeue(p);
    this.release(p);
    this.ended(p.status());
    p.mm.teardown();
  }

  /** Who owns guest page `gpa`. */
  ownerOf(gpa: number): GuestPageOwner {
    if (gpa < RAM_BASE + KERNEL_REGION) return { kind: 'kernel' };
    for (const p of this.list) {
      if (p.state === 'exited') continue;
      const va = p.mm.locate(gpa);
      if (va !== undefined) return { kind: 'process', p, va };
    }
    return { kind: 'free' };
  }

  statuses(): ProcessStatus[] { return this.list.map((p) => p.status()); }
}
