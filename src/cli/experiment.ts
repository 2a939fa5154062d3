/**
 * `hvsim experiment FILE --variant NAME:SETTINGS ... [--json]`: runs FILE on a fresh in-process VM
 * per variant and prints the comparison table against the first variant (a progress bar on
 * stderr while it runs when stderr is a terminal). SETTINGS is a comma list of NAME=on|off and
 * NAME.PARAM=VALUE (empty for a baseline: `--variant off:`), and `spectreV2=none|retpoline` for the
 * variant's own mitigation. Exit status 0, or 1 when a variant
 * diverged from the baseline.
 */
import { runProgram } from '../runtime/run-program.js';
import { compare, formatTable, validateVariants, Variant, VariantRun, variantSettings } from '../runtime/experiment.js';
import { CliError } from './cli-error.js';
import type { SpectreV2Mitigation } from '../guest/kernel-text.js';
import type { VmOptions } from './options.js';
import { loadProgram, parseDomains, parseTechniqueAssignments, prepareEngine, vmSpec } from './vm-options.js';
import { readStdin } from './run.js';

function progress(done: number, total: number, label: string): void {
  if (!process.stderr.isTTY) return;
  const width = 30;
  const filled = Math.round((done / total) * width);
  process.stderr.write(`\r[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${done}/${total} ${label.padEnd(20)}`);
  if (done === total) process.stderr.write('\n');
}

export interface ExperimentOptions extends VmOptions {
  variant: string[];
  repetitions?: number;
  json?: boolean;
}

/** `hvsim experiment FILE --variant ...`; resolves to the exit status. Raises: CliError. */
export async function runExperiment(file: string, guestArgs: string[], o: ExperimentOptions): Promise<number> {
  const variants: Variant[] = o.variant.map((v) => {
    const m = /^([^:]+):(.*)$/.exec(v);
    if (!m) throw new CliError(`experiment: --variant needs NAME:SETTINGS, got ${v}`);
    const items = m[2] ? m[2].split(',') : [];
    // spectreV2=none|retpoline: the variant's own mitigation (otherwise --spectre-v2's).
    const mitigation = items.filter((i) => i.startsWith('spectreV2=')).map((i) => i.slice('spectreV2='.length));
    if (mitigation.length > 1) throw new CliError(`experiment: variant ${m[1]} sets spectreV2 twice`);
    const techniques = parseTechniqueAssignments('experiment', items.filter((i) => !i.startsWith('spectreV2=')));
    return { name: m[1], techniques, ...(mitigation.length ? { spectreV2Mitigation: mitigation[0] as SpectreV2Mitigation } : {}) };
  });
  if (variants.length === 0) throw new CliError('experiment: give at least one --variant');
  try { validateVariants(variants); } catch (e) { throw new CliError(`experiment: ${(e as Error).message}`); }
  const repetitions = o.repetitions ?? 1;
  const elf = loadProgram('experiment', file);
  const spec = vmSpec(o);
  prepareEngine(spec.engine);
  const domains = parseDomains('experiment', o.domain ?? [], spec.vcpus);
  const stdin = readStdin();
  const total = variants.length * repetitions;
  const runs: VariantRun[][] = [];
  let done = 0;
  for (const v of variants) {
    const reps: VariantRun[] = [];
    for (let k = 0; k < repetitions; k++) {
      progress(done, total, v.name);
      const r = runProgram(elf, { ...spec, spectreV2Mitigation: v.spectreV2Mitigation ?? spec.spectreV2Mitigation, techniques: variantSettings(v), domains, argv: [file, ...guestArgs], stdin });
      reps.push({
        counters: r.counters, stdout: r.stdout, stderr: r.stderr, statuses: r.vm.processes().map((p) => p.status ?? -1),
        state: r.vm.state, reason: r.vm.reason, wallMs: r.wallMs,
      });
      progress(++done, total, v.name);
    }
    runs.push(reps);
  }
  const results = compare(variants, runs);
  process.stdout.write(o.json ? JSON.stringify({ variants: results }, null, 2) + '\n' : formatTable(results));
  return results.some((r) => r.diverged) ? 1 : 0;
}
