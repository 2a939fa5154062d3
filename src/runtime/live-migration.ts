/**
 * One live migration driven from the main thread (the REST API and experiments both use it):
 * prepares a destination worker on the target host and has it listen, starts the source worker's
 * pre-copy (the data goes worker to worker over TCP), relays the source's news, and waits for the
 * outcome. The source has the last word on how a migration ends: a destination that fails breaks
 * the connection, which the source reports (possibly after a host panic of its own); from the
 * destination only its arrival counts. On success the destination holds the VM `paused`: the
 * caller switches console and telemetry over to it, then resumes it. On failure nothing is left
 * on the target host and the source VM runs on.
 */
import type { HostRuntime } from './host-runtime.js';
import type { VmRunner } from './vm-runner.js';
import type { MigrationMessage, WorkerInit } from './protocol.js';
import type { MigrationOutcome, MigrationParams, MigrationStats } from '../migration/source.js';

export type LivePhase = 'preparing-target' | 'target-ready' | 'running';

export interface MigrateHooks {
  /** Entering a phase (awaited before going on). */
  phase?(p: LivePhase): Promise<void>;
  /** After every pre-copy round. */
  progress?(s: MigrationStats): Promise<void>;
  /** The technique's copy found and contained a latent error. */
  latentError?(e: { gpa: number; frame: number }): Promise<void>;
  /** Aborting it cancels the migration (before the switch-over); the outcome is then a failure 'cancelled'. */
  signal?: AbortSignal;
}

export type MigrateResult<T = VmRunner> =
  /** `target` holds the VM, paused. */
  | { ok: true; outcome: MigrationOutcome; target: T }
  /** `hostPanic`: without the technique, the copy consumed an error in this frame; the source host must panic. */
  | { ok: false; reason: string; hostPanic: { frame: number; gpa: number } | null };

type FailAt = NonNullable<WorkerInit['incoming']>['failAt'];

/**
 * The destination of a migration: a worker on a host of this process (`LocalIncoming`) or of
 * another node of a cluster (reached over HTTP by the service). `T` is what holds the VM once it
 * has arrived.
 */
export interface IncomingVm<T> {
  /** Prepares the destination worker and has it listen; where the source connects. */
  listen(): Promise<{ host: string; port: number }>;
  /**
   * Called once the source reports the copy complete: resolves once the VM has arrived (held
   * paused) or the destination ended first (with its reason). `console`: the source's console.
   */
  arrival(): Promise<{ ok: true; target: T } | { ok: false; reason: string }>;
  /** Ends the destination (the migration failed or was cancelled); nothing is left on its host. */
  stop(): Promise<void>;
}

/** A destination worker on host `to` of this process. */
export class LocalIncoming implements IncomingVm<VmRunner> {
  private readonly runner: VmRunner;
  private readonly arrived: Promise<boolean>;

  constructor(to: HostRuntime, key: string, spec: VmRunner['spec'], failAt: FailAt, private readonly host = '127.0.0.1') {
    this.runner = to.prepareIncoming(key, spec, failAt);
    this.arrived = new Promise<boolean>((resolve) => {
      this.runner.on('migration', (m: MigrationMessage) => { if (m.event === 'arrived') resolve(true); });
      void this.runner.done.then(() => resolve(false));
    });
  }

  async listen(): Promise<{ host: string; port: number }> {
    const { port } = await this.runner.ask({ type: 'migrate-listen', host: this.host });
    return { host: this.host, port };
  }

  async arrival(): Promise<{ ok: true; target: VmRunner } | { ok: false; reason: string }> {
    return (await this.arrived) ? { ok: true, target: this.runner } : { ok: false, reason: `the destination VM ended before it ran: ${this.runner.snapshot.reason}` };
  }

  async stop(): Promise<void> { await this.runner.stop(); }
}

/** Migrates the VM of `src` to host `to` as VM `key`. Never throws: every failure is a result. */
export async function migrateVm(src: VmRunner, to: HostRuntime, key: string, params: MigrationParams, failAt: FailAt, hooks: MigrateHooks = {}): Promise<MigrateResult> {
  return migrateTo(src, () => new LocalIncoming(to, key, src.spec, failAt), params, hooks);
}

/** Migrates the VM of `src` to the destination `makeTarget` prepares. Never throws: every failure is a result. */
export async function migrateTo<T>(src: VmRunner, makeTarget: () => IncomingVm<T>, params: MigrationParams, hooks: MigrateHooks = {}): Promise<MigrateResult<T>> {
  await hooks.phase?.('preparing-target');
  const news: MigrationMessage[] = [];
  let wake: () => void = () => undefined;
  const onSource = (m: MigrationMessage) => { news.push(m); wake(); };
  // A source worker that dies without a word (killed with its host) ends the migration too.
  void src.done.then(() => { news.push({ type: 'migration', event: 'failed', reason: `the source VM ended (${src.snapshot.reason})` }); wake(); });
  const next = async (): Promise<MigrationMessage> => {
    while (news.length === 0) await new Promise<void>((r) => { wake = r; });
    return news.shift()!;
  };
  let target: IncomingVm<T> | null = null;
  const fail = async (reason: string, hostPanic: { frame: number; gpa: number } | null = null): Promise<MigrateResult<T>> => {
    await target?.stop().catch(() => undefined);
    return { ok: false, reason, hostPanic };
  };
  try {
    target = makeTarget();
    const { host, port } = await target.listen();
    await hooks.phase?.('target-ready');
    await hooks.phase?.('running');
    src.on('migration', onSource);
    if (hooks.signal?.aborted) return await fail('cancelled');
    await src.ask({ type: 'migrate', port, host, params });
    // Pre-copy advances with the guest: a source armed while paused (an experiment's fixed moment) runs on now.
    if (src.state === 'paused') await src.resume();
    // A cancel that came while the migration was being set up is carried out now.
    const cancel = () => { void src.request({ type: 'migrate-cancel' }).catch(() => undefined); };
    hooks.signal?.addEventListener('abort', cancel);
    if (hooks.signal?.aborted) cancel();
    for (;;) {
      const m = await next();
      if (m.event === 'progress') await hooks.progress?.(m.stats);
      else if (m.event === 'latent-error') await hooks.latentError?.({ gpa: m.gpa, frame: m.frame });
      else if (m.event === 'host-panic') return await fail(`host-panic: the copy consumed an uncorrectable error in host frame ${m.frame} (guest page 0x${m.gpa.toString(16)})`, { frame: m.frame, gpa: m.gpa });
      else if (m.event === 'failed') return await fail(m.reason);
      else if (m.event === 'completed') {
        const a = await target.arrival();
        if (!a.ok) return await fail(a.reason);
        return { ok: true, outcome: m.outcome, target: a.target };
      }
    }
  } catch (e) {
    return fail((e as Error).message);
  } finally {
    src.off('migration', onSource);
  }
}
