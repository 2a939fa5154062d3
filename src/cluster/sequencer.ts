/**
 * Puts each tenant's events back in `seq` order. In cluster mode a node hears its own events
 * when their transaction commits and other nodes' events through Postgres NOTIFY (the Socket.IO
 * adapter), so events of one tenant can arrive out of order; subscribers must see them in seq
 * order, each once (the gateway drops a seq lower than one it has delivered).
 *
 * Contract: `push` takes events in any order, any number of times; `deliver` is called for each
 * tenant's events in strictly increasing seq order, each seq at most once, starting at the
 * first seq the sequencer saw of that tenant. An event that arrives after a later one is held
 * until the gap before it closes; `gaps` names gaps open for longer than a delay, which the
 * owner fills from the event log (`push` of the read events) or gives up on (`skipTo`, e.g.
 * events pruned meanwhile). Memory: at most `maxHeld` held events per tenant; beyond that the
 * oldest gap is skipped.
 */
export interface Sequenced { tenantId: string; seq: number }

interface TenantOrder<E> { next: number; held: Map<number, E>; gapSince: number }

export class Sequencer<E extends Sequenced> {
  private readonly tenants = new Map<string, TenantOrder<E>>();

  constructor(private readonly deliver: (e: E) => void, private readonly maxHeld = 10_000) {}

  push(e: E, now = Date.now()): void {
    let t = this.tenants.get(e.tenantId);
    if (!t) { t = { next: e.seq, held: new Map(), gapSince: 0 }; this.tenants.set(e.tenantId, t); }
    if (e.seq < t.next || t.held.has(e.seq)) return;
    if (e.seq > t.next) {
      t.held.set(e.seq, e);
      if (t.gapSince === 0) t.gapSince = now;
      if (t.held.size > this.maxHeld) this.skipTo(e.tenantId, Math.min(...t.held.keys()));
      return;
    }
    this.deliver(e);
    t.next++;
    this.drain(t);
  }

  private drain(t: TenantOrder<E>): void {
    for (let e = t.held.get(t.next); e !== undefined; e = t.held.get(t.next)) {
      t.held.delete(t.next);
      this.deliver(e);
      t.next++;
    }
    t.gapSince = t.held.size === 0 ? 0 : t.gapSince;
  }

  /** Gives up on the events before `seq` that have not arrived: delivery goes on from `seq`. */
  skipTo(tenantId: string, seq: number): void {
    const t = this.tenants.get(tenantId);
    if (!t || seq <= t.next) return;
    for (const s of t.held.keys()) if (s < seq) t.held.delete(s);
    t.next = seq;
    t.gapSince = 0;
    this.drain(t);
    if (t.held.size > 0) t.gapSince = Date.now();
  }

  /** Gaps open since before `now - olderThanMs`: the missing seqs are from..to (inclusive). */
  gaps(now: number, olderThanMs: number): Array<{ tenantId: string; from: number; to: number }> {
    const out: Array<{ tenantId: string; from: number; to: number }> = [];
    for (const [tenantId, t] of this.tenants) {
      if (t.held.size === 0 || now - t.gapSince < olderThanMs) continue;
      out.push({ tenantId, from: t.next, to: Math.min(...t.held.keys()) - 1 });
    }
    return out;
  }
}
