/**
 * Socket.IO event stream at namespace /events.
 *
 * Protocol (all payloads JSON):
 *   connect with `auth: {token}` (a tenant token); bad tokens are refused with connect_error
 *   (`data.status` 401; 429 once the token has failed 20 times in a minute from the address, the
 *   HTTP limiter's budget, shared).
 *   client -> `subscribe {subjects: ["vm:ID", "host:ID", ...], sinceSeq?}`, with an ack
 *     callback answered `{subscribed: [...], rejected: [{subject, reason}]}`; subjects of other
 *     tenants (or that do not exist) are rejected, never revealed.
 *   server -> `event {seq, time, type, tenantId, subject, data}`: first the replay of events
 *     with seq > sinceSeq for those subjects, then live events, in seq order.
 *   Flow control: every `event` must be acknowledged (its ack callback called). At most
 *   config.events.inFlight (64) events are unacknowledged per socket; up to config.events.queue
 *   (1024) more wait in a bounded queue.
 *   Beyond that, events are dropped and, once the client catches up, it receives
 *   `lagged {droppedFrom, droppedTo}` (seq range) so it can re-fetch them from GET /v1/events.
 *
 * Per-exit records are opt-in and live only (never persisted): `subscribe` with
 *   `exits: {sample?: N (default 1), maxPerSecond?: M (default 100)}` streams every N-th exit of
 *   the subscribed VMs, at most M per second per VM, as `exits {vmId, records: [{vcpu, reason,
 *   pc, timeNs}]}` messages that must be acknowledged too. At most EXIT_IN_FLIGHT batches are
 *   unacknowledged and EXIT_QUEUE wait; beyond that batches are dropped and the client later
 *   gets `lagged {stream: 'exits', vmId, dropped}` (records dropped). Memory stays bounded.
 */
import { Inject, Logger, OnModuleDestroy } from '@nestjs/common';
import { CONFIG } from './tokens.js';
import type { Config } from '../config/config.js';
import { OnGatewayConnection, OnGatewayInit, WebSocketGateway } from '@nestjs/websockets';
import type { Namespace, Socket } from 'socket.io';
import { DataSource } from 'typeorm';
import { EventsService, HvEvent } from './events.service.js';
import { Authenticator, hashToken, TOO_MANY } from './auth.js';
import { ExperimentEntity, HostEntity, ImageEntity, OperationEntity, VmEntity } from '../persistence/entities.js';
import { RuntimeService } from './runtime.service.js';
import type { ExitRecord } from '../runtime/protocol.js';
import { ProblemError } from './errors.js';
import { ClusterService } from '../cluster/cluster.service.js';

export const EXIT_IN_FLIGHT = 8;
export const EXIT_QUEUE = 32;


const SUBJECT_TABLES: Record<string, new () => { id: string; tenantId: string }> = {
  vm: VmEntity, host: HostEntity, image: ImageEntity, operation: OperationEntity, experiment: ExperimentEntity,
};

interface Client {
  tenantId: string;
  subjects: Set<string>;
  inFlight: number;
  queue: HvEvent[];
  /** Highest seq delivered or queued, to keep replay and live events free of duplicates. */
  lastSeq: number;
  dropped: { from: number; to: number } | null;
  /** Exit-stream subscriptions by VM id. */
  exits: Map<string, ExitSub>;
  exitInFlight: number;
  exitQueue: Array<{ vmId: string; records: ExitRecord[] }>;
}

interface ExitSub { sample: number; maxPerSecond: number; seen: number; tokens: number; refilledAt: number; dropped: number }

@WebSocketGateway({ namespace: '/events', cors: { origin: true } })
export class EventsGateway implements OnGatewayInit, OnGatewayConnection, OnModuleDestroy {
  private readonly log = new Logger('EventsGateway');
  private readonly clients = new Map<Socket, Client>();
  private readonly onEvent = (e: HvEvent) => this.publish(e);
  private readonly onExits = (vmId: string, tenantId: string, records: ExitRecord[], dropped: number) => this.publishExits(vmId, tenantId, records, dropped);

  constructor(private readonly ds: DataSource, private readonly events: EventsService, @Inject(CONFIG) private readonly config: Config,
    private readonly runtime: RuntimeService, private readonly auth: Authenticator, private readonly cluster: ClusterService) {
    // Cluster mode: this node's and other nodes' events, in each tenant's seq order (src/cluster).
    this.feed.on('event', this.onEvent);
    runtime.exitStream.on('exits', this.onExits);
  }

  onModuleDestroy(): void {
    this.feed.off('event', this.onEvent);
    this.runtime.exitStream.off('exits', this.onExits);
  }

  /** Exit batches queued for delivery, over all clients (for tests and metrics: bounded by EXIT_QUEUE per client). */
  queuedExitBatches(): number {
    let n = 0;
    for (const c of this.clients.values()) n += c.exitQueue.length;
    return n;
  }

  private get feed() { return this.cluster.enabled ? this.cluster.events : this.events.live; }

  /**
   * Handshake authentication. A bad token counts against the same per (address, token hash)
   * budget as HTTP; once it is spent the handshake is refused with `data: {status: 429}`. A valid
   * token is never refused by the limiter.
   */
  afterInit(ns: Namespace): void {
    this.cluster.attachEvents(ns);
    ns.use((socket, next) => {
      const token = (socket.handshake.auth as { token?: unknown } | undefined)?.token;
      const refuse = (tokenHash: string, message: string) => {
        const limited = !this.auth.countFailure(socket.handshake.address ?? 'unknown', tokenHash);
        next(Object.assign(new Error(limited ? TOO_MANY : message), { data: { status: limited ? 429 : 401 } }));
      };
      if (typeof token !== 'string') return refuse('', 'missing token: connect with auth: {token}');
      this.auth.tenantOf(token).then((tenantId) => {
        if (!tenantId) return refuse(hashToken(token), 'invalid token');
        (socket.data as { tenantId?: string }).tenantId = tenantId;
        next();
      }, () => next(Object.assign(new Error('authentication is unavailable: the database is not reachable'), { data: { status: 503 } })));
    });
  }

  handleConnection(socket: Socket): void {
    const tenantId = (socket.data as { tenantId: string }).tenantId;
    const client: Client = { tenantId, subjects: new Set(), inFlight: 0, queue: [], lastSeq: 0, dropped: null, exits: new Map(), exitInFlight: 0, exitQueue: [] };
    this.clients.set(socket, client);
    socket.on('disconnect', () => {
      this.clients.delete(socket);
      for (const vmId of client.exits.keys()) void this.runtime.traceExits(vmId, false);
    });
    socket.on('subscribe', (req: unknown, ack?: (r: unknown) => void) => {
      this.subscribe(socket, client, req).then((r) => ack?.(r), (e) => {
        this.log.error(e instanceof Error ? e.stack : String(e));
        ack?.({ error: 'subscription failed' });
      });
    });
  }

  private async owns(tenantId: string, subject: string): Promise<string | null> {
    const m = /^([a-z]+):([0-9a-f-]{36})$/.exec(subject);
    if (!m) return 'malformed subject (want KIND:UUID)';
    if (m[1] === 'tenant') return m[2] === tenantId ? null : 'not found';
    const table = SUBJECT_TABLES[m[1]];
    if (!table) return `unknown subject kind '${m[1]}'`;
    const row = await this.ds.getRepository(table).findOneBy({ id: m[2], tenantId });
    return row ? null : 'not found';
  }

  private async subscribe(socket: Socket, c: Client, req: unknown) {
    const r = req as { subjects?: unknown; sinceSeq?: unknown; exits?: { sample?: unknown; maxPerSecond?: unknown } } | null;
    if (!r || !Array.isArray(r.subjects) || r.subjects.some((s) => typeof s !== 'string')) {
      return { subscribed: [], rejected: [{ subject: null, reason: 'subjects must be an array of strings' }] };
    }
    const ex = r.exits;
    const sample = ex?.sample ?? 1, maxPerSecond = ex?.maxPerSecond ?? 100;
    if (ex !== undefined && (typeof ex !== 'object' || ex === null || !Number.isInteger(sample) || (sample as number) < 1
      || typeof maxPerSecond !== 'number' || !(maxPerSecond > 0) || maxPerSecond > 100_000)) {
      return { subscribed: [], rejected: [{ subject: null, reason: 'exits must be {sample: integer >= 1, maxPerSecond: 0 < number <= 100000}' }] };
    }
    const subscribed: string[] = [];
    const rejected: Array<{ subject: string; reason: string }> = [];
    for (const s of r.subjects as string[]) {
      const reason = await this.owns(c.tenantId, s);
      if (reason) rejected.push({ subject: s, reason }); else { subscribed.push(s); c.subjects.add(s); }
    }
    if (ex) {
      for (const s of subscribed) {
        if (!s.startsWith('vm:')) continue;
        const vmId = s.slice(3);
        if (!c.exits.has(vmId)) void this.runtime.traceExits(vmId, true);
        c.exits.set(vmId, { sample: sample as number, maxPerSecond: maxPerSecond as number, seen: 0, tokens: maxPerSecond as number, refilledAt: Date.now(), dropped: 0 });
      }
    }
    for (const rj of rejected) socket.emit('error-event', { subject: rj.subject, reason: rj.reason });
    if (typeof r.sinceSeq === 'number' && subscribed.length) {
      // Replay in seq order, page by page, through the same bounded delivery path.
      let since = r.sinceSeq;
      for (;;) {
        let page: HvEvent[];
        try { page = await this.events.listSubjects(c.tenantId, since, 500, subscribed); } catch (e) {
          // Events after sinceSeq were pruned (410): the subscription stands, live events follow; the client must re-read state.
          if (e instanceof ProblemError && e.status === 410) return { subscribed, rejected, gone: { status: 410, detail: e.detail, ...e.extra } };
          throw e;
        }
        for (const e of page) this.deliver(socket, c, e);
        if (page.length < 500) break;
        since = page[page.length - 1].seq;
      }
    }
    return { subscribed, rejected };
  }

  private publish(e: HvEvent): void {
    for (const [socket, c] of this.clients) {
      if (c.tenantId === e.tenantId && c.subjects.has(e.subject)) this.deliver(socket, c, e);
    }
  }

  /** Samples, rate-limits and delivers a VM's exit records to the clients that asked for them. */
  private publishExits(vmId: string, tenantId: string, records: ExitRecord[], workerDropped: number): void {
    const now = Date.now();
    for (const [socket, c] of this.clients) {
      const sub = c.tenantId === tenantId ? c.exits.get(vmId) : undefined;
      if (!sub) continue;
      sub.tokens = Math.min(sub.maxPerSecond, sub.tokens + ((now - sub.refilledAt) / 1000) * sub.maxPerSecond);
      sub.refilledAt = now;
      sub.dropped += workerDropped;
      const picked: ExitRecord[] = [];
      for (const rec of records) {
        if (sub.seen++ % sub.sample !== 0) continue;
        if (sub.tokens < 1) continue;
        sub.tokens--;
        picked.push(rec);
      }
      if (picked.length === 0) continue;
      if (c.exitInFlight < EXIT_IN_FLIGHT && c.exitQueue.length === 0) this.sendExits(socket, c, { vmId, records: picked });
      else if (c.exitQueue.length < EXIT_QUEUE) c.exitQueue.push({ vmId, records: picked });
      else sub.dropped += picked.length;
    }
  }

  private sendExits(socket: Socket, c: Client, batch: { vmId: string; records: ExitRecord[] }): void {
    c.exitInFlight++;
    socket.emit('exits', batch, () => {
      c.exitInFlight--;
      while (c.exitInFlight < EXIT_IN_FLIGHT && c.exitQueue.length) this.sendExits(socket, c, c.exitQueue.shift()!);
      if (c.exitQueue.length === 0) {
        for (const [vmId, sub] of c.exits) {
          if (sub.dropped === 0) continue;
          socket.emit('lagged', { stream: 'exits', vmId, dropped: sub.dropped });
          sub.dropped = 0;
        }
      }
    });
  }

  private deliver(socket: Socket, c: Client, e: HvEvent): void {
    if (e.seq <= c.lastSeq) return;
    c.lastSeq = e.seq;
    if (c.inFlight < this.config.events.inFlight && c.queue.length === 0) return this.send(socket, c, e);
    if (c.queue.length < this.config.events.queue) { c.queue.push(e); return; }
    if (c.dropped) c.dropped.to = e.seq; else c.dropped = { from: e.seq, to: e.seq };
  }

  private send(socket: Socket, c: Client, e: HvEvent): void {
    c.inFlight++;
    socket.emit('event', e, () => {
      c.inFlight--;
      while (c.inFlight < this.config.events.inFlight && c.queue.length) this.send(socket, c, c.queue.shift()!);
      if (c.queue.length === 0 && c.dropped) {
        socket.emit('lagged', { droppedFrom: c.dropped.from, droppedTo: c.dropped.to });
        c.dropped = null;
      }
    });
  }
}
