/**
 * A host's DRAM and its frame tables, in shared memory so every VM worker of the host can
 * allocate and free frames directly (Atomics), without a round trip to the main thread.
 *
 *   dram   SharedArrayBuffer of memoryMiB            the host-physical memory (PhysMem over it)
 *   state  Uint8 per frame: FrameState               claimed with Atomics.compareExchange
 *   owner  Int32 per frame: owning VM slot, or -1
 *   meta   Int32 [nextHint, freeCount]
 *
 * Invariants: a frame is handed out only by winning the compareExchange Free -> Guest|Hypervisor,
 * so two threads can never own one frame; poisoned and retired frames are never handed out.
 */
import { PAGE_SIZE } from '../mmu/phys.js';

export const FrameState = { Free: 0, Guest: 1, Hypervisor: 2, Poisoned: 3, Retired: 4 } as const;
export type FrameStateValue = (typeof FrameState)[keyof typeof FrameState];

/** The faulting VM asked for a frame and the host has none left. */
export class OutOfHostMemory extends Error {
  readonly fault = 'out-of-host-memory';
  constructor(readonly frames: number) { super(`out-of-host-memory: all ${frames} frames are in use`); }
}

export interface HostMemoryBuffers { dram: SharedArrayBuffer; state: SharedArrayBuffer; owner: SharedArrayBuffer; meta: SharedArrayBuffer }

const HINT = 0;
const FREE = 1;

export class HostMemory {
  readonly frames: number;
  readonly state: Uint8Array;
  readonly owner: Int32Array;
  private readonly meta: Int32Array;

  private constructor(readonly buffers: HostMemoryBuffers) {
    this.frames = buffers.dram.byteLength / PAGE_SIZE;
    this.state = new Uint8Array(buffers.state);
    this.owner = new Int32Array(buffers.owner);
    this.meta = new Int32Array(buffers.meta);
  }

  /** New host memory of `memoryMiB` (1-65536), every frame free. */
  static create(memoryMiB: number): HostMemory {
    if (!Number.isInteger(memoryMiB) || memoryMiB < 1 || memoryMiB > 65536) throw new RangeError(`memoryMiB must be 1-65536, got ${memoryMiB}`);
    const frames = memoryMiB * 256;
    const m = new HostMemory({
      dram: new SharedArrayBuffer(memoryMiB << 20), state: new SharedArrayBuffer(frames),
      owner: new SharedArrayBuffer(frames * 4), meta: new SharedArrayBuffer(8),
    });
    m.owner.fill(-1);
    m.meta[FREE] = frames;
    return m;
  }

  /** The same memory seen from another thread (buffers received through postMessage). */
  static attach(buffers: HostMemoryBuffers): HostMemory {
    return new HostMemory(buffers);
  }

  get freeFrames(): number { return Atomics.load(this.meta, FREE); }

  /**
   * Claims a free frame for `owner` (a VM slot) as guest or hypervisor memory and zeroes it.
   * Raises: OutOfHostMemory when no frame is free.
   */
  alloc(owner: number, kind: typeof FrameState.Guest | typeof FrameState.Hypervisor): number {
    const n = this.frames;
    const start = Atomics.load(this.meta, HINT) % n;
    for (let k = 0; k < n; k++) {
      const f = (start + k) % n;
      if (this.state[f] !== FrameState.Free) continue;
      if (Atomics.compareExchange(this.state, f, FrameState.Free, kind) !== FrameState.Free) continue;
      Atomics.store(this.owner, f, owner);
      Atomics.sub(this.meta, FREE, 1);
      Atomics.store(this.meta, HINT, f + 1);
      new Uint8Array(this.buffers.dram, f * PAGE_SIZE, PAGE_SIZE).fill(0);
      return f;
    }
    throw new OutOfHostMemory(n);
  }

  /**
   * Claims `count` contiguous free frames starting at a multiple of `count` (a power of two), as
   * hypervisor memory of `owner`, zeroed; returns the first frame. Used for the 16 KiB G-stage root.
   * Raises: OutOfHostMemory when no such run is free.
   */
  allocAligned(owner: number, count: number): number {
    for (let f = 0; f + count <= this.frames; f += count) {
      let k = 0;
      for (; k < count; k++) {
        if (Atomics.compareExchange(this.state, f + k, FrameState.Free, FrameState.Hypervisor) !== FrameState.Free) break;
      }
      if (k === count) {
        for (let j = 0; j < count; j++) Atomics.store(this.owner, f + j, owner);
        Atomics.sub(this.meta, FREE, count);
        new Uint8Array(this.buffers.dram, f * PAGE_SIZE, count * PAGE_SIZE).fill(0);
        return f;
      }
      for (let j = 0; j < k; j++) Atomics.store(this.state, f + j, FrameState.Free);
    }
    throw new OutOfHostMemory(this.frames);
  }

  /** Frees every frame `owner` holds (a VM that stopped or crashed); returns how many. */
  releaseOwner(owner: number): number {
    let n = 0;
    for (let f = 0; f < this.frames; f++) {
      if (this.owner[f] === owner && (this.state[f] === FrameState.Guest || this.state[f] === FrameState.Hypervisor)) {
        this.free(f, owner);
        n++;
      }
    }
    return n;
  }

  /** Returns a frame. Raises: Error when `owner` does not own it (a double free is a bug). */
  free(frame: number, owner: number): void {
    const s = this.state[frame];
    if ((s !== FrameState.Guest && s !== FrameState.Hypervisor) || this.owner[frame] !== owner) {
      throw new Error(`frame ${frame} is not owned by ${owner} (state ${s}, owner ${this.owner[frame]})`);
    }
    Atomics.store(this.owner, frame, -1);
    Atomics.store(this.state, frame, FrameState.Free);
    Atomics.add(this.meta, FREE, 1);
  }

  /** Frames owned by `owner`. */
  framesOf(owner: number): number[] {
    const out: number[] = [];
    for (let f = 0; f < this.frames; f++) if (this.owner[f] === owner) out.push(f);
    return out;
  }

  /** Accounting: free, poisoned and retired frames, and frames in use by each owner. */
  usage(): { free: number; poisoned: number; retired: number; byOwner: Record<number, number> } {
    const byOwner: Record<number, number> = {};
    let poisoned = 0, retired = 0;
    for (let f = 0; f < this.frames; f++) {
      const s = this.state[f];
      if (s === FrameState.Poisoned) poisoned++;
      else if (s === FrameState.Retired) retired++;
      else if (s !== FrameState.Free) byOwner[this.owner[f]] = (byOwner[this.owner[f]] ?? 0) + 1;
    }
    return { free: this.freeFrames, poisoned, retired, byOwner };
  }
}
