/**
 * A live simulated host: its DRAM and frame tables (HostMemory, shared with its VM workers) and
 * the VMs running on it, each in its own worker thread under an owner slot of the frame table.
 * Slots are reused only after a VM's worker has finished and its frames are back.
 */
import { HostMemory } from '../hypervisor/host-memory.js';
import { VmRunner } from './vm-runner.js';
import type { VmSpec } from './vm.js';
import type { WorkerInit } from './protocol.js';

export interface HostUsage {
  frames: number;
  free: number;
  poisoned: number;
  retired: number;
  /** Frames in use by each running VM (by the key it was started with). */
  byVm: Record<string, number>;
}

export class HostRuntime {
  readonly memory: HostMemory;
  private readonly vms = new Map<number, { key: string; runner: VmRunner }>();
  private nextSlot = 1;

  constructor(readonly memoryMiB: number) {
    this.memory = HostMemory.create(memoryMiB);
  }

  /**
   * Starts `spec` in a new worker as VM `key` and resolves once it has booted.
   * Raises: VmActionError when the VM cannot boot (bad image, too little host memory, ...); the
   * runner is then already `crashed` and holds nothing. `onStarted` is called with the runner as
   * soon as the worker has answered the start, before any later notification (VmRunner.start):
   * the place to attach listeners that must see the whole run.
   */
  async startVm(key: string, spec: VmSpec, opts: { sliceQuanta?: number; pauseAtVirtualNs?: number; consoleBytes?: number; onStarted?: (runner: VmRunner) => void } = {}): Promise<VmRunner> {
    const slot = this.takeSlot();
    const runner = new VmRunner(spec, this.memory, slot, opts.sliceQuanta, opts.consoleBytes);
    this.vms.set(slot, { key, runner });
    void runner.done.then(() => this.vms.delete(slot));
    const onStarted = opts.onStarted;
    await runner.start(opts.pauseAtVirtualNs, onStarted && (() => onStarted(runner)));
    return runner;
  }

  /**
   * A worker for VM `key` arriving by live migration: not booted; `migrate-listen` makes it wait
   * for the stream. `failAt` injects a destination failure (integration testing).
   */
  prepareIncoming(key: string, spec: VmSpec, failAt: NonNullable<WorkerInit['incoming']>['failAt'], consoleBytes?: number): VmRunner {
    const slot = this.takeSlot();
    const runner = new VmRunner(spec, this.memory, slot, undefined, consoleBytes, { failAt });
    this.vms.set(slot, { key, runner });
    void runner.done.then(() => this.vms.delete(slot));
    return runner;
  }

  private takeSlot(): number {
    for (let i = 0; i < 1 << 20; i++) {
      const s = this.nextSlot;
      this.nextSlot = (this.nextSlot % 0x7fffffff) + 1;
      if (!this.vms.has(s)) return s;
    }
    throw new Error('no free VM slot');
  }

  running(): VmRunner[] { return [...this.vms.values()].map((v) => v.runner); }

  /** The key of the VM that owns frame-table slot `slot`, if it runs here. */
  keyOfSlot(slot: number): string | undefined { return this.vms.get(slot)?.key; }

  /** A fatal hypervisor error: every VM's worker is killed (they end `crashed`); resolves when all are down. */
  async panic(): Promise<void> {
    await Promise.all(this.running().map((r) => r.kill('host-panic')));
  }

  usage(): HostUsage {
    const u = this.memory.usage();
    const byVm: Record<string, number> = {};
    for (const [slot, { key }] of this.vms) if (u.byOwner[slot]) byVm[key] = u.byOwner[slot];
    return { frames: this.memory.frames, free: u.free, poisoned: u.poisoned, retired: u.retired, byVm };
  }

  /** Stops every VM on the host. */
  async shutdown(): Promise<void> {
    await Promise.all(this.running().map((r) => r.stop()));
  }
}
