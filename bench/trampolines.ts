/**
 * Techniques 2 and 4 against their baselines, in simulated cycles (deterministic: the same
 * numbers on every machine). Three workloads, each under three variants:
 *   none         spectreV2Mitigation none: both kernel indirect calls BTB-predicted
 *   retpoline    spectreV2Mitigation retpoline: both through the retpoline thunk
 *   trampolines  retpoline, with callTableInlining (4) and instanceCallInlining (2) on
 * and `recovered` = (retpoline - trampolines) / (retpoline - none), the share of the retpoline's
 * overhead the trampolines win back. Every variant must print the same bytes (checked).
 * Writes bench/results/trampolines.md.
 *
 * Usage: npm run bench:trampolines
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { HostMemory } from '../src/hypervisor/host-memory.js';
import { hostMiBFor } from '../src/runtime/run-program.js';
import { DEFAULT_SPEC, ProcessImage, Vm, VmCounters } from '../src/runtime/vm.js';
import { resolveTechniques } from '../src/techniques/catalogue.js';
import { pipeConsumer, pipeProducer, SKEWED_MIX, syscallMix } from '../src/testing/guest-programs.js';
import { builtinElf, WORKLOADS as BUILTINS } from '../src/runtime/workloads.js';
import { Ctr } from '../src/uarch/costs.js';

const root = join(import.meta.dirname ?? new URL('.', import.meta.url).pathname, '..');
const image = (name: string, elf: Uint8Array, over: Partial<ProcessImage> = {}): ProcessImage => ({ name, elf, argv: [name], env: [], stdin: new Uint8Array(), ...over });

const WORKLOADS: Array<{ name: string; about: string; processes: ProcessImage[] }> = [
  {
    name: 'file-writes', about: 'one process, 4,000 rounds of small reads and writes on /dev/zero (read, readv, write) and 1-byte writes to the console',
    processes: [image('files', syscallMix(4000, [['writeZero', 4], ['readZero', 3], ['readvZero', 2], ['writeErr', 1]]))],
  },
  { name: 'skewed-mix', about: 'one process, 1,000 rounds of 100 syscalls: 90 % getpid, write, read, gettid; 10 others once each', processes: [image('mix', syscallMix(1000, SKEWED_MIX))] },
  {
    name: 'pipeline', about: 'producer | consumer: 20,000 writes of 32 bytes into a pipe, read in 100-byte chunks (different hot targets per process)',
    processes: [image('producer', pipeProducer(20000), { stdoutPipe: 'p' }), image('consumer', pipeConsumer, { stdinPipe: 'p' })],
  },
];

const VARIANTS = [
  { name: 'none', mitigation: 'none' as const, techniques: resolveTechniques() },
  { name: 'retpoline', mitigation: 'retpoline' as const, techniques: resolveTechniques() },
  {
    name: 'trampolines', mitigation: 'retpoline' as const,
    techniques: resolveTechniques({ callTableInlining: { enabled: true }, instanceCallInlining: { enabled: true } }),
  },
];

/** A run's console bytes, counters and the taken branches (not in VmCounters: read from the harts). */
function run(processes: ProcessImage[], mitigation: 'none' | 'retpoline', techniques: ReturnType<typeof resolveTechniques>): { out: string; c: VmCounters; taken: number } {
  const vm = new Vm({ ...DEFAULT_SPEC, memoryMiB: 32, spectreV2Mitigation: mitigation, techniques, processes }, HostMemory.create(hostMiBFor(32)), 1);
  const out: string[] = [];
  vm.onConsole((port, b) => out.push(`${port}:${Buffer.from(b).toString('latin1')}`));
  if (vm.runToCompletion() !== 'stopped') throw new Error(`VM ended ${vm.state} (${vm.reason})`);
  return { out: out.join(''), c: vm.counters(), taken: vm.vcpus.reduce((n, v) => n + v.hart.ctr[Ctr.TakenBranches], 0) };
}

const rows: string[] = [];
const whereRows: string[] = [];
for (const w of WORKLOADS) {
  const r = VARIANTS.map((v) => run(w.processes, v.mitigation, v.techniques));
  if (r.some((x) => x.out !== r[0].out)) throw new Error(`${w.name}: a variant printed different bytes`);
  const [none, retp, tramp] = r.map((x) => x.c.cycles);
  const t4 = r[2].c.callTableInlining, t2 = r[2].c.instanceCallInlining;
  const rate = (h: number, all: number) => (all === 0 ? '-' : `${((100 * h) / all).toFixed(1)} %`);
  rows.push(`| ${w.name} | ${none} | ${retp} | ${tramp} | ${(retp / none).toFixed(3)} | ${(tramp / none).toFixed(3)} | ${((100 * (retp - tramp)) / (retp - none)).toFixed(1)} % | ${rate(t4.hits, t4.hits + t4.misses)} (${t4.regenerations}) | ${rate(t2.hits, t2.hits + t2.misses + t2.fallbacks)} (${t2.regenerations}) |`);
  process.stdout.write(`${rows[rows.length - 1]}\n`);
  // Where the cycles go, per syscall, against none: instructions, taken branches, mispredicts (18
  // cycles each), and the rest (crossings, TLB misses, gate work: they differ when the two
  // processes' schedule shifts with the cycles).
  const base = r[0], n = Object.values(base.c.syscalls).reduce((a, b) => a + b, 0);
  const per = (x: number) => (x / n).toFixed(2);
  for (const [i, name] of [[1, 'retpoline'], [2, 'trampolines']] as const) {
    const x = r[i];
    const t4s = x.c.callTableInlining, t2s = x.c.instanceCallInlining;
    const t4n = t4s.hits + t4s.misses, t2n = t2s.hits + t2s.misses;
    whereRows.push(`| ${w.name} | ${name} | ${per(x.c.cycles - base.c.cycles)} | ${per(x.c.instructions - base.c.instructions)} | ${per(x.taken - base.taken)} | ${per(18 * (x.c.branchMispredicts - base.c.branchMispredicts))} | ${per(x.c.cycles - base.c.cycles - (x.c.instructions - base.c.instructions) - (x.taken - base.taken) - 18 * (x.c.branchMispredicts - base.c.branchMispredicts))} | ${i === 2 ? (t4n ? (t4s.compares / t4n).toFixed(2) : '-') : ''} | ${i === 2 ? (t2n ? (t2s.compares / t2n).toFixed(2) : '-') : ''} | ${i === 2 ? `${t4s.misses} / ${t2s.misses + t2s.fallbacks}` : ''} |`);
  }
}

// Per-process against one shared trampoline (technique 2's `shared` baseline) on the pipeline, whose
// two processes have different hot targets (the pipe's write and read methods).
const pipeline = WORKLOADS.find((w) => w.name === 'pipeline')!.processes;
const sharedRows: string[] = [];
for (const maxTargets of [1, 2, 4]) {
  const [per, shared] = [false, true].map((sh) => run(pipeline, 'retpoline', resolveTechniques({ instanceCallInlining: { enabled: true, maxTargets, shared: sh } })));
  if (per.out !== shared.out) throw new Error('pipeline: shared and per-process trampolines printed different bytes');
  const rate = (c: VmCounters) => { const s = c.instanceCallInlining; return `${((100 * s.hits) / (s.hits + s.misses + s.fallbacks)).toFixed(1)} %`; };
  sharedRows.push(`| ${maxTargets} | ${per.c.cycles} | ${rate(per.c)} | ${shared.c.cycles} | ${rate(shared.c)} | ${(shared.c.cycles / per.c.cycles).toFixed(4)} |`);
  process.stdout.write(`${sharedRows[sharedRows.length - 1]}\n`);
}

// Technique 4's maxEntries on the skewed mix (14 distinct numbers and openat): numbers outside
// the trampoline go through the retpoline; with the shape chosen by modelled cycles, more entries
// never cost the hot numbers.
const skewed = WORKLOADS.find((w) => w.name === 'skewed-mix')!.processes;
const [skNone, skRetp] = (['none', 'retpoline'] as const).map((m) => run(skewed, m, resolveTechniques()).c.cycles);
const entryRows: string[] = [];
for (const maxEntries of [4, 8, 12, 16]) {
  const x = run(skewed, 'retpoline', resolveTechniques({ callTableInlining: { enabled: true, maxEntries }, instanceCallInlining: { enabled: true } }));
  const s = x.c.callTableInlining;
  entryRows.push(`| ${maxEntries} | ${x.c.cycles} | ${((100 * (skRetp - x.c.cycles)) / (skRetp - skNone)).toFixed(1)} % | ${((100 * s.hits) / (s.hits + s.misses)).toFixed(1)} % | ${s.regenerations} |`);
  process.stdout.write(`${entryRows[entryRows.length - 1]}\n`);
}

// The branch-target-injection attack (workload bti: btiattacker, then btivictim).
const bti = BUILTINS.find((x) => x.name === 'bti')!;
const btiProcs = bti.processes.map((q) => image(q.image, builtinElf(q.image)));
const attackRows = VARIANTS.map((v) => {
  const x = run(btiProcs, v.mitigation, v.techniques);
  return `| ${v.name} | ${x.c.speculativeGadgetReaches} | ${x.c.btbPredictedKernelCalls} | ${JSON.stringify(x.out.replace(/^\d:/gm, ''))} |`;
});
process.stdout.write(`${attackRows.join('\n')}\n`);

const md = `# Trampolines (techniques 2 and 4)

Generated by \`npm run bench:trampolines\` (bench/trampolines.ts). Simulated cycles of the whole
VM run (deterministic; the cost model of docs/cost-model.md), one vCPU, default parameters
(callTableInlining maxEntries 16, relearnInterval 256; instanceCallInlining maxTargets 4,
updateIntervalUs 100, learning on). Every variant printed the same bytes. Machine-independent:
the same numbers on every run.

${WORKLOADS.map((w) => `- **${w.name}**: ${w.about}`).join('\n')}

| workload | none | retpoline | trampolines | retpoline/none | trampolines/none | recovered | T4 hit rate (regenerations) | T2 hit rate (regenerations) |
|---|---:|---:|---:|---:|---:|---:|---:|---:|
${rows.join('\n')}

Where the cycles go: per syscall, the difference from \`none\` in cycles, instructions, taken
branches (one extra cycle each), mispredict cycles (18 each; negative: \`none\`'s BTB
mispredicted where the trampolines jump directly) and the rest (crossings, TLB misses and gate
work, which change when two processes' schedule shifts with the cycles); for the trampolines also the mean equality
tests a technique-4 pass ran (\`compares\` / passes), the mean target comparisons a technique-2
call ran, and the calls that went through the retpoline (technique 4 misses / technique 2 misses
and fallbacks).

| workload | variant | cycles | instructions | taken branches | mispredict cycles | rest | T4 tests/pass | T2 compares/call | retpoline fallbacks (T4 / T2) |
|---|---|---:|---:|---:|---:|---:|---:|---:|---:|
${whereRows.join('\n')}

Per-process trampolines against one shared trampoline (\`instanceCallInlining.shared\`: one
frequency table for every process) on the pipeline, under retpoline, technique 2 alone:

| maxTargets | per-process cycles | per-process hit rate | shared cycles | shared hit rate | shared/per-process |
|---:|---:|---:|---:|---:|---:|
${sharedRows.join('\n')}

Technique 4's \`maxEntries\` on the skewed mix (trampolines variant; the default is 16):

| maxEntries | cycles | recovered | T4 hit rate | regenerations |
|---:|---:|---:|---:|---:|
${entryRows.join('\n')}

The branch-target-injection attack (workload \`bti\`: btiattacker, then btivictim, one vCPU):

| variant | speculative gadget reaches | BTB-predicted kernel indirect calls | console |
|---|---:|---:|---|
${attackRows.join('\n')}
`;
writeFileSync(join(root, 'bench/results/trampolines.md'), md);
process.stdout.write('bench/results/trampolines.md\n');
