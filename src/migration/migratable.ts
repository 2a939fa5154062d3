/**
 * The seam between live migration and the machine it moves (after Cloud Hypervisor's
 * `Migratable`/`Snapshottable` traits): what a VM offers a migration, so that src/migration
 * needs nothing of the VM runtime. `runtime/vm.ts` implements it.
 *
 * Guest pages are named by their index `gpn` in guest RAM (guest-physical RAM_BASE + gpn * 4 KiB),
 * as on the wire. Every method is called between slices of guest execution (no vCPU runs).
 */
import type { VirtioBlkState } from '../hypervisor/virtio-blk.js';

/** What a read of one guest page found. */
export type PageRead =
  /** The page is backed; `bytes` is a view of its 4 KiB, valid until the guest runs again. */
  | { kind: 'data'; bytes: Uint8Array }
  /** Never touched: no frame backs it. */
  | { kind: 'unbacked' }
  /** The guest already met an uncorrectable error there: the page is unmapped for good. */
  | { kind: 'corrupted' }
  /**
   * Its frame has an uncorrectable error, and nothing was read (the read checks the frame's
   * poison flag first, as a machine-check-safe copy does). `known`: the host knew already;
   * otherwise the error was latent and this read is the first to see it.
   */
  | { kind: 'poisoned'; frame: number; known: boolean };

/** The VCPU record: one vCPU's state (machine-state.ts encodes it). */
export interface VcpuState {
  id: number;
  halted: boolean;
  wfiPending: boolean;
  /** Timer deadline in cycles (Infinity: none). */
  deadline: number;
  idleCycles: number;
  x: Int32Array;
  fields: Int32Array;
  ctr: Float64Array;
  btbTag: Int32Array;
  btbTarget: Int32Array;
  rsb: Int32Array;
  rsbTop: number;
  rsbDepth: number;
}

/** The DEVICE record: KHV and UHV state. */
export interface DeviceState {
  /** The VM's quantum clock (cycles). */
  quantumEnd: number;
  exits: Array<[string, number]>;
  transitions: number;
  power: 'on' | 'off' | 'fail';
  doorbells: number;
  consoleBytes: [number, number];
  /** Technique 5's counters and the block devices' register state (absent from older sources). */
  uhv?: { edges: number[]; exitCycles: Array<[string, number]>; fieldAccesses: { direct: number; mediated: number; refused: number }; blocks: VirtioBlkState[] };
}

/** Everything besides guest RAM that a migration carries: one record per vCPU, the devices, the guest OS (opaque JSON-safe data). */
export interface MachineState {
  vcpus: VcpuState[];
  device: DeviceState;
  guestOs: object;
}

/** Guest RAM, page by page. */
export interface MigratableMemory {
  /** Pages backed by a host frame, ascending. */
  backedPages(): Iterable<number>;
  /** Reads page `gpn` of guest RAM without consuming an error (see PageRead). */
  readPage(gpn: number): PageRead;
  /**
   * The bytes the frame of backed page `gpn` holds, without looking at its poison flag; null when
   * the page is not backed. For the END digest only: a check of the copy computed outside the
   * simulated machine, which no guest or hypervisor access models.
   */
  frameBytes(gpn: number): Uint8Array | null;
}

/** The sending side: a running VM whose RAM is copied while it runs. */
export interface Migratable extends MigratableMemory {
  readonly ramBytes: number;
  /** Why the VM must not be migrated at all (checked before anything is sent), or null. */
  migrationBlocker?(): string | null;
  readonly vcpuCount: number;
  /** The VM's virtual time (its furthest vCPU clock), ns: migration paces itself in it. */
  virtualTimeNs(): number;
  /** Write-protects every backed page and starts logging the pages written (G-stage dirty log). */
  startDirtyLog(): void;
  /** Pages written since the last call (or since the log started), ascending; they are write-protected again. */
  takeDirtyPages(): number[];
  /** Stops the dirty log (if on); every page is writable again. */
  stopDirtyLog(): void;
  /** Store faults the dirty log took so far (the VM's dirty-log exits). */
  dirtyLogExits(): number;
  /** Pages found corrupted so far, in the order they were found. */
  corruptedPages(): number[];
  /** Pages the machine writes in a way the dirty log cannot see (through host-memory views): a migration sends them again at switch-over. */
  untrackedPages(): number[];
  /** The host now knows the frame of page `gpn` is poisoned (a read found a latent error). */
  notePoisonKnown(gpn: number): void;
  /** Everything besides RAM, after the last slice the guest runs here. */
  exportState(): MachineState;
  /** Disks (each an image's bytes plus this VM's written chunks): how many. */
  readonly diskCount: number;
  /**
   * Chunks of disk `n` to send: `all` = every chunk the VM wrote (round 1), otherwise those
   * written since the last call; both restart the disk's dirty log (started by startDirtyLog).
   */
  diskChunks(n: number, all: boolean): number[];
  /** The current bytes of chunk `c` of disk `n` (valid until the guest runs again). */
  diskChunk(n: number, c: number): Uint8Array;
}

/** The receiving side: a machine that exists but has not booted, filled by the stream. */
export interface MigrationTarget extends MigratableMemory {
  /** Counters per vCPU record (the hart's counter layout). */
  readonly counterCount: number;
  /**
   * Backs page `gpn` if needed and sets its bytes (all zero when `bytes` is null).
   * Raises: Error when the page was marked corrupted; OutOfHostMemory.
   */
  writePage(gpn: number, bytes: Uint8Array | null): void;
  /** Page `gpn` has an uncorrectable error at the source: unmapped, so the guest's first access raises a memory error. */
  markCorrupted(gpn: number): void;
  isCorrupted(gpn: number): boolean;
  /**
   * Completes the machine (RAM already copied) from the source's `exportState`.
   * Raises: Error for a state that does not fit this machine; GuestMemoryError; OutOfHostMemory.
   */
  importState(state: MachineState): void;
  /** Gives the machine up (a failed migration): its frames go back to the host. */
  discard(reason: string): void;
  /** Sets chunk `c` of disk `n`. Raises: RangeError for a disk or chunk this machine does not have. */
  writeDiskChunk(n: number, c: number, bytes: Uint8Array): void;
}
