/**
 * Socket.IO event stream at namespace /events.
 *
 * Protocol (all payloads JSON):
 *   connect with `auth: {token}` (a tenant token); bad tokens are refused with connect_error.
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
 */
import { Inject, Logger, OnModuleDestroy } from '@nestjs/common';
import { CONFIG } from './tokens.js';
import type { Config } from '../config/config.js';
import { OnGatewayConnection, OnGatewayInit, WebSocketGateway } from '@nestjs/websockets';
import type { Namespace, Socket } from 'socket.io';
import { DataSource } from 'typeorm';
import { EventsService, HvEvent } from './events.service.js';
import { hashToken } from './auth.js';
import { HostEntity, ImageEntity, OperationEntity, TenantEntity, VmEntity } from '../persistence/entities.js';


const SUBJECT_TABLES: Record<string, new () => { id: string; tenantId: string }> = {
  vm: VmEntity, host: HostEntity, image: ImageEntity, operation: OperationEntity,
};

interface Client {
  tenantId: string;
  subjects: Set<string>;
  inFlight: number;
  queue: HvEvent[];
  /** Highest seq delivered or queued, to keep replay and live events free of duplicates. */
  lastSeq: number;
  dropped: { from: number; to: number } | null;
}

@WebSocketGateway({ namespace: '/events', cors: { origin: true } })
export class EventsGateway implements OnGatewayInit, OnGatewayConnection, OnModuleDestroy {
  private readonly log = new Logger('EventsGateway');
  private readonly clients = new Map<Socket, Client>();
  private readonly onEvent = (e: HvEvent) => this.publish(e);

  constructor(private readonly ds: DataSource, private readonly events: EventsService, @Inject(CONFIG) private readonly config: Config) {
    events.live.on('event', this.onEvent);
  }

  onModuleDestroy(): void {
    this.events.live.off('event', this.onEvent);
  }

  afterInit(ns: Namespace): void {
    ns.use((socket, next) => {
      const token = (socket.handshake.auth as { token?: unknown } | undefined)?.token;
      if (typeof token !== 'string') return next(new Error('missing token: connect with auth: {token}'));
      this.ds.getRepository(TenantEntity).findOneBy({ tokenHash: hashToken(token) }).then((t) => {
        if (!t) return next(new Error('invalid token'));
        (socket.data as { tenantId?: string }).tenantId = t.id;
        next();
      }, (e) => next(e instanceof Error ? e : new Error(String(e))));
    });
  }

  handleConnection(socket: Socket): void {
    const tenantId = (socket.data as { tenantId: string }).tenantId;
    const client: Client = { tenantId, subjects: new Set(), inFlight: 0, queue: [], lastSeq: 0, dropped: null };
    this.clients.set(socket, client);
    socket.on('disconnect', () => this.clients.delete(socket));
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
    const r = req as { subjects?: unknown; sinceSeq?: unknown } | null;
    if (!r || !Array.isArray(r.subjects) || r.subjects.some((s) => typeof s !== 'string')) {
      return { subscribed: [], rejected: [{ subject: null, reason: 'subjects must be an array of strings' }] };
    }
    const subscribed: string[] = [];
    const rejected: Array<{ subject: string; reason: string }> = [];
    for (const s of r.subjects as string[]) {
      const reason = await this.owns(c.tenantId, s);
      if (reason) rejected.push({ subject: s, reason }); else { subscribed.push(s); c.subjects.add(s); }
    }
    for (const rj of rejected) socket.emit('error-event', { subject: rj.subject, reason: rj.reason });
    if (typeof r.sinceSeq === 'number' && subscribed.length) {
      // Replay in seq order, page by page, through the same bounded delivery path.
      let since = r.sinceSeq;
      for (;;) {
        const page = await this.events.listSubjects(c.tenantId, since, 500, subscribed);
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
