/**
 * Experiments: the same workload on a fresh VM per variant (technique settings), compared with
 * the first variant. Pure comparison logic plus the in-process runner `hvsim experiment` uses;
 * the service runs the same variants in worker threads (api/experiments.ts) and compares them with
 * the same `compare`.
 *
 * A variant whose console digest or exit statuses differ from the baseline is flagged `diverged`:
 * a technique must never change what a program computes.
 */
import { createHash } from 'node:crypto';
import { resolveTechniques, TechniqueSettings, validateTechniques } from '../techniques/catalogue.js';
import type { VmCounters } from './vm.js';
import { MITIGATIONS, type SpectreV2Mitigation } from '../guest/kernel-text.js';
import type { MigrationOutcome } from '../migration/source.js';

/**
 * One variant: its technique settings and, when given, the Spectre-v2 mitigation of its VM
 * (overriding the experiment's `vm.spectreV2Mitigation`), so that `none`, `retpoline` and
 * `retpoline` with trampolines compare in one experiment.
 */
export interface Variant { name: string; techniques: Record<string, unknown>; spectreV2Mitigation?: SpectreV2Mitigation }

/** What one run of one variant produced. */
export interface VariantRun {
  counters: VmCounters;
  stdout: Uint8Array;
  stderr: Uint8Array;
  /** Shell status of every process (128 + signal when killed); -1 if it never ended. */
  statuses: number[];
  state: string;
  reason: string | null;
  wallMs: number;
  /** When the experiment migrates the VM mid-run: the outcome, or why it failed. */
  migration?: MigrationOutcome | { failed: string };
}

export interface VariantResult {
  name: string;
  techniques: Record<string, unknown>;
  /** The variant's own mitigation, when it set one. */
  spectreV2Mitigation?: SpectreV2Mitigation;
  counters: VmCounters;
  consoleSha256: string;
  statuses: number[];
  state: string;
  reason: string | null;
  /** Median wall time over the repetitions. */
  wallMs: number;
  /** This variant / the first variant (1 for the baseline itself). */
  ratios: { cycles: number; crossings: number; exits: number; transitions: number; instructions: number };
  diverged: boolean;
  /** Migration statistics of every repetition (experiments that migrate). */
  migrations?: Array<MigrationOutcome | { failed: string }>;
}

/**
 * Checks variants: 1-16, unique names, a known mitigation if any, techniques valid in the catalogue.
 * Raises: TechniqueConfigError (400/501) or Error with a message naming the problem.
 */
export function validateVariants(variants: Variant[]): void {
  if (!Array.isArray(variants) || variants.length < 1 || variants.length > 16) throw new RangeError('an experiment needs 1-16 variants');
  const names = new Set<string>();
  for (const v of variants) {
    if (!v.name || names.has(v.name)) throw new RangeError(`variant names must be unique and non-empty (${JSON.stringify(v.name)})`);
    names.add(v.name);
    if (v.spectreV2Mitigation !== undefined && !MITIGATIONS.includes(v.spectreV2Mitigation)) {
      throw new RangeError(`variant ${v.name}: spectreV2Mitigation must be one of ${MITIGATIONS.join(', ')}, got ${JSON.stringify(v.spectreV2Mitigation)}`);
    }
    validateTechniques(v.techniques ?? {});
  }
}

/** The effective settings of a variant on top of the host defaults. */
export const variantSettings = (v: Variant, hostDefaults?: Record<string, unknown>): TechniqueSettings => resolveTechniques(hostDefaults, v.techniques);

const digest = (r: VariantRun) => createHash('sha256').update(r.stdout).update(Buffer.from([0])).update(r.stderr).digest('hex');
const totalExits = (c: VmCounters) => Object.values(c.exits).reduce((a, b) => a + b, 0);
const ratio = (a: number, b: number) => (b === 0 ? (a === 0 ? 1 : Infinity) : a / b);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** Compares each variant's runs (repetitions) with the first variant's. */
export function compare(variants: Variant[], runs: VariantRun[][]): VariantResult[] {
  const base = runs[0][0];
  const baseDigest = digest(base);
  return variants.map((v, i) => {
    const r = runs[i][0];
    const d = digest(r);
    return {
      name: v.name, techniques: v.techniques, ...(v.spectreV2Mitigation ? { spectreV2Mitigation: v.spectreV2Mitigation } : {}), counters: r.counters, consoleSha256: d, statuses: r.statuses, state: r.state, reason: r.reason,
      wallMs: median(runs[i].map((x) => x.wallMs)),
      ratios: {
        cycles: ratio(r.counters.cycles, base.counters.cycles), crossings: ratio(r.counters.crossings, base.counters.crossings),
        exits: ratio(totalExits(r.counters), totalExits(base.counters)), transitions: ratio(r.counters.transitions, base.counters.transitions),
        instructions: ratio(r.counters.instructions, base.counters.instructions),
      },
      diverged: d !== baseDigest || r.statuses.join() !== base.statuses.join() || r.state !== base.state,
      ...(r.migration ? { migrations: runs[i].map((x) => x.migration!) } : {}),
    };
  });
}

/** A fixed-width comparison table for terminals. */
export function formatTable(results: VariantResult[]): string {
  const f2 = (x: number) => (Number.isFinite(x) ? x.toFixed(3) : 'inf');
  const rows = [['variant', 'instructions', 'cycles', 'crossings', 'exits', 'transitions', 'cycles x', 'crossings x', 'exits x', 'transitions x', 'status', 'console', 'wall ms']];
  for (const r of results) {
    rows.push([r.name, String(r.counters.instructions), String(r.counters.cycles), String(r.counters.crossings), String(totalExits(r.counters)), String(r.counters.transitions),
      f2(r.ratios.cycles), f2(r.ratios.crossings), f2(r.ratios.exits), f2(r.ratios.transitions), r.statuses.join(','), r.diverged ? 'DIVERGED' : r.consoleSha256.slice(0, 12), r.wallMs.toFixed(1)]);
  }
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  return rows.map((r) => r.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]) : cell.padStart(widths[c]))).join('  ')).join('\n') + '\n';
}
