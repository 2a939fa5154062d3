/**
 * The one door into a running VM (Firecracker's VmmAction): typed actions from the main thread to
 * the VM worker, and the worker's replies and notifications. Nothing else crosses the thread
 * boundary except the shared host memory and the published counters (a SharedArrayBuffer).
 *
 * Worker state machine (every transition is driven by an action or by the guest):
 *
 *              start               pause               resume
 *   created ───────────▶ running ───────────▶ paused ───────────▶ running
 *      │                  │    │                 │
 *      │ start fails      │    │ stop            │ stop
 *      ▼                  │    ▼                 ▼
 *   crashed ◀─────────────┘  stopped           stopped
 *          guest fault /      ▲
 *          host limit         └── the guest powers off (last process exited)
 *
 * `stopped` and `crashed` are terminal: the worker releases the VM's host frames, sends `final`
 * and exits. An action that is not allowed in the current state gets `{ok: false, error}` and
 * changes nothing. `read-state` is allowed in every state.
 */
import type { VmCounters, VmSpec } from './vm.js';
import type { ProcessStatus } from '../guest/process.js';
import type { HostMemoryBuffers } from '../hypervisor/host-memory.js';
import type { TechniqueSettings } from '../techniques/catalogue.js';
import { EXIT_REASONS } from '../hypervisor/exits.js';
import type { MigrationOutcome, MigrationParams, MigrationStats } from '../migration/source.js';
import type { DestinationFault } from '../migration/destination.js';
import type { PmEvent } from '../hypervisor/privileged-mode.js';

export type WorkerState = 'created' | 'running' | 'paused' | 'stopped' | 'crashed';

export type VmAction =
  /** Boots and runs the VM; with `pauseAtVirtualNs`, it pauses itself once its virtual time reaches that (a 'state' message says so). */
  | { type: 'start'; pauseAtVirtualNs?: number }
  | { type: 'pause' }
  | { type: 'resume' }
  | { type: 'stop' }
  | { type: 'read-state' }
  /** Stream every VM exit (batched per slice) until turned off. */
  | { type: 'trace-exits'; on: boolean }
  /** New effective technique settings; the guest kernel applies them at the next syscall. */
  | { type: 'set-techniques'; techniques: TechniqueSettings }
  /**
   * Injects an uncorrectable error into host frame `frame` (guest RAM of this VM) at the next
   * slice boundary; the reply's `data` is `{gpa, owner, virtualTimeNs}`. `privileged-mode`
   * raises the privileged-mode interrupt on vCPU `vcpu` (technique 6); `data` is what became of
   * it (entered, queued, coalesced, dropped). Other `what`s are answered with an error.
   */
  | { type: 'inject'; what: 'memory-error' | 'privileged-mode' | string; frame?: number; latent?: boolean; vcpu?: number }
  /** Source: starts a pre-copy migration to the destination worker listening on `port`; outcome arrives as `migration` messages. */
  | { type: 'migrate'; port: number; params: MigrationParams }
  /** Source: cancels the running migration (before the switch-over); the VM runs on here. */
  | { type: 'migrate-cancel' }
  /** Destination (a worker created with `incoming`): listens for the migration stream; `data` is `{port}`. */
  | { type: 'migrate-listen' }
  /** Resolves a guest page (`gpa`) or a process's user address (`pid`, `va`) to its host frame; `data` is the frame or -1. */
  | { type: 'resolve-frame'; gpa?: number; pid?: number; va?: number }
  /** `data`: every backed guest page with its host address and owner. */
  | { type: 'memory-map' };

export type ActionType = VmAction['type'];

/** Which actions each state accepts. */
export const ALLOWED: Record<WorkerState, readonly ActionType[]> = {
  created: ['start', 'stop', 'read-state', 'trace-exits', 'migrate-listen'],
  running: ['pause', 'stop', 'read-state', 'inject', 'trace-exits', 'set-techniques', 'resolve-frame', 'memory-map', 'migrate', 'migrate-cancel'],
  paused: ['resume', 'stop', 'read-state', 'inject', 'trace-exits', 'set-techniques', 'resolve-frame', 'memory-map', 'migrate', 'migrate-cancel'],
  stopped: ['read-state'],
  crashed: ['read-state'],
};

export interface VmSnapshot {
  state: WorkerState;
  /** Per vCPU: 'running', or 'idle' (halted in wfi with nothing to run). */
  vcpus: Array<'running' | 'idle'>;
  reason: string | null;
  processes: ProcessStatus[];
  counters: VmCounters | null;
}

/** Data the worker is created with. */
export interface WorkerInit {
  spec: VmSpec;
  host: HostMemoryBuffers;
  owner: number;
  /** Float64Array over it: PUBLISHED counters, refreshed after every slice. */
  published: SharedArrayBuffer;
  /** Quanta per slice between message checks (default SLICE_QUANTA). */
  sliceQuanta?: number;
  /** The VM arrives by live migration instead of booting (`migrate-listen`, not `start`); `failAt` injects a destination failure. */
  incoming?: { failAt: DestinationFault | 'preparing-target' | null };
}

/** Migration news from a source or destination worker. */
export type MigrationMessage =
  | { type: 'migration'; event: 'progress'; stats: MigrationStats }
  | { type: 'migration'; event: 'latent-error'; gpa: number; frame: number }
  /** Source: the VM now lives on the destination (this worker ends `stopped`, reason 'migrated'). */
  | { type: 'migration'; event: 'completed'; outcome: MigrationOutcome }
  /** Source: failed, the VM runs on here; destination: failed, this worker ends. */
  | { type: 'migration'; event: 'failed'; reason: string }
  /** Source without the technique: the copy consumed a memory error; this worker ends `crashed` ('host-panic'). */
  | { type: 'migration'; event: 'host-panic'; frame: number; gpa: number }
  /** Destination: the VM is restored here, `paused` until the main thread resumes it. */
  | { type: 'migration'; event: 'arrived' };

export type WorkerMessage =
  | { type: 'reply'; id: number; ok: true; snapshot: VmSnapshot; data?: unknown }
  | { type: 'reply'; id: number; ok: false; error: string; snapshot: VmSnapshot }
  | { type: 'console'; port: number; bytes: Uint8Array }
  | { type: 'process'; status: ProcessStatus }
  /** A memory error was consumed: the guest kernel killed process `pid` (SIGBUS). */
  | { type: 'memory-failure'; gpa: number; pid: number | null; va: number | null; virtualTimeNs: number }
  /** Privileged-mode phases since the last slice (technique 6), at most MAX_PM_BATCH; `dropped` counts the rest. */
  | { type: 'privileged-mode'; events: PmEvent[]; dropped: number }
  /** Exits since the last batch (while tracing); `dropped` counts those over MAX_EXIT_BATCH. */
  | { type: 'exits'; records: ExitRecord[]; dropped: number }
  | MigrationMessage
  | { type: 'state'; snapshot: VmSnapshot }
  | { type: 'final'; snapshot: VmSnapshot };

/** One VM exit, for tracing: vCPU, reason, guest pc, virtual time (ns) of the vCPU. */
export interface ExitRecord { vcpu: number; reason: string; pc: number; timeNs: number }
export const MAX_EXIT_BATCH = 10_000;
/** Privileged-mode events sent per slice (the service logs each as a vm.privileged-mode event); the rest are only counted: the sampling. */
export const MAX_PM_BATCH = 16;

export interface Envelope { id: number; action: VmAction }

/** Counters published through shared memory, in this order. */
export const PUBLISHED = ['instructions', 'cycles', 'crossings', 'transitions', 'tlbMisses', 'branchMispredicts', 'virtualTimeNs', 'backedPages'] as const;
/** After PUBLISHED: exits by reason, one slot per EXIT_REASONS row, in table order. */
export const PUBLISHED_SLOTS = PUBLISHED.length + EXIT_REASONS.length;
export const SLICE_QUANTA = 10;
