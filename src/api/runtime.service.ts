/**
 * Connects the database to the runtime: every host row owns a live HostRuntime (its DRAM, frame
 * tables and VM workers), and every running VM a VmRunner. Here the runtime's happenings become
 * state changes and events: vm.state, vm.process, vm.console (coalesced every 100 ms, exact bytes in
 * base64), vm.counters (sampled: every HVSIM_COUNTERS_EVERY_S while running, and the final
 * value), vm.fault; the final process statuses, counters and console are kept in vm_runs. Per-exit
 * records are not persisted; they are streamed live (`exitStream`) to subscriptions that asked
 * for them.
 *
 * It owns the workers' lives: a VM has at most one worker (booting or live), a stop during the
 * boot ends the worker as soon as it answers, and every write of a VM's state goes through
 * `recordTransition` (the state machine of vm-state.ts). All database updates of one VM are
 * serialized (`serial`), so a VM that stops by itself while a user pauses it resolves in one
 * order. Background writes retry while the database is unreachable and never reject unhandled.
 */
import { BeforeApplicationShutdown, Inject, Injectable, Logger, OnApplicationBootstrap } from '@nestjs/common';
import { EventEmitter } from 'node:events';
import { DataSource, EntityManager, In } from 'typeorm';
import { Gauge } from 'prom-client';
import { EventsService } from './events.service.js';
import { Metrics } from './observability.js';
import { HostEntity, OperationEntity, VmDiskContentEntity, VmEntity, VmRunEntity } from '../persistence/entities.js';
import { HostRuntime, HostUsage } from '../runtime/host-runtime.js';
import { VmRunner } from '../runtime/vm-runner.js';
import type { DomainEvent } from '../hypervisor/domains.js';
import type { GadgetReach, VmSpec } from '../runtime/vm.js';
import type { ExitRecord, VmSnapshot } from '../runtime/protocol.js';
import type { PmEvent } from '../hypervisor/privileged-mode.js';
import type { ProcessStatus } from '../guest/process.js';
import { transition, TransitionError, VmAction, VmState } from '../runtime/vm-state.js';
import { CounterHistory } from '../runtime/counter-history.js';
import { ConsoleBuffer } from '../runtime/console-buffer.js';
import { withRetry } from './retry.js';
import { ProblemError } from './errors.js';
import { CONFIG } from './tokens.js';
import type { Config } from '../config/config.js';

/** States in which a VM has (or had, before a crash of the service) a live runtime. */
export const LIVE_STATES: VmState[] = ['starting', 'running', 'paused', 'stopping', 'migrating'];
const CONSOLE_EVERY_MS = 100;
const CONSOLE_EVENT_BYTES = 64 * 1024;
/**
 * Console bytes per stream waiting to become events; more before the next flush is left out of the
 * event log (counted as `lagged`). One 64 KiB event per stream per 100 ms bounds what one VM
 * writes into the log (and what the database does on the service's behalf) to ~1.3 MB/s.
 */
const CONSOLE_EVENTS_PENDING_BYTES = CONSOLE_EVENT_BYTES;

/**
 * Workers booting at once (spawning a thread, loading the engine, loading the images): more starts
 * wait their turn in `starting`, so a burst of starts does not spawn hundreds of threads at once.
 */
export const MAX_CONCURRENT_BOOTS = 8;

/** The VM was stopped while it was booting: its worker has been ended. */
export class BootCancelled extends Error {
  constructor(vmId: string) { super(`VM ${vmId} was stopped while it was starting`); }
}

/** Console output waiting to become vm.console events, bounded per stream. */
class PendingConsole {
  readonly parts: Uint8Array[][] = [[], []];
  readonly size = [0, 0];
  readonly lagged = [0, 0];

  push(port: number, bytes: Uint8Array): void {
    const room = CONSOLE_EVENTS_PENDING_BYTES - this.size[port];
    if (bytes.length > room) this.lagged[port] += bytes.length - room;
    const keep = bytes.length > room ? bytes.subarray(0, room) : bytes;
    if (keep.length === 0) return;
    this.parts[port].push(keep);
    this.size[port] += keep.length;
  }

  /** Takes what is pending of `port`: its bytes and how many were dropped before them. */
  take(port: number): { bytes: Buffer; lagged: number } {
    const r = { bytes: Buffer.concat(this.parts[port]), lagged: this.lagged[port] };
    this.parts[port] = [];
    this.size[port] = 0;
    this.lagged[port] = 0;
    return r;
  }
}

interface LiveVm {
  tenantId: string;
  hostId: string;
  runner: VmRunner;
  startedAt: Date;
  pendingConsole: PendingConsole;
  history: CounterHistory;
  lastCountersEvent: number;
  timers: NodeJS.Timeout[];
  /** Periodic work queued or running (at most one of each kind waits in the VM's chain). */
  queued: Set<'console' | 'counters'>;
  /** Resolves once the VM's end (final state, run record) has been recorded or given up on. */
  settled: Promise<void>;
  resolveSettled: () => void;
  /** When the runner reported its final state to this service (Date.now()), and what recording it is doing. */
  finalAt: number | null;
  ending: 'queued' | 'console' | 'recording' | null;
  /** The warning about an overdue end has been logged. */
  overdueWarned: boolean;
}

/** A task on a VM's update queue (`serial`): what it is, when it was queued and when it began. */
interface SerialTask { label: string; queuedAt: number; startedAt: number | null }

/** A worker's end not recorded this long after it reached the service is logged (once a VM) with where it stands. */
const END_OVERDUE_MS = 60_000;

/** Technique 6's vm.privileged-mode events appended per flush of a VM's queue; more are counted as sampledOut. */
const PM_EVENTS_PER_FLUSH = 32;
@Injectable()
export class RuntimeService implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly log = new Logger('RuntimeService');
  private readonly hosts = new Map<string, HostRuntime>();
  private readonly live = new Map<string, LiveVm>();
  /** VMs whose worker is booting: whether a stop asked to cancel the boot, and when it is over. */
  private readonly booting = new Map<string, { cancelled: boolean; over: Promise<unknown> }>();
  /** Counters history of VMs that ran since this service started (kept after they stop, dropped with the VM). */
  private readonly histories = new Map<string, CounterHistory>();
  /** Boots under way, and starts waiting for one to finish. */
  private boots = 0;
  private readonly bootQueue: Array<() => void> = [];
  private readonly chains = new Map<string, Promise<unknown>>();
  /** The tasks of each VM's queue, oldest (running) first. */
  private readonly tasks = new Map<string, SerialTask[]>();
  /** How many live exit subscriptions each VM has. */
  private readonly tracing = new Map<string, number>();
  /** Emits 'exits' (vmId, tenantId, records: ExitRecord[], dropped: number). */
  readonly exitStream = new EventEmitter().setMaxListeners(0);
  private readonly gauges: { instructions: Gauge; cycles: Gauge; exits: Gauge; crossings: Gauge };

  constructor(private readonly ds: DataSource, private readonly events: EventsService, metrics: Metrics, @Inject(CONFIG) private readonly config: Config) {
    const g = (name: string, help: string, labels: string[]) => new Gauge({ name, help, labelNames: labels, registers: [metrics.registry] });
    this.gauges = {
      instructions: g('hvsim_vm_instructions', 'instructions retired by the VM in its current or last run', ['vm', 'host']),
      cycles: g('hvsim_vm_cycles', 'simulated cycles of the VM in its current or last run', ['vm', 'host']),
      crossings: g('hvsim_vm_crossings', 'guest privilege crossings in the current or last run', ['vm', 'host']),
      exits: g('hvsim_vm_exits', 'VM exits by reason in the current or last run', ['vm', 'host', 'reason']),
    };
  }

  /**
   * Cluster mode: the hosts this node owns (holds the advisory lock of; src/cluster), and an
   * estimate of the free memory of the others. Null on a single node, which owns every host.
   */
  private readonly owned: Set<string> | null = this.config.cluster ? new Set() : null;
  private readonly remoteFreeMiB = new Map<string, number>();

  async onApplicationBootstrap(): Promise<void> {
    // In cluster mode the ClusterService hands this node its hosts (takeHost) once it holds their locks.
    if (this.owned) return;
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
    clearInterval(this.watchdog);
    await Promise.all([...this.live.entries()].map(async ([id, l]) => {
      l.runner.removeAllListeners('final');
      await l.runner.stop();
      await this.finish(id, l, { ...l.runner.snapshot, state: 'stopped', reason: 'service-shutdown' });
    }));
    for (const h of this.hosts.values()) await h.shutdown();
  }

  /**
   * After a restart: VMs that were live when the service went away without stopping them are
   * `stopped` ('service-restart', the `lost` transition), their migrations `failed`, and
   * Operations left pending or running `failed` with reason `service-restart`.
   */
  private async recover(): Promise<void> {
    const stale = await this.ds.getRepository(VmEntity).find({ where: { state: In(LIVE_STATES) } });
    for (const v of stale) {
      await this.events.tx(async (m) => {
        await this.recordTransition(m, v, ['lost'], 'service-restart');
        await m.query('UPDATE vm_runs SET stopped_at = now() WHERE vm_id = $1 AND stopped_at IS NULL', [v.id]);
      });
    }
    if (stale.length) this.log.warn(`${stale.length} VM(s) were running when the service stopped; marked stopped (service-restart)`);
    // Migrations in flight died with their workers.
    await this.ds.query(`UPDATE vm_migrations SET phase = 'failed', failure_reason = 'service-restart', completed_at = now(), updated_at = now()
      WHERE phase IN ('pending', 'preparing-target', 'target-ready', 'running')`);
    const ops = await this.ds.getRepository(OperationEntity).find({ where: { state: In(['pending', 'running']) } });
    for (const o of ops) {
      await this.events.tx(async (m) => {
        const error = { message: 'the service restarted while the operation was in progress', reason: 'service-restart' };
        const r = await m.update(OperationEntity, { id: o.id, state: In(['pending', 'running']) }, { state: 'failed', error });
        if (r.affected) await this.events.append(m, o.tenantId, 'operation.failed', `operation:${o.id}`, { kind: o.kind, subject: o.subject, error });
      });
    }
    if (ops.length) this.log.warn(`${ops.length} operation(s) were in progress when the service stopped; marked failed (service-restart)`);
  }

  // *** hosts ***

  /** Whether this node runs host `id` (always on a single node). */
  ownsHost(id: string): boolean { return this.owned === null || this.owned.has(id); }

  /**
   * Cluster mode: this node now holds host `h`'s lock. VMs the host's previous owner left in a
   * live state (it was lost with their workers) become `crashed` with reason `reason`, with
   * events, and their migrations fail; then the host's runtime is created. Never raises for a
   * host whose DRAM cannot be allocated (it is marked failed).
   */
  async takeHost(h: HostEntity, reason: string): Promise<number> {
    this.owned?.add(h.id);
    this.remoteFreeMiB.delete(h.id);
    const stale = await this.ds.getRepository(VmEntity).find({ where: { hostId: h.id, state: In(LIVE_STATES) } });
    let crashed = 0;
    for (const v of stale) {
      if (this.live.has(v.id) || this.booting.has(v.id)) continue;
      await this.serial(v.id, () => withRetry(() => this.events.tx(async (m) => {
        const row = await m.findOne(VmEntity, { where: { id: v.id }, lock: { mode: 'pessimistic_write' } });
        if (!row || !LIVE_STATES.includes(row.state as VmState) || row.hostId !== h.id) return;
        if (await this.recordTransition(m, row, ['crash'], reason)) crashed++;
        await m.query('UPDATE vm_runs SET stopped_at = now() WHERE vm_id = $1 AND stopped_at IS NULL', [v.id]);
      })), 'take-host');
    }
    await this.ds.query(`UPDATE vm_migrations SET phase = 'failed', failure_reason = $2, completed_at = now(), updated_at = now()
      WHERE (source_host_id = $1 OR destination_host_id = $1) AND phase IN ('pending', 'preparing-target', 'target-ready', 'running')`, [h.id, reason]);
    try { this.ensureHost(h); } catch (e) {
      this.log.error(`host ${h.id}: cannot allocate ${h.memoryMiB} MiB of DRAM (${(e as Error).message}); marking it failed`);
      await this.ds.getRepository(HostEntity).update({ id: h.id }, { state: 'failed' });
    }
    return crashed;
  }

  /**
   * Cluster mode: host `id` is no longer this node's (another node was given it while this one
   * looked lost): its VMs' workers are killed (recorded crashed with reason `reason`) and its
   * runtime dropped, so two nodes never run one host.
   */
  async releaseHost(id: string, reason: string): Promise<void> {
    this.owned?.delete(id);
    const rt = this.hosts.get(id);
    if (rt) await Promise.all(rt.running().map((r) => r.kill(reason)));
    await Promise.all([...this.live.entries()].filter(([, l]) => l.hostId === id).map(([, l]) => l.settled));
    await this.dropHost(id);
  }

  /** Cluster mode: the estimated free memory of hosts other nodes run (from the VMs recorded on them). */
  setRemoteFree(free: Map<string, number>): void {
    this.remoteFreeMiB.clear();
    for (const [id, mib] of free) if (!this.ownsHost(id)) this.remoteFreeMiB.set(id, mib);
  }

  /**
   * The live runtime of a host row, created on first use. Raises: RangeError when its DRAM cannot
   * be allocated; in cluster mode, 503 for a host another node runs.
   */
  ensureHost(h: Pick<HostEntity, 'id' | 'memoryMiB'>): HostRuntime {
    if (!this.ownsHost(h.id)) {
      throw new ProblemError(503, 'Service Unavailable', `host ${h.id} is run by another node of the cluster (or is being taken over): retry`, { hostId: h.id });
    }
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
    if (!this.ownsHost(h.id)) {
      // Another node runs it: an estimate (its memory less that of the VMs recorded live on it).
      const freeMiB = Math.min(h.memoryMiB, this.remoteFreeMiB.get(h.id) ?? h.memoryMiB);
      return { frames: h.memoryMiB * 256, free: freeMiB * 256, poisoned: 0, retired: 0, byVm: {}, freeMiB };
    }
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

  /**
   * Runs `work` after every earlier update of this VM. `label` names it in `endStatus` and in the
   * warning about a VM whose end is overdue (what its queue is busy with).
   */
  serial<T>(vmId: string, work: () => Promise<T>, label = 'update'): Promise<T> {
    const task: SerialTask = { label, queuedAt: Date.now(), startedAt: null };
    let tasks = this.tasks.get(vmId);
    if (!tasks) this.tasks.set(vmId, tasks = []);
    tasks.push(task);
    const run = () => { task.startedAt = Date.now(); return work(); };
    const prev = this.chains.get(vmId) ?? Promise.resolve();
    const next = prev.then(run, run);
    const tail = next.then(() => undefined, () => undefined).then(() => {
      const t = this.tasks.get(vmId)!;
      t.splice(t.indexOf(task), 1);
      if (t.length === 0) this.tasks.delete(vmId);
      // The last task of the queue: nothing waits on it any more.
      if (this.chains.get(vmId) === tail) this.chains.delete(vmId);
    });
    this.chains.set(vmId, tail);
    return next;
  }

  /**
   * Boots `spec` as VM `vmId` on its host and wires its telemetry. A VM has at most one worker:
   * starting one that is booting or live is refused.
   * Raises: VmActionError when it cannot boot (the VM is then recorded as crashed by the caller);
   * BootCancelled when `stop` came during the boot (the worker is ended; its stop records it).
   */
  async start(tenantId: string, vmId: string, host: Pick<HostEntity, 'id' | 'memoryMiB'>, spec: VmSpec): Promise<VmRunner> {
    if (this.live.has(vmId) || this.booting.has(vmId)) throw new Error(`VM ${vmId} already has a worker`);
    const boot = { cancelled: false, over: Promise.resolve() as Promise<unknown> };
    const work = this.boot(tenantId, vmId, host, spec, boot);
    boot.over = work.catch(() => undefined);
    this.booting.set(vmId, boot);
    try { return await work; } finally { this.booting.delete(vmId); }
  }

  private async boot(tenantId: string, vmId: string, host: Pick<HostEntity, 'id' | 'memoryMiB'>, spec: VmSpec, boot: { cancelled: boolean }): Promise<VmRunner> {
    const rt = this.ensureHost(host);
    const startedAt = new Date();
    await withRetry(() => this.ds.getRepository(VmRunEntity).upsert({
      vmId, tenantId, startedAt, stoppedAt: null, processes: [], counters: null, consoleStdout: Buffer.alloc(0), consoleStderr: Buffer.alloc(0), consoleTruncated: false,
    }, ['vmId']));
    if (this.boots >= MAX_CONCURRENT_BOOTS) await new Promise<void>((r) => this.bootQueue.push(r));
    else this.boots++;
    let runner: VmRunner;
    try {
      if (boot.cancelled) throw new BootCancelled(vmId);
      // Tracked the moment the worker says it started, not once the start resolves: by then a
      // short run may have ended and its 'final' been emitted with nobody listening (the VM stayed
      // `running` with a stopped worker for good).
      runner = await rt.startVm(vmId, spec, { consoleBytes: this.config.retention.consoleBytes, onStarted: (r) => this.track(tenantId, vmId, host.id, r, startedAt) });
    } finally {
      // Hand the boot slot to the next waiting start (or give it back).
      const next = this.bootQueue.shift();
      if (next) next(); else this.boots--;
    }
    if (boot.cancelled) {
      // Stopped while booting: end the worker now (its end is recorded through 'final' like any stop).
      await runner.stop();
      throw new BootCancelled(vmId);
    }
    if ((this.tracing.get(vmId) ?? 0) > 0) await runner.request({ type: 'trace-exits', on: true }).catch(() => undefined);
    return runner;
  }

  /** From now on `runner` is VM `vmId`'s worker on host `hostId`: its telemetry becomes events, its end is recorded. */
  private track(tenantId: string, vmId: string, hostId: string, runner: VmRunner, startedAt: Date): LiveVm {
    let resolveSettled!: () => void;
    const settled = new Promise<void>((r) => { resolveSettled = r; });
    const history = new CounterHistory(1000);
    this.histories.set(vmId, history);
    const l: LiveVm = { tenantId, hostId, runner, startedAt, pendingConsole: new PendingConsole(), history, lastCountersEvent: Date.now(), timers: [], queued: new Set(), settled, resolveSettled, finalAt: null, ending: null, overdueWarned: false };
    this.live.set(vmId, l);
    this.wire(vmId, l, runner);
    l.timers.push(setInterval(() => this.periodic(vmId, l, 'console', () => this.flushConsole(vmId, l)), CONSOLE_EVERY_MS));
    l.timers.push(setInterval(() => { if (l.runner.state === 'running') this.periodic(vmId, l, 'counters', () => this.sampleCounters(vmId, l)); }, 250));
    return l;
  }

  /**
   * Cluster mode, on the destination node of a migration: VM `vmId` arrived in `runner` (paused)
   * on host `hostId` from another node, with its source's console so far. It is this node's VM
   * from now on (its telemetry, its end); `resume` it once the source has recorded the switch.
   */
  async adoptIncoming(tenantId: string, vmId: string, hostId: string, runner: VmRunner, console: { stdout: Uint8Array; stderr: Uint8Array }): Promise<void> {
    if (this.live.has(vmId)) throw new Error(`VM ${vmId} is already live here`);
    const c = new ConsoleBuffer(this.config.retention.consoleBytes);
    c.push(0, console.stdout);
    c.push(1, console.stderr);
    runner.adoptConsole(c);
    const run = await withRetry(() => this.ds.getRepository(VmRunEntity).findOneBy({ vmId }));
    this.track(tenantId, vmId, hostId, runner, run?.startedAt ?? new Date());
    if ((this.tracing.get(vmId) ?? 0) > 0) await runner.request({ type: 'trace-exits', on: true }).catch(() => undefined);
  }

  /**
   * Cluster mode, on the source node of a migration: VM `vmId` now runs on another node. Its
   * pending console events are written, and this node forgets it without recording an end.
   */
  async release(vmId: string): Promise<void> {
    await this.serial(vmId, async () => {
      const l = this.live.get(vmId);
      if (!l) return;
      for (const t of l.timers) clearInterval(t);
      await this.flushConsole(vmId, l).catch((e: unknown) => this.log.warn(`VM ${vmId}: last console events lost: ${(e as Error).message}`));
      this.live.delete(vmId);
      l.resolveSettled();
    }, 'release');
  }

  /**
   * Ends the VM's worker, whatever it is doing (booting: the boot is cancelled), and resolves once
   * its end has been recorded. A VM without a worker resolves at once.
   */
  async stopVm(vmId: string): Promise<void> {
    const boot = this.booting.get(vmId);
    if (boot) { boot.cancelled = true; await boot.over; }
    const l = this.live.get(vmId);
    if (!l) return;
    await l.runner.stop();
    await l.settled;
  }

  /**
   * Where a VM's end stands, to diagnose a VM recorded live whose worker has ended: whether this
   * service tracks it (`live`) or boots it, its worker's state, how long ago the worker's final
   * state reached this service and which part of recording it is under way, and the VM's update
   * queue (oldest first: label, ms since queued, ms since it began or null while it waits).
   */
  endStatus(vmId: string) {
    const l = this.live.get(vmId);
    const now = Date.now();
    return {
      live: l !== undefined, booting: this.booting.has(vmId), worker: l?.runner.state ?? null,
      finalMsAgo: l?.finalAt != null ? now - l.finalAt : null, ending: l?.ending ?? null,
      queue: (this.tasks.get(vmId) ?? []).map((t) => ({ label: t.label, queuedMs: now - t.queuedAt, runningMs: t.startedAt === null ? null : now - t.startedAt })),
    };
  }

  private readonly watchdog = setInterval(() => this.warnOverdueEnds(), 15_000).unref();

  /**
   * Logs (once a VM) a VM whose worker has ended while its end is not recorded: its final state
   * never reached this service, or it did over END_OVERDUE_MS ago; with `endStatus`.
   */
  warnOverdueEnds(now = Date.now()): void {
    for (const [id, l] of this.live) {
      if (l.overdueWarned || (l.runner.state !== 'stopped' && l.runner.state !== 'crashed')) continue;
      if (l.finalAt !== null && now - l.finalAt < END_OVERDUE_MS) continue;
      l.overdueWarned = true;
      const why = l.finalAt === null ? 'its final state never reached the service' : `its end is not recorded ${Math.round((now - l.finalAt) / 1000)} s later`;
      this.log.warn(`VM ${id}: its worker has ended (${l.runner.state}) but ${why}: ${JSON.stringify(this.endStatus(id))}`);
    }
  }

  /** Workers this service runs, by VM id (booting ones included): for checks that every worker belongs to one VM row. */
  workers(): string[] { return [...new Set([...this.live.keys(), ...this.booting.keys()])]; }

  /** The latest counters samples of a VM (bounded, downsampled), if it ran since the service started. */
  counterHistory(vmId: string): CounterHistory | undefined { return this.histories.get(vmId); }
  forgetVm(vmId: string): void { this.histories.delete(vmId); }

  /**
   * Periodic work of a VM, queued only if the same kind is not already waiting: when the database
   * is slower than the period, ticks are skipped instead of piling up in the VM's chain (where a
   * user's stop would wait behind them).
   */
  private periodic(vmId: string, l: LiveVm, kind: 'console' | 'counters', work: () => Promise<unknown>): void {
    if (l.queued.has(kind)) return;
    l.queued.add(kind);
    this.background(vmId, () => work().finally(() => l.queued.delete(kind)), kind);
  }

  /** Runs background work for a VM after its earlier updates; failures are logged, never unhandled. */
  private background(vmId: string, work: () => Promise<unknown>, label: string): void {
    this.serial(vmId, work, label).catch((e: unknown) => this.log.warn(`VM ${vmId}: background update failed: ${e instanceof Error ? e.message : String(e)}`));
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
    runner.on('console', (stdout: Uint8Array, stderr: Uint8Array) => { l.pendingConsole.push(0, stdout); l.pendingConsole.push(1, stderr); });
    runner.on('process', (s: ProcessStatus) => this.background(vmId, () => this.appendEvent(tenantId, vmId, 'vm.process', { ...s }), 'vm.process'));
    runner.on('exits', (records: ExitRecord[], dropped: number) => this.exitStream.emit('exits', vmId, tenantId, records, dropped));
    // Technique 6's phases, at most MAX_PM_BATCH a slice. Coalesced like console and counters: at
    // most one append task waits on the VM's queue, holding at most PM_EVENTS_PER_FLUSH events;
    // the rest are counted, and the last event of a flush says how many were left out
    // (`sampledOut`). Without this a VM entering the mode on every slice queued appends faster
    // than a busy database wrote them, and its state changes (stop) waited behind them.
    const pm = { events: [] as PmEvent[], dropped: 0, queued: false };
    runner.on('privileged-mode', (events: PmEvent[], dropped: number) => {
      for (const e of events) if (pm.events.length < PM_EVENTS_PER_FLUSH) pm.events.push(e); else pm.dropped++;
      pm.dropped += dropped;
      if (pm.queued) return;
      pm.queued = true;
      this.background(vmId, async () => {
        const batch = pm.events, left = pm.dropped;
        pm.events = []; pm.dropped = 0; pm.queued = false;
        for (let i = 0; i < batch.length; i++) {
          await this.appendEvent(tenantId, vmId, 'vm.privileged-mode', { ...batch[i], ...(i === batch.length - 1 && left > 0 ? { sampledOut: left } : {}) });
        }
      }, 'vm.privileged-mode');
    });
    // Branch target injection's transient window (vm.speculative-gadget-reach). The VM reports at
    // most one a vCPU a slice; a VM under a sustained attack could still report every slice, so
    // they are coalesced as technique 6's are: at most one append task waits on the VM's queue,
    // and reports arriving meanwhile are added to the event it will write.
    let reach: { reaches: number; vcpus: number[]; sites: string[]; gadgetAddress: number; mitigation: string; virtualTimeNs: number; reports: number } | null = null;
    runner.on('gadget-reach', (r: GadgetReach) => {
      if (reach) {
        reach.reaches += r.reaches;
        reach.reports++;
        reach.virtualTimeNs = r.virtualTimeNs;
        if (!reach.vcpus.includes(r.vcpu)) reach.vcpus.push(r.vcpu);
        if (!reach.sites.includes(r.site)) reach.sites.push(r.site);
        return;
      }
      reach = { reaches: r.reaches, vcpus: [r.vcpu], sites: [r.site], gadgetAddress: r.gadget, mitigation: r.mitigation, virtualTimeNs: r.virtualTimeNs, reports: 1 };
      this.background(vmId, async () => {
        const e = reach!;
        reach = null;
        await this.appendEvent(tenantId, vmId, 'vm.speculative-gadget-reach', { ...e });
      }, 'vm.speculative-gadget-reach');
    });
    runner.on('memory-failure', (m: { gpa: number; pid: number | null; va: number | null; virtualTimeNs: number }) => {
      this.background(vmId, () => this.appendEvent(tenantId, vmId, 'vm.memory-failure', {
        recipient: 'guest', action: 'inject', actionRequired: true, guestPhysicalAddress: m.gpa, pid: m.pid, guestVirtualAddress: m.va, virtualTimeNs: m.virtualTimeNs,
      }), 'vm.memory-failure');
    });
    // Technique 7: vm.domain-blocked-access, vm.domain-gate-violation, vm.domain-fault.
    runner.on('domain-event', (m: { event: DomainEvent; virtualTimeNs: number }) => {
      this.background(vmId, () => this.appendEvent(tenantId, vmId, `vm.domain-${m.event.kind}`, { ...m.event, virtualTimeNs: m.virtualTimeNs }), 'vm.domain-event');
    });
    runner.on('uhv-field-fault', (f: { field: string; write: boolean; pc: number; virtualTimeNs: number }) => {
      this.background(vmId, () => this.appendEvent(tenantId, vmId, 'vm.uhv-field-fault', { field: f.field, access: f.write ? 'write' : 'read', guestPc: f.pc >>> 0, virtualTimeNs: f.virtualTimeNs, outcome: 'refused' }), 'vm.uhv-field-fault');
    });
    runner.once('final', (s: VmSnapshot) => {
      // A source that handed its VM over ends 'migrated': the VM lives on in the adopted runner.
      if (l.runner !== runner || s.reason === 'migrated') return;
      l.finalAt = Date.now();
      l.ending = 'queued';
      void this.finish(vmId, l, s);
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
    await withRetry(() => this.events.tx((m) => this.events.append(m, tenantId, type, `vm:${vmId}`, data)));
  }

  /**
   * Console output since the last flush, as events of at most 64 KiB per stream: `base64` holds
   * the exact bytes (NUL and invalid UTF-8 included), `text` their UTF-8 reading for convenience
   * (invalid sequences and NUL as U+FFFD), `lagged` the bytes left out of the event log before
   * these because the log fell behind (the console itself, GET .../console, still has them).
   */
  private async flushConsole(vmId: string, l: LiveVm): Promise<void> {
    const out = [0, 1].map((port) => ({ port, ...l.pendingConsole.take(port) })).filter((o) => o.bytes.length > 0 || o.lagged > 0);
    if (out.length === 0) return;
    await withRetry(() => this.events.tx(async (m) => {
      for (const { port, bytes, lagged } of out) {
        for (let o = 0; o === 0 || o < bytes.length; o += CONSOLE_EVENT_BYTES) {
          const part = bytes.subarray(o, o + CONSOLE_EVENT_BYTES);
          await this.events.append(m, l.tenantId, 'vm.console', `vm:${vmId}`, {
            stream: port === 0 ? 'stdout' : 'stderr', bytes: part.length, base64: part.toString('base64'),
            text: part.toString('utf8').replace(/\u0000/g, '\ufffd'), ...(o === 0 && lagged ? { lagged } : {}),
          });
        }
      }
    }));
  }

  /** Samples the published counters into the VM's history and gauges; every HVSIM_COUNTERS_EVERY_S one becomes a vm.counters event. */
  private async sampleCounters(vmId: string, l: LiveVm): Promise<void> {
    const c = l.runner.counters();
    const exits = l.runner.exitCounts();
    const wallMs = Date.now() - l.startedAt.getTime();
    this.setGauges(vmId, l.hostId, c, exits);
    l.history.add({ wallMs, instructions: c.instructions, cycles: c.cycles, virtualTimeNs: c.virtualTimeNs });
    if (Date.now() - l.lastCountersEvent < this.config.retention.countersEverySeconds * 1000) return;
    l.lastCountersEvent = Date.now();
    await this.appendEvent(l.tenantId, vmId, 'vm.counters', { ...c, exits, wallMs });
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
   * `vm.state` event (and `vm.fault` for a crash); the one place a VM row's state is written.
   * When they no longer apply (the VM moved on, e.g. it stopped by itself first) nothing changes
   * and it returns false, or with `strict` raises TransitionError. Returns whether they applied.
   */
  async recordTransition(m: EntityManager, v: VmEntity, actions: VmAction[], reason: string | null, extra: Record<string, unknown> = {}, opts: { strict?: boolean } = {}): Promise<boolean> {
    const from = v.state as VmState;
    let to = from;
    try { for (const a of actions) to = transition(to, a); } catch (e) {
      if (e instanceof TransitionError && !opts.strict) return false;
      throw e;
    }
    v.state = to;
    v.stateReason = reason;
    await m.save(v);
    await this.events.append(m, v.tenantId, 'vm.state', `vm:${v.id}`, { from, to, action: actions[actions.length - 1], ...(reason ? { reason } : {}), ...extra });
    if (to === 'crashed') await this.events.append(m, v.tenantId, 'vm.fault', `vm:${v.id}`, { reason });
    return true;
  }

  /**
   * The VM is down: record its final state, run record and events (retrying while the database is
   * unreachable); release its runtime. Never rejects; `l.settled` resolves when it is over.
   */
  private finish(vmId: string, l: LiveVm, s: VmSnapshot): Promise<void> {
    return this.serial(vmId, async () => {
      if (this.live.get(vmId) !== l) return;
      for (const t of l.timers) clearInterval(t);
      l.ending = 'console';
      await this.flushConsole(vmId, l).catch((e: unknown) => this.log.warn(`VM ${vmId}: last console events lost: ${(e as Error).message}`));
      this.live.delete(vmId);
      const c = l.runner.console;
      if (s.counters) this.setGauges(vmId, l.hostId, s.counters, s.counters.exits);
      l.ending = 'recording';
      await withRetry(() => this.events.tx(async (m) => {
        const v = await m.findOne(VmEntity, { where: { id: vmId }, lock: { mode: 'pessimistic_write' } });
        if (!v) return;
        if (s.counters) {
          // The last snapshot, so even a run shorter than one sample reports its counters.
          const { perVcpu: _, ...totals } = s.counters;
          await this.events.append(m, l.tenantId, 'vm.counters', `vm:${vmId}`, { ...totals, final: true, wallMs: Date.now() - l.startedAt.getTime() });
        }
        const disks = l.runner.finalDisks;
        if (disks) {
          // A stopped VM keeps its disks: what this run wrote replaces what the last one kept.
          await m.delete(VmDiskContentEntity, { vmId });
          for (const [disk, w] of disks.entries()) {
            await m.insert(VmDiskContentEntity, { vmId, disk, tenantId: l.tenantId, chunks: w.chunks, content: Buffer.from(w.bytes.buffer, w.bytes.byteOffset, w.bytes.byteLength) });
          }
        }
        await m.update(VmRunEntity, { vmId }, {
          stoppedAt: new Date(), processes: s.processes as never, counters: s.counters as never,
          consoleStdout: c.bytes(0), consoleStderr: c.bytes(1), consoleTruncated: c.truncated[0] || c.truncated[1],
        });
        const action = s.state === 'crashed' ? 'crash' : 'stopped';
        await this.recordTransition(m, v, v.state === 'starting' ? ['started', action] : [action], s.reason, { processes: s.processes });
      }), { attempts: 30 });
    }, 'end').catch((e: unknown) => {
      this.log.error(`VM ${vmId}: its end could not be recorded (it is recorded at the next start-up): ${e instanceof Error ? e.stack : String(e)}`);
    }).finally(() => l.resolveSettled());
  }
}
