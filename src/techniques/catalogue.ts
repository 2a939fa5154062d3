/**
 * The technique catalogue as data (DESIGN.md section 5): name, the patent it implements, what it
 * changes, its parameters (type, default, range), the counters it adds, whether it can change on
 * a running VM (and when that takes effect), and its support level. The REST API serves it,
 * validation and resolution use it, and docs/techniques/README.md is generated from it.
 *
 * Configuration: hosts hold defaults, VMs override them, per technique and parameter:
 *   techniques: {syscallLookahead: {enabled: true, window: 32}, ...}
 */
export type ParamType = 'boolean' | 'integer' | 'map';

/** A `map` parameter's value: each of `keys` (a subset, in a change) to one of `values`. */
export type ParamMap = Readonly<Record<string, string>>;

export interface TechniqueParam {
  readonly name: string;
  readonly type: ParamType;
  readonly default: boolean | number | ParamMap;
  readonly min?: number;
  readonly max?: number;
  /** For `map`: the keys it may hold and the values each may take. */
  readonly keys?: readonly string[];
  readonly values?: readonly string[];
  readonly description: string;
}

/**
 * Technique 5's maps: the VM-control fields the KHV may grant to the UHV (hypervisor/vmcs-fields.ts
 * holds the whole field table; a unit test checks both agree) and the exits it may route to it.
 */
export const UHV_FIELD_NAMES = ['guestRegs', 'guestPc', 'exitReason', 'exitQualification', 'pcAdvance', 'interruptInjection', 'timerDeadline'] as const;
export const UHV_ROUTABLE_EXITS = ['mmio.console', 'mmio.power', 'mmio.block', 'hypercall'] as const;

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
    counters: ['hits', 'misses', 'fallbacks', 'compares', 'regenerations', 'postponed', 'perProcess.PID.{hits,misses,fallbacks,regenerations,targets}', 'perSite.method_site.{hits,misses,fallbacks}'],
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
    description: 'The guest kernel counts how often each syscall number passes the syscall table\'s indirect call (a frequency table). Every relearnInterval passes it takes the maxEntries most frequent numbers (a live number stays unless another passed more than twice as often) and, when that set changed, generates a search trampoline: real RV32 code that searches those numbers - equality tests for the hottest, then a search tree over the rest, the shape with the fewest modelled cycles for the counted distribution - and calls their handlers directly, falling back to the table through a retpoline for the others. It replaces the table lookup, not only the call: the first instruction of the kernel\'s table load is patched to jump to the trampoline, so a hit loads nothing from the table (two buffers, one word switched; a buffer a vCPU is executing or may return into is never rewritten).',
    changes: 'the guest kernel text: the syscall table\'s indirect call becomes a direct call to a generated search trampoline (no BTB prediction on the hot numbers, a retpoline for the rest)',
    params: [
      { name: 'maxEntries', type: 'integer', default: 16, min: 1, max: 48, description: 'syscall numbers the trampoline calls directly (a number not among them goes through the retpoline)' },
      { name: 'relearnInterval', type: 'integer', default: 256, min: 10, max: 10_000_000, description: 'table call-site passes between relearns (the frequency table is halved at each); a relearn comes sooner once relearnInterval / 8 passes (at least 8) went through the retpoline' },
    ],
    enabledByDefault: false,
    counters: ['hits', 'misses', 'compares', 'regenerations', 'postponed', 'entries', 'perProcess.PID.{hits,misses}', 'perSite.call_site.{hits,misses}'],
    live: true, appliesAt: 'the next syscall', support: 'implemented',
  },
  {
    name: 'uhvDirectTransitions', number: 5, patent: 'US20240028359A1', title: 'Fewer transitions for user-level hypervisors',
    description: 'Three structures the KHV configures per VM in the emulated CPU: a field access map (which VM-control fields the UHV, running in an unprivileged hypervisor mode, may read or write with a plain access), an exit-routing map (which exits, and for MMIO which device ranges, go straight from the guest to the UHV), and a direct transition from the UHV back to the guest. Off, every UHV exit is guest -> KHV -> UHV -> KHV -> guest and every field access the UHV makes is a KHV call (two transitions). On, a routed exit is guest -> UHV -> guest and a granted field access is direct; the rest stays mediated. Fields that would let the UHV escape (G-stage root, host interrupt state, delegation, the maps) are never grantable: a UHV access to them is refused, changes nothing and is reported as a vm.uhv-field-fault event.',
    changes: 'exit routing and VM-control field accesses of the UHV device models (console, power, SBI timer/reset, virtio block): transitions, and cycles per exit (COSTS.khvUhvRoundTrip and COSTS.uhvFieldCall saved where direct)',
    params: [
      {
        name: 'fieldAccess', type: 'map', keys: UHV_FIELD_NAMES, values: ['', 'r', 'w', 'rw'],
        default: { guestRegs: 'rw', guestPc: 'r', exitReason: 'r', exitQualification: 'r', pcAdvance: 'w', interruptInjection: 'rw', timerDeadline: 'rw' },
        description: 'per VM-control field, the UHV\'s direct access (r, w, rw, or \'\' = every access mediated by the KHV)',
      },
      {
        name: 'exitRouting', type: 'map', keys: UHV_ROUTABLE_EXITS, values: ['uhv', 'khv'],
        default: { 'mmio.console': 'uhv', 'mmio.power': 'uhv', 'mmio.block': 'uhv', hypercall: 'uhv' },
        description: 'per exit reason (MMIO per device range), uhv = straight to the UHV and back, khv = through the KHV',
      },
    ],
    enabledByDefault: false,
    counters: ['uhv.transitionsByEdge.EDGE', 'uhv.fieldAccesses.direct|mediated|refused', 'uhv.exitCycles.REASON.{exits,cycles,perExit}', 'uhv.block.{requests,bytesRead,bytesWritten}'],
    live: true, appliesAt: 'the next exit', support: 'implemented',
  },
  {
    name: 'privilegedModeRendezvous', number: 6, patent: 'US10678909B2', title: 'Global view of memory with a privileged mode',
    description: 'Every VM has an SMM-like privileged mode: entered on the privileged-mode interrupt (the doorbell device register, an SBI hypercall from the guest kernel, or POST /v1/vms/{id}/vcpus/{n}/interrupts), it runs the handler held in a special region and leaves with pmret. On, the VM keeps ONE G-stage table: a vCPU enters only after checking that no vCPU is in the mode (else its request is queued), mapping the region into that table and stopping every other vCPU (halted, still accepting the privileged-mode interrupt); on pmret the region is unmapped, TLBs and the region\'s translated code are flushed and the others released. Off (the baseline, as KVM gives each vCPU an SMM address space), each vCPU entering the mode switches to a G-stage table of its own that maps the region, and the others keep running.',
    changes: 'privileged-mode entry and exit: a stop-the-world rendezvous (COSTS.rendezvousBase + rendezvousPerVcpu per extra vCPU, and waiting for the others) instead of a G-stage root switch per entry and exit (COSTS.domainSwitchExit) with a root table and a leaf table per vCPU',
    params: [
      { name: 'maxQueued', type: 'integer', default: 16, min: 1, max: 1024, description: 'privileged-mode requests that may wait for the vCPU in the mode; more are dropped (counted)' },
    ],
    enabledByDefault: false,
    counters: ['entries', 'entriesBySource.SOURCE', 'queued', 'coalesced', 'dropped', 'rendezvous.count', 'rendezvous.totalCycles', 'rendezvous.maxCycles', 'rendezvous.totalNs', 'stoppedCycles[vcpu]', 'inModeCycles', 'regionFaults', 'regionFaultsByVcpu[vcpu]', 'viewFrames', 'viewBytes', 'viewSwitches'],
    live: true, appliesAt: 'the next privileged-mode entry when no vCPU is in the mode', support: 'implemented',
  },
  {
    name: 'protectionDomains', number: 7, patent: 'US20160299851A1', title: 'Isolating guest code and data with several nested page tables',
    description: 'A VM defines secure protection domains (POST /v1/vms/{id}/domains) besides its root domain. The KHV gives each its own G-stage table mapping guest RAM plus the domain\'s private memory, which the root domain\'s table does not map; the domain\'s code, data and guest page tables live there. Root code enters and leaves a domain only through registered gates (the dgate instruction); any other access to domain memory, from guest code, the guest kernel\'s copies or a device, is blocked and reported, and the attacker is killed. Off, a VM that defines domains does not start.',
    changes: 'per-domain G-stage roots; dgate switches G-stage root and guest page table, without an exit (fast gate, COSTS.domainSwitchGate) or through an exit to the KHV (COSTS.domainSwitchExit)',
    params: [
      { name: 'fastGate', type: 'boolean', default: true, description: 'permitted dgate calls and returns switch in the CPU without a VM exit (VMFUNC-like); off, every switch exits to the KHV' },
    ],
    enabledByDefault: true,
    counters: ['protectionDomains.switches.gate', 'protectionDomains.switches.exit', 'protectionDomains.switchCycles', 'protectionDomains.cyclesPerSwitch', 'protectionDomains.blockedAccesses', 'protectionDomains.gateViolations', 'protectionDomains.domainFaults', 'exits.domain-*'],
    live: false, support: 'implemented',
  },
];

export const TECHNIQUE_BY_NAME: ReadonlyMap<string, Technique> = new Map(TECHNIQUES.map((t) => [t.name, t]));

/** A technique setting: `enabled` plus its parameters. */
export type TechniqueSetting = { enabled: boolean } & Record<string, boolean | number | ParamMap>;
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
export function validateTechniques(config: unknown, catalogue: ReadonlyMap<string, Technique> = TECHNIQUE_BY_NAME): void {
  if (typeof config !== 'object' || config === null || Array.isArray(config)) throw new TechniqueConfigError('techniques must be an object of {technique: {enabled?, parameter?...}}');
  for (const [name, setting] of Object.entries(config)) {
    const t = catalogue.get(name);
    if (!t) throw new TechniqueConfigError(`unknown technique '${name}' (known: ${[...catalogue.keys()].join(', ')})`);
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
      if (p.type === 'map') validateMap(`techniques.${name}.${k}`, p, v);
    }
  }
}

function validateMap(path: string, p: TechniqueParam, v: unknown): void {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new TechniqueConfigError(`${path} must be an object of {${p.keys!.join(', ')}}`);
  for (const [key, value] of Object.entries(v)) {
    if (!p.keys!.includes(key)) throw new TechniqueConfigError(`${path}.${key} is not a key of ${path} (keys: ${p.keys!.join(', ')})`);
    if (typeof value !== 'string' || !p.values!.includes(value)) throw new TechniqueConfigError(`${path}.${key} must be one of ${p.values!.map((x) => JSON.stringify(x)).join(', ')}, got ${JSON.stringify(value)}`);
  }
}

/** Effective settings of every technique: catalogue defaults, then host defaults, then VM overrides. */
export function resolveTechniques(...layers: Array<Record<string, unknown> | undefined | null>): TechniqueSettings {
  const out: TechniqueSettings = {};
  for (const t of TECHNIQUES) {
    const s: TechniqueSetting = { enabled: t.enabledByDefault };
    for (const p of t.params) s[p.name] = p.default;
    for (const layer of layers) {
      const l = (layer?.[t.name] as Record<string, unknown> | undefined) ?? {};
      for (const [k, v] of Object.entries(l)) {
        // A map layer changes only the keys it names.
        const isMap = t.params.find((p) => p.name === k)?.type === 'map';
        s[k] = (isMap ? { ...(s[k] as ParamMap), ...(v as ParamMap) } : v) as boolean | number | ParamMap;
      }
    }
    out[t.name] = s;
  }
  return out;
}

/** The names in `change` whose technique cannot change on a running VM. */
export function notLive(change: Record<string, unknown>): string[] {
  return Object.keys(change).filter((n) => !TECHNIQUE_BY_NAME.get(n)?.live);
}
