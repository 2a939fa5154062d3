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
import {
  ActionType, ALLOWED, CONSOLE_PENDING_BYTES, ExitRecord, MAX_EXIT_BATCH, MAX_PM_BATCH, PUBLISHED, ReplyData, RequestOf, SLICE_QUANTA, ToWorker, VmSnapshot, WorkerError,
  WorkerErrorKind, WorkerInit, WorkerMessage, WorkerState,
} from './protocol.js';
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

/** Console output not yet sent, per port; `inFlight`: a batch awaits the main thread's credit. */
const pendingConsole = [new Uint8Array(4096), new Uint8Array(4096)];
const pendingLength = [0, 0];
let inFlight = false;
let creditWaiter: (() => void) | null = null;

function queueConsole(p: number, bytes: Uint8Array): void {
  const i = p === 1 ? 1 : 0;
  let buf = pendingConsole[i];
  const need = pendingLength[i] + bytes.length;
  if (need > buf.length) {
    const grown = new Uint8Array(Math.max(need, buf.length * 2));
    grown.set(buf.subarray(0, pendingLength[i]));
    pendingConsole[i] = buf = grown;
  }
  buf.set(bytes, pendingLength[i]);
  pendingLength[i] = need;
}

/** Sends what is pending as one batch unless a batch is still in flight (or `force`, at the end). */
function flushConsole(force = false): void {
  if ((inFlight && !force) || pendingLength[0] + pendingLength[1] === 0) return;
  const stdout = pendingConsole[0].slice(0, pendingLength[0]);
  const stderr = pendingConsole[1].slice(0, pendingLength[1]);
  pendingLength[0] = pendingLength[1] = 0;
  inFlight = true;
  send({ type: 'console', stdout, stderr }, [stdout.buffer, stderr.buffer]);
}

/** Resolves when the main thread has taken the batch in flight (at once if none is). */
function credit(): Promise<void> {
  if (!inFlight) return Promise.resolve();
  return new Promise((r) => { creditWaiter = r; });
}

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
  flushConsole(true);
  if (vm && vm.disks.length > 0 && why !== 'migrated') {
    const disks = vm.disks.map((d) => d.exportWritten());
    send({ type: 'disks', disks }, disks.map((d) => d.bytes.buffer as ArrayBuffer));
  }
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
      flushConsole();
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
      // Backpressure: a guest that printed more than the main thread has taken waits for it.
      if (pendingLength[0] + pendingLength[1] >= CONSOLE_PENDING_BYTES) await credit();
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
    // The console the guest wrote before the switch goes first: the main thread hands the source's
    // console to the destination when it reads 'completed', and would otherwise miss this batch.
    flushConsole(true);
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
  v.onConsole(queueConsole);
  v.kernel.onProcessExit = (status) => send({ type: 'process', status });
  v.onPrivilegedMode((e) => { if (pmBatch.length < MAX_PM_BATCH) pmBatch.push(e); else pmDropped++; });
  v.kernel.onMemoryFailure = (e) => send({ type: 'memory-failure', gpa: e.gpa, pid: e.pid, va: e.va, virtualTimeNs: v.virtualTimeNs() });
  v.onDomainEvent((event) => send({ type: 'domain-event', event, virtualTimeNs: v.virtualTimeNs() }));
  // The attempted value is left out: it could be anything the UHV held.
  v.onGadgetReach((reach) => send({ type: 'gadget-reach', reach }));
  v.onFieldFault((f) => send({ type: 'uhv-field-fault', field: f.field, write: f.write, pc: f.pc, virtualTimeNs: v.virtualTimeNs() }));
}

/** Destination: listen, then take the VM over when the stream completes (or end this worker when it fails). */
async function listen(host = '127.0.0.1'): Promise<Outcome<'migrate-listen'>> {
  if (init.incoming?.failAt === 'preparing-target') {
    setImmediate(() => finish('crashed', 'migration-failed: the destination failed while preparing (fault injection)'));
    return fail('failed', 'the destination failed while preparing (fault injection)');
  }
  const d = new MigrationDestination(init.spec, () => Vm.incoming(init.spec, HostMemory.attach(init.host), init.owner), init.incoming?.failAt ?? null);
  const listenPort = await d.listen(host);
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
  return ok({ port: listenPort });
}

/** A request's outcome: its reply data, or why it failed. */
type Outcome<K extends ActionType> = { ok: true; data: ReplyData[K] } | { ok: false; error: WorkerError };
const ok = <T>(data: T) => ({ ok: true as const, data });
const fail = (kind: WorkerErrorKind, message: string) => ({ ok: false as const, error: { kind, message } });
const done = ok(null);
const message = (e: unknown) => (e as Error)?.message ?? String(e);

/** One handler per request type, each answering with that type's reply data. */
const HANDLERS: { [K in ActionType]: (a: RequestOf<K>) => Outcome<K> | Promise<Outcome<K>> } = {
  'start': (a) => {
    try {
      vm = new Vm(init.spec, HostMemory.attach(init.host), init.owner);
    } catch (e) {
      finish('crashed', `boot-failed: ${message(e)}`);
      return fail('failed', message(e));
    }
    attach(vm);
    pauseAt = a.pauseAtVirtualNs ?? Infinity;
    state = 'running';
    setImmediate(loop); // after the reply to this request
    return done;
  },
  'pause': () => { state = 'paused'; return done; },
  'resume': () => { state = 'running'; setImmediate(loop); return done; },
  'stop': () => {
    if (migration) { migration.abort(); migration = null; send({ type: 'migration', event: 'failed', reason: 'the VM was stopped' }); }
    incoming?.cancel('the destination VM was stopped');
    vm?.stop('stopped');
    finish('stopped', 'stopped');
    return done;
  },
  'read-state': () => done,
  'trace-exits': (a) => {
    if (!vm) return fail('not-allowed', 'trace-exits needs a started VM');
    vm.khv.onExit = a.on ? (reason, h) => {
      if (exitBatch.length >= MAX_EXIT_BATCH) { exitsDropped++; return; }
      exitBatch.push({ vcpu: h.hartId, reason, pc: (h.virt ? h.pc : h.sepc) >>> 0, timeNs: h.ctr[Ctr.Cycles] });
    } : null;
    return done;
  },
  'set-techniques': (a) => { vm!.setTechniques(a.techniques); return done; },
  'inject-memory-error': (a) => {
    try { return ok(vm!.injectMemoryError(a.frame, a.latent ?? true)); } catch (e) { return fail('invalid', message(e)); }
  },
  'inject-privileged-mode': (a) => {
    try { return ok({ outcome: vm!.interruptPrivilegedMode(a.vcpu) }); } catch (e) { return fail('invalid', message(e)); }
  },
  'migrate': (a) => {
    if (migration) return fail('not-allowed', 'a migration is already running');
    const m = new MigrationSource(vm!, a.params, {
      progress: (stats) => send({ type: 'migration', event: 'progress', stats }),
      latentError: (e) => send({ type: 'migration', event: 'latent-error', gpa: e.gpa, frame: e.frame }),
    });
    return m.open(a.port, a.host).then(() => { migration = m; return done; }, (e: Error) => { m.abort(); return fail('failed', e.message); });
  },
  'migrate-cancel': () => {
    if (!migration) return fail('not-allowed', 'no migration is running');
    migration.cancel();
    return done;
  },
  'migrate-listen': (a) => (incoming ? fail('not-allowed', 'already listening') : listen(a.host)),
  'resolve-frame': (a) => ok(vm!.frameOf(a.target)),
  'memory-map': () => ok(vm!.memoryPages()),
  'read-disk': (a) => {
    const d = vm!.disks[a.disk];
    if (!d) return fail('invalid', `the VM has ${vm!.disks.length} disk(s), not disk ${a.disk}`);
    const start = Math.min(Math.max(0, a.start), d.sizeBytes), end = Math.min(Math.max(start, a.end), d.sizeBytes);
    return ok({ sizeBytes: d.sizeBytes, start, bytes: d.slice(start, end) });
  },
};

function reply(id: number, action: ActionType, r: Outcome<ActionType>): void {
  const snap = snapshot();
  if (r.ok) send({ type: 'reply', id, ok: true, action, snapshot: snap, data: r.data } as WorkerMessage);
  else send({ type: 'reply', id, ok: false, error: r.error, snapshot: snap });
}

function handle<K extends ActionType>(id: number, a: RequestOf<K>): void {
  if (!ALLOWED[state].includes(a.type)) return reply(id, a.type, fail('not-allowed', `${a.type} is not allowed while the VM is ${state}`));
  let r: Outcome<K> | Promise<Outcome<K>>;
  try { r = (HANDLERS[a.type] as (x: RequestOf<K>) => Outcome<K> | Promise<Outcome<K>>)(a); } catch (e) { r = fail('failed', message(e)); }
  if (r instanceof Promise) void r.then((x) => reply(id, a.type, x), (e: unknown) => reply(id, a.type, fail('failed', message(e))));
  else reply(id, a.type, r);
}

port.on('message', (m: ToWorker) => {
  if (m.type === 'credit') {
    inFlight = false;
    const w = creditWaiter;
    creditWaiter = null;
    w?.();
    return;
  }
  handle(m.id, m.request);
});
