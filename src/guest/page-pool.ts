/**
 * The guest kernel's page pool: every guest page above the kernel region, handed out to page
 * tables and process memory. Pages come from a free list, else from the never-used rest of RAM
 * (a high-water mark); pages with a memory error are never handed out again (Linux's HWPoison).
 */
import type { Khv } from '../hypervisor/khv.js';
import { PAGE_SIZE } from '../mmu/phys.js';

export class PagePool {
  readonly free: number[] = [];
  /** Guest pages with a memory error: never handed out again. */
  readonly bad = new Set<number>();
  /** The lowest page never handed out. */
  next: number;

  /** The pool is the guest pages [start, end). */
  constructor(private readonly khv: Khv, start: number, private readonly end: number) {
    this.next = start;
  }

  /** A free guest page (zeroed), or -1 when guest RAM is exhausted. Raises: OutOfHostMemory (zeroing backs it). */
  alloc(): number {
    let gpa: number;
    if (this.free.length) gpa = this.free.pop()!;
    else if (this.next < this.end) { gpa = this.next; this.next += PAGE_SIZE; }
    else return -1;
    this.khv.fill(gpa, PAGE_SIZE, 0);
    return gpa;
  }

  /** Gives page `gpa` back (a bad page stays out); its frame's translated code, if any, is dropped. */
  release(gpa: number): void {
    if (this.bad.has(gpa)) return;
    const hpa = this.khv.gstage.hpa(gpa);
    if (hpa >= 0) this.khv.nativeWrite(hpa);
    this.free.push(gpa);
  }
}
