/**
 * Cluster mode (HVSIM_CLUSTER=on; docs/cluster.md): several nodes on one Postgres.
 *
 * - Membership: each node has a row in `nodes` and writes its heartbeat every HVSIM_HEARTBEAT_MS;
 *   a node whose heartbeat is older than HVSIM_NODE_TIMEOUT_MS (by the database's clock) is gone.
 * - Ownership: a node runs a host (its DRAM and VM workers) only while it holds the host's
 *   session advisory lock, taken on a dedicated connection (not from the pool) that stays open;
 *   Postgres frees the lock when that connection dies (a killed node's socket closes). The
 *   `hosts.owner_node_id` column says which node should run it; a node takes the lock of every
 *   host assigned to it, and lets go of (and stops the VMs of) a host assigned elsewhere.
 * - Leader: the node holding one fixed advisory lock assigns hosts without a live owner to the
 *   live node with the most free capacity, fails the Operations of lost nodes (`node-lost`) and
 *   deletes their rows (while the lock's holder is itself stale, every live node does this work;
 *   it is conditional updates only). New hosts are placed by the node that creates them, by the
 *   same rule.
 * - Taking a host over marks the VMs its lost owner left live `crashed` with reason `node-lost`
 *   (RuntimeService.takeHost), with events; they can be reset and started again.
 * - Events: the node's own events (after commit) and other nodes' (Socket.IO Postgres adapter,
 *   `serverSideEmit`) go through a Sequencer, so subscribers see each tenant's events in seq
 *   order; a gap open for EVENT_GAP_MS is filled from the event log.
 *
 * On a single node (config.cluster null) this service does nothing and `enabled` is false.
 */
import { BeforeApplicationShutdown, Inject, Injectable, Logger, OnApplicationShutdown } from '@nestjs/common';
import { EventEmitter } from 'node:events';
import pg from 'pg';
import type { Namespace } from 'socket.io';
import { DataSource, EntityManager } from 'typeorm';
import { CONFIG } from '../api/tokens.js';
import type { ClusterConfig, Config } from '../config/config.js';
import { EventsService, HvEvent } from '../api/events.service.js';
import { LIVE_STATES, RuntimeService } from '../api/runtime.service.js';
import { HostEntity } from '../persistence/entities.js';
import { ProblemError } from '../api/errors.js';
import { Sequencer } from './sequencer.js';

/** How long an out-of-order gap in a tenant's events may stay open before it is read from the log. */
const EVENT_GAP_MS = 1000;
const REMOTE_EVENT = 'hvsim:event';

/** 32-bit FNV-1a of a string, as a signed int4 (an advisory lock key). */
export function lockKey(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) { h ^= s.charCodeAt(i); h = Math.imul(h, 0x01000193); }
  return h | 0;
}

export interface NodeView {
  id: string; address: string; httpUrl: string; capacityMiB: number; usedMiB: number; heartbeatAt: string; startedAt: string;
  alive: boolean; leader: boolean;
  /** `locked`: this node holds the host's lock (runs it); false while it is being taken over. */
  hosts: Array<{ id: string; tenantId: string; name: string; memoryMiB: number; state: string; locked: boolean }>;
}

/** Where a request about a host (or a VM, migration, operation) must be served. */
export interface Owner { nodeId: string; httpUrl: string; alive: boolean }

@Injectable()
export class ClusterService implements BeforeApplicationShutdown, OnApplicationShutdown {
  private readonly log = new Logger('ClusterService');
  readonly enabled: boolean;
  private readonly c: ClusterConfig | null;
  /** Events in each tenant's seq order, this node's and other nodes' (cluster mode): 'event' (HvEvent). */
  readonly events = new EventEmitter().setMaxListeners(0);
  private readonly sequencer = new Sequencer<HvEvent>((e) => this.events.emit('event', e));
  private client: pg.Client | null = null;
  private httpUrl = '';
  private leader = false;
  /** Hosts whose advisory lock this node holds. */
  private readonly held = new Set<string>();
  private timer: NodeJS.Timeout | null = null;
  private gapTimer: NodeJS.Timeout | null = null;
  private ticking: Promise<void> | null = null;
  private again = false;
  private stopped = false;
  private ns: Namespace | null = null;
  private readonly hostClass: number;
  private readonly leaderClass: number;
  private readonly channel: string;
  private readonly databaseUrl: string;
  private readonly schema: string;
  /** Counts for the benchmark and GET /v1/nodes: events sent to other nodes (one NOTIFY each), heard from them. */
  readonly counters = { eventsSent: 0, eventsHeard: 0, gapsFilled: 0, takeovers: 0 };
  private readonly onLocal = (e: HvEvent) => {
    this.sequencer.push(e);
    if (this.ns) { this.counters.eventsSent++; this.ns.serverSideEmit(REMOTE_EVENT, e); }
  };

  constructor(private readonly ds: DataSource, private readonly eventsService: EventsService, private readonly runtime: RuntimeService,
    @Inject(CONFIG) config: Config) {
    this.c = config.cluster;
    this.databaseUrl = config.databaseUrl ?? '';
    this.schema = config.schema;
    this.enabled = this.c !== null;
    this.hostClass = lockKey(`hvsim-host:${config.schema}`);
    this.leaderClass = lockKey(`hvsim-leader:${config.schema}`);
    this.channel = `hvsim_cluster_${config.schema}`;
    if (this.enabled) eventsService.live.on('event', this.onLocal);
  }

  get nodeId(): string { return this.c?.nodeId ?? ''; }
  get isLeader(): boolean { return this.leader; }

  /** The Socket.IO namespace of the event stream: events travel to and from other nodes through it (its Postgres adapter). */
  attachEvents(ns: Namespace): void {
    if (!this.enabled) return;
    this.ns = ns;
    ns.on(REMOTE_EVENT, (e: HvEvent) => { this.counters.eventsHeard++; this.sequencer.push(e); });
  }

  /**
   * Joins the cluster once the HTTP server listens at `httpUrl`'s port: registers the node, opens
   * the lock connection, and starts the heartbeat loop (whose first beat takes this node's hosts).
   */
  async start(port: number): Promise<void> {
    if (!this.c) return;
    this.httpUrl = `http://${this.c.advertiseAddress.includes(':') ? `[${this.c.advertiseAddress}]` : this.c.advertiseAddress}:${port}`;
    await this.connect();
    // A node restarted under the same HVSIM_NODE_ID before it timed out: the Operations its old
    // process left pending or running died with it.
    await this.failOperationsOf(this.c.nodeId, 'node-lost', `node ${this.c.nodeId} restarted while the operation was in progress`);
    await this.tick();
    this.timer = setInterval(() => { void this.tick(); }, this.c.heartbeatMs);
    this.gapTimer = setInterval(() => { void this.fillGaps(); }, EVENT_GAP_MS / 2);
    this.log.log(`node ${this.c.nodeId} joined the cluster at ${this.httpUrl}`);
  }

  /** Opens the dedicated lock connection (never from the pool: the locks live and die with it) and registers the node. */
  private async connect(): Promise<void> {
    const c = this.c!;
    const client = new pg.Client({ connectionString: this.databaseUrl, keepAlive: true, options: `-c search_path=${this.schema}`, application_name: `hvsim-node ${c.nodeId}` });
    client.on('error', (e) => { void this.lostConnection(client, e); });
    client.on('notification', (n) => { if (n.payload === c.nodeId) void this.tick(); });
    await client.connect();
    this.client = client;
    await client.query(`LISTEN ${this.channel}`);
    await client.query(`INSERT INTO nodes (id, address, http_url, capacity_mib, heartbeat_at, started_at) VALUES ($1, $2, $3, $4, now(), now())
      ON CONFLICT (id) DO UPDATE SET address = $2, http_url = $3, capacity_mib = $4, heartbeat_at = now()`, [c.nodeId, c.advertiseAddress, this.httpUrl, c.capacityMiB]);
  }

  /**
   * The lock connection died: Postgres has freed every lock of this node, so other nodes may take
   * its hosts. The node stops their VMs at once (they are recorded crashed, `node-lost`) and
   * reconnects at its next beat, as a node with no hosts.
   */
  private async lostConnection(client: pg.Client, e: Error): Promise<void> {
    if (this.client !== client) return;
    this.client = null;
    this.leader = false;
    this.log.error(`node ${this.nodeId}: the lock connection failed (${e.message}); stopping the VMs of its ${this.held.size} host(s)`);
    const hosts = [...this.held];
    this.held.clear();
    client.end().catch(() => undefined);
    for (const id of hosts) await this.runtime.releaseHost(id, 'node-lost').catch(() => undefined);
  }

  /** One beat (never two at once; a beat asked for while one runs runs right after it). Never rejects. */
  private tick(): Promise<void> {
    if (this.stopped) return Promise.resolve();
    if (this.ticking) { this.again = true; return this.ticking; }
    this.ticking = (async () => {
      do {
        this.again = false;
        try { await this.beat(); } catch (e) { this.log.warn(`node ${this.nodeId}: heartbeat failed (retried at the next beat): ${(e as Error).message}`); }
      } while (this.again && !this.stopped);
    })().finally(() => { this.ticking = null; });
    return this.ticking;
  }

  private async beat(): Promise<void> {
    const c = this.c!;
    if (!this.client) await this.connect();
    const q = this.client!;
    const r = await q.query('UPDATE nodes SET heartbeat_at = now() WHERE id = $1', [c.nodeId]);
    if (r.rowCount === 0) {
      // The leader found this node's heartbeat too old and removed it (its hosts went elsewhere): register again.
      this.log.warn(`node ${c.nodeId}: its heartbeat was late and its row was removed; registering again`);
      await q.query('INSERT INTO nodes (id, address, http_url, capacity_mib) VALUES ($1, $2, $3, $4) ON CONFLICT (id) DO UPDATE SET heartbeat_at = now()', [c.nodeId, c.advertiseAddress, this.httpUrl, c.capacityMiB]);
    }
    if (!this.leader) {
      const [{ got }] = (await q.query('SELECT pg_try_advisory_lock($1, 0) AS got', [this.leaderClass])).rows as Array<{ got: boolean }>;
      if (got) { this.leader = true; this.log.log(`node ${c.nodeId} is the leader`); }
    }
    // A leader that stalls keeps its lock (its connection lives); while its heartbeat is stale the
    // live nodes do its work. That work is conditional updates only, so they never conflict.
    if (this.leader || await this.leaderStale()) await this.lead();
    await this.own();
    await this.estimateRemote();
  }

  /** The leader's work: hosts without a live owner go to live nodes; lost nodes' Operations fail; their rows go. */
  private async lead(): Promise<void> {
    const timeout = this.c!.timeoutMs;
    const orphans = await this.ds.query(`SELECT h.id, h.tenant_id, h.memory_mib, h.owner_node_id FROM hosts h
      WHERE h.owner_node_id IS NULL OR NOT EXISTS (SELECT 1 FROM nodes n WHERE n.id = h.owner_node_id AND n.heartbeat_at > now() - $1 * interval '1 millisecond')
      ORDER BY h.memory_mib DESC, h.id`, [timeout]) as Array<{ id: string; tenant_id: string; memory_mib: number; owner_node_id: string | null }>;
    for (const h of orphans) {
      await this.eventsService.tx(async (m) => {
        const to = await this.place(m, h.memory_mib);
        if (!to) return;
        const r = await m.query('UPDATE hosts SET owner_node_id = $1 WHERE id = $2 AND owner_node_id IS NOT DISTINCT FROM $3', [to, h.id, h.owner_node_id]) as [unknown, number];
        if (!r[1]) return;
        await this.eventsService.append(m, h.tenant_id, 'host.node', `host:${h.id}`, { from: h.owner_node_id, to, reason: h.owner_node_id ? 'node-lost' : 'placed' });
      });
      await this.ds.query('SELECT pg_notify($1, owner_node_id) FROM hosts WHERE id = $2', [this.channel, h.id]);
    }
    const gone = await this.ds.query(`SELECT id FROM nodes n WHERE n.heartbeat_at <= now() - $1 * interval '1 millisecond'
      AND NOT EXISTS (SELECT 1 FROM hosts h WHERE h.owner_node_id = n.id)`, [timeout]) as Array<{ id: string }>;
    for (const { id } of gone) {
      const failed = await this.failOperationsOf(id, 'node-lost', `node ${id}, which ran the operation, was lost`);
      await this.ds.query(`DELETE FROM nodes WHERE id = $1 AND heartbeat_at <= now() - $2 * interval '1 millisecond'`, [id, timeout]);
      this.log.warn(`node ${id} was lost: its hosts were reassigned, ${failed} operation(s) failed (node-lost)`);
    }
  }

  /** Records the pending and running Operations of node `nodeId` failed (with `operation.failed` events); returns how many. */
  private async failOperationsOf(nodeId: string, reason: string, message: string): Promise<number> {
    const ops = await this.ds.query(`SELECT id, tenant_id, kind, subject FROM operations WHERE node_id = $1 AND state IN ('pending', 'running')`, [nodeId]) as Array<{ id: string; tenant_id: string; kind: string; subject: string }>;
    let n = 0;
    for (const o of ops) {
      const error = { message, reason };
      await this.eventsService.tx(async (m) => {
        const r = await m.query(`UPDATE operations SET state = 'failed', error = $2, updated_at = now() WHERE id = $1 AND state IN ('pending', 'running')`, [o.id, error]) as [unknown, number];
        if (r[1]) { n++; await this.eventsService.append(m, o.tenant_id, 'operation.failed', `operation:${o.id}`, { kind: o.kind, subject: o.subject, error }); }
      });
    }
    return n;
  }

  /** True when no live node holds the leader lock (its holder stalled past the timeout, or none holds it). */
  private async leaderStale(): Promise<boolean> {
    const rows = await this.ds.query(`SELECT 1 FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid JOIN nodes n ON a.application_name = 'hvsim-node ' || n.id
      WHERE l.locktype = 'advisory' AND l.granted AND l.classid::text::bigint = $1 AND l.objid::text::bigint = 0 AND l.objsubid = 2
      AND n.heartbeat_at > now() - $2 * interval '1 millisecond'`, [this.leaderClass >>> 0, this.c!.timeoutMs]) as unknown[];
    return rows.length === 0;
  }

  /**
   * The live node with the most free capacity (its capacity less the memory of the hosts it
   * owns), or null when no node is live. Runs in `m` (the caller's transaction).
   */
  async place(m: EntityManager | DataSource, memoryMiB: number): Promise<string | null> {
    const rows = await m.query(`SELECT n.id, n.capacity_mib - COALESCE(SUM(h.memory_mib), 0) AS free FROM nodes n
      LEFT JOIN hosts h ON h.owner_node_id = n.id WHERE n.heartbeat_at > now() - $1 * interval '1 millisecond'
      GROUP BY n.id ORDER BY free DESC, n.id`, [this.c!.timeoutMs]) as Array<{ id: string; free: string }>;
    if (rows.length === 0) return null;
    if (Number(rows[0].free) < memoryMiB) this.log.warn(`no node has ${memoryMiB} MiB of capacity left; host placed on ${rows[0].id} (${rows[0].free} MiB left)`);
    return rows[0].id;
  }

  /**
   * A new host's owner (its creation places it; cluster mode only). Raises 503 when no node is live.
   */
  async placeNew(m: EntityManager, memoryMiB: number): Promise<string> {
    const to = await this.place(m, memoryMiB);
    if (!to) throw new ProblemError(503, 'Service Unavailable', 'no live node of the cluster can take the host: retry');
    return to;
  }

  /** After a host was created or reassigned: its owner takes it now (this node) or at once on a notification (another node). */
  async claim(h: HostEntity): Promise<void> {
    if (!this.enabled || !h.ownerNodeId) return;
    if (h.ownerNodeId === this.nodeId) await this.tick();
    else await this.ds.query('SELECT pg_notify($1, $2)', [this.channel, h.ownerNodeId]);
  }

  /** Takes the locks of the hosts assigned to this node; lets go of those assigned elsewhere (or deleted). */
  private async own(): Promise<void> {
    const q = this.client!;
    const mine = await this.ds.getRepository(HostEntity).findBy({ ownerNodeId: this.nodeId });
    const ids = new Set(mine.map((h) => h.id));
    for (const h of mine) {
      if (this.held.has(h.id)) continue;
      const [{ got }] = (await q.query('SELECT pg_try_advisory_lock($1, $2) AS got', [this.hostClass, lockKey(h.id)])).rows as Array<{ got: boolean }>;
      if (!got) continue; // its previous owner still holds it (its connection has not died yet)
      this.held.add(h.id);
      const crashed = await this.runtime.takeHost(h, 'node-lost');
      this.counters.takeovers++;
      this.log.log(`node ${this.nodeId} runs host ${h.id}${crashed ? ` (${crashed} VM(s) of its lost owner recorded crashed, node-lost)` : ''}`);
    }
    for (const id of [...this.held]) {
      if (ids.has(id)) continue;
      this.held.delete(id);
      const exists = await this.ds.getRepository(HostEntity).existsBy({ id });
      if (exists) this.log.warn(`node ${this.nodeId}: host ${id} was given to another node; stopping its VMs here`);
      await this.runtime.releaseHost(id, 'node-lost');
      await q.query('SELECT pg_advisory_unlock($1, $2)', [this.hostClass, lockKey(id)]);
    }
  }

  /** Free memory of hosts other nodes run, estimated from the VMs recorded live on them (for placement of VMs here). */
  private async estimateRemote(): Promise<void> {
    const rows = await this.ds.query(`SELECT h.id, h.memory_mib - COALESCE(SUM(v.memory_mib) FILTER (WHERE v.state = ANY($1)), 0) AS free
      FROM hosts h LEFT JOIN vms v ON v.host_id = h.id WHERE h.owner_node_id IS DISTINCT FROM $2 GROUP BY h.id`, [LIVE_STATES, this.nodeId]) as Array<{ id: string; free: string }>;
    this.runtime.setRemoteFree(new Map(rows.map((r) => [r.id, Math.max(0, Number(r.free))])));
  }

  /** Reads events missing from a tenant's order for too long from the log; gives up on those no longer there (pruned). */
  private async fillGaps(): Promise<void> {
    for (const g of this.sequencer.gaps(Date.now(), EVENT_GAP_MS)) {
      try {
        const page = await this.eventsService.range(g.tenantId, g.from, g.to);
        for (const e of page) this.sequencer.push(e);
        this.counters.gapsFilled++;
        this.sequencer.skipTo(g.tenantId, g.to + 1);
      } catch (e) {
        this.log.warn(`events ${g.from}-${g.to} of tenant ${g.tenantId} could not be read (retried): ${(e as Error).message}`);
      }
    }
  }

  /** Where requests about a host must go; null when the host is unknown or unowned. */
  async ownerOf(kind: 'host' | 'vm' | 'migration' | 'operation', id: string): Promise<Owner | null> {
    const join = {
      host: 'FROM hosts h JOIN nodes n ON n.id = h.owner_node_id WHERE h.id = $1',
      vm: 'FROM vms v JOIN hosts h ON h.id = v.host_id JOIN nodes n ON n.id = h.owner_node_id WHERE v.id = $1',
      // A running operation's AbortController lives on the node that runs it.
      operation: 'FROM operations o JOIN nodes n ON n.id = o.node_id WHERE o.id = $1',
      migration: 'FROM vm_migrations g JOIN operations o ON o.id = g.operation_id JOIN nodes n ON n.id = o.node_id WHERE g.id = $1',
    }[kind];
    const rows = await this.ds.query(`SELECT n.id, n.http_url, n.heartbeat_at > now() - $2 * interval '1 millisecond' AS alive ${join}`, [id, this.c!.timeoutMs]) as Array<{ id: string; http_url: string; alive: boolean }>;
    return rows[0] ? { nodeId: rows[0].id, httpUrl: rows[0].http_url, alive: rows[0].alive } : null;
  }

  /** GET /v1/nodes: every node with its hosts, heartbeat and whether it leads (the session holding the leader lock). */
  async nodes(): Promise<{ cluster: boolean; thisNode: string | null; leader: string | null; nodes: NodeView[] }> {
    if (!this.c) return { cluster: false, thisNode: null, leader: null, nodes: [] };
    const rows = await this.ds.query(`SELECT n.*, n.heartbeat_at > now() - $1 * interval '1 millisecond' AS alive FROM nodes n ORDER BY n.id`, [this.c.timeoutMs]) as Array<{
      id: string; address: string; http_url: string; capacity_mib: number; heartbeat_at: Date; started_at: Date; alive: boolean }>;
    const hosts = await this.ds.getRepository(HostEntity).find({ order: { name: 'ASC' } });
    const [lead] = await this.ds.query(`SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
      WHERE l.locktype = 'advisory' AND l.granted AND l.classid::text::bigint = $1 AND l.objid::text::bigint = 0 AND l.objsubid = 2`, [this.leaderClass >>> 0]) as Array<{ application_name: string }>;
    const leader = lead?.application_name.startsWith('hvsim-node ') ? lead.application_name.slice('hvsim-node '.length) : null;
    // Which host locks each node's lock connection holds (a stalled former owner may still hold one).
    const locked = new Set((await this.ds.query(`SELECT l.objid::text::bigint AS k, a.application_name AS app FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
      WHERE l.locktype = 'advisory' AND l.granted AND l.classid::text::bigint = $1 AND l.objsubid = 2`, [this.hostClass >>> 0]) as Array<{ k: string; app: string }>)
      .map((r) => `${Number(r.k)} ${r.app}`));
    return {
      cluster: true, thisNode: this.c.nodeId, leader,
      nodes: rows.map((n) => {
        const own = hosts.filter((h) => h.ownerNodeId === n.id);
        return {
          id: n.id, address: n.address, httpUrl: n.http_url, capacityMiB: n.capacity_mib, usedMiB: own.reduce((s, h) => s + h.memoryMiB, 0),
          heartbeatAt: n.heartbeat_at.toISOString(), startedAt: n.started_at.toISOString(), alive: n.alive, leader: n.id === leader,
          hosts: own.map((h) => ({ id: h.id, tenantId: h.tenantId, name: h.name, memoryMiB: h.memoryMiB, state: h.state, locked: locked.has(`${lockKey(h.id) >>> 0} hvsim-node ${n.id}`) })),
        };
      }),
    };
  }

  /** Stops the beats before the runtime stops its VMs (the node must not take hosts while it shuts down). */
  async beforeApplicationShutdown(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    if (this.gapTimer) clearInterval(this.gapTimer);
    await this.ticking;
  }

  /** After the VMs stopped: leaves the cluster (its hosts go to other nodes at the leader's next beat) and frees the locks. */
  async onApplicationShutdown(): Promise<void> {
    this.eventsService.live.off('event', this.onLocal);
    const q = this.client;
    this.client = null;
    if (!q) return;
    try {
      await q.query('DELETE FROM nodes WHERE id = $1', [this.nodeId]);
      await q.query(`SELECT pg_notify($1, n.id) FROM nodes n`, [this.channel]);
    } catch (e) {
      this.log.warn(`node ${this.nodeId}: could not leave the cluster cleanly (${(e as Error).message}); it is removed after its heartbeat times out`);
    }
    await q.end().catch(() => undefined);
  }
}
