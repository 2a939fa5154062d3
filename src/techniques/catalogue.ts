/**
 * The technique catalogue as data (DESIGN.md section 5): name, the patent it implements, what it
 * changes, its parameters (type, default, range), the counters it adds, whether it can change on
 * a running VM (and when that takes effect), and its support level. The REST API serves it,
 * validation and resolution use it, and docs/techniques/README.md is generated from it.
 *
 * Configuration: hosts hold defaults, VMs override them, per technique and parameter:
 *   techniques: {syscallLookahead: {enabled: true, window: 32}, ...}
 */
export type ParamType = 'boolean' | 'integer';

export interface TechniqueParam {
  readonly name: string;
  readonly type: ParamType;
  readonly default: boolean | number;
  readonly min?: number;
  readonly max?: number;
  readonly description: string;
}

export type TechniqueSupport = 'implemented' | 'not-implemented';

export interface Technique {
  readonly name: string;
  readonly number: number;
  readonly patent: string;
  readonly title: string;
  readonly description: string;
  /** What turning it on changes in the simulated machine. */
  readonly changes: string;
  /** Parameters besides `enabled` (which every technique has). */
  readonly params: readonly TechniqueParam[];
  readonly enabledByDefault: boolean;
  readonly counters: readonly string[];
  /** May change on a running VM; then `appliesAt` says when the change takes effect. */
  readonly live: boolean;
  readonly appliesAt?: string;
  readonly support: TechniqueSupport;
}

const planned = (number: number, name: string, patent: string, title: string, description: string, changes: string): Technique => ({
  name, number, patent, title, description, changes, params: [], enabledByDefault: false, counters: [], live: false, support: 'not-implemented',
});

export const TECHNIQUES: readonly Technique[] = [
  {
    name: 'umeAwareMigration', number: 1, patent: 'US20210216394A1', title: 'Live migration that survives uncorrectable memory errors',
    description: 'Pre-copy migration that sends known-poisoned pages as error metadata and reads the others with an exception-safe copy; a latent error found by the copy is recorded and sent as metadata too. The destination marks those guest pages corrupted, so the first guest access raises a virtual memory error there (the owning process gets SIGBUS). Off, a VM with known poisoned pages is refused (409) and a latent error read by the copy panics the source host.',
    changes: 'the migration stream (ERROR_META records instead of RAM pages) and the destination\'s handling of corrupted guest pages',
    params: [],
    enabledByDefault: true,
    counters: ['migration stats.errorPages', 'vm.memory-failure events with foundBy migration-copy'],
    live: true, appliesAt: 'the next migration', support: 'implemented',
  },
  {
    name: 'instanceCallInlining', number: 2, patent: 'US11016767B2', title: 'Target-injection-safe inlining of instance-dependent indirect calls',
    description: 'The guest kernel\'s file method call (whose target depends on what the calling process\'s fd refers to) becomes a direct call to a first trampoline at one fixed kernel address that every process maps to a page of its own; it jumps directly to that process\'s second trampoline, which compares the target with the process\'s learned targets and jumps to a match directly (inline) or falls back to the retpoline (outline). Each process has a frequency table; in learning mode its trampoline is regenerated every updateIntervalUs of virtual time when its top targets changed.',
    changes: 'the guest kernel text\'s file method call (a direct call to per-process trampolines; no BTB prediction on learned targets) and one supervisor-only page per process below the kernel megapage',
    params: [
      { name: 'learning', type: 'boolean', default: true, description: 'count targets and regenerate (learning-and-update); off: use the trampolines as they are' },
      { name: 'fallbackOnly', type: 'boolean', default: false, description: 'fallback mode: every call through the outline trampoline (the retpoline)' },
      { name: 'shared', type: 'boolean', default: false, description: 'baseline: one frequency table for all processes, whose top targets every process\'s trampoline gets' },
      { name: 'maxTargets', type: 'integer', default: 4, min: 1, max: 16, description: 'targets a process\'s inline trampoline compares with' },
      { name: 'updateIntervalUs', type: 'integer', default: 100, min: 1, max: 10_000_000, description: 'virtual time between a process\'s regenerations' },
    ],
    enabledByDefault: false,
    counters: ['hits', 'misses', 'fallbacks', 'regenerations', 'postponed', 'perProcess.PID.{hits,misses,fallbacks,regenerations,targets}'],
    live: true, appliesAt: 'the next file read or write', support: 'implemented',
  },
  {
    name: 'syscallLookahead', number: 3, patent: 'US20240028336A1', title: 'Fewer privilege crossings for system calls',
    description: 'After a syscall, the guest kernel fetches and decodes the user instructions that follow the ecall; when another ecall follows within the window and everything before it can be emulated safely, the kernel emulates those instructions, handles the next syscall too, and only then returns to user mode.',
    changes: 'the guest kernel\'s syscall return path: merged syscalls save two crossings each; the scan and emulation are charged per instruction (COSTS.lookahead)',
    params: [
      { name: 'window', type: 'integer', default: 32, min: 1, max: 1024, description: 'instructions scanned after an ecall for the next one' },
      { name: 'allowForwardBranches', type: 'boolean', default: true, description: 'conditional branches forward inside the window are viable' },
      { name: 'maxChain', type: 'integer', default: 64, min: 1, max: 4096, description: 'syscalls merged into one kernel entry at most' },
    ],
    enabledByDefault: false,
    counters: ['syscallsMerged', 'crossingsAvoided', 'instructionsEmulated', 'instructionsScanned', 'chainEnds.noEcallInWindow', 'chainEnds.notViable.CLASS', 'chainEnds.faultRisk', 'chainEnds.contextSwitch', 'chainEnds.maxChain'],
    live: true, appliesAt: 'the next syscall', support: 'implemented',
  },
  {
    name: 'callTableInlining', number: 4, patent: 'US10834255B1', title: 'Inlining large call tables',
    description: 'The guest kernel counts how often each syscall number passes the syscall table\'s indirect call (a frequency table). Every relearnInterval passes it takes the maxEntries most frequent numbers and, when that set changed, generates a search trampoline: real RV32 code that binary-searches those numbers (the most frequent at the top of each subtree) and jumps directly to their handlers, falling back to the table through a retpoline for the others. The call site is patched to call the trampoline (two buffers, one word switched; a buffer a vCPU is executing is never rewritten).',
    changes: 'the guest kernel text: the syscall table\'s indirect call becomes a direct call to a generated search trampoline (no BTB prediction on the hot numbers, a retpoline for the rest)',
    params: [
      { name: 'maxEntries', type: 'integer', default: 8, min: 1, max: 64, description: 'syscall numbers the trampoline calls directly' },
      { name: 'relearnInterval', type: 'integer', default: 256, min: 10, max: 10_000_000, description: 'table call-site passes between relearns (the frequency table is halved at each)' },
    ],
    enabledByDefault: false,
    counters: ['hits', 'misses', 'regenerations', 'postponed', 'entries'],
    live: true, appliesAt: 'the next syscall', support: 'implemented',
  },
  planned(5, 'uhvDirectTransitions', 'US20240028359A1', 'Fewer transitions for user-level hypervisors',
    'Exits selected by a control structure go straight to the UHV, which returns directly to the guest.',
    'exit routing: UHV exits take two transitions instead of four'),
  planned(6, 'privilegedModeRendezvous', 'US10678909B2', 'Global view of memory with a privileged mode',
    'A vCPU enters a privileged mode only after mapping its region and stopping every other vCPU.',
    'multi-vCPU VMs: a stop-the-world rendezvous around privileged-mode entry'),
  planned(7, 'protectionDomains', 'US20160299851A1', 'Isolating guest code and data with several nested page tables',
    'Secure protection domains with their own G-stage tables, entered and left only through registered gates.',
    'G-stage roots per domain and gate-based switches'),
];

export const TECHNIQUE_BY_NAME: ReadonlyMap<string, Technique> = new Map(TECHNIQUES.map((t) => [t.name, t]));

/** A technique setting: `enabled` plus its parameters. */
export type TechniqueSetting = { enabled: boolean } & Record<string, boolean | number>;
export type TechniqueSettings = Record<string, TechniqueSetting>;

/** A configuration the catalogue does not allow. `status` 400 for bad input, 501 for a technique that is not implemented. */
export class TechniqueConfigError extends Error {
  constructor(message: string, readonly status: 400 | 501 = 400) { super(message); }
}

/**
 * Checks a partial configuration (`{name: {enabled?, param?...}}`) against the catalogue.
 * Raises: TechniqueConfigError naming the unknown technique or parameter, the bad value, or
 * (501) a technique that is not implemented being enabled.
 */
export function validateTechniques(config: unknown): void {
  if (typeof config !== 'object' || config === null || Array.isArray(config)) throw new TechniqueConfigError('techniques must be an object of {technique: {enabled?, parameter?...}}');
  for (const [name, setting] of Object.entries(config)) {
    const t = TECHNIQUE_BY_NAME.get(name);
    if (!t) throw new TechniqueConfigError(`unknown technique '${name}' (known: ${TECHNIQUES.map((x) => x.name).join(', ')})`);
    if (typeof setting !== 'object' || setting === null || Array.isArray(setting)) throw new TechniqueConfigError(`techniques.${name} must be an object`);
    for (const [k, v] of Object.entries(setting)) {
      if (k === 'enabled') {
        if (typeof v !== 'boolean') throw new TechniqueConfigError(`techniques.${name}.enabled must be a boolean`);
        if (v && t.support !== 'implemented') throw new TechniqueConfigError(`technique '${name}' is not implemented yet`, 501);
        continue;
      }
      const p = t.params.find((x) => x.name === k);
      if (!p) throw new TechniqueConfigError(`technique '${name}' has no parameter '${k}' (parameters: ${['enabled', ...t.params.map((x) => x.name)].join(', ')})`);
      if (p.type === 'boolean' && typeof v !== 'boolean') throw new TechniqueConfigError(`techniques.${name}.${k} must be a boolean`);
      if (p.type === 'integer' && (!Number.isInteger(v) || (v as number) < p.min! || (v as number) > p.max!)) {
        throw new TechniqueConfigError(`techniques.${name}.${k} must be an integer from ${p.min} to ${p.max}, got ${JSON.stringify(v)}`);
      }
    }
  }
}

/** Effective settings of every technique: catalogue defaults, then host defaults, then VM overrides. */
export function resolveTechniques(...layers: Array<Record<string, unknown> | undefined | null>): TechniqueSettings {
  const out: TechniqueSettings = {};
  for (const t of TECHNIQUES) {
    const s: TechniqueSetting = { enabled: t.enabledByDefault };
    for (const p of t.params) s[p.name] = p.default;
    for (const layer of layers) Object.assign(s, (layer?.[t.name] as object | undefined) ?? {});
    out[t.name] = s;
  }
  return out;
}

/** The names in `change` whose technique cannot change on a running VM. */
export function notLive(change: Record<string, unknown>): string[] {
  return Object.keys(change).filter((n) => !TECHNIQUE_BY_NAME.get(n)?.live);
}
