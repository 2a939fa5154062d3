/**
 * A host's DRAM and its frame tables, in shared memory so every VM worker of the host can
 * allocate and free frames directly (Atomics), without a round trip to the main thread.
 *
 *   dram   SharedArrayBuffer of memoryMiB            the host-physical memory (PhysMem over it)
 *   state  Uint8 per frame: FrameState               claimed with Atomics.compareExchange
 *   owner  Int32 per frame: owning VM slot, or -1
 *   meta   Int32 [nextHint, freeCount]
 *   poison Uint8 per frame: POISON.* (harts check != 0 on access; PhysMem.poison)
 *
 * Invariants: a frame is handed out only by winning the compareExchange Free -> Guest|Hypervisor,
 * so two threads can never own one frame; poisoned and retired frames are never handed out.
 */
import { PAGE_SIZE } from '../mmu/phys.js';
import { createWasmDram } from '../cpu/wasm/engine.js';

/**
 * Per-frame poison values. LATENT: the frame has an uncorrectable error the host has not noticed
 * (found by the next read, as a machine check); KNOWN: the host knows (patrol scrub, an earlier
 * machine check), so hypervisor code can avoid reading it.
 */
export const POISON = { None: 0, Latent: 1, Known: 2 } as const;

export const FrameState = { Free: 0, Guest: 1, Hypervisor: 2, Poisoned: 3, Retired: 4 } as const;
export type FrameStateValue = (typeof FrameState)[keyof typeof FrameState];

/** The faulting VM asked for a frame and the host has none left. */
export class OutOfHostMemory extends Error {
  readonly fault = 'out-of-host-memory';
  constructor(readonly frames: number) { super(`out-of-host-memory: all ${frames} frames are in use`); }
}

export interface HostMemoryBuffers { dram: SharedArrayBuffer; state: SharedArrayBuffer; owner: SharedArrayBuffer; meta: SharedArrayBuffer; poison: SharedArrayBuffer }

/**
 * The largest host: 2048 MiB. Host-physical addresses must stay below 2^31 because the engines keep
 * physical pages in Int32Array TLB entries and index RAM with int32 arithmetic; a SharedArrayBuffer
 * is allocated lazily (pages are touched as frames are used), so this bound is about addresses, not RAM.
 */
export const MAX_HOST_MIB = 2048;

const HINT = 0;
const FREE = 1;

export class HostMemory {
  readonly frames: number;
  readonly state: Uint8Array;
  readonly owner: Int32Array;
  /** Per-frame uncorrectable-error flags, shared with the harts of every VM of the host. */
  readonly poison: Uint8Array;
  private readonly meta: Int32Array;

  private constructor(readonly buffers: HostMemoryBuffers) {
    // Whole MiB: the DRAM of a host made for the wasm engine has a 256 KiB scratch area above its frames.
    this.frames = Math.floor(buffers.dram.byteLength / 2 ** 20) * 256;
    this.state = new Uint8Array(buffers.state);
    this.owner = new Int32Array(buffers.owner);
    this.meta = new Int32Array(buffers.meta);
    this.poison = new Uint8Array(buffers.poison);
  }

  /**
   * New host memory of `memoryMiB` (1-MAX_HOST_MIB), every frame free. `wasm`: DRAM is the buffer
   * of a shared WebAssembly.Memory with a scratch area above the frames (createWasmDram), which
   * the wasm engine needs. Raises: RangeError outside that range.
   */
  static create(memoryMiB: number, opts: { wasm?: boolean } = {}): HostMemory {
    if (!Number.isInteger(memoryMiB) || memoryMiB < 1 || memoryMiB > MAX_HOST_MIB) throw new RangeError(`memoryMiB must be 1-${MAX_HOST_MIB}, got ${memoryMiB}`);
    const frames = memoryMiB * 256;
    const m = new HostMemory({
      dram: opts.wasm ? createWasmDram(memoryMiB * 2 ** 20) : new SharedArrayBuffer(memoryMiB * 2 ** 20), state: new SharedArrayBuffer(frames),
      owner: new SharedArrayBuffer(frames * 4), meta: new SharedArrayBuffer(8), poison: new SharedArrayBuffer(frames),
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

  /**
   * Frees every frame `owner` holds (a VM that stopped or crashed); returns how many. A poisoned
   * frame is not freed: it becomes Poisoned (owner -1) and is never handed out again.
   */
  releaseOwner(owner: number): number {
    let n = 0;
    for (let f = 0; f < this.frames; f++) {
      if (this.owner[f] === owner && (this.state[f] === FrameState.Guest || this.state[f] === FrameState.Hypervisor)) {
        if (Atomics.load(this.poison, f)) { Atomics.store(this.owner, f, -1); Atomics.store(this.state, f, FrameState.Poisoned); } else this.free(f, owner);
        n++;
      }
    }
    return n;
  }

  /**
   * Marks frame `f` as having an uncorrectable error. A free frame is retired at once (never
   * handed out); a used one stays with its owner, who must handle it. Returns the frame's state
   * before. Callers flush TLBs that may cache the frame (VM workers do, on `inject`).
   */
  poisonFrame(f: number): FrameStateValue {
    Atomics.store(this.poison, f, POISON.Known);
    if (Atomics.compareExchange(this.state, f, FrameState.Free, FrameState.Retired) === FrameState.Free) {
      Atomics.sub(this.meta, FREE, 1);
      return FrameState.Free;
    }
    return this.state[f] as FrameStateValue;
  }

  /** Retires a poisoned frame that nobody owns any more (DELETE of a memory error). Returns false if it is still in use. */
  retire(f: number): boolean {
    const s = this.state[f];
    if (s === FrameState.Poisoned || s === FrameState.Retired) { Atomics.store(this.state, f, FrameState.Retired); return true; }
    if (Atomics.compareExchange(this.state, f, FrameState.Free, FrameState.Retired) === FrameState.Free) { Atomics.sub(this.meta, FREE, 1); return true; }
    return false;
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
