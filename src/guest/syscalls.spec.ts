import { SYSCALLS } from './syscalls.js';
import { EXIT_REASONS } from '../hypervisor/exits.js';
import { NR_MAX, GATE } from './layout.js';
import { buildKernelText } from './kernel-text.js';

describe('guest OS tables', () => {
  test('syscall table: unique numbers and names inside the dispatch bound; partial rows say what is missing', () => {
    expect(new Set(SYSCALLS.map((s) => s.nr)).size).toBe(SYSCALLS.length);
    expect(new Set(SYSCALLS.map((s) => s.name)).size).toBe(SYSCALLS.length);
    for (const s of SYSCALLS) {
      expect(s.nr).toBeGreaterThanOrEqual(0);
      expect(s.nr).toBeLessThan(NR_MAX);
      if (s.support === 'partial') expect(s.note).toBeTruthy();
    }
    // The DESIGN.md subset is all there.
    for (const name of ['read', 'write', 'exit', 'exit_group', 'brk', 'mmap2', 'munmap', 'getpid', 'gettid', 'sched_yield', 'uname', 'getrandom', 'clock_gettime64', 'clock_nanosleep_time64']) {
      expect(SYSCALLS.some((s) => s.name === name)).toBe(true);
    }
  });

  test('exit reasons: unique names, and the baseline routing of every supported one is defined', () => {
    expect(new Set(EXIT_REASONS.map((r) => r.name)).size).toBe(EXIT_REASONS.length);
    for (const r of EXIT_REASONS) expect(['khv', 'uhv']).toContain(r.handledBy);
    expect(EXIT_REASONS.filter((r) => r.support === 'full').map((r) => r.name).sort()).toEqual(['dirty-log', 'domain-blocked', 'domain-fault', 'domain-share', 'domain-switch', 'domain-violation', 'gstage-fault', 'hypercall', 'memory-error', 'mmio', 'privileged-mode', 'privileged-region', 'wfi']);
  });

  test('gate indices sit after the syscall numbers; both kernel-text variants fit and export their entry points', () => {
    expect(Math.min(...Object.values(GATE))).toBe(NR_MAX);
    for (const m of ['none', 'retpoline'] as const) {
      const t = buildKernelText(m);
      // The retpoline thunk is in both: technique 4's search trampoline falls back through it.
      for (const s of ['trap_entry', 'dispatch', 'call_site', 'after_call', 'restore', 'idle', 'poweroff', 'retpoline_t2', 'pm_call', 'pm_probe', 'pm_doorbell']) expect(t.symbols.has(s)).toBe(true);
    }
  });
});
