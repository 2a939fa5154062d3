/**
 * VM worker entry: one worker thread runs one VM (all its vCPUs), driven by the protocol in
 * protocol.ts. Between slices of simulated time it yields to the event loop so actions arrive;
 * nothing a guest does can throw out of here (Vm.run turns guest faults into `crashed`), and an
 * unexpected error still ends in a `crashed` final message.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { HostMemory } from '../hypervisor/host-memory.js';
import { Vm } from './vm.js';
import { Ctr } from '../uarch/costs.js';
import { EXIT_REASONS } from '../hypervisor/exits.js';
import { MigrationDestination } from '../migration/destination.js';
import { MigrationHostPanic, MigrationSource } from '../migration/source.js';
import { ALLOWED, Envelope, ExitRecord, MAX_EXIT_BATCH, MAX_PM_BATCH, PUBLISHED, SLICE_QUANTA, VmAction, VmSnapshot, WorkerInit, WorkerMessage, WorkerState } from './protocol.js';
import type { PmEvent } from '../hypervisor/privileged-mode.js';

const init = workerData as WorkerInit;
const port = parentPort!;
const published = new Float64Array(init.published);
const slice = init.sliceQuanta ?? SLICE_QUANTA;

let state: WorkerState = 'created';
let reason: string | null = null;
let vm: Vm | null = null;
let looping = false;
/** This worker's side of a live migration: sending its VM, or receiving one. */
let migration: MigrationSource | null = null;
let incoming: MigrationDestination<Vm> | null = null;
/** Pause by itself once virtual time reaches this (the start action's pauseAtVirtualNs). */
let pauseAt = Infinity;
let exitBatch: ExitRecord[] = [];
let exitsDropped = 0;

let pmBatch: PmEvent[] = [];
let pmDropped = 0;

function flushExits(): void {
  if (pmBatch.length > 0 || pmDropped > 0) {
    send({ type: 'privileged-mode', events: pmBatch, dropped: pmDropped });
    pmBatch = [];
    pmDropped = 0;
  }
  if (exitBatch.length === 0 && exitsDropped === 0) return;
  send({ type: 'exits', records: exitBatch, dropped: exitsDropped });
  exitBatch = [];
  exitsDropped = 0;
}

const send = (m: WorkerMessage, transfer: ArrayBuffer[] = []) => port.postMessage(m, transfer);

function snapshot(): VmSnapshot {
  return { state, reason, vcpus: vm?.vcpus.map((v) => (v.halted ? 'idle' : 'running')) ?? [], processes: vm?.processes() ?? [], counters: vm?.counters() ?? null };
}

function publish(): void {
  if (!vm) return;
  const c = vm.counters() as unknown as Record<string, number>;
  PUBLISHED.forEach((k, i) => { published[i] = c[k]; });
  const exits = vm.khv.exits;
  EXIT_REASONS.forEach((r, i) => { published[PUBLISHED.length + i] = exits.get(r.name) ?? 0; });
}

function finish(next: 'stopped' | 'crashed', why: string | null): void {
  if (state === 'stopped' || state === 'crashed') return; // already final (e.g. a stop that also ends a pending migration)
  state = next;
  reason = why;
  publish();
  send({ type: 'final', snapshot: snapshot() });
  // Close after the reply to the current action (sent in this same tick); the thread then exits.
  setImmediate(() => port.close());
}

async function loop(): Promise<void> {
  if (looping) return;
  looping = true;
  try {
    while (state === 'running' && vm) {
      const s = vm.run(slice);
      publish();
      flushExits();
      if (s !== 'running') {
        if (migration) { migration.abort(); migration = null; send({ type: 'migration', event: 'failed', reason: `the VM ${s === 'stopped' ? 'stopped' : 'crashed'} during the migration` }); }
        finish(s, vm.reason);
        break;
      }
      if (migration && await migrationStep(migration, vm)) break;
      if (vm.virtualTimeNs() >= pauseAt) {
        pauseAt = Infinity;
        state = 'paused';
        send({ type: 'state', snapshot: snapshot() });
        break;
      }
      await new Promise((r) => setImmediate(r));
    }
  } catch (e) {
    finish('crashed', `internal-error: ${(e as Error)?.message ?? e}`);
  } finally {
    looping = false;
  }
}

/** One migration step after a slice; returns true when this worker's VM is gone (moved, or the host panicked). */
async function migrationStep(m: MigrationSource, v: Vm): Promise<boolean> {
  try {
    const r = await m.afterSlice();
    if (r === 'running') return false;
    migration = null;
    send({ type: 'migration', event: 'completed', outcome: r });
    v.stop('migrated');
    finish('stopped', 'migrated');
    return true;
  } catch (e) {
    migration = null;
    m.abort();
    if (e instanceof MigrationHostPanic) {
      send({ type: 'migration', event: 'host-panic', frame: e.frame, gpa: e.gpa });
      v.stop('host-panic');
      finish('crashed', 'host-panic');
      return true;
    }
    send({ type: 'migration', event: 'failed', reason: (e as Error).message });
    return false;
  }
}

/** Console, process and memory-failure news of a VM (booted here or arrived by migration) go to the main thread. */
function attach(v: Vm): void {
  vm = v;
  v.onConsole((p, bytes) => send({ type: 'console', port: p, bytes }, [bytes.buffer as ArrayBuffer]));
  v.kernel.onProcessExit = (status) => send({ type: 'process', status });
  v.onPrivilegedMode((e) => { if (pmBatch.length < MAX_PM_BATCH) pmBatch.push(e); else pmDropped++; });
  v.kernel.onMemoryFailure = (e) => send({ type: 'memory-failure', gpa: e.gpa, pid: e.pid, va: e.va, virtualTimeNs: v.virtualTimeNs() });
}

/** Destination: listen, then take the VM over when the stream completes (or end this worker when it fails). */
async function listen(): Promise<{ error: string | null; data?: unknown }> {
  if (init.incoming?.failAt === 'preparing-target') {
    setImmediate(() => finish('crashed', 'migration-failed: the destination failed while preparing (fault injection)'));
    return { error: 'the destination failed while preparing (fault injection)' };
  }
  const d = new MigrationDestination(init.spec, () => Vm.incoming(init.spec, HostMemory.attach(init.host), init.owner), init.incoming?.failAt ?? null);
  const listenPort = await d.listen();
  d.done.then((v) => {
    // Paused until the main thread has switched the VM over to this worker (console, telemetry) and resumes it.
    attach(v);
    state = 'paused';
    send({ type: 'migration', event: 'arrived' });
    send({ type: 'state', snapshot: snapshot() });
  }, (e: Error) => {
    send({ type: 'migration', event: 'failed', reason: e.message });
    finish('crashed', `migration-failed: ${e.message}`);
  });
  incoming = d;
  return { error: null, data: { port: listenPort } };
}

/** Data for the reply to the action being handled. */
let replyData: unknown;

function handle(a: VmAction): string | null | Promise<{ error: string | null; data?: unknown }> {
  replyData = undefined;
  if (!ALLOWED[state].includes(a.type)) return `${a.type} is not allowed while the VM is ${state}`;
  switch (a.type) {
    case 'start':
      try {
        vm = new Vm(init.spec, HostMemory.attach(init.host), init.owner);
      } catch (e) {
        finish('crashed', `boot-failed: ${(e as Error)?.message ?? e}`);
        return (e as Error)?.message ?? String(e);
      }
      attach(vm);
      pauseAt = a.pauseAtVirtualNs ?? Infinity;
      state = 'running';
      setImmediate(loop); // after the reply to this action
      return null;
    case 'pause':
      state = 'paused';
      return null;
    case 'resume':
      state = 'running';
      setImmediate(loop);
      return null;
    case 'stop':
      if (migration) { migration.abort(); migration = null; send({ type: 'migration', event: 'failed', reason: 'the VM was stopped' }); }
      incoming?.cancel('the destination VM was stopped');
      vm?.stop('stopped');
      finish('stopped', 'stopped');
      return null;
    case 'read-state':
      return null;
    case 'trace-exits':
      if (!vm) return 'trace-exits needs a started VM';
      vm.khv.onExit = a.on ? (reason, h) => {
        if (exitBatch.length >= MAX_EXIT_BATCH) { exitsDropped++; return; }
        exitBatch.push({ vcpu: h.hartId, reason, pc: (h.virt ? h.pc : h.sepc) >>> 0, timeNs: h.ctr[Ctr.Cycles] });
      } : null;
      return null;
    case 'set-techniques':
      vm!.kernel.techniques = a.techniques;
      return null;
    case 'inject':
      if (a.what === 'privileged-mode') {
        try { replyData = { outcome: vm!.interruptPrivilegedMode(a.vcpu ?? -1) }; } catch (e) { return (e as Error).message; }
        return null;
      }
      if (a.what !== 'memory-error' || a.frame === undefined) return `inject ${a.what}: not implemented`;
      try { replyData = vm!.injectMemoryError(a.frame, a.latent ?? true); } catch (e) { return (e as Error).message; }
      return null;
    case 'migrate': {
      if (migration) return 'a migration is already running';
      const v = vm!;
      const m = new MigrationSource(v, a.params, {
        progress: (stats) => send({ type: 'migration', event: 'progress', stats }),
        latentError: (e) => send({ type: 'migration', event: 'latent-error', gpa: e.gpa, frame: e.frame }),
      });
      return m.open(a.port).then(() => { migration = m; return { error: null }; }, (e: Error) => { m.abort(); return { error: e.message }; });
    }
    case 'migrate-cancel':
      if (!migration) return 'no migration is running';
      migration.cancel();
      return null;
    case 'migrate-listen':
      if (incoming) return 'already listening';
      return listen();
    case 'resolve-frame':
      replyData = a.gpa !== undefined ? vm!.frameOf({ gpa: a.gpa }) : vm!.frameOf({ pid: a.pid ?? -1, va: a.va ?? -1 });
      return null;
    case 'memory-map':
      replyData = vm!.memoryPages();
      return null;
  }
}

function reply(id: number, error: string | null, data: unknown): void {
  const snap = snapshot();
  if (error === null) send({ type: 'reply', id, ok: true, snapshot: snap, data });
  else send({ type: 'reply', id, ok: false, error, snapshot: snap });
}

port.on('message', ({ id, action }: Envelope) => {
  const r = handle(action);
  if (r instanceof Promise) void r.then((x) => reply(id, x.error, x.data), (e: Error) => reply(id, e.message, undefined));
  else reply(id, r, replyData);
});
