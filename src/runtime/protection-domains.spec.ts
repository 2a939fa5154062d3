/**
 * Technique 7 (protectionDomains): secure protection domains isolated by their own G-stage
 * tables. The key-store workload gives the same output through exit-based and fast-gate
 * switches (and on both engines); its key never appears in anything the root domain, the
 * console, the memory listing or a migration can see; every attack is blocked and reported.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../testing/toolchain.js';
import { assemble } from '../isa/assembler.js';
import { disasm32 } from '../isa/disasm.js';
import { PTE } from '../mmu/mmu.js';
import { PAGE_SIZE } from '../mmu/phys.js';
import { HostMemory } from '../hypervisor/host-memory.js';
import { DomainAccessError } from '../hypervisor/exits.js';
import { DOMAIN_BASE, DomainEvent, domainWindow } from '../hypervisor/domains.js';
import { MigrationFailed, MigrationSource } from '../migration/source.js';
import { resolveTechniques } from '../techniques/catalogue.js';
import { KEYSTORE_BINARIES, keystoreClientElf, keystoreDomain, keystoreDomainElf } from './keystore.js';
import { runProgram } from './run-program.js';
import { DEFAULT_SPEC, Vm, VmSpec } from './vm.js';

const techniques = (fastGate: boolean) => resolveTechniques({ protectionDomains: { fastGate } });
const proc = (elf: Uint8Array, argv = ['p']) => ({ name: argv[0], elf, argv, env: [], stdin: new Uint8Array() });

/** The key the KHV derives for domain `name` of a VM with `seed` (domains.ts). */
const keyOf = (seed: number, name: string) => createHash('sha256').update(`hvsim-domain-secret:${seed}:${name}`).digest();

/** Whether `needle` occurs in `hay`. */
const contains = (hay: Uint8Array, needle: Uint8Array) => Buffer.from(hay.buffer, hay.byteOffset, hay.byteLength).indexOf(needle) >= 0;

function vmWith(spec: Partial<VmSpec>, host = HostMemory.create(32)): Vm {
  return new Vm({ ...DEFAULT_SPEC, memoryMiB: 16, processes: [], ...spec } as VmSpec, host, 1);
}

/** An attacker: raw RV32 run as the VM's only process (no lib: exits with a0 through exit_group). */
const program = (body: string) => assemble(`.globl _start\n.text\n_start:\n${body}\n  li a7, 94\n  ecall\n`).elf;

/**
 * A malicious root guest kernel: maps user page `va` of process 0 onto guest-physical `gpa` with
 * `perms`, in its page table and in the kernel's own record of the mapping.
 */
function craftMapping(vm: Vm, va: number, gpa: number, perms: number): void {
  const mm = vm.kernel.processes[0].mm;
  mm.map(va, perms);
  const table = mm.tables.get(va >>> 22)!;
  vm.khv.write32(table + 4 * ((va >>> 12) & 0x3ff), ((gpa / PAGE_SIZE) << 10) | perms | PTE.U | PTE.V | PTE.A | PTE.D);
  mm.pages.set(va >>> 12, gpa + perms);
}

describe('protection domains', () => {
  test('dgate is one row of the instruction table: assembled, decoded, disassembled', () => {
    const { elf, sections } = assemble('.globl _start\n.text\n_start:\n  dgate t0\n  dgate a7\n');
    const text = sections.find((s) => s.name === '.text')!.bytes;
    const w = new DataView(text.buffer, text.byteOffset).getUint32(0, true);
    expect(w).toBe(0x0002800b);
    expect(disasm32(w, 0)).toBe('dgate\tt0');
    expect(disasm32(new DataView(text.buffer, text.byteOffset).getUint32(4, true), 0)).toBe('dgate\ta7');
    expect(elf.length).toBeGreaterThan(0);
  });

  test('the key-store workload: same output and statuses through exit-based and fast-gate switches, on both engines; switches charged from the cost table', () => {
    const runs = [];
    for (const fastGate of [false, true]) {
      for (const engine of ['interp', 'jit'] as const) {
        const r = runProgram(keystoreClientElf(), { engine, argv: ['keystore-client', '50'], domains: [keystoreDomain()], techniques: techniques(fastGate) });
        expect(r.vm.state).toBe('stopped');
        expect(r.status).toBe(0);
        runs.push({ fastGate, engine, out: r.stdout.toString(), c: r.counters });
      }
    }
    expect(runs[0].out).toMatch(/^keystore: rounds ok, tamper refused; rounds 00000032\nkeystore: digest [0-9a-f]{8}\n$/);
    for (const r of runs) expect(r.out).toBe(runs[0].out);
    // 50 rounds of 4 calls, plus 2 for the tamper check: each a call and a return.
    const switches = (50 * 4 + 2) * 2;
    const [exitRun, , gateRun] = runs;
    expect(exitRun.c.protectionDomains).toMatchObject({ switches: { gate: 0, exit: switches }, cyclesPerSwitch: 1400, sharedPages: 1, blockedAccesses: 0, gateViolations: 0, domainFaults: 0 });
    expect(exitRun.c.exits['domain-switch']).toBe(switches);
    expect(gateRun.c.protectionDomains).toMatchObject({ switches: { gate: switches, exit: 0 }, cyclesPerSwitch: 150 });
    expect(gateRun.c.exits['domain-switch']).toBeUndefined();
    // Same instructions but the dgates that exited (a trapping instruction does not retire).
    expect(exitRun.c.instructions).toBe(gateRun.c.instructions - switches);
    expect(exitRun.c.cycles - gateRun.c.cycles).toBe(switches * (1400 - 150) - switches);
    expect(runs[1].c).toEqual(runs[0].c);
    expect(runs[3].c).toEqual(runs[2].c);
  }, 300_000);

  test('the key never leaves domain memory: not in root RAM (what a migration would read), the console, the memory listing, or registers after a call', () => {
    for (const fastGate of [false, true]) {
      const seed = 7;
      const vm = vmWith({ seed, processes: [proc(keystoreClientElf(), ['keystore-client', '20'])], domains: [keystoreDomain()], techniques: techniques(fastGate) });
      const key = keyOf(seed, 'keystore');
      const out: Buffer[] = [];
      vm.onConsole((_p, b) => out.push(Buffer.from(b)));
      // The scan is meaningful: the key is in the domain's private memory.
      expect(contains(vm.domains.privateBytes(0), key)).toBe(true);
      const window = domainWindow(0), windowEnd = window + 64 * 1024;
      const domainFrames = new Set<number>();
      let scans = 0;
      while (vm.state === 'running') {
        vm.run(1);
        if (vm.state !== 'running') break;
        for (const gpn of vm.backedPages()) {
          const page = vm.readPage(gpn);
          if (page.kind === 'data') expect(contains(page.bytes, key.subarray(0, 8))).toBe(false);
        }
        for (const p of vm.memoryPages()) {
          expect(p.gpa < window || p.gpa >= windowEnd).toBe(true);
          domainFrames.add(p.hpa / PAGE_SIZE);
        }
        const x = Buffer.from(vm.vcpus[0].hart.x.buffer.slice(0));
        if (vm.domains.counters().switches.gate + vm.domains.counters().switches.exit > 0 && vm.vcpus[0].hart.domainGates!.current === 0) {
          expect(contains(x, key.subarray(0, 4))).toBe(false);
        }
        scans++;
      }
      expect(scans).toBeGreaterThan(3);
      expect(vm.state).toBe('stopped');
      const console = Buffer.concat(out);
      expect(console.toString()).toMatch(/rounds ok/);
      for (let i = 0; i + 4 <= key.length; i += 4) expect(contains(console, key.subarray(i, i + 4))).toBe(false);
    }
  }, 300_000);

  test('two domains: gates are numbered across them, each has its own secret that only its memory holds, and each runs in its own window', () => {
    const vm = vmWith({ seed: 3, processes: [proc(keystoreClientElf(), ['keystore-client', '5'])], domains: [keystoreDomain('a'), keystoreDomain('b')] });
    expect(vm.domains.gateNames).toEqual(['a.ks_seal', 'a.ks_unseal', 'a.ks_sign', 'b.ks_seal', 'b.ks_unseal', 'b.ks_sign']);
    const [ka, kb] = [keyOf(3, 'a'), keyOf(3, 'b')];
    const [ma, mb] = [vm.domains.privateBytes(0), vm.domains.privateBytes(1)];
    expect([contains(ma, ka), contains(ma, kb), contains(mb, kb), contains(mb, ka)]).toEqual([true, false, true, false]);
    expect(vm.domains.windowOf(domainWindow(1) + 0x1000)?.spec.name).toBe('b');
    expect(vm.domains.windowOf(domainWindow(2))).toBeNull();
    expect(vm.runToCompletion()).toBe('stopped');
    expect(vm.processes()[0].status).toBe(0);
    expect(vm.counters().protectionDomains).toMatchObject({ domains: 2, gates: 6, switches: { gate: (5 * 4 + 2) * 2 } });
  });

  test('a migration of a VM with domains is refused before anything is sent', async () => {
    const vm = vmWith({ processes: [proc(keystoreClientElf(), ['keystore-client', '1000'])], domains: [keystoreDomain()] });
    vm.run(2);
    const src = new MigrationSource(vm, { migrationId: 'm', maxDowntimeMs: 10, bandwidthMiBps: 100, maxRounds: 5, timeoutS: 5, technique: true }, { progress: () => {}, latentError: () => {} });
    await expect(src.open(1)).rejects.toThrow(MigrationFailed);
    await expect(src.open(1)).rejects.toThrow(/protection domain/);
    expect(src.stats.pagesSent).toBe(0);
    vm.stop();
  });

  describe('attacks are blocked and reported', () => {
    const attacked = (body: string, craft?: (vm: Vm) => void, fastGate = true) => {
      const vm = vmWith({ processes: [proc(program(body))], domains: [keystoreDomain()], techniques: techniques(fastGate) });
      const events: DomainEvent[] = [];
      vm.onDomainEvent((e) => events.push(e));
      const out: Buffer[] = [];
      vm.onConsole((_p, b) => out.push(Buffer.from(b)));
      craft?.(vm);
      vm.runToCompletion(10_000_000);
      return { vm, events, status: vm.processes()[0], console: Buffer.concat(out) };
    };
    const keyPage = (vm: Vm) => {
      const bytes = vm.domains.privateBytes(0);
      const key = keyOf(1, 'keystore');
      const at = Buffer.from(bytes).indexOf(key);
      expect(at).toBeGreaterThan(0);
      return domainWindow(0) + (at & ~0xfff);
    };

    test.each([
      ['load', '  li t0, 0x300000\n  lw a0, 0(t0)\n', PTE.R],
      ['store', '  li t0, 0x300000\n  sw zero, 0(t0)\n  li a0, 0\n', PTE.R | PTE.W],
      ['fetch (a jump into domain code, not at a gate)', '  li t0, 0x300000\n  jr t0\n', PTE.R | PTE.X],
    ])('root user code that maps domain memory through a crafted guest page table: %s is a G-stage fault; SIGSEGV', (_what, body, perms) => {
      for (const fastGate of [false, true]) {
        const r = attacked(body, (vm) => craftMapping(vm, 0x300000, keyPage(vm), perms), fastGate);
        expect(r.status).toMatchObject({ signal: 11, status: 139 });
        expect(r.events).toHaveLength(1);
        expect(r.events[0]).toMatchObject({ kind: 'blocked-access', domain: 'keystore', source: 'guest-user' });
        expect(r.events[0].gpa! >= DOMAIN_BASE).toBe(true);
        expect(r.vm.counters().protectionDomains).toMatchObject({ blockedAccesses: 1 });
        expect(r.vm.counters().exits['domain-blocked']).toBe(1);
      }
    });

    test('root kernel code (VS mode) loading through a crafted kernel mapping: G-stage fault, reported, the guest kernel dies of its own access fault', () => {
      const vm = vmWith({ processes: [proc(program('  li a0, 0\n'))], domains: [keystoreDomain()] });
      const events: DomainEvent[] = [];
      vm.onDomainEvent((e) => events.push(e));
      const p = vm.kernel.processes[0];
      // A malicious kernel maps the domain's window as a supervisor megapage at 0xb000_0000 ...
      vm.khv.write32(p.mm.root + 4 * (0xb000_0000 >>> 22), ((domainWindow(0) / PAGE_SIZE) << 10) | PTE.V | PTE.R | PTE.W | PTE.G | PTE.A | PTE.D);
      // ... and runs `lw a0, 0(t0); j .` in kernel mode (written into an unused page of its region).
      const code = assemble('.globl _start\n.text\n_start:\n  lw a0, 0(t0)\n  j _start\n').sections.find((x) => x.name === '.text')!.bytes;
      vm.khv.writeBytes(0x8000_0000 + 0x3f_f000, code);
      const h = vm.vcpus[0].hart;
      h.priv = 1;
      h.pc = 0xc03f_f000 | 0;
      h.x[5] = (0xb000_0000 + (keyPage(vm) - domainWindow(0))) | 0;
      vm.runToCompletion(1_000_000);
      expect(events).toEqual([expect.objectContaining({ kind: 'blocked-access', source: 'guest-kernel', domain: 'keystore', pc: 0xc03f_f000 | 0 })]);
      expect(vm.state).toBe('crashed');
      expect(vm.reason).toMatch(/guest-kernel-panic: kernel trap cause 5/);
    });

    test('a root kernel path (write(2) of a crafted mapping) is refused by the KHV: the caller dies, the console gets nothing', () => {
      const r = attacked('  li a0, 1\n  li a1, 0x300000\n  li a2, 64\n  li a7, 64\n  ecall\n  li a0, 0\n', (vm) => craftMapping(vm, 0x300000, keyPage(vm), PTE.R));
      expect(r.status).toMatchObject({ signal: 11 });
      expect(r.events).toEqual([expect.objectContaining({ kind: 'blocked-access', source: 'native', domain: 'keystore' })]);
      expect(r.console.length).toBe(0);
    });

    test('a device (DMA-like) access to domain memory through the hypervisor\'s guest-RAM view is refused and reported', () => {
      const vm = vmWith({ processes: [proc(keystoreClientElf(), ['k', '1'])], domains: [keystoreDomain()] });
      const events: DomainEvent[] = [];
      vm.onDomainEvent((e) => events.push(e));
      expect(() => vm.khv.readBytes(domainWindow(0), 32)).toThrow(DomainAccessError);
      expect(() => vm.khv.writeBytes(domainWindow(0) + 0x1000, new Uint8Array(4))).toThrow(DomainAccessError);
      expect(events.map((e) => e.source)).toEqual(['device', 'device']);
      expect(vm.domains.counters().blockedAccesses).toBe(2);
      vm.stop();
    });

    test.each([
      ['an unregistered gate', '  li t0, 3\n  dgate t0\n  li a0, 0\n', /gate 3 is not registered/],
      ['a return outside a domain', '  li t0, -1\n  dgate t0\n  li a0, 0\n', /return outside a domain/],
    ])('dgate to %s is a gate violation: SIGILL', (_what, body, detail) => {
      for (const fastGate of [false, true]) {
        const r = attacked(body, undefined, fastGate);
        expect(r.status).toMatchObject({ signal: 4, status: 132 });
        expect(r.events).toEqual([expect.objectContaining({ kind: 'gate-violation', source: 'guest-user', detail: expect.stringMatching(detail) })]);
      }
    });

    test('a VM without domains: dgate is a gate violation too (SIGILL), not a crash', () => {
      const vm = vmWith({ processes: [proc(program('  li t0, 0\n  dgate t0\n  li a0, 0\n'))] });
      vm.runToCompletion(1_000_000);
      expect(vm.state).toBe('stopped');
      expect(vm.processes()[0]).toMatchObject({ signal: 4 });
      expect(vm.counters().protectionDomains).toBeNull();
    });

    test('an exception inside a domain abandons the call: -EFAULT to the caller, which goes on; reported', () => {
      for (const fastGate of [false, true]) {
        const domain = { name: 'broken', elf: keystoreDomainElf(), entryPoints: ['_start'], memoryKiB: 64 };
        const vm = vmWith({ processes: [proc(program('  li t0, 0\n  dgate t0\n  neg a0, a0\n'))], domains: [domain], techniques: techniques(fastGate) });
        const events: DomainEvent[] = [];
        vm.onDomainEvent((e) => events.push(e));
        vm.runToCompletion(1_000_000);
        expect(vm.processes()[0]).toMatchObject({ status: 14 });
        expect(events).toEqual([expect.objectContaining({ kind: 'domain-fault', domain: 'broken', source: 'domain' })]);
        expect(vm.counters().protectionDomains).toMatchObject({ domainFaults: 1 });
      }
    });
  });

  test('bad domain specs are refused with a clear error and nothing allocated', () => {
    const host = HostMemory.create(32);
    const free = host.freeFrames;
    const bad: Array<[Partial<VmSpec>, RegExp]> = [
      [{ domains: [{ ...keystoreDomain(), entryPoints: ['nope'] }] }, /no entry symbol nope/],
      [{ domains: [{ ...keystoreDomain(), memoryKiB: 8 }] }, /memoryKiB must be/],
      [{ domains: [keystoreDomain(), keystoreDomain()] }, /two protection domains are named keystore/],
      [{ domains: [keystoreDomain()], vcpus: 2 }, /one vCPU/],
      [{ domains: [keystoreDomain()], techniques: resolveTechniques({ protectionDomains: { enabled: false } }) }, /technique protectionDomains is off/],
    ];
    for (const [spec, msg] of bad) {
      expect(() => vmWith({ processes: [proc(keystoreClientElf())], ...spec }, host)).toThrow(msg);
      expect(host.freeFrames).toBe(free);
    }
  });

  test.each(KEYSTORE_BINARIES.map((b) => [b.file, b.build] as const))('the committed workloads/bin/%s is what its source assembles to (npm run workloads)', (file, build) => {
    expect(Buffer.from(readFileSync(join(process.cwd(), 'workloads/bin', file))).equals(Buffer.from(build()))).toBe(true);
  });

  test('hvsim run|experiment --domain: the key-store pair from the command line, --stats with the counters, bad domains one line and status 2', () => {
    const cli = (args: string[]) => spawnSync(process.execPath, ['--import', 'tsx', join(process.cwd(), 'src/cli/main.ts'), ...args], { encoding: 'utf8' });
    const stats = join(tempDir(), 'stats.json');
    const run = cli(['run', 'workloads/bin/keystore-client.elf', '--domain', 'keystore', '--technique', 'protectionDomains.fastGate=off', '--stats', stats, '--', '5']);
    expect(run.status).toBe(0);
    expect(run.stdout).toMatch(/rounds 00000005\n/);
    expect(JSON.parse(readFileSync(stats, 'utf8')).protectionDomains).toMatchObject({ switches: { gate: 0, exit: (5 * 4 + 2) * 2 }, cyclesPerSwitch: 1400 });
    const custom = cli(['run', 'workloads/bin/keystore-client.elf', '--domain', 'ks=workloads/domains/keystore.s:ks_seal,ks_unseal,ks_sign:128', '--', '2']);
    expect(custom.status).toBe(0);
    const exp = cli(['experiment', 'workloads/bin/keystore-client.elf', '--domain', 'keystore', '--variant', 'exit:protectionDomains.fastGate=off', '--variant', 'gate:protectionDomains.fastGate=on', '--json', '--', '20']);
    expect(exp.status).toBe(0);
    const [exit, gate] = JSON.parse(exp.stdout).variants;
    expect(gate.diverged).toBe(false);
    expect(gate.counters.protectionDomains.switches.gate).toBe(exit.counters.protectionDomains.switches.exit);
    expect(gate.ratios.cycles).toBeLessThan(1);
    for (const args of [['--domain', 'x=workloads/bin/keystore-domain.elf:nope'], ['--domain', 'garbage'], ['--domain', 'keystore', '--vcpus', '2'], ['--domain', 'x=missing.elf:a']]) {
      const r = cli(['run', 'workloads/bin/keystore-client.elf', ...args]);
      expect(r.status).toBe(2);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
    }
  }, 120_000);
});
