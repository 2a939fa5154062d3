/**
 * The one door into a running VM (Firecracker's VmmAction/VmmData): typed requests from the main
 * thread to the VM worker, a reply typed per request, and the worker's notifications. Nothing else
 * crosses the thread boundary except the shared host memory and the published counters (a
 * SharedArrayBuffer).
 *
 * Worker state machine (every transition is driven by a request or by the guest):
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
 *   created ──migrate-listen──▶ created (listening) ──stream arrives──▶ paused
 *                                        └──stream fails──▶ crashed
 *
 * `stopped` and `crashed` are terminal: the worker releases the VM's host frames, sends `final`
 * and exits. A request that is not allowed in the current state gets `{ok: false, error: {kind:
 * 'not-allowed'}}` and changes nothing. `read-state` is allowed in every state. Every request gets
 * exactly one reply (`ReplyData[type]` when it succeeded, a `WorkerError` when not); the main
 * thread bounds how long it waits for it (VmRunner: `timeout` kind).
 *
 * Console output flows as batches the worker coalesces per slice: at most one batch is in flight
 * (the next goes after the main thread's `credit` for the last), and while it waits the worker
 * keeps at most CONSOLE_PENDING_BYTES; past that it runs no further slice until credit comes. A
 * chatty guest therefore slows down (in wall time only: its output and virtual time are exactly
 * those of an unhurried run) and never floods the main thread.
 */
import type { GadgetReach, Vm, VmCounters, VmSpec } from './vm.js';
import type { ProcessStatus } from '../guest/process.js';
import type { HostMemoryBuffers } from '../hypervisor/host-memory.js';
import type { TechniqueSettings } from '../techniques/catalogue.js';
import { EXIT_REASONS } from '../hypervisor/exits.js';
import type { MigrationOutcome, MigrationParams, MigrationStats } from '../migration/source.js';
import type { DestinationFault } from '../migration/destination.js';
import type { DomainEvent } from '../hypervisor/domains.js';
import type { PmEvent } from '../hypervisor/privileged-mode.js';
import type { WrittenChunks } from '../hypervisor/disk.js';

export type WorkerState = 'created' | 'running' | 'paused' | 'stopped' | 'crashed';

/** A request to a VM worker (the lifecycle actions of the API state machine are `VmAction` in vm-state.ts). */
export type WorkerRequest =
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
  /** Injects an uncorrectable error into host frame `frame` (guest RAM of this VM) at the next slice boundary. */
  | { type: 'inject-memory-error'; frame: number; latent?: boolean }
  /** Raises the privileged-mode interrupt on vCPU `vcpu` (technique 6); the reply says what became of it. */
  | { type: 'inject-privileged-mode'; vcpu: number }
  /**
   * Source: starts a pre-copy migration to the destination worker listening on `host` (default
   * 127.0.0.1; another node's advertise address in cluster mode) and `port`; outcome arrives as
   * `migration` messages.
   */
  | { type: 'migrate'; port: number; host?: string; params: MigrationParams }
  /** Source: cancels the running migration (before the switch-over); the VM runs on here. */
  | { type: 'migrate-cancel' }
  /** Destination (a worker created with `incoming`): listens for the migration stream. */
  | { type: 'migrate-listen'; host?: string }
  /** Resolves a guest page (`gpa`) or a process's user address (`pid`, `va`) to its host frame (-1: not backed). */
  | { type: 'resolve-frame'; target: { gpa: number } | { pid: number; va: number } }
  /** Every backed guest page with its host address and owner. */
  | { type: 'memory-map' }
  /** Bytes [start, end) of disk `disk`'s current content (clipped to its size). */
  | { type: 'read-disk'; disk: number; start: number; end: number };

/** What a successful reply carries, per request type (Firecracker's VmmData). */
export interface ReplyData {
  'start': null;
  'pause': null;
  'resume': null;
  'stop': null;
  'read-state': null;
  'trace-exits': null;
  'set-techniques': null;
  'inject-memory-error': ReturnType<Vm['injectMemoryError']>;
  /** entered, queued, coalesced or dropped. */
  'inject-privileged-mode': { outcome: ReturnType<Vm['interruptPrivilegedMode']> };
  'migrate': null;
  'migrate-cancel': null;
  'migrate-listen': { port: number };
  'resolve-frame': number;
  'memory-map': ReturnType<Vm['memoryPages']>;
  'read-disk': { sizeBytes: number; start: number; bytes: Uint8Array };
}

/**
 * Why a request failed: `not-allowed` in the worker's state; `invalid` arguments (e.g. a frame
 * that is not this VM's); `failed` while carrying it out (boot, migration set-up); `gone` the
 * worker ended before it answered; `timeout` it did not answer in time (set by the main thread).
 */
export type WorkerErrorKind = 'not-allowed' | 'invalid' | 'failed' | 'gone' | 'timeout';
export interface WorkerError { kind: WorkerErrorKind; message: string }

export type ActionType = WorkerRequest['type'];
export type RequestOf<K extends ActionType> = Extract<WorkerRequest, { type: K }>;

/** Which actions each state accepts. */
export const ALLOWED: Record<WorkerState, readonly ActionType[]> = {
  created: ['start', 'stop', 'read-state', 'trace-exits', 'migrate-listen'],
  running: ['pause', 'stop', 'read-state', 'inject-memory-error', 'inject-privileged-mode', 'trace-exits', 'set-techniques', 'resolve-frame', 'memory-map', 'migrate', 'migrate-cancel', 'read-disk'],
  paused: ['resume', 'stop', 'read-state', 'inject-memory-error', 'inject-privileged-mode', 'trace-exits', 'set-techniques', 'resolve-frame', 'memory-map', 'migrate', 'migrate-cancel', 'read-disk'],
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

/** The successful reply to a request of type K. */
export type OkReply<K extends ActionType = ActionType> = { [T in K]: { type: 'reply'; id: number; ok: true; action: T; snapshot: VmSnapshot; data: ReplyData[T] } }[K];
export type WorkerReply = OkReply | { type: 'reply'; id: number; ok: false; error: WorkerError; snapshot: VmSnapshot };

/** Console output since the last batch, per port (0 stdout, 1 stderr). The main thread answers each batch with `credit`. */
export interface ConsoleBatch { type: 'console'; stdout: Uint8Array; stderr: Uint8Array }

export type WorkerMessage =
  | WorkerReply
  | ConsoleBatch
  | { type: 'process'; status: ProcessStatus }
  /** A memory error was consumed: the guest kernel killed process `pid` (SIGBUS). */
  | { type: 'memory-failure'; gpa: number; pid: number | null; va: number | null; virtualTimeNs: number }
  /** Technique 7: an access to a protection domain's memory was blocked, a gate misused, or a domain faulted. */
  | { type: 'domain-event'; event: DomainEvent; virtualTimeNs: number }
  /** Privileged-mode phases since the last slice (technique 6), at most MAX_PM_BATCH; `dropped` counts the rest. */
  | { type: 'privileged-mode'; events: PmEvent[]; dropped: number }
  /** The UHV tried to access a VM-control field reserved to the KHV (technique 5): refused, nothing changed. */
  | { type: 'uhv-field-fault'; field: string; write: boolean; pc: number; virtualTimeNs: number }
  /** Speculative gadget reaches of one vCPU in one slice (coalesced by the VM: one message a vCPU a slice at most). */
  | { type: 'gadget-reach'; reach: GadgetReach }
  /** Exits since the last batch (while tracing); `dropped` counts those over MAX_EXIT_BATCH. */
  | { type: 'exits'; records: ExitRecord[]; dropped: number }
  | MigrationMessage
  | { type: 'state'; snapshot: VmSnapshot }
  | { type: 'final'; snapshot: VmSnapshot }
  /** Just before `final` of a VM with disks: what it wrote over each disk's base, kept by the service (a stopped VM's disks). */
  | { type: 'disks'; disks: WrittenChunks[] };

/** One VM exit, for tracing: vCPU, reason, guest pc, virtual time (ns) of the vCPU. */
export interface ExitRecord { vcpu: number; reason: string; pc: number; timeNs: number }
export const MAX_EXIT_BATCH = 10_000;
/** Privileged-mode events sent per slice (the service logs each as a vm.privileged-mode event); the rest are only counted: the sampling. */
export const MAX_PM_BATCH = 16;

/** Main thread → worker: a request, or credit for the next console batch. */
export type ToWorker = { type: 'request'; id: number; request: WorkerRequest } | { type: 'credit' };
/** Console bytes the worker holds while a batch awaits credit; past this the guest waits. */
export const CONSOLE_PENDING_BYTES = 1 << 20;

/** Counters published through shared memory, in this order. */
export const PUBLISHED = ['instructions', 'cycles', 'crossings', 'transitions', 'tlbMisses', 'branchMispredicts', 'virtualTimeNs', 'backedPages'] as const;
/** After PUBLISHED: exits by reason, one slot per EXIT_REASONS row, in table order. */
export const PUBLISHED_SLOTS = PUBLISHED.length + EXIT_REASONS.length;
export const SLICE_QUANTA = 10;
