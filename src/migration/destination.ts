/**
 * The receiving side of a live migration, run by the destination VM's worker: listens on a
 * loopback port, accepts one connection, validates every record (wire.ts) and builds the VM as
 * they arrive: RAM pages are backed and filled, error metadata marks guest pages corrupted (so
 * the guest's first access raises a virtual memory error there), and END restores the vCPU,
 * device and guest-OS state, checks the RAM digest and answers ACK. Anything wrong (bad record,
 * truncated stream, a digest mismatch, no host memory) answers a failed ACK when the connection
 * is still up, releases every frame taken, and rejects `done`; the source then keeps its VM.
 *
 * Fault injection (`failAt`): 'target-ready' drops the connection as soon as it is accepted;
 * 'running' drops it after the first round has arrived.
 */
import { AddressInfo, createServer, Server, Socket } from 'node:net';
import { PAGE_SIZE } from '../mmu/phys.js';
import { decodeJson, decodeVcpu, ramDigest } from './machine-state.js';
import type { DeviceState, MigrationTarget, VcpuState } from './migratable.js';
import { encodeAck, FOUND_BY_NAME, MAGIC, PayloadReader, PROTOCOL_VERSION, RecordReader, WireError } from './wire.js';

export type DestinationFault = 'target-ready' | 'running';

/** The shape of the machine a stream must be for (HELLO is checked against it). */
export interface TargetShape {
  memoryMiB: number;
  vcpus: number;
}

export class MigrationDestination<T extends MigrationTarget = MigrationTarget> {
  private server: Server | null = null;
  private socket: Socket | null = null;
  private vm: T | null = null;
  private readonly reader = new RecordReader();
  private records = 0;
  private pageRecords = 0;
  private hello = false;
  private readonly vcpus = new Map<number, VcpuState>();
  private device: DeviceState | null = null;
  private guestOs: object | null = null;
  private finished = false;
  private resolve!: (vm: T) => void;
  private reject!: (e: Error) => void;
  /** Resolves with the running-ready VM after the ACK; rejects with the reason the migration failed here. */
  readonly done: Promise<T>;
  private readonly pages: number;

  /**
   * `createTarget` builds the (not booted) machine once HELLO has been checked against `spec`;
   * it may raise OutOfHostMemory, which fails the migration.
   */
  constructor(private readonly spec: TargetShape, private readonly createTarget: () => T,
    private readonly failAt: DestinationFault | null = null) {
    this.done = new Promise((res, rej) => { this.resolve = res; this.reject = rej; });
    this.done.catch(() => undefined);
    this.pages = (spec.memoryMiB << 20) / PAGE_SIZE;
  }

  /** Listens on `host` (default 127.0.0.1), an ephemeral port, and resolves with the port. */
  listen(host = '127.0.0.1'): Promise<number> {
    const server = createServer((s) => this.accept(s));
    this.server = server;
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, host, () => resolve((server.address() as AddressInfo).port));
    });
  }

  /** Gives up (the main thread cancelled or the source went away before connecting). */
  cancel(reason: string): void { this.fail(new Error(reason)); }

  private accept(s: Socket): void {
    this.server?.close();
    if (this.socket) { s.destroy(); return; }
    this.socket = s;
    s.setNoDelay(true);
    if (this.failAt === 'target-ready') { this.fail(new Error('the destination failed after accepting the connection (fault injection)')); return; }
    s.on('data', (chunk: Buffer) => {
      if (this.finished) return;
      try {
        this.reader.push(chunk);
        for (let r = this.reader.next(); r && !this.finished; r = this.reader.next()) this.apply(r.name, r.payload);
      } catch (e) {
        this.fail(e as Error);
      }
    });
    s.on('error', () => undefined);
    s.on('close', () => this.fail(new WireError(`the stream ended after ${this.records} records${this.reader.pending ? ` and ${this.reader.pending} bytes of a partial record` : ''} (truncated)`)));
  }

  private apply(name: string, payload: Buffer): void {
    this.records++;
    if (!this.hello && name !== 'HELLO') throw new WireError(`the stream must start with HELLO, got ${name}`);
    switch (name) {
      case 'HELLO': {
        if (this.hello) throw new WireError('a second HELLO');
        const r = new PayloadReader(payload, 'HELLO');
        const magic = r.bytes(8).toString('latin1');
        if (magic !== MAGIC) throw new WireError('not a migration stream (bad magic)');
        const version = r.u16();
        if (version !== PROTOCOL_VERSION) throw new WireError(`protocol version ${version} is not supported (want ${PROTOCOL_VERSION})`);
        const pageSize = r.u32(), ramBytes = r.u32(), vcpus = r.u16();
        r.u16(); r.str(); r.end();
        if (pageSize !== PAGE_SIZE) throw new WireError(`page size ${pageSize} is not ${PAGE_SIZE}`);
        if (ramBytes !== this.spec.memoryMiB << 20 || vcpus !== this.spec.vcpus) throw new WireError(`the stream is for a VM of ${ramBytes >> 20} MiB and ${vcpus} vCPUs, this one has ${this.spec.memoryMiB} MiB and ${this.spec.vcpus}`);
        this.hello = true;
        this.vm = this.createTarget();
        return;
      }
      case 'DISK_CHUNK': {
        const r = new PayloadReader(payload, name);
        const n = r.u8(), c = r.u32();
        try {
          this.vm!.writeDiskChunk(n, c, r.bytes(payload.length - 5));
        } catch (e) {
          if (e instanceof RangeError) throw new WireError(`DISK_CHUNK: ${e.message}`);
          throw e;
        }
        return;
      }
      case 'RAM_PAGE': case 'ZERO_PAGE': {
        const r = new PayloadReader(payload, name);
        const i = this.gpn(r.u32());
        const data = name === 'RAM_PAGE' ? r.bytes(PAGE_SIZE) : null;
        r.end();
        if (this.vm!.isCorrupted(i)) throw new WireError(`page ${i} arrived as data after error metadata`);
        this.vm!.writePage(i, data);
        this.pageRecords++;
        return;
      }
      case 'ERROR_META': {
        const r = new PayloadReader(payload, 'ERROR_META');
        const i = this.gpn(r.u32());
        const kind = r.u8(), found = r.u8();
        r.end();
        if (kind !== 1 || !FOUND_BY_NAME.has(found)) throw new WireError('ERROR_META with an unknown error kind or origin');
        this.vm!.markCorrupted(i);
        return;
      }
      case 'ROUND_END': {
        const r = new PayloadReader(payload, 'ROUND_END');
        r.u32(); r.u32(); // round, pages in the round
        r.end();
        if (this.failAt === 'running') throw new Error('the destination failed while receiving (fault injection)');
        return;
      }
      case 'VCPU': {
        const v = decodeVcpu(payload, this.vm!.counterCount);
        if (v.id >= this.spec.vcpus || this.vcpus.has(v.id)) throw new WireError(`VCPU record for vCPU ${v.id} is out of range or repeated`);
        this.vcpus.set(v.id, v);
        return;
      }
      case 'DEVICE': this.device = decodeJson<DeviceState>(payload, 'DEVICE'); return;
      case 'GUEST_OS': this.guestOs = decodeJson<object>(payload, 'GUEST_OS'); return;
      case 'END': return this.end(payload);
      default: throw new WireError(`unexpected ${name} record`);
    }
  }

  private gpn(i: number): number {
    if (i >= this.pages) throw new WireError(`page ${i} is beyond the VM's ${this.pages} pages`);
    return i;
  }

  private end(payload: Buffer): void {
    const r = new PayloadReader(payload, 'END');
    const records = r.u32(), pageRecords = r.u32(), digest = r.u32();
    r.end();
    if (records !== this.records || pageRecords !== this.pageRecords) throw new WireError(`END counts ${records} records and ${pageRecords} pages, ${this.records} and ${this.pageRecords} arrived`);
    if (this.vcpus.size !== this.spec.vcpus || !this.device || !this.guestOs) throw new WireError('END before every vCPU, device and guest-OS record');
    const vm = this.vm!;
    const mine = ramDigest(vm);
    if (mine !== digest) throw new WireError(`RAM digest ${mine.toString(16)} differs from the source's ${digest.toString(16)}`);
    try {
      vm.importState({ vcpus: [...this.vcpus.values()].sort((a, b) => a.id - b.id), device: this.device, guestOs: this.guestOs });
    } catch (e) {
      throw new WireError(`the state does not restore: ${(e as Error).message}`);
    }
    this.finished = true;
    this.socket!.end(encodeAck(true, mine, ''));
    this.resolve(vm);
  }

  private fail(e: Error): void {
    if (this.finished) return;
    this.finished = true;
    this.server?.close();
    const s = this.socket;
    if (s && !s.destroyed) s.end(encodeAck(false, 0, e.message));
    setTimeout(() => s?.destroy(), 100).unref();
    this.vm?.discard('migration-failed');
    this.reject(e);
  }
}
