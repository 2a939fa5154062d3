/**
 * The main thread's handle on one VM worker: sends protocol actions and resolves their replies,
 * re-emits console output and state changes, reads the published counters from shared memory,
 * and turns a worker that dies (an error thrown outside the VM, termination, a crash of the
 * thread) into a `crashed` VM whose host frames are taken back. The process never goes down
 * with a worker.
 *
 * Events: 'console' (stdout, stderr: Uint8Array, one coalesced batch), 'process' (status), 'memory-failure' (details), 'domain-event' (details), 'uhv-field-fault' (details), 'gadget-reach' (GadgetReach), 'exits' (records, dropped), 'privileged-mode' (events, dropped), 'migration' (MigrationMessage), 'state'
 * (snapshot), 'final' (snapshot, once). Console output
 * is also kept in `console` (bounded), so nothing printed before a listener attaches is lost.
 */
import { EventEmitter } from 'node:events';
import type { Worker } from 'node:worker_threads';
import { HostMemory } from '../hypervisor/host-memory.js';
import { EXIT_REASONS } from '../hypervisor/exits.js';
import { ActionType, PUBLISHED, PUBLISHED_SLOTS, ReplyData, RequestOf, ToWorker, VmSnapshot, WorkerErrorKind, WorkerInit, WorkerMessage, WorkerRequest, WorkerState } from './protocol.js';
import { spawnModuleWorker } from './spawn-worker.js';
import { ConsoleBuffer } from './console-buffer.js';
import type { VmSpec } from './vm.js';
import type { WrittenChunks } from '../hypervisor/disk.js';

/** A request the worker refused or could not answer; `kind` says why (the API maps it to a status). */
export class VmActionError extends Error {
  constructor(readonly kind: WorkerErrorKind, message: string, readonly snapshot: VmSnapshot) { super(message); }
}

/** How long the main thread waits for a worker's reply: control requests, and a boot (which loads the images). */
export const REQUEST_TIMEOUT_MS = 10_000;
export const START_TIMEOUT_MS = 60_000;

interface Pending { resolve: (r: { snapshot: VmSnapshot; data: unknown }) => void; reject: (e: Error) => void; timer: NodeJS.Timeout; onOk?: () => void }

export class VmRunner extends EventEmitter {
  private readonly worker: Worker;
  private readonly published: Float64Array;
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  /** Console output so far (a VM arriving by migration takes over its source's buffer: `adoptConsole`). */
  console: ConsoleBuffer;
  private last: VmSnapshot = { state: 'created', reason: null, vcpus: [], processes: [], counters: null };
  /** Resolves with the final snapshot when the VM has stopped or crashed (never rejects). */
  readonly done: Promise<VmSnapshot>;
  /** What the VM wrote over its disks' bases, reported just before its final snapshot (null until then, or when the worker died). */
  finalDisks: WrittenChunks[] | null = null;
  private resolveDone!: (s: VmSnapshot) => void;

  constructor(readonly spec: VmSpec, readonly host: HostMemory, readonly owner: number, sliceQuanta?: number, consoleBytes?: number, incoming?: WorkerInit['incoming']) {
    super();
    this.console = new ConsoleBuffer(consoleBytes);
    const sab = new SharedArrayBuffer(PUBLISHED_SLOTS * 8);
    this.published = new Float64Array(sab);
    this.done = new Promise((r) => { this.resolveDone = r; });
    const init: WorkerInit = { spec, host: host.buffers, owner, published: sab, sliceQuanta, incoming };
    this.worker = spawnModuleWorker(import.meta.url, 'vm-worker', init);
    this.worker.on('message', (m: WorkerMessage) => this.onMessage(m));
    this.worker.on('error', (e) => this.died(`worker-error: ${e?.message ?? e}`));
    this.worker.on('exit', (code) => this.died(`worker-exited: status ${code}`));
  }

  get state(): WorkerState { return this.last.state; }

  /** Continues the console of the VM this one arrived from. */
  adoptConsole(c: ConsoleBuffer): void { this.console = c; }
  get snapshot(): VmSnapshot { return this.last; }

  /** The counters the worker published last (no round trip). */
  counters(): Record<(typeof PUBLISHED)[number], number> {
    return Object.fromEntries(PUBLISHED.map((k, i) => [k, this.published[i]])) as Record<(typeof PUBLISHED)[number], number>;
  }

  /** Exits by reason as the worker published them last (reasons with at least one exit). */
  exitCounts(): Record<string, number> {
    const out: Record<string, number> = {};
    EXIT_REASONS.forEach((r, i) => { const n = this.published[PUBLISHED.length + i]; if (n) out[r.name] = n; });
    return out;
  }

  /**
   * Sends one request; resolves with the reply's snapshot and data. Raises: VmActionError when the
   * worker refuses it, is gone, or does not answer within `timeoutMs` (kind `timeout`; a boot that
   * times out ends the worker, which cannot be trusted to come back).
   */
  private send<K extends ActionType>(request: RequestOf<K>, timeoutMs: number, onOk?: () => void): Promise<{ snapshot: VmSnapshot; data: ReplyData[K] }> {
    if (this.last.state === 'stopped' || this.last.state === 'crashed') {
      return request.type === 'read-state'
        ? Promise.resolve({ snapshot: this.last, data: null as ReplyData[K] })
        : Promise.reject(new VmActionError('gone', `${request.type} is not allowed while the VM is ${this.last.state}`, this.last));
    }
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        if (!this.pending.delete(id)) return;
        reject(new VmActionError('timeout', `the VM did not answer ${request.type} within ${timeoutMs} ms`, this.last));
        if (request.type === 'start') void this.kill(`boot-timeout: no answer within ${timeoutMs} ms`);
      }, timeoutMs);
      timer.unref();
      this.pending.set(id, { resolve: resolve as Pending['resolve'], reject, timer, onOk });
      this.worker.postMessage({ type: 'request', id, request: request as WorkerRequest } satisfies ToWorker);
    });
  }

  /** Sends one request and resolves with the VM's state after it. Raises: VmActionError. */
  request<K extends ActionType>(request: RequestOf<K>, timeoutMs = REQUEST_TIMEOUT_MS): Promise<VmSnapshot> { return this.send(request, timeoutMs).then((r) => r.snapshot); }

  /** Sends one request and resolves with its reply data (typed per request). Raises: VmActionError. */
  ask<K extends ActionType>(request: RequestOf<K>, timeoutMs = REQUEST_TIMEOUT_MS): Promise<ReplyData[K]> { return this.send(request, timeoutMs).then((r) => r.data); }

  /**
   * Boots the VM; `pauseAtVirtualNs`: it pauses itself at that virtual time (then 'state' is
   * emitted). `onStarted` runs when the worker's answer that it started is read, before any
   * notification after it is emitted: listeners it attaches see all of them, 'final' included.
   * Awaiting the start is not enough for that: Node reads the queued messages of a worker that
   * has already ended (a short guest, a busy main thread) in one synchronous run, so the answer,
   * the console and 'final' are all emitted before the code after `await start()` runs.
   */
  start(pauseAtVirtualNs?: number, onStarted?: () => void): Promise<VmSnapshot> {
    return this.send({ type: 'start', pauseAtVirtualNs }, START_TIMEOUT_MS, onStarted).then((r) => r.snapshot);
  }
  pause(): Promise<VmSnapshot> { return this.request({ type: 'pause' }); }
  resume(): Promise<VmSnapshot> { return this.request({ type: 'resume' }); }
  readState(): Promise<VmSnapshot> { return this.request({ type: 'read-state' }); }
  /** Stops the VM and resolves once it is down (a VM already down resolves at once). */
  async stop(): Promise<VmSnapshot> {
    if (this.last.state !== 'stopped' && this.last.state !== 'crashed') await this.request({ type: 'stop' }).catch(() => undefined);
    return this.done;
  }

  /** Kills the worker thread outright (as the OS would); the VM ends `crashed` with `reason` (default: how the worker ended). */
  async kill(reason?: string): Promise<VmSnapshot> {
    this.killReason = reason;
    await this.worker.terminate();
    return this.done;
  }
  private killReason: string | undefined;

  private update(s: VmSnapshot): void {
    const changed = s.state !== this.last.state;
    this.last = s;
    if (changed) this.emit('state', s);
  }

  private onMessage(m: WorkerMessage): void {
    switch (m.type) {
      case 'console':
        this.console.push(0, m.stdout);
        this.console.push(1, m.stderr);
        this.emit('console', m.stdout, m.stderr);
        // The batch is taken: the worker may send the next one.
        if (!this.finished) this.worker.postMessage({ type: 'credit' } satisfies ToWorker);
        break;
      case 'process':
        this.emit('process', m.status);
        break;
      case 'memory-failure':
        this.emit('memory-failure', m);
        break;
      case 'domain-event':
        this.emit('domain-event', m);
        break;
      case 'uhv-field-fault':
        this.emit('uhv-field-fault', m);
        break;
      case 'gadget-reach':
        this.emit('gadget-reach', m.reach);
        break;
      case 'exits':
        this.emit('exits', m.records, m.dropped);
        break;
      case 'privileged-mode':
        this.emit('privileged-mode', m.events, m.dropped);
        break;
      case 'migration':
        this.emit('migration', m);
        break;
      case 'state':
        this.update(m.snapshot);
        break;
      case 'disks':
        this.finalDisks = m.disks;
        break;
      case 'final':
        this.finish(m.snapshot);
        break;
      case 'reply': {
        const p = this.pending.get(m.id);
        this.pending.delete(m.id);
        if (p) clearTimeout(p.timer);
        if (this.last.state !== 'stopped' && this.last.state !== 'crashed') this.update(m.snapshot);
        if (m.ok && p?.onOk) {
          try { p.onOk(); } catch (e) { p.reject(e as Error); break; }
        }
        if (m.ok) p?.resolve({ snapshot: m.snapshot, data: m.data }); else p?.reject(new VmActionError(m.error.kind, m.error.message, m.snapshot));
        break;
      }
    }
  }

  private finished = false;
  private finish(s: VmSnapshot): void {
    if (this.finished) return;
    this.finished = true;
    this.update(s);
    for (const p of this.pending.values()) { clearTimeout(p.timer); p.reject(new VmActionError('gone', `the VM is ${s.state}${s.reason ? `: ${s.reason}` : ''}`, s)); }
    this.pending.clear();
    this.emit('final', s);
    this.resolveDone(s);
  }

  /** The worker went away. If it had not reported a final state, the VM crashed with it. */
  private died(reason: string): void {
    if (this.finished) return;
    // Whatever the worker held goes back to the host (it cannot free it any more).
    this.host.releaseOwner(this.owner);
    this.finish({ ...this.last, state: 'crashed', reason: this.killReason ?? reason });
  }
}
