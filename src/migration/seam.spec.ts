/**
 * Source and destination against the seam alone (migratable.ts): an in-memory machine stands in
 * for the VM, so these tests show what the migration code asks of a VM and does with the answers.
 */
import { PAGE_SIZE } from '../mmu/phys.js';
import { Disk, DISK_CHUNK } from '../hypervisor/disk.js';
import { Btb, Rsb } from '../uarch/costs.js';
import { MigrationDestination } from './destination.js';
import { HART_FIELDS } from './machine-state.js';
import type { MachineState, Migratable, MigrationTarget, PageRead } from './migratable.js';
import { MigrationHostPanic, MigrationParams, MigrationSource } from './source.js';

const PAGES = 256; // 1 MiB
const COUNTERS = 3;

/** A machine whose RAM is a map of pages; a page may be poisoned (latent or known) or corrupted. */
class FakeMachine implements Migratable, MigrationTarget {
  readonly pages = new Map<number, Uint8Array>();
  readonly poison = new Map<number, 'latent' | 'known'>();
  readonly corrupted: number[] = [];
  dirty: Set<number> | null = null;
  clock = 0;
  imported: MachineState | null = null;
  discarded: string | null = null;
  readonly ramBytes = PAGES * PAGE_SIZE;
  readonly vcpuCount = 1;
  readonly counterCount = COUNTERS;
  readonly disks = [new Disk(8 * DISK_CHUNK)];
  get diskCount(): number { return this.disks.length; }
  diskChunks(n: number, all: boolean): number[] { const d = this.disks[n].takeDirty(); return all ? this.disks[n].writtenChunks() : d; }
  diskChunk(n: number, c: number): Uint8Array { return this.disks[n].chunk(c); }
  writeDiskChunk(n: number, c: number, bytes: Uint8Array): void { this.disks[n].setChunk(c, bytes); }

  *backedPages(): Generator<number> { yield* [...this.pages.keys()].sort((a, b) => a - b); }
  readPage(gpn: number): PageRead {
    if (this.corrupted.includes(gpn)) return { kind: 'corrupted' };
    const b = this.pages.get(gpn);
    if (!b) return { kind: 'unbacked' };
    const p = this.poison.get(gpn);
    return p ? { kind: 'poisoned', frame: 1000 + gpn, known: p === 'known' } : { kind: 'data', bytes: b };
  }
  frameBytes(gpn: number): Uint8Array | null { return this.pages.get(gpn) ?? null; }
  virtualTimeNs(): number { return this.clock; }
  startDirtyLog(): void { this.dirty = new Set(); this.disks[0].startDirtyLog(); }
  takeDirtyPages(): number[] { const d = [...(this.dirty ?? [])].sort((a, b) => a - b); this.dirty?.clear(); return d; }
  stopDirtyLog(): void { this.dirty = null; }
  dirtyLogExits(): number { return 0; }
  corruptedPages(): number[] { return [...this.corrupted]; }
  untrackedPages(): number[] { return []; }
  notePoisonKnown(gpn: number): void { this.poison.set(gpn, 'known'); }
  exportState(): MachineState {
    const vcpu = {
      id: 0, halted: false, wfiPending: false, deadline: Infinity, idleCycles: 5, x: new Int32Array(32).fill(7),
      fields: new Int32Array(HART_FIELDS.length).fill(3), ctr: new Float64Array(COUNTERS).fill(9),
      btbTag: new Int32Array(Btb.ENTRIES), btbTarget: new Int32Array(Btb.ENTRIES), rsb: new Int32Array(Rsb.ENTRIES), rsbTop: 0, rsbDepth: 0,
    };
    return { vcpus: [vcpu], device: { quantumEnd: 1, exits: [], transitions: 0, power: 'on', doorbells: 0, consoleBytes: [0, 0] }, guestOs: { opaque: ['to', 'migration'] } };
  }
  writePage(gpn: number, bytes: Uint8Array | null): void { this.pages.set(gpn, bytes ? Uint8Array.from(bytes) : new Uint8Array(PAGE_SIZE)); }
  markCorrupted(gpn: number): void { this.corrupted.push(gpn); }
  isCorrupted(gpn: number): boolean { return this.corrupted.includes(gpn); }
  importState(st: MachineState): void { this.imported = st; }
  discard(reason: string): void { this.discarded = reason; }
}

const PARAMS: MigrationParams = { migrationId: 'seam', maxDowntimeMs: 1000, bandwidthMiBps: 1024, maxRounds: 5, timeoutS: 30, technique: true };

function sourceMachine(): FakeMachine {
  const m = new FakeMachine();
  m.pages.set(0, new Uint8Array(PAGE_SIZE).fill(0xab));
  m.pages.set(1, new Uint8Array(PAGE_SIZE)); // all zero: a ZERO_PAGE record
  m.pages.set(2, new Uint8Array(PAGE_SIZE).fill(0x11));
  m.poison.set(2, 'latent');
  m.pages.set(3, new Uint8Array(PAGE_SIZE).fill(0x22));
  m.poison.set(3, 'known');
  m.corrupted.push(9);
  m.disks[0].write(DISK_CHUNK + 10, Uint8Array.of(1, 2, 3));
  return m;
}

/** Drives a source over `src` until it finishes, advancing the fake clock 1 ms per slice (one dirtying of page 0 in round 1). */
async function drive(src: FakeMachine, params: MigrationParams) {
  const dst = new FakeMachine();
  const d = new MigrationDestination({ memoryMiB: 1, vcpus: 1 }, () => dst);
  const port = await d.listen();
  const latent: number[] = [];
  const s = new MigrationSource(src, params, { progress: () => undefined, latentError: (e) => latent.push(e.gpa) });
  await s.open(port);
  try {
    for (let slice = 0; ; slice++) {
      src.clock += 1e6;
      if (slice === 0) { src.pages.get(0)![5] = 0xcd; src.dirty?.add(0); src.disks[0].write(3 * DISK_CHUNK, Uint8Array.of(9)); }
      const r = await s.afterSlice();
      if (r !== 'running') return { outcome: r, dst, arrived: await d.done, latent };
    }
  } catch (e) {
    s.abort();
    await d.done.catch(() => undefined);
    return { error: e as Error, dst, latent };
  }
}

describe('migration through the seam (migratable.ts)', () => {
  test('pages, errors and state cross as the seam reports them; the destination is built by its factory', async () => {
    const src = sourceMachine();
    const r = await drive(src, PARAMS);
    if (r.error) throw r.error;
    expect(r.outcome).toBeDefined();
    const dst = r.dst;
    expect(r.arrived).toBe(dst);
    // Data pages arrive (the one dirtied after round 1 with its new byte), poisoned and corrupted ones as error metadata.
    expect([...dst.pages.keys()].sort((a, b) => a - b)).toEqual([0, 1]);
    expect(dst.pages.get(0)![5]).toBe(0xcd);
    expect(dst.pages.get(1)!.every((b) => b === 0)).toBe(true);
    expect(dst.corrupted.sort((a, b) => a - b)).toEqual([2, 3, 9]);
    // The latent error was found by the copy: reported, and the host knows it now.
    expect(src.poison.get(2)).toBe('known');
    expect(r.latent).toEqual([0x8000_0000 + 2 * PAGE_SIZE]);
    expect(r.outcome!.errorPages).toBe(3);
    expect(r.outcome!.zeroPages).toBe(1);
    expect(r.outcome!.sourceDigest).toBe(r.outcome!.destinationDigest);
    // The guest OS state is carried as opaque JSON, the vCPU record as encoded.
    expect(dst.imported!.guestOs).toEqual({ opaque: ['to', 'migration'] });
    expect(dst.imported!.vcpus[0].x[3]).toBe(7);
    expect(dst.discarded).toBeNull();
    // Disk chunks the VM wrote cross, the one written during round 1 too; untouched ones stay the base (zeros).
    expect(dst.disks[0].writtenChunks()).toEqual([1, 3]);
    expect(Buffer.from(dst.disks[0].slice(0, 8 * DISK_CHUNK)).equals(Buffer.from(src.disks[0].slice(0, 8 * DISK_CHUNK)))).toBe(true);
    expect(dst.disks[0].slice(DISK_CHUNK + 10, DISK_CHUNK + 13)).toEqual(Uint8Array.of(1, 2, 3));
    expect(r.outcome!.diskChunksSent).toBeGreaterThanOrEqual(2);
  }, 300_000);

  test('without the technique, reading a poisoned page is a host panic naming its frame; the source stops its dirty log', async () => {
    const src = sourceMachine();
    const r = await drive(src, { ...PARAMS, technique: false });
    expect(r.error).toBeInstanceOf(MigrationHostPanic);
    expect((r.error as MigrationHostPanic).frame).toBe(1002);
    expect(src.dirty).toBeNull();
    expect(src.poison.get(2)).toBe('latent');
    expect(r.dst.discarded).toBe('migration-failed');
  }, 300_000);
});
