/**
 * `hvsim experiment FILE --variant NAME:SETTINGS ... [--json]`: runs FILE on a fresh in-process VM
 * per variant and prints the comparison table against the first variant (a progress bar on
 * stderr while it runs when stderr is a terminal). SETTINGS is a comma list of NAME=on|off and
 * NAME.PARAM=VALUE (empty for a baseline: `--variant off:`). Exit status 0, or 1 when a variant
 * diverged from the baseline.
 */
import { runProgram } from '../runtime/run-program.js';
import { compare, formatTable, validateVariants, Variant, VariantRun, variantSettings } from '../runtime/experiment.js';
import { CliError, Command } from './cli-error.js';
import { DOMAIN_USAGE, intArg, loadProgram, parseDomains, parseTechniqueAssignments, parseVmOptions, VM_OPTIONS_USAGE } from './vm-options.js';
import { readStdin } from './run.js';

const USAGE = `hvsim experiment FILE --variant NAME:[TECHNIQUE=on|off|TECHNIQUE.PARAM=VALUE,...] ... ${VM_OPTIONS_USAGE} ${DOMAIN_USAGE} [--repetitions N] [--json] [-- ARGS...]`;

function progress(done: number, total: number, label: string): void {
  if (!process.stderr.isTTY) return;
  const width = 30;
  const filled = Math.round((done / total) * width);
  process.stderr.write(`\r[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${done}/${total} ${label.padEnd(20)}`);
  if (done === total) process.stderr.write('\n');
}

export const experimentCommand: Command = {
  name: 'experiment',
  summary: 'run a program once per technique variant and compare cycles, crossings, exits and output',
  usage: USAGE,
  async run(args) {
    const o = parseVmOptions('experiment', USAGE, args, ['--variant', '--repetitions', '--domain'], ['--json']);
    const variants: Variant[] = o.rest.filter(([k]) => k === '--variant').map(([, v]) => {
      const m = /^([^:]+):(.*)$/.exec(v!);
      if (!m) throw new CliError(`experiment: --variant needs NAME:SETTINGS, got ${v}`);
      return { name: m[1], techniques: parseTechniqueAssignments('experiment', m[2] ? m[2].split(',') : []) };
    });
    if (variants.length === 0) throw new CliError('experiment: give at least one --variant');
    try { validateVariants(variants); } catch (e) { throw new CliError(`experiment: ${(e as Error).message}`); }
    const repArg = o.rest.find(([k]) => k === '--repetitions')?.[1];
    const repetitions = repArg === undefined ? 1 : intArg('experiment', '--repetitions', repArg, 1, 100);
    const json = o.rest.some(([k]) => k === '--json');
    const domains = parseDomains('experiment', o.rest.filter(([k]) => k === '--domain').map(([, v]) => v!), o.spec.vcpus);
    const elf = loadProgram('experiment', o.file!);
    const stdin = readStdin();
    const total = variants.length * repetitions;
    const runs: VariantRun[][] = [];
    let done = 0;
    for (const v of variants) {
      const reps: VariantRun[] = [];
      for (let k = 0; k < repetitions; k++) {
        progress(done, total, v.name);
        const r = runProgram(elf, { ...o.spec, techniques: variantSettings(v), domains, argv: [o.file!, ...o.guestArgs], stdin });
        reps.push({
          counters: r.counters, stdout: r.stdout, stderr: r.stderr, statuses: r.vm.processes().map((p) => p.status ?? -1),
          state: r.vm.state, reason: r.vm.reason, wallMs: r.wallMs,
        });
        progress(++done, total, v.name);
      }
      runs.push(reps);
    }
    const results = compare(variants, runs);
    process.stdout.write(json ? JSON.stringify({ variants: results }, null, 2) + '\n' : formatTable(results));
    return results.some((r) => r.diverged) ? 1 : 0;
  },
};
