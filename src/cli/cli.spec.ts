import { spawn, spawnSync } from 'node:child_process';
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describeWithTools } from '../testing/jest-tools.js';
import { main } from './main.js';
import { gccBuild, qemuRun, tempDir, TOOLS } from '../testing/toolchain.js';

/** Every test here spawns hvsim processes: generous, for a busy machine. */
const SLOW = 180_000;

const cli = (args: string[], input = '') => {
  const r = spawnSync(process.execPath, ['--import', 'tsx', join(process.cwd(), 'src/cli/main.ts'), ...args], { encoding: 'utf8', input, timeout: SLOW });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
};

/** hvsim's main() in this process, for usage errors (no process to spawn); stderr captured. */
const inProcess = async (args: string[]) => {
  let stdout = '';
  let stderr = '';
  const saved = process.exitCode;
  try {
    const status = await main(args, { out: (s) => { stdout += s; }, err: (s) => { stderr += s; } });
    return { status, stdout, stderr };
  } finally { process.exitCode = saved; }
};

/** Instruction lines of an objdump -d listing: address, bytes and text, without annotations. */
const insns = (listing: string) => listing.split('\n').filter((l) => /^\s+[0-9a-f]+:\t/.test(l))
  .map((l) => l.replace(/\s+#.*$/, '').replace(/\s*<[^>]*>/g, '').replace(/\s+/g, ' ').trim());

describe('hvsim CLI', () => {
  test('--help lists the commands; every command has --help; --version; no command is exit status 2', async () => {
    const help = await inProcess(['--help']);
    expect(help.status).toBe(0);
    for (const c of ['run', 'experiment', 'asm', 'disasm', 'serve']) expect(help.stdout).toMatch(new RegExp(`^  ${c} `, 'm'));
    expect(help.stdout).not.toMatch(/bench/);
    for (const c of ['run', 'experiment', 'asm', 'disasm', 'serve']) {
      const r = await inProcess([c, '--help']);
      expect(r.status).toBe(0);
      expect(r.stdout).toMatch(new RegExp(`^Usage: hvsim ${c} `, 'm'));
    }
    expect((await inProcess(['help', 'run'])).stdout).toMatch(/^Usage: hvsim run /m);
    const v = cli(['--version']);
    expect(v.status).toBe(0);
    expect(v.stdout.trim()).toBe(JSON.parse(readFileSync(join(process.cwd(), 'package.json'), 'utf8')).version);
    expect((await inProcess([])).status).toBe(2);
    expect(cli(['--help']).stdout).toMatch(/^Usage: hvsim /); // and the installed entry point
  }, SLOW);

  test('--stats to an unwritable path is one line and status 2 before the program runs', () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'hello.s'), '.globl _start\n_start:\n li a0, 1\n la a1, m\n li a2, 3\n li a7, 64\n ecall\n li a0, 0\n li a7, 93\n ecall\nm: .ascii "hi\\n"\n');
    for (const stats of [join(dir, 'missing-dir', 's.json'), dir]) {
      const r = cli(['run', join(dir, 'hello.s'), '--stats', stats]);
      expect(r.status).toBe(2);
      expect(r.stdout).toBe('');
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr).toMatch(/--stats/);
    }
  }, SLOW);

  test('asm reports an undefined symbol once per use and provides __global_pointer$ as GNU ld does', () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'u.s'), '.globl _start\n_start:\n call nothere\n la a0, nothere\n li a7, 93\n ecall\n');
    const u = cli(['asm', join(dir, 'u.s'), '-o', join(dir, 'u.elf')]);
    expect(u.status).toBe(2);
    expect(u.stderr.trim().split('\n')).toEqual([expect.stringMatching(/:3:\d+: error: undefined symbol 'nothere'$/), expect.stringMatching(/:4:\d+: error: undefined symbol 'nothere'$/)]);
    // ld: __global_pointer$ = MIN(__SDATA_BEGIN__ + 0x800, MAX(__DATA_BEGIN__ + 0x800, __BSS_END__ - 0x800)): data start + 0x800 here.
    writeFileSync(join(dir, 'gp.s'), '.data\nd: .word 1\n.text\n.globl _start\n_start:\n la gp, __global_pointer$\n la t0, d\n sub a0, gp, t0\n srli a0, a0, 4\n li a7, 93\n ecall\n');
    expect(cli(['asm', join(dir, 'gp.s'), '-o', join(dir, 'gp.elf')]).status).toBe(0);
    expect(cli(['run', join(dir, 'gp.elf')]).status).toBe(0x800 >> 4);
  }, SLOW);

  test('unknown commands and bad files give one line and exit status 2', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'junk.elf'), 'not an elf at all, really');
    for (const args of [['frobnicate'], ['disasm', join(dir, 'junk.elf')], ['disasm', join(dir, 'missing.elf')], ['asm', 'x.s'],
      ['run', join(dir, 'junk.elf')], ['run', join(dir, 'missing.elf')], ['run'], ['run', '--vcpus', '99', 'x.elf'],
      ['run', '--technique', 'warp=on', 'x.elf'], ['run', '--engine', 'fast', 'x.elf'], ['run', '--technique', 'syscallLookahead.window=9999', 'x.elf'],
      ['rn', 'x.elf'], ['run', '--frobnicate', 'x.elf'], ['asm', '-o'], ['disasm'], ['serve', 'extra'], ['experiment', 'x.elf', '--repetitions', 'many']]) {
      const r = await inProcess(args);
      expect(r.status).toBe(2);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
    }
  }, SLOW);

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
  }, SLOW);
});

/** Files reachable from `file` through static imports (dynamic `await import` is what loads lazily), and the packages they import. */
function staticGraph(file: string, seen = new Set<string>(), packages = new Set<string>()): { files: Set<string>; packages: Set<string> } {
  if (seen.has(file)) return { files: seen, packages };
  seen.add(file);
  const text = readFileSync(file, 'utf8');
  for (const m of text.matchAll(/^(?:import|export)\s(?!type\s)[^'"]*?from\s+['"]([^'"]+)['"]|^import\s+['"]([^'"]+)['"]/gm)) {
    const spec = m[1] ?? m[2];
    if (spec.startsWith('.')) staticGraph(join(dirname(file), spec.replace(/\.js$/, '.ts')), seen, packages);
    else packages.add(spec);
  }
  return { files: seen, packages };
}

describe('what the local commands load', () => {
  test('hvsim and each local command load no NestJS, TypeORM, pg or PGlite (only serve does)', () => {
    const service = /^(@nestjs\/|typeorm|pg$|@electric-sql\/|express|socket\.io|pino)/;
    for (const f of ['main.ts', 'run.ts', 'experiment.ts', 'asm.ts', 'disasm.ts']) {
      const { packages } = staticGraph(join(process.cwd(), 'src/cli', f));
      expect({ f, service: [...packages].filter((p) => service.test(p)) }).toEqual({ f, service: [] });
    }
    // The command table itself loads no emulator either: that is what keeps --help and --version fast.
    expect([...staticGraph(join(process.cwd(), 'src/cli/main.ts')).files].map((f) => f.replace(/.*\/src\//, '')).sort())
      .toEqual(['cli/cli-error.ts', 'cli/completion.ts', 'cli/local.ts', 'cli/main.ts', 'cli/options.ts']);
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
    let s = JSON.parse(readFileSync(stats, 'utf8'));
    expect(Object.keys(s)).toEqual(expect.arrayContaining(['instructions', 'cycles', 'crossings', 'exits', 'syscalls', 'tlbMisses', 'branchMispredicts', 'wallMs']));
    expect(s.syscalls).toEqual({ exit: 1, write: 1 });
    expect(s.crossings).toBe(4);
    expect(s.engine).toBe('wasm'); // the CLI's default
    expect(s.jit).toBeNull();
    expect(s.wasm.runInsns).toBe(0); // this short program runs cold, in the interpreter
    // The jit's counts and per-tier costs, with --engine jit: cold here too.
    expect(cli(['run', join(dir, 'echo.s'), '--engine', 'jit', '--stats', stats, '--', 'hello-arg', 'x']).status).toBe(3);
    s = JSON.parse(readFileSync(stats, 'utf8'));
    expect(s.engine).toBe('jit');
    expect(s.wasm).toBeNull();
    expect(Object.keys(s.jit)).toEqual(expect.arrayContaining(['translations', 'traces', 'regions', 'cold', 'translateMs', 'compileMs', 'sourceBytes', 'firstCallMs']));
    expect(s.jit.cold).toBeGreaterThan(0);
    expect(s.jit.translations).toBe(0);
  }, SLOW);
});

const CAT = `.globl _start
.text
_start:
1: li a0, 0
  la a1, buf
  li a2, 64
  li a7, 63           # read(0, buf, 64)
  ecall
  blez a0, 2f
  mv a2, a0
  li a0, 1
  la a1, buf
  li a7, 64           # write(1, buf, n)
  ecall
  j 1b
2: li a0, 5
  li a7, 93
  ecall
.bss
buf: .space 64
`;

/** hvsim as a child process whose stdin the test writes while it runs. */
function cliLive(args: string[]) {
  const child = spawn(process.execPath, ['--import', 'tsx', join(process.cwd(), 'src/cli/main.ts'), ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  child.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
  child.stdin.on('error', () => { /* the guest exited before reading everything: EPIPE */ });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, stdout: () => stdout, exited };
}

const waitFor = async (what: string, f: () => boolean, ms = SLOW / 2) => {
  const end = Date.now() + ms;
  while (!f()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
};

describe('hvsim run streams stdin to the guest', () => {
  test('`yes | hvsim run hello.elf` ends when the guest exits (stdin is not read to the end first)', async () => {
    const r = cliLive(['run', join(process.cwd(), 'workloads/bin/hello.elf')]);
    let exited = false;
    void r.exited.then(() => { exited = true; });
    const chunk = 'y\n'.repeat(4096);
    while (!exited) {
      if (!r.child.stdin.write(chunk)) await new Promise((res) => { r.child.stdin.once('drain', res); setTimeout(res, 50); });
    }
    expect(await r.exited).toBe(0);
    expect(r.stdout()).toBe('Hello from hvsim!\n');
  }, SLOW);

  test('the guest blocks in read until data arrives, sees it as it arrives, and reads 0 at EOF', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'cat.s'), CAT);
    const r = cliLive(['run', join(dir, 'cat.s')]);
    r.child.stdin.write('one\n');
    await waitFor('the first line echoed while stdin is still open', () => r.stdout() === 'one\n');
    r.child.stdin.end('two\n');
    expect(await r.exited).toBe(5);
    expect(r.stdout()).toBe('one\ntwo\n');
  }, SLOW);

  test('stdin from a file: same output and the same counters on every run', () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'cat.s'), CAT);
    const input = Array.from({ length: 300 }, (_, i) => `line ${i} ${'x'.repeat(i % 97)}`).join('\n');
    writeFileSync(join(dir, 'in.txt'), input);
    const runs = [1, 2].map((k) => {
      const stats = join(dir, `s${k}.json`);
      const r = spawnSync('sh', ['-c', `"${process.execPath}" --import tsx "${join(process.cwd(), 'src/cli/main.ts')}" run "${join(dir, 'cat.s')}" --stats "${stats}" < "${join(dir, 'in.txt')}"`], { encoding: 'utf8', timeout: SLOW });
      const s = JSON.parse(readFileSync(stats, 'utf8'));
      return { status: r.status, stdout: r.stdout, instructions: s.instructions, cycles: s.cycles, syscalls: s.syscalls };
    });
    expect(runs[0].stdout).toBe(input);
    expect(runs[0].status).toBe(5);
    expect(runs[1]).toEqual(runs[0]);
  }, SLOW);

  test('--engine wasm runs a hot loop with the interpreter\'s status and counters', () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'loop.s'), [
      '.globl _start', '_start:', 'li t0, 0', 'li t1, 20000',
      'loop:', 'add t0, t0, t1', 'mul t2, t0, t1', 'xor t0, t0, t2', 'addi t1, t1, -1', 'bnez t1, loop',
      'andi a0, t0, 63', 'li a7, 93', 'ecall', '',
    ].join('\n'));
    const [interp, wasm] = ['interp', 'wasm'].map((engine) => {
      const stats = join(dir, `${engine}.json`);
      const r = cli(['run', join(dir, 'loop.s'), '--engine', engine, '--stats', stats]);
      const { wallMs: _, engine: _e, jit: _j, wasm: _w, ...counters } = JSON.parse(readFileSync(stats, 'utf8'));
      return { status: r.status, stderr: r.stderr, counters };
    });
    expect(interp.counters.instructions).toBeGreaterThan(100_000);
    expect(wasm).toEqual(interp);
  }, SLOW);
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
  }, SLOW);

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
  }, SLOW);

  test.each(['qsort.c', 'div64.c', 'dispatch.c'])('hvsim disasm of gcc-built %s matches objdump -d instruction for instruction', (file) => {
    const dir = tempDir();
    const elf = join(dir, 'p.elf');
    gccBuild([join(process.cwd(), 'test/corpus', file)], elf);
    const ours = cli(['disasm', elf]);
    expect(ours.status).toBe(0);
    const theirs = execFileSync(TOOLS.objdump.bin, ['-d', elf]).toString();
    expect(insns(ours.stdout)).toEqual(insns(theirs));
    expect(insns(theirs).length).toBeGreaterThan(100);
  }, SLOW);
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
  }, SLOW);

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
  }, 300_000);

  test('--disk gives the VM an empty disk per option: the block workload through /dev/vda, off and on technique 5; a bad size is status 2', () => {
    const file = join(process.cwd(), 'workloads/bin/blockio.elf');
    const json = JSON.parse(cli(['experiment', file, '--disk', '1', '--json', '--variant', 'off:', '--variant', 'on:uhvDirectTransitions=on', '--', '1']).stdout);
    const [off, on] = json.variants;
    expect(on.consoleSha256).toBe(off.consoleSha256);
    expect(off.statuses).toEqual([0]);
    expect(off.counters.uhv.block[0]).toMatchObject({ bytesWritten: 1 << 20, bytesRead: 1 << 20, errors: 0 });
    expect(on.counters.uhv.transitionsByEdge['guest->uhv']).toBeGreaterThan(0);
    const run = cli(['run', file, '--disk', '1', '--', '1']);
    expect(run.stdout).toBe('written 00100000\nread 00100000\nchecksum 8c9e0000\nmismatches 00000000\n');
    expect(cli(['run', file]).stdout).toBe('failed\n');
    const bad = cli(['run', file, '--disk', '0']);
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/--disk needs an integer from 1 to 1024/);
  }, 300_000);

  test('variants of their own mitigation (techniques 2 and 4): the trampolines recover >= 80 % of the retpoline overhead on the skewed mix', () => {
    const file = join(process.cwd(), 'workloads/bin/skewedmix.elf');
    const json = JSON.parse(cli(['experiment', file, '--json', '--variant', 'none:spectreV2=none', '--variant', 'retpoline:spectreV2=retpoline',
      '--variant', 'trampolines:spectreV2=retpoline,callTableInlining=on,instanceCallInlining=on']).stdout);
    const [none, retp, tramp] = json.variants;
    expect(json.variants.map((v: { spectreV2Mitigation: string }) => v.spectreV2Mitigation)).toEqual(['none', 'retpoline', 'retpoline']);
    expect(json.variants.some((v: { diverged: boolean }) => v.diverged)).toBe(false);
    expect(retp.counters.cycles).toBeGreaterThan(none.counters.cycles);
    expect((retp.counters.cycles - tramp.counters.cycles) / (retp.counters.cycles - none.counters.cycles)).toBeGreaterThanOrEqual(0.8);
    const t4 = tramp.counters.callTableInlining;
    expect(t4.hits / (t4.hits + t4.misses)).toBeGreaterThanOrEqual(0.9);
  }, 300_000);

  test('bad variants are one line and status 2', async () => {
    for (const args of [['--variant', 'x'], ['--variant', 'a:warp=on'], ['--variant', 'a:spectreV2=ibrs'], ['--variant', 'a:spectreV2=none,spectreV2=retpoline'], ['--variant', 'a:syscallLookahead.window=0'], ['--variant', 'a:', '--variant', 'a:']]) {
      const r = await inProcess(['experiment', join(process.cwd(), 'workloads/bin/hello.elf'), ...args]);
      expect(r.status).toBe(2);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
    }
  }, SLOW);
});

describe('hvsim run when its stdout reader goes away', () => {
  const YES = `.globl _start
_start:
  li a0, 1
  la a1, line
  li a2, 2
  li a7, 64
  ecall
  j _start
.data
line: .ascii "y\\n"
`;
  test('a guest writing to a closed pipe ends as killed by SIGPIPE (status 141, as under qemu-riscv32), with nothing on stderr', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'yes.s'), YES);
    const child = spawn(process.execPath, ['--import', 'tsx', join(process.cwd(), 'src/cli/main.ts'), 'run', join(dir, 'yes.s')], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    await new Promise((resolve) => child.stdout.once('data', resolve));
    child.stdout.destroy();
    expect(await exited).toBe(141);
    expect(stderr).toBe('');
  }, SLOW);
});
