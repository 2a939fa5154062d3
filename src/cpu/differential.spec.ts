/**
 * hvsim against qemu-riscv32, through the real path (guest OS in VS mode, KHV, console device):
 * random straight-line programs and a corpus of C programs must print the same bytes and exit
 * with the same status, under every engine.
 */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { runProgram } from '../runtime/run-program.js';
import { describeWithTools } from '../testing/jest-tools.js';
import { gccBuild, qemuRun, referenceRuns, tempDir } from '../testing/toolchain.js';
import { samplePrograms } from '../testing/random-programs.js';

const CORPUS = join(process.cwd(), 'test/corpus');
const ENGINES = ['interp', 'jit', 'wasm'] as const;

describeWithTools(['as', 'ld', 'gcc', 'qemu'])('hart (every engine) vs qemu-riscv32', () => {
  test('200 random RV32IMAC programs dump identical registers, memory and status', async () => {
    const dir = tempDir();
    const programs = samplePrograms(200, 1234);
    // The reference tools (as, ld, qemu-riscv32) for every program first, four at a time.
    const refs = await referenceRuns(programs, dir);
    programs.forEach((src, i) => {
      const { elf, path, want } = refs[i];
      const results = ENGINES.map((engine) => runProgram(elf, { argv: [path], engine }));
      for (const [k, got] of results.entries()) {
        if (!got.stdout.equals(want.stdout) || got.status !== want.status) {
          throw new Error(`program ${i} differs under ${ENGINES[k]} (status ${got.status} vs ${want.status}):\n${src}`);
        }
      }
      for (const r of results.slice(1)) expect(r.counters).toEqual(results[0].counters);
    });
  }, 600_000); // 600 processes of the reference tools: minutes on a busy machine

  const sources = readdirSync(CORPUS).filter((f) => f.endsWith('.c')).sort();
  test('the corpus has at least 10 C programs', () => expect(sources.length).toBeGreaterThanOrEqual(10));

  test.each(sources)('%s prints the same bytes and exits the same', (file) => {
    const dir = tempDir();
    const out = join(dir, `${file}.elf`);
    const elf = gccBuild([join(CORPUS, file)], out);
    const argv = [out, 'alpha', 'beta'];
    const want = qemuRun(out, argv.slice(1), 'stdin line\n');
    const results = ENGINES.map((engine) => runProgram(elf, { argv, engine, stdin: Buffer.from('stdin line\n') }));
    for (const got of results) {
      expect(got.stdout.toString('latin1')).toBe(want.stdout.toString('latin1'));
      expect(got.stderr.toString('latin1')).toBe(want.stderr.toString('latin1'));
      expect(got.status).toBe(want.status);
    }
    // Cycle accounting is identical between the engines, counter for counter.
    for (const r of results.slice(1)) expect(r.counters).toEqual(results[0].counters);
  });
});

