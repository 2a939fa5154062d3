/**
 * The real-program benchmark's programs (bench/real) against qemu-riscv32 at their test size
 * (SCALE=1): the same output and exit status under both engines, identical counters.
 */
import { readFileSync } from 'node:fs';
import { runProgram } from '../../src/runtime/run-program.js';
import { describeWithTools } from '../../src/testing/jest-tools.js';
import { qemuRun, tempDir } from '../../src/testing/toolchain.js';
import { REAL_PROGRAMS, buildReal, havePicolibc } from './build.js';

if (!havePicolibc() && process.env.CI === 'true') throw new Error('missing picolibc: apt-get install picolibc-riscv64-unknown-elf');
const describeReal = havePicolibc() ? describeWithTools(['gcc', 'qemu']) : describe.skip;

describeReal('real programs (picolibc) under both engines vs qemu-riscv32', () => {
  test.each(REAL_PROGRAMS.map((p) => p.name))('%s prints the same bytes and exits the same', (name) => {
    const dir = tempDir();
    const elf = buildReal(name, dir, 1, 300);
    const want = qemuRun(elf);
    expect(want.status).toBe(0);
    const bytes = new Uint8Array(readFileSync(elf));
    const results = (['interp', 'jit'] as const).map((engine) => runProgram(bytes, { argv: [elf], engine }));
    for (const got of results) {
      expect(got.stdout.toString('latin1')).toBe(want.stdout.toString('latin1'));
      expect(got.status).toBe(want.status);
    }
    expect(results[1].counters).toEqual(results[0].counters);
  }, 300_000);
});
