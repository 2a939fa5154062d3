import { spawnSync } from 'node:child_process';
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describeWithTools } from '../testing/jest-tools.js';
import { gccBuild, qemuRun, tempDir, TOOLS } from '../testing/toolchain.js';

const cli = (args: string[], input = '') => {
  const r = spawnSync(process.execPath, ['--import', 'tsx', join(process.cwd(), 'src/cli/main.ts'), ...args], { encoding: 'utf8', input });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
};

/** Instruction lines of an objdump -d listing: address, bytes and text, without annotations. */
const insns = (listing: string) => listing.split('\n').filter((l) => /^\s+[0-9a-f]+:\t/.test(l))
  .map((l) => l.replace(/\s+#.*$/, '').replace(/\s*<[^>]*>/g, '').replace(/\s+/g, ' ').trim());

describe('hvsim CLI', () => {
  test('--help lists the commands; no command is exit status 2', () => {
    expect(cli(['--help']).stdout).toMatch(/asm .*\n.*hvsim asm FILE\.s -o FILE\.elf/);
    expect(cli([]).status).toBe(2);
  });

  test('unknown commands and bad files give one line and exit status 2', () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'junk.elf'), 'not an elf at all, really');
    for (const args of [['frobnicate'], ['disasm', join(dir, 'junk.elf')], ['disasm', join(dir, 'missing.elf')], ['asm', 'x.s'],
      ['run', join(dir, 'junk.elf')], ['run', join(dir, 'missing.elf')], ['run'], ['run', '--vcpus', '99', 'x.elf'],
      ['run', '--technique', 'warp=on', 'x.elf'], ['run', '--engine', 'fast', 'x.elf'], ['run', '--technique', 'syscallLookahead.window=9999', 'x.elf']]) {
      const r = cli(args);
      expect(r.status).toBe(2);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
    }
  });

  test('asm reports every bad line as file:line:column and exits 2', () => {
    const dir = tempDir();
    const f = join(dir, 'bad.s');
    writeFileSync(f, '_start:\n  add a0, a1\n  li a0, zz\n');
    const r = cli(['asm', f, '-o', join(dir, 'bad.elf')]);
    expect(r.status).toBe(2);
    expect(r.stderr.trim().split('\n')).toEqual([
      expect.stringMatching(new RegExp(`^${f.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}:2:3: error: `)),
      expect.stringMatching(/:3:\d+: error: /),
    ]);
  });
});

describe('hvsim run', () => {
  test('runs an assembly file: output, exit status, --stats JSON and guest arguments after --', () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'echo.s'), `
      .globl _start
      .text
    _start:
      lw t0, 0(sp)        # argc
      lw a1, 8(sp)        # argv[1]
      mv a2, zero
    1: add t1, a1, a2
      lbu t1, 0(t1)
      beqz t1, 2f
      addi a2, a2, 1
      j 1b
    2: li a0, 2
      li a7, 64
      ecall
      mv a0, t0
      li a7, 93
      ecall
    `);
    const stats = join(dir, 'stats.json');
    const r = cli(['run', join(dir, 'echo.s'), '--stats', stats, '--', 'hello-arg', 'x']);
    expect(r.stderr).toBe('hello-arg');
    expect(r.status).toBe(3);
    const s = JSON.parse(readFileSync(stats, 'utf8'));
    expect(Object.keys(s)).toEqual(expect.arrayContaining(['instructions', 'cycles', 'crossings', 'exits', 'syscalls', 'tlbMisses', 'branchMispredicts', 'wallMs']));
    expect(s.syscalls).toEqual({ exit: 1, write: 1 });
    expect(s.crossings).toBe(4);
  });
});

describeWithTools(['gcc', 'objdump', 'qemu'])('hvsim CLI against the reference tools', () => {
  test.each(['segv.c', 'stdin.c', 'args.c'])('hvsim run %s behaves as qemu-riscv32 (stdout, stderr, status; stdin piped)', (file) => {
    const dir = tempDir();
    const elf = join(dir, 'p.elf');
    gccBuild([join(process.cwd(), 'test/corpus', file)], elf);
    const want = qemuRun(elf, ['one', 'two'], 'piped input\n');
    const got = cli(['run', elf, '--', 'one', 'two'], 'piped input\n');
    expect(got.stdout).toBe(want.stdout.toString());
    expect(got.stderr).toBe(want.stderr.toString());
    expect(got.status).toBe(want.status);
  });

  test('hvsim asm writes an ELF that qemu-riscv32 runs', () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'hello.s'), `
      .globl _start
      .text
    _start:
      li a0, 1
      la a1, msg
      li a2, 13
      li a7, 64
      ecall
      li a0, 42
      li a7, 93
      ecall
      .rodata
    msg: .ascii "hello, world\\n"
    `);
    expect(cli(['asm', join(dir, 'hello.s'), '-o', join(dir, 'hello.elf')]).status).toBe(0);
    const r = qemuRun(join(dir, 'hello.elf'));
    expect(r.stdout.toString()).toBe('hello, world\n');
    expect(r.status).toBe(42);
  });

  test.each(['qsort.c', 'div64.c', 'dispatch.c'])('hvsim disasm of gcc-built %s matches objdump -d instruction for instruction', (file) => {
    const dir = tempDir();
    const elf = join(dir, 'p.elf');
    gccBuild([join(process.cwd(), 'test/corpus', file)], elf);
    const ours = cli(['disasm', elf]);
    expect(ours.status).toBe(0);
    const theirs = execFileSync(TOOLS.objdump.bin, ['-d', elf]).toString();
    expect(insns(ours.stdout)).toEqual(insns(theirs));
    expect(insns(theirs).length).toBeGreaterThan(100);
  });
});

describe('hvsim experiment', () => {
  test('compares variants of a built-in workload: fewer crossings with syscall lookahead, same console; --json', () => {
    const file = join(process.cwd(), 'workloads/bin/syscalls.elf');
    const table = cli(['experiment', file, '--variant', 'off:', '--variant', 'on:syscallLookahead=on', '--', '200']);
    expect(table.status).toBe(0);
    expect(table.stdout.split('\n')[0]).toMatch(/^variant\s+instructions\s+cycles\s+crossings/);
    const json = JSON.parse(cli(['experiment', file, '--json', '--variant', 'off:', '--variant', 'on:syscallLookahead=on,syscallLookahead.window=16', '--', '200']).stdout);
    const [off, on] = json.variants;
    expect(on.consoleSha256).toBe(off.consoleSha256);
    expect(on.diverged).toBe(false);
    expect(on.ratios.crossings).toBeLessThan(1);
    expect(on.counters.syscallLookahead.syscallsMerged).toBeGreaterThan(0);
  });

  test('map parameters by key (technique 5): routed and granted per key, same console; a bad key is status 2 naming it', () => {
    const file = join(process.cwd(), 'workloads/bin/console.elf');
    const json = JSON.parse(cli(['experiment', file, '--json', '--variant', 'off:', '--variant', 'mixed:uhvDirectTransitions=on,uhvDirectTransitions.exitRouting.mmio.console=khv,uhvDirectTransitions.fieldAccess.guestRegs=', '--', '20']).stdout);
    const [off, mixed] = json.variants;
    expect(mixed.consoleSha256).toBe(off.consoleSha256);
    expect(mixed.techniques.uhvDirectTransitions.exitRouting).toEqual({ 'mmio.console': 'khv' });
    expect(mixed.counters.uhv.transitionsByEdge['guest->uhv']).toBeGreaterThan(0);
    expect(mixed.counters.uhv.fieldAccesses.mediated).toBeGreaterThan(0);
    const bad = cli(['experiment', file, '--variant', 'a:uhvDirectTransitions.exitRouting.mmio.disk=uhv']);
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/techniques\.uhvDirectTransitions\.exitRouting\.mmio\.disk/);
  }, 60_000);

  test('bad variants are one line and status 2; a not-implemented technique says so', () => {
    for (const args of [['--variant', 'x'], ['--variant', 'a:warp=on'], ['--variant', 'a:syscallLookahead.window=0'], ['--variant', 'a:', '--variant', 'a:'], ['--variant', 'a:protectionDomains=on']]) {
      const r = cli(['experiment', join(process.cwd(), 'workloads/bin/hello.elf'), ...args]);
      expect(r.status).toBe(2);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
    }
    expect(cli(['experiment', join(process.cwd(), 'workloads/bin/hello.elf'), '--variant', 'a:protectionDomains=on']).stderr).toMatch(/not implemented/);
  });
});
