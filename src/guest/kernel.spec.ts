import { Hart } from '../cpu/hart.js';
import { HostMemory } from '../hypervisor/host-memory.js';
import { Khv, Vcpu } from '../hypervisor/khv.js';
import { RAM_BASE } from '../hypervisor/platform.js';
import { Uhv } from '../hypervisor/uhv.js';
import { PhysMem } from '../mmu/phys.js';
import { AddressSpace, MMAP_BASE, PROT, STACK_SIZE, STACK_TOP } from './address-space.js';
import { ERRNO } from './errno.js';
import { GuestKernel } from './kernel.js';
import { KERNEL_REGION } from './layout.js';
import { PagePool } from './page-pool.js';
import { SYSCALLS } from './syscalls.js';
import type { SyscallTable } from './syscall-abi.js';

/** A KHV over a fresh 16 MiB host, with one vCPU, for a guest of `ramMiB`. */
function machine(ramMiB = 8): { khv: Khv; vcpus: Vcpu[] } {
  const host = HostMemory.create(16);
  const mem = new PhysMem(host.buffers.dram, host.poison);
  const khv = new Khv(host, mem, 1, ramMiB << 20, (ram) => new Uhv(ram, () => undefined));
  return { khv, vcpus: [new Vcpu(0, new Hart(mem, 0))] };
}

const kernel = (syscalls: SyscallTable) => {
  const { khv, vcpus } = machine();
  return new GuestKernel(khv, vcpus, { mitigation: 'none', seed: 1, ramBytes: 8 << 20, syscalls });
};

describe('guest kernel parts', () => {
  test('errno table: distinct values, and the Linux numbers of the errors the kernel returns', () => {
    expect(new Set(Object.values(ERRNO)).size).toBe(Object.keys(ERRNO).length);
    expect(ERRNO).toMatchObject({ EBADF: 9, ENOMEM: 12, EFAULT: 14, EINVAL: 22, ENOSYS: 38 });
  });

  test('the kernel is given its syscall table, and refuses one with a repeated or out-of-range number', () => {
    expect(() => kernel(SYSCALLS)).not.toThrow();
    const getpid = SYSCALLS.find((r) => r.name === 'getpid')!;
    expect(() => kernel([...SYSCALLS, { ...getpid, name: 'again' }])).toThrow(/number 172 \(again\) is out of range or repeated/);
    expect(() => kernel([{ ...getpid, nr: 512 }])).toThrow(/number 512/);
  });

  test('address space: mmap places ranges above MMAP_BASE, munmap splits regions, brk frees pages, exhaustion is -ENOMEM', () => {
    const { khv, vcpus } = machine();
    const pool = new PagePool(khv, RAM_BASE + KERNEL_REGION, RAM_BASE + (8 << 20));
    let flushes = 0;
    const mm = AddressSpace.create({ khv, pool, flushTlbs: () => { flushes++; vcpus[0].hart.mmu.flushAll(); } })!;
    const rw = PROT.R | PROT.W;
    expect(mm.mmap(3 * 4096, rw, null)).toBe(MMAP_BASE);
    expect(mm.mmap(4096, rw, null)).toBe(MMAP_BASE + 3 * 4096);
    // Copying out maps pages on demand; the bytes come back.
    expect(mm.copyOut(MMAP_BASE + 4090, new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]))).toBe(8);
    expect([...mm.copyIn(MMAP_BASE + 4090, 8)!]).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(mm.pages.size).toBe(2);
    // Unmapping the middle page splits the first region and frees its page.
    mm.munmap(MMAP_BASE + 4096, 4096);
    expect(mm.regions.filter((r) => r.kind === 'mmap').map((r) => [r.start - MMAP_BASE, r.end - MMAP_BASE]).sort((a, b) => a[0] - b[0]))
      .toEqual([[0, 4096], [2 * 4096, 3 * 4096], [3 * 4096, 4 * 4096]]);
    expect(mm.pages.size).toBe(1);
    expect(flushes).toBe(1);
    expect(mm.copyIn(MMAP_BASE + 4096, 1)).toBeNull();
    // The hole is reused by the next fit.
    expect(mm.mmap(4096, rw, null)).toBe(MMAP_BASE + 4096);
    expect(mm.mmap(STACK_TOP - STACK_SIZE - MMAP_BASE, rw, null)).toBe(-ERRNO.ENOMEM);
    // brk: grows the heap region; shrinking unmaps what lies above the new break.
    mm.regions.push({ start: 0x10000, end: 0x10000, perms: rw, kind: 'heap' });
    mm.brkStart = mm.brk = 0x10000;
    expect(mm.setBrk(0x13000)).toBe(0x13000);
    expect(mm.copyOut(0x12000, new Uint8Array([9]))).toBe(1);
    const free = pool.free.length;
    expect(mm.setBrk(0x11000)).toBe(0x11000);
    expect(pool.free.length).toBe(free + 1);
    expect(mm.copyOut(0x12000, new Uint8Array([9]))).toBe(0);
    expect(mm.setBrk(0x1000)).toBe(0x11000); // below the start: unchanged
  });
});
