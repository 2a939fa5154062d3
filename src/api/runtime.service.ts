/**
 * Connects the database to the runtime: every host row owns a live HostRuntime (its DRAM, frame
 * tables and VM workers), and every running VM a VmRunner. Here the runtime's happenings become
 * state changes and events: vm.state, vm.process, vm.console (coalesced), vm.counters (every
 * 250 ms while running), vm.fault; the final process statuses, counters and console are kept in
 * vm_runs. Per-exit records are not persisted; they are streamed live (`exitStream`) to
 * subscriptions that asked for them.
 *
 * All database updates of one VM are serialized (`serial`), so a VM that stops by itself while a
 * user pauses it resolves in one order.
 */
import { BeforeApplicationShutdown, Injectable, Logger, OnApplicationBootstrap } from '@nestjs/common';
import { EventEmitter } from 'node:events';
import { DataSource, EntityManager, In } from 'typeorm';
import { Gauge } from 'prom-client';
import { EventsService } from './events.service.js';
import { Metrics } from './observability.js';
import { HostEntity, VmEntity, VmRunEntity } from '../persistence/entities.js';
import { HostRuntime, HostUsage } from '../runtime/host-runtime.js';
import { VmRunner } from '../runtime/vm-runner.js';
import type { VmSpec } from '../runtime/vm.js';
import type { ExitRecord, VmSnapshot } from '../runtime/protocol.js';
import type { PmEvent } from '../hypervisor/privileged-mode.js';
import type { ProcessStatus } from '../guest/process.js';
import { transition, TransitionError, VmAction, VmState } from '../runtime/vm-state.js';

/** States in which a VM has (or had, before a crash of the service) a live runtime. */
const LIVE_STATES: VmState[] = ['starting', 'running', 'paused', 'stopping', 'migrating'];
const COUNTERS_EVERY_MS = 250;
const CONSOLE_EVERY_MS = 100;
const CONSOLE_EVENT_BYTES = 64 * 1024;

interface LiveVm {
  tenantId: string;
  hostId: string;
  runner: VmRunner;
  startedAt: Date;
  pendingConsole: Array<{ port: number; bytes: Uint8Array }>;
  timers: NodeJS.Timeout[];
}

@Injectable()
export class RuntimeService implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly log = new Logger('RuntimeService');
  private readonly hosts = new Map<string, HostRuntime>();
  private readonly live = new Map<string, LiveVm>();
  private readonly chains = new Map<string, Promise<unknown>>();
  /** How many live exit subscriptions each VM has. */
  private readonly tracing = new Map<string, number>();
  /** Emits 'exits' (vmId, tenantId, records: ExitRecord[], dropped: number). */
  readonly exitStream = new EventEmitter().setMaxListeners(0);
  private readonly gauges: { instructions: Gauge; cycles: Gauge; exits: Gauge; crossings: Gauge };

  constructor(private readonly ds: DataSource, private readonly events: EventsService, metrics: Metrics) {
    const g = (name: string, help: string, labels: string[]) => new Gauge({ name, help, labelNames: labels, registers: [metrics.registry] });
    this.gauges = {
      instructions: g('hvsim_vm_instructions', 'instructions retired by the VM in its current or last run', ['vm', 'host']),
      cycles: g('hvsim_vm_cycles', 'simulated cycles of the VM in its current or last run', ['vm', 'host']),
      crossings: g('hvsim_vm_crossings', 'guest privilege crossings in the current or last run', ['vm', 'host']),
      exits: g('hvsim_vm_exits', 'VM exits by reason in the current or last run', ['vm', 'host', 'reason']),
    };
  }

  async onApplicationBootstrap(): Promise<void> {
    await this.recover();
    for (const h of await this.ds.getRepository(HostEntity).find()) {
      try { this.ensureHost(h); } catch (e) {
        // Do not take the service down for one host: it is marked failed and says why in the log.
        this.log.error(`host ${h.id}: cannot allocate ${h.memoryMiB} MiB of DRAM (${(e as Error).message}); marking it failed`);
        await this.ds.getRepository(HostEntity).update({ id: h.id }, { state: 'failed' });
      }
    }
  }

  /** A clean shutdown stops every VM (before the database closes); their state is recorded as stopped ('service-shutdown'). */
  async beforeApplicationShutdown(): Promise<void> {
    await Promise.all([...this.live.entries()].map(async ([id, l]) => {
      l.runner.removeAllListeners('final');
      await l.runner.stop();
      await this.finish(id, l, { ...l.runner.snapshot, state: 'stopped', reason: 'service-shutdown' }).catch((e) => this.log.error(String(e)));
    }));
    for (const h of this.hosts.values()) await h.shutdown();
  }

  /** VMs that were live when the service went away without stopping them are `stopped` ('service-restart'), and their migrations `failed`. */
  private async recover(): Promise<void> {
    const stale = await this.ds.getRepository(VmEntity).find({ where: { state: In(LIVE_STATES) } });
    for (const v of stale) {
      await this.events.tx(async (m) => {
        const from = v.state;
        await m.update(VmEntity, { id: v.id }, { state: 'stopped', stateReason: 'service-restart' });
        await m.query('UPDATE vm_runs SET stopped_at = now() WHERE vm_id = $1 AND stopped_at IS NULL', [v.id]);
        await this.events.append(m, v.tenantId, 'vm.state', `vm:${v.id}`, { from, to: 'stopped', reason: 'service-restart' });
      });
    }
    if (stale.length) this.log.warn(`${stale.length} VM(s) were running when the service stopped; marked stopped (service-restart)`);
    // Migrations in flight died with their workers.
    await this.ds.query(`UPDATE vm_migrations SET phase = 'failed', failure_reason = 'service-restart', completed_at = now(), updated_at = now()
      WHERE phase IN ('pending', 'preparing-target', 'target-ready', 'running')`);
  }

  // *** hosts ***

  /** The live runtime of a host row, created on first use. Raises: RangeError when its DRAM cannot be allocated. */
  ensureHost(h: Pick<HostEntity, 'id' | 'memoryMiB'>): HostRuntime {
    let rt = this.hosts.get(h.id);
    if (!rt) { rt = new HostRuntime(h.memoryMiB); this.hosts.set(h.id, rt); }
    return rt;
  }

  /** Drops a host's runtime (the host row is gone; it has no VMs). */
  async dropHost(id: string): Promise<void> {
    const rt = this.hosts.get(id);
    this.hosts.delete(id);
    await rt?.shutdown();
  }

  /**
   * A fatal error in hypervisor memory: the host goes `failed` (with an event) and every VM on it
   * crashes with reason `host-panic`.
   */
  async panicHost(tenantId: string, h: HostEntity): Promise<void> {
    await this.events.tx(async (m) => {
      await m.update(HostEntity, { id: h.id }, { state: 'failed' });
      await this.events.append(m, tenantId, 'host.state', `host:${h.id}`, { from: h.state, to: 'failed', reason: 'host-panic' });
    });
    await this.hosts.get(h.id)?.panic();
    await Promise.all([...this.live.keys()].map((id) => this.chains.get(id)));
  }

  /** The running VM that owns frame-table slot `slot` of a host, if any. */
  vmOfSlot(hostId: string, slot: number): string | undefined { return this.hosts.get(hostId)?.keyOfSlot(slot); }

  /** Memory accounting of a host: frames free, retired, poisoned, and in use by each VM. */
  hostUsage(h: Pick<HostEntity, 'id' | 'memoryMiB'>): HostUsage & { freeMiB: number } {
    let rt: HostRuntime;
    try { rt = this.ensureHost(h); } catch {
      return { frames: 0, free: 0, poisoned: 0, retired: 0, byVm: {}, freeMiB: 0 }; // DRAM could not be allocated (host failed)
    }
    const u = rt.usage();
    return { ...u, freeMiB: Math.floor(u.free / 256) };
  }

  // *** VMs ***

  isLive(vmId: string): boolean { return this.live.has(vmId); }
  runner(vmId: string): VmRunner | undefined { return this.live.get(vmId)?.runner; }

  /** Runs `work` after every earlier update of this VM. */
  serial<T>(vmId: string, work: () => Promise<T>): Promise<T> {
    const prev = this.chains.get(vmId) ?? Promise.resolve();
    const next = prev.then(work, work);
    this.chains.set(vmId, next.catch(() => undefined));
    return next;
  }

  /**
   * Boots `spec` as VM `vmId` on its host and wires its telemetry.
   * Raises: VmActionError when it cannot boot (the VM is then recorded as crashed by the caller).
   */
  async start(tenantId: string, vmId: string, host: Pick<HostEntity, 'id' | 'memoryMiB'>, spec: VmSpec): Promise<VmRunner> {
    const rt = this.ensureHost(host);
    const startedAt = new Date();
    await this.ds.getRepository(VmRunEntity).upsert({
      vmId, tenantId, startedAt, stoppedAt: null, processes: [], counters: null, consoleStdout: Buffer.alloc(0), consoleStderr: Buffer.alloc(0), consoleTruncated: false,
    }, ['vmId']);
    const runner = await rt.startVm(vmId, spec);
    const l: LiveVm = { tenantId, hostId: host.id, runner, startedAt, pendingConsole: [], timers: [] };
    this.live.set(vmId, l);
    this.wire(vmId, l, runner);
    l.timers.push(setInterval(() => { void this.serial(vmId, () => this.flushConsole(vmId, l)); }, CONSOLE_EVERY_MS));
    l.timers.push(setInterval(() => { if (l.runner.state === 'running') void this.serial(vmId, () => this.publishCounters(vmId, l)); }, COUNTERS_EVERY_MS));
    if ((this.tracing.get(vmId) ?? 0) > 0) await runner.request({ type: 'trace-exits', on: true }).catch(() => undefined);
    return runner;
  }

  /**
   * The VM now runs in `runner` on host `hostId` (a completed migration; the runner arrived paused):
   * it keeps its console, telemetry and run record, then resumes; the source runner's end is not
   * the VM's end.
   */
  async adopt(vmId: string, runner: VmRunner, hostId: string): Promise<void> {
    const l = this.live.get(vmId);
    if (!l) throw new Error(`VM ${vmId} is not live`);
    runner.adoptConsole(l.runner.console);
    l.runner = runner;
    l.hostId = hostId;
    this.wire(vmId, l, runner);
    if ((this.tracing.get(vmId) ?? 0) > 0) await runner.request({ type: 'trace-exits', on: true }).catch(() => undefined);
    await runner.resume();
  }

  /** Telemetry of one runner of a live VM; ignored once the VM has moved to another runner. */
  private wire(vmId: string, l: LiveVm, runner: VmRunner): void {
    const tenantId = l.tenantId;
    runner.on('console', (port: number, bytes: Uint8Array) => l.pendingConsole.push({ port, bytes }));
    runner.on('process', (s: ProcessStatus) => { void this.serial(vmId, () => this.appendEvent(tenantId, vmId, 'vm.process', { ...s })); });
    runner.on('exits', (records: ExitRecord[], dropped: number) => this.exitStream.emit('exits', vmId, tenantId, records, dropped));
    // Technique 6's phases, at most MAX_PM_BATCH a slice: the last of a batch says how many were left out.
    runner.on('privileged-mode', (events: PmEvent[], dropped: number) => {
      void this.serial(vmId, async () => {
        for (let i = 0; i < events.length; i++) {
          await this.appendEvent(tenantId, vmId, 'vm.privileged-mode', { ...events[i], ...(i === events.length - 1 && dropped > 0 ? { sampledOut: dropped } : {}) });
        }
      });
    });
    runner.on('memory-failure', (m: { gpa: number; pid: number | null; va: number | null; virtualTimeNs: number }) => {
      void this.serial(vmId, () => this.appendEvent(tenantId, vmId, 'vm.memory-failure', {
        recipient: 'guest', action: 'inject', actionRequired: true, guestPhysicalAddress: m.gpa, pid: m.pid, guestVirtualAddress: m.va, virtualTimeNs: m.virtualTimeNs,
      }));
    });
    runner.once('final', (s: VmSnapshot) => {
      // A source that handed its VM over ends 'migrated': the VM lives on in the adopted runner.
      if (l.runner !== runner || s.reason === 'migrated') return;
      void this.finish(vmId, l, s).catch((e) => this.log.error(e instanceof Error ? e.stack : String(e)));
    });
  }

  /** A subscription wants (or no longer wants) the exit stream of a VM. */
  async traceExits(vmId: string, on: boolean): Promise<void> {
    const n = Math.max(0, (this.tracing.get(vmId) ?? 0) + (on ? 1 : -1));
    if (n === 0) this.tracing.delete(vmId); else this.tracing.set(vmId, n);
    const r = this.runner(vmId);
    if (r && (n === 1 && on || n === 0)) await r.request({ type: 'trace-exits', on: n > 0 }).catch(() => undefined);
  }

  private async appendEvent(tenantId: string, vmId: string, type: string, data: Record<string, unknown>): Promise<void> {
    await this.events.tx((m) => this.events.append(m, tenantId, type, `vm:${vmId}`, data));
  }

  /** Console output since the last flush, as one event per port (chunks of at most 64 KiB). */
  private async flushConsole(vmId: string, l: LiveVm): Promise<void> {
    if (l.pendingConsole.length === 0) return;
    const chunks = l.pendingConsole.splice(0);
    await this.events.tx(async (m) => {
      for (const port of [0, 1]) {
        const bytes = Buffer.concat(chunks.filter((c) => c.port === port).map((c) => c.bytes));
        for (let o = 0; o < bytes.length; o += CONSOLE_EVENT_BYTES) {
          const part = bytes.subarray(o, o + CONSOLE_EVENT_BYTES);
          await this.events.append(m, l.tenantId, 'vm.console', `vm:${vmId}`, { stream: port === 0 ? 'stdout' : 'stderr', text: part.toString('utf8'), bytes: part.length });
        }
      }
    });
  }

  private async publishCounters(vmId: string, l: LiveVm): Promise<void> {
    const c = l.runner.counters();
    const exits = l.runner.exitCounts();
    this.setGauges(vmId, l.hostId, c, exits);
    await this.appendEvent(l.tenantId, vmId, 'vm.counters', { ...c, exits, wallMs: Date.now() - l.startedAt.getTime() });
  }

  private setGauges(vmId: string, hostId: string, c: { instructions: number; cycles: number; crossings: number }, exits: Record<string, number> | null): void {
    const labels = { vm: vmId, host: hostId };
    this.gauges.instructions.set(labels, c.instructions);
    this.gauges.cycles.set(labels, c.cycles);
    this.gauges.crossings.set(labels, c.crossings);
    if (exits) for (const [reason, n] of Object.entries(exits)) this.gauges.exits.set({ ...labels, reason }, n);
  }

  /**
   * Applies runtime transitions (`actions`, in order) to a VM row locked in `m`, with one
   * `vm.state` event (and `vm.fault` for a crash). When they no longer apply (the VM moved on,
   * e.g. it stopped by itself first) nothing changes. Returns whether they applied.
   */
  async recordTransition(m: EntityManager, v: VmEntity, actions: VmAction[], reason: string | null, extra: Record<string, unknown> = {}): Promise<boolean> {
    const from = v.state as VmState;
    let to = from;
    try { for (const a of actions) to = transition(to, a); } catch (e) {
      if (e instanceof TransitionError) return false;
      throw e;
    }
    v.state = to;
    v.stateReason = reason;
    await m.save(v);
    await this.events.append(m, v.tenantId, 'vm.state', `vm:${v.id}`, { from, to, action: actions[actions.length - 1], ...(reason ? { reason } : {}), ...extra });
    if (to === 'crashed') await this.events.append(m, v.tenantId, 'vm.fault', `vm:${v.id}`, { reason });
    return true;
  }

  /** The VM is down: record its final state, run record and events; release its runtime. */
  private finish(vmId: string, l: LiveVm, s: VmSnapshot): Promise<void> {
    return this.serial(vmId, async () => {
      if (this.live.get(vmId) !== l) return;
      for (const t of l.timers) clearInterval(t);
      await this.flushConsole(vmId, l);
      this.live.delete(vmId);
      const c = l.runner.console;
      if (s.counters) this.setGauges(vmId, l.hostId, s.counters, s.counters.exits);
      await this.events.tx(async (m) => {
        const v = await m.findOne(VmEntity, { where: { id: vmId }, lock: { mode: 'pessimistic_write' } });
        if (!v) return;
        if (s.counters) {
          // The last snapshot, so even a run shorter than one 250 ms tick reports its counters.
          const { perVcpu: _, ...totals } = s.counters;
          await this.events.append(m, l.tenantId, 'vm.counters', `vm:${vmId}`, { ...totals, final: true, wallMs: Date.now() - l.startedAt.getTime() });
        }
        await m.update(VmRunEntity, { vmId }, {
          stoppedAt: new Date(), processes: s.processes as never, counters: s.counters as never,
          consoleStdout: c.bytes(0), consoleStderr: c.bytes(1), consoleTruncated: c.truncated[0] || c.truncated[1],
        });
        const action = s.state === 'crashed' ? 'crash' : 'stopped';
        await this.recordTransition(m, v, v.state === 'starting' ? ['started', action] : [action], s.reason, { processes: s.processes });
      });
    });
  }
}
