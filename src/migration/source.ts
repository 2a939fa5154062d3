/**
 * The sending side of a pre-copy live migration, run by the source VM's worker between slices of
 * guest execution (so the guest keeps running while its memory is copied).
 *
 * Rounds: round 1 sends every backed guest page; each later round sends the pages the dirty-page
 * log (G-stage write protection, gstage.ts) caught since the previous round. Sending is paced in
 * the VM's virtual time at `bandwidthMiBps`, so a migration is as deterministic as the guest.
 * When the dirty set would go over in `maxDowntimeMs` (or after `maxRounds`), the guest stops
 * (stop-and-copy): the last dirty pages, the vCPU, device and guest-OS state and END go out, and
 * the destination's ACK decides: on success the source VM is released, on anything else the dirty
 * log is switched off and the guest runs on here as if nothing happened.
 *
 * Poisoned frames (technique umeAwareMigration): a frame the host knows is poisoned is sent as
 * ERROR_META without being read; any other frame is read with an exception-safe copy (its poison
 * flag checked first, as a machine-check-aware memcpy would), and a latent error found that way is
 * recorded, marked known and sent as ERROR_META. Without the technique, reading a poisoned frame
 * consumes the error: the host panics (MigrationHostPanic).
 */
import { Socket, connect } from 'node:net';
import { RAM_BASE } from '../hypervisor/platform.js';
import { PAGE_SIZE } from '../mmu/phys.js';
import { encodeJson, encodeVcpu, ramDigest } from './machine-state.js';
import type { Migratable } from './migratable.js';
import { decodeAck, encodeRecord, FOUND_BY, FoundBy, hex32, MAGIC, PayloadWriter, PROTOCOL_VERSION, RecordName, RecordReader, RECORD_HEADER, WireError } from './wire.js';

export interface MigrationParams {
  migrationId: string;
  /** Largest acceptable stop-and-copy time, in virtual ms. */
  maxDowntimeMs: number;
  /** Link bandwidth, MiB per second of virtual time. */
  bandwidthMiBps: number;
  /** Pre-copy rounds before stop-and-copy is forced. */
  maxRounds: number;
  /** Wall-clock limit for the whole migration, in seconds. */
  timeoutS: number;
  /** umeAwareMigration: poisoned pages travel as error metadata. */
  technique: boolean;
  /** Fault injection: the connection drops after this many page records. */
  dropConnectionAfterPages?: number;
}

/** QEMU query-migrate-style statistics; sizes in bytes, times in ms unless named otherwise. */
export interface MigrationStats {
  round: number;
  /** Disk chunks (4 KiB) sent: the VM's writes to its disks, dirty-tracked like RAM. */
  diskChunksSent: number;
  /** Guest RAM the migration covers (backed pages at the start). */
  total: number;
  /** Bytes written to the connection. */
  transferred: number;
  /** Bytes of dirty pages still to send. */
  remaining: number;
  pagesSent: number;
  zeroPages: number;
  /** Pages sent as error metadata instead of data. */
  errorPages: number;
  /** Pages the guest dirtied per second of virtual time during the last round. */
  dirtyPagesRate: number;
  /** Page records per second of wall time. */
  pagesPerSecond: number;
  dirtyLogExits: number;
  setupTimeMs: number;
  elapsedWallMs: number;
  elapsedVirtualMs: number;
  /** Stop-and-copy time the current dirty set would need, virtual ms. */
  expectedDowntimeMs: number;
  /** The same in wall time, at the wall-clock rate the last round achieved. */
  expectedDowntimeWallMs: number;
}

export interface MigrationOutcome extends MigrationStats {
  downtimeVirtualMs: number;
  downtimeWallMs: number;
  /** CRC-32 chain over every RAM page the destination must hold (gpn, bytes), hex. */
  sourceDigest: string;
  destinationDigest: string;
}

export interface SourceHooks {
  progress(s: MigrationStats): void;
  /** The technique's exception-safe copy found (and contained) a latent error in a frame. */
  latentError(e: { gpa: number; frame: number }): void;
}

/** Without umeAwareMigration, the copy read a poisoned frame: the host takes a fatal machine check. */
export class MigrationHostPanic extends Error {
  constructor(readonly frame: number, readonly gpa: number) { super(`host-panic: machine check reading host frame ${frame} (guest page 0x${gpa.toString(16)}) during migration`); }
}

/** The migration failed; the source VM keeps running. */
export class MigrationFailed extends Error {}

const PAGE_RECORD = RECORD_HEADER + 4 + PAGE_SIZE + 4;
const ZERO_PAGE = new Uint8Array(PAGE_SIZE);

export class MigrationSource {
  private socket: Socket | null = null;
  private broken: string | null = null;
  private cancelled = false;
  private readonly started = Date.now();
  private readonly bytesPerNs: number;
  private out: Buffer[] = [];
  private outBytes = 0;
  private readonly errorSent = new Set<number>();
  private queue: number[] = [];
  private qpos = 0;
  private budget = 0;
  private lastClock = 0;
  private roundStartClock = 0;
  private roundStartWall = 0;
  private roundStartBytes = 0;
  private startClock = 0;
  /** Wall time round 1 began (after connecting). */
  private beganAt = 0;
  private exitsAtStart = 0;
  private records = 0;
  private pageRecords = 0;
  readonly stats: MigrationStats;
  private readonly reader = new RecordReader();
  private ack: ((r: { ok: boolean; message: string; digest: string }) => void) | null = null;

  constructor(private readonly vm: Migratable, readonly params: MigrationParams, private readonly hooks: SourceHooks) {
    this.bytesPerNs = (params.bandwidthMiBps * 1024 * 1024) / 1e9;
    this.stats = {
      round: 0, diskChunksSent: 0, total: 0, transferred: 0, remaining: 0, pagesSent: 0, zeroPages: 0, errorPages: 0, dirtyPagesRate: 0, pagesPerSecond: 0,
      dirtyLogExits: 0, setupTimeMs: 0, elapsedWallMs: 0, elapsedVirtualMs: 0, expectedDowntimeMs: 0, expectedDowntimeWallMs: 0,
    };
  }

  private clock(): number { return this.vm.virtualTimeNs(); }

  /** Connects to the destination, sends HELLO and starts round 1 (and the dirty-page log). Raises: MigrationFailed. */
  async open(port: number, host = '127.0.0.1'): Promise<void> {
    const blocked = this.vm.migrationBlocker?.() ?? null;
    if (blocked !== null) throw new MigrationFailed(blocked);
    const s = connect({ host, port });
    s.setNoDelay(true);
    this.socket = s;
    s.on('error', (e) => { this.broken ??= `connection error: ${e.message}`; });
    s.on('close', () => { this.broken ??= 'the destination closed the connection'; this.ack?.({ ok: false, message: this.broken, digest: '' }); });
    s.on('data', (chunk: Buffer) => this.onData(chunk));
    await new Promise<void>((resolve, reject) => {
      s.once('connect', resolve);
      s.once('error', (e) => reject(new MigrationFailed(`cannot connect to the destination: ${e.message}`)));
    });
    const p = this.params;
    this.emit('HELLO', new PayloadWriter().bytes(Buffer.from(MAGIC)).u16(PROTOCOL_VERSION).u32(PAGE_SIZE).u32(this.vm.ramBytes)
      .u16(this.vm.vcpuCount).u16(p.technique ? 1 : 0).str(p.migrationId).done());
    await this.flush();
    this.stats.setupTimeMs = Date.now() - this.started;
    this.begin();
  }

  /** Round 1: every backed page is queued and the dirty-page log starts. */
  private begin(): void {
    const vm = this.vm;
    vm.startDirtyLog();
    this.exitsAtStart = vm.dirtyLogExits();
    // Every page that holds data or is known to be corrupted (the two are disjoint), in page order.
    const backed = [...vm.backedPages()];
    this.queue = [...backed, ...vm.corruptedPages()].sort((a, b) => a - b);
    this.stats.total = backed.length * PAGE_SIZE;
    this.stats.round = 1;
    this.beganAt = Date.now();
    this.startClock = this.lastClock = this.roundStartClock = this.clock();
    this.roundStartWall = Date.now();
    this.roundStartBytes = this.sent;
  }

  cancel(): void { this.cancelled = true; }

  /**
   * Called after every slice the guest ran: sends what the bandwidth allowed in that much virtual
   * time, ends rounds, and performs the switch-over when it is time. Resolves 'running' while
   * pre-copy goes on, or the outcome once the VM lives on the destination.
   * Raises: MigrationFailed (the source VM must keep running; call `abort` first), MigrationHostPanic.
   */
  async afterSlice(): Promise<'running' | MigrationOutcome> {
    this.check();
    const now = this.clock();
    this.budget += (now - this.lastClock) * this.bytesPerNs;
    this.lastClock = now;
    while (this.qpos < this.queue.length && this.budget >= PAGE_RECORD) {
      this.budget -= this.sendPage(this.queue[this.qpos++]);
    }
    if (this.qpos < this.queue.length) { await this.flush(); return 'running'; }
    return this.endRound();
  }

  private check(): void {
    if (this.cancelled) throw new MigrationFailed('cancelled');
    if (this.broken) throw new MigrationFailed(this.broken);
    if (Date.now() - this.started > this.params.timeoutS * 1000) throw new MigrationFailed(`timed out after ${this.params.timeoutS} s`);
  }

  private async endRound(): Promise<'running' | MigrationOutcome> {
    const st = this.stats;
    this.sendDiskChunks(st.round === 1);
    this.emit('ROUND_END', new PayloadWriter().u32(st.round).u32(this.queue.length).done());
    const dirty = this.vm.takeDirtyPages();
    for (const i of this.vm.corruptedPages()) if (!this.errorSent.has(i)) dirty.push(i);
    const now = this.clock();
    const roundNs = Math.max(1, now - this.roundStartClock);
    this.roundStartClock = now;
    st.dirtyPagesRate = Math.round((dirty.length * 1e9) / roundNs);
    st.remaining = dirty.length * PAGE_SIZE;
    st.expectedDowntimeMs = st.remaining / this.bytesPerNs / 1e6;
    const wall = Date.now(), bytes = this.sent;
    st.expectedDowntimeWallMs = st.remaining * Math.max(1, wall - this.roundStartWall) / Math.max(1, bytes - this.roundStartBytes);
    this.roundStartWall = wall;
    this.roundStartBytes = bytes;
    this.update();
    this.hooks.progress({ ...st });
    await this.flush();
    if (st.expectedDowntimeMs <= this.params.maxDowntimeMs || st.round >= this.params.maxRounds) return this.switchover(dirty);
    st.round++;
    this.queue = dirty;
    this.qpos = 0;
    return 'running';
  }

  private update(): void {
    const st = this.stats;
    st.elapsedWallMs = st.setupTimeMs + Date.now() - this.beganAt;
    st.elapsedVirtualMs = (this.clock() - this.startClock) / 1e6;
    st.pagesPerSecond = Math.round(this.pageRecords / Math.max(0.001, st.elapsedWallMs / 1000));
    st.dirtyLogExits = this.vm.dirtyLogExits() - this.exitsAtStart;
  }

  /** Stop-and-copy: the guest does not run again here unless the destination refuses. */
  private async switchover(dirty: number[]): Promise<MigrationOutcome> {
    const wall0 = Date.now();
    const before = this.sent;
    const last = new Set([...dirty, ...this.vm.untrackedPages(), ...this.vm.takeDirtyPages()]);
    for (const i of [...last].sort((a, b) => a - b)) { this.sendPage(i); if (this.outBytes > 1 << 20) await this.flush(); }
    this.sendDiskChunks(false);
    const state = this.vm.exportState();
    for (const v of state.vcpus) this.emit('VCPU', encodeVcpu(v));
    this.emit('DEVICE', encodeJson(state.device));
    this.emit('GUEST_OS', encodeJson(state.guestOs));
    // Every page the destination will hold as data: those sent as error metadata it will not.
    const digest = ramDigest(this.vm, (i) => this.errorSent.has(i));
    this.emit('END', new PayloadWriter().u32(this.records + 1).u32(this.pageRecords).u32(digest).done());
    const bytes = this.sent - before;
    const reply = new Promise<{ ok: boolean; message: string; digest: string }>((resolve) => { this.ack = resolve; });
    await this.flush();
    const timeout = Math.max(1000, this.params.timeoutS * 1000 - (Date.now() - this.started));
    let timer: NodeJS.Timeout | undefined;
    const r = await Promise.race([reply, new Promise<{ ok: false; message: string; digest: string }>((resolve) => { timer = setTimeout(() => resolve({ ok: false, message: 'no answer from the destination', digest: '' }), timeout); })]);
    clearTimeout(timer);
    if (!r.ok) throw new MigrationFailed(`the destination refused the VM: ${r.message}`);
    this.update();
    this.stats.remaining = 0;
    this.socket?.end();
    return { ...this.stats, downtimeVirtualMs: bytes / this.bytesPerNs / 1e6, downtimeWallMs: Date.now() - wall0, sourceDigest: hex32(digest), destinationDigest: r.digest };
  }

  /**
   * Disk chunks as RAM pages are: round 1 every chunk the VM wrote (the destination has the same
   * base images), then those written since (DISK_CHUNK: disk u8, chunk u32, bytes).
   */
  private sendDiskChunks(all: boolean): void {
    for (let n = 0; n < this.vm.diskCount; n++) {
      for (const c of this.vm.diskChunks(n, all)) {
        this.emit('DISK_CHUNK', new PayloadWriter().u8(n).u32(c).bytes(this.vm.diskChunk(n, c)).done());
        this.stats.diskChunksSent++;
      }
    }
  }

  /** Queues the record(s) for guest page `i`; returns the bytes queued. Raises: MigrationHostPanic. */
  private sendPage(i: number): number {
    const page = this.vm.readPage(i);
    if (page.kind === 'corrupted') return this.errorMeta(i, 'guest-access');
    if (page.kind === 'unbacked') return 0;
    if (page.kind === 'poisoned') {
      const gpa = RAM_BASE + i * PAGE_SIZE;
      // Without the technique the copy is a plain memcpy: it consumes the error.
      if (!this.params.technique) throw new MigrationHostPanic(page.frame, gpa);
      if (page.known) return this.errorMeta(i, 'known');
      this.vm.notePoisonKnown(i);
      this.hooks.latentError({ gpa, frame: page.frame });
      return this.errorMeta(i, 'migration-copy');
    }
    if (this.params.dropConnectionAfterPages !== undefined && this.pageRecords >= this.params.dropConnectionAfterPages) {
      this.socket?.destroy();
      this.broken = `connection dropped after ${this.pageRecords} pages (fault injection)`;
      throw new MigrationFailed(this.broken);
    }
    this.pageRecords++;
    if (Buffer.compare(page.bytes, ZERO_PAGE) === 0) {
      this.stats.zeroPages++;
      return this.emit('ZERO_PAGE', new PayloadWriter().u32(i).done());
    }
    this.stats.pagesSent++;
    return this.emit('RAM_PAGE', new PayloadWriter().u32(i).bytes(page.bytes).done());
  }

  private errorMeta(i: number, foundBy: FoundBy): number {
    if (this.errorSent.has(i)) return 0;
    this.errorSent.add(i);
    this.stats.errorPages++;
    return this.emit('ERROR_META', new PayloadWriter().u32(i).u8(1).u8(FOUND_BY[foundBy]).done());
  }

  /** Queues one record; returns its size on the wire. */
  private emit(name: RecordName, payload: Buffer): number {
    const b = encodeRecord(name, payload);
    this.records++;
    this.out.push(b);
    this.outBytes += b.length;
    return b.length;
  }

  /** Bytes written to the connection or queued for it. */
  private get sent(): number { return this.stats.transferred + this.outBytes; }

  /** Writes what is queued and waits until the socket takes more. Raises: MigrationFailed. */
  private async flush(): Promise<void> {
    if (this.outBytes === 0) return;
    const s = this.socket!;
    const buf = Buffer.concat(this.out);
    this.stats.transferred += this.outBytes;
    this.out = [];
    this.outBytes = 0;
    if (this.broken) throw new MigrationFailed(this.broken);
    if (!s.write(buf)) {
      await new Promise<void>((resolve) => {
        const done = () => { s.off('drain', done); s.off('close', done); resolve(); };
        s.on('drain', done);
        s.on('close', done);
      });
    }
    if (this.broken) throw new MigrationFailed(this.broken);
  }

  private onData(chunk: Buffer): void {
    try {
      this.reader.push(chunk);
      for (let r = this.reader.next(); r; r = this.reader.next()) {
        if (r.name !== 'ACK') throw new WireError(`unexpected ${r.name} record from the destination`);
        this.ack?.(decodeAck(r.payload));
      }
    } catch (e) {
      this.broken ??= `bad answer from the destination: ${(e as Error).message}`;
      this.socket?.destroy();
    }
  }

  /** Ends a failed migration on the source: the dirty-page log is off and the guest runs on undisturbed. */
  abort(): void {
    this.socket?.destroy();
    this.vm.stopDirtyLog();
  }
}
