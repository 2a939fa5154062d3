/**
 * A typed client of the Socket.IO event stream at /events (protocol in src/api/events.gateway.ts):
 * subscribe to subjects, resume from a seq, acknowledge each event after its handler ran (the
 * server keeps at most a bounded number unacknowledged, so a slow handler slows the stream
 * instead of growing memory), and `lagged` notices, after which the missed events are fetched
 * from GET /v1/events and delivered in order before newer ones. It reconnects and resumes from
 * the last seq it delivered.
 */
import { io, type Socket } from 'socket.io-client';
import type { components } from './schema.js';

export type HvEvent = components['schemas']['Event'];
export interface Lagged { droppedFrom: number; droppedTo: number }
export interface ExitBatch { vmId: string; records: Array<{ vcpu: number; reason: string; pc: number; timeNs: number }> }
export interface SubscribeOptions {
  /** Replay events with seq greater than this first (default: only new events). */
  sinceSeq?: number;
  /** Opt in to sampled per-exit records of the subscribed VMs. */
  exits?: { sample?: number; maxPerSecond?: number };
}
export interface SubscribeResult { subscribed: string[]; rejected: Array<{ subject: string | null; reason: string }> }

type Handler = (e: HvEvent) => void | Promise<void>;

export class EventsClient {
  private readonly socket: Socket;
  private readonly handlers = new Set<Handler>();
  private readonly laggedHandlers = new Set<(l: Lagged) => void>();
  private readonly exitHandlers = new Set<(b: ExitBatch) => void>();
  private subjects = new Set<string>();
  private exits: SubscribeOptions['exits'];
  /** The highest seq delivered to the handlers. */
  lastSeq = 0;
  /** Events are delivered one at a time, in seq order. */
  private chain: Promise<void> = Promise.resolve();

  private constructor(private readonly url: string, private readonly token: string, socket: Socket) {
    this.socket = socket;
    socket.on('event', (e: HvEvent, ack?: () => void) => { this.chain = this.chain.then(() => this.deliver(e)).finally(() => ack?.()); });
    socket.on('lagged', (l: Lagged & { stream?: string }, ack?: () => void) => {
      ack?.();
      if (l.stream === 'exits') return;
      for (const h of this.laggedHandlers) h(l);
      this.chain = this.chain.then(() => this.refetch(l));
    });
    socket.on('exits', (b: ExitBatch, ack?: () => void) => { for (const h of this.exitHandlers) h(b); ack?.(); });
    socket.io.on('reconnect', () => { if (this.subjects.size) void this.emitSubscribe([...this.subjects], { sinceSeq: this.lastSeq, exits: this.exits }); });
  }

  /** Connects with a tenant token. Raises when the token is refused. */
  static connect(url: string, token: string, opts: { reconnection?: boolean } = {}): Promise<EventsClient> {
    const socket = io(`${url.replace(/\/+$/, '')}/events`, { auth: { token }, transports: ['websocket'], reconnection: opts.reconnection ?? true });
    return new Promise((resolve, reject) => {
      socket.once('connect', () => resolve(new EventsClient(url, token, socket)));
      socket.once('connect_error', (e) => { socket.close(); reject(e); });
    });
  }

  /** Called for every event in seq order; the event is acknowledged when the handler (or its promise) finishes. */
  onEvent(h: Handler): () => void { this.handlers.add(h); return () => this.handlers.delete(h); }
  /** Called when the server dropped events for this client (they are then re-fetched and delivered). */
  onLagged(h: (l: Lagged) => void): () => void { this.laggedHandlers.add(h); return () => this.laggedHandlers.delete(h); }
  onExits(h: (b: ExitBatch) => void): () => void { this.exitHandlers.add(h); return () => this.exitHandlers.delete(h); }

  /** Subscribes to subjects (`vm:ID`, `host:ID`, ...); rejected ones are named with a reason, never revealed. */
  async subscribe(subjects: string[], opts: SubscribeOptions = {}): Promise<SubscribeResult> {
    const r = await this.emitSubscribe(subjects, opts);
    for (const s of r.subscribed) this.subjects.add(s);
    if (opts.exits) this.exits = opts.exits;
    return r;
  }

  close(): void { this.socket.close(); }

  private emitSubscribe(subjects: string[], opts: SubscribeOptions): Promise<SubscribeResult> {
    return new Promise((resolve, reject) => {
      this.socket.timeout(30_000).emit('subscribe', { subjects, ...opts }, (err: Error | null, r: SubscribeResult & { error?: string }) => {
        if (err) reject(err);
        else if (r.error) reject(new Error(r.error));
        else resolve(r);
      });
    });
  }

  private async deliver(e: HvEvent): Promise<void> {
    if (e.seq <= this.lastSeq) return;
    this.lastSeq = e.seq;
    for (const h of this.handlers) await h(e);
  }

  /** Fetches the dropped range from GET /v1/events and delivers the subscribed subjects' events. */
  private async refetch(l: Lagged): Promise<void> {
    let since = Math.min(this.lastSeq, l.droppedFrom - 1);
    while (since < l.droppedTo) {
      const res = await fetch(`${this.url.replace(/\/+$/, '')}/v1/events?since=${since}&limit=1000`, { headers: { Authorization: `Bearer ${this.token}` } });
      if (!res.ok) return;
      const items = ((await res.json()) as { items: HvEvent[] }).items;
      if (items.length === 0) return;
      for (const e of items) if (e.seq <= l.droppedTo && this.subjects.has(e.subject)) await this.deliver(e);
      since = items[items.length - 1].seq;
    }
  }
}
