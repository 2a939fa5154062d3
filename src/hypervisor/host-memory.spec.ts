import { Worker } from 'node:worker_threads';
import { FrameState, HostMemory, MAX_HOST_MIB, OutOfHostMemory } from './host-memory.js';

const spawn = (mem: HostMemory, owner: number, count: number) => new Promise<number[]>((resolve, reject) => {
  // The fixture is TypeScript: register tsx's loader inside the worker, then import it.
  const url = new URL('./host-memory.worker-fixture.ts', import.meta.url).href;
  const w = new Worker(`import('tsx/esm/api').then((m) => { m.register(); return import(${JSON.stringify(url)}); })`, {
    eval: true, workerData: { buffers: mem.buffers, owner, count },
  });
  w.once('message', resolve);
  w.once('error', reject);
});

describe('host memory', () => {
  test('two real worker threads allocating at once never get the same frame', async () => {
    const mem = HostMemory.create(16); // 4096 frames
    const [a, b] = await Promise.all([spawn(mem, 1, 2000), spawn(mem, 2, 2000)]);
    const all = new Set([...a, ...b]);
    expect(all.size).toBe(4000);
    for (const f of a) expect(mem.owner[f]).toBe(1);
    for (const f of b) expect(mem.owner[f]).toBe(2);
    expect(mem.usage()).toEqual({ free: 96, poisoned: 0, retired: 0, byOwner: { 1: 2000, 2: 2000 } });
  }, 300_000);

  test('exhaustion is a clear out-of-host-memory fault; freeing makes frames reusable and zeroed', () => {
    const mem = HostMemory.create(1); // 256 frames
    const frames = Array.from({ length: 256 }, () => mem.alloc(7, FrameState.Guest));
    expect(() => mem.alloc(7, FrameState.Guest)).toThrow(OutOfHostMemory);
    new Uint8Array(mem.buffers.dram)[frames[3] * 4096] = 0xaa;
    mem.free(frames[3], 7);
    expect(() => mem.free(frames[3], 7)).toThrow(/not owned/);
    const again = mem.alloc(8, FrameState.Hypervisor);
    expect(again).toBe(frames[3]);
    expect(new Uint8Array(mem.buffers.dram)[again * 4096]).toBe(0);
    expect(mem.usage().byOwner).toEqual({ 7: 255, 8: 1 });
  });

  test('poisoned and retired frames are never handed out', () => {
    const mem = HostMemory.create(1);
    mem.state[0] = FrameState.Poisoned;
    mem.state[1] = FrameState.Retired;
    const got = Array.from({ length: 254 }, () => mem.alloc(1, FrameState.Guest));
    expect(got).not.toContain(0);
    expect(got).not.toContain(1);
    expect(mem.usage()).toMatchObject({ poisoned: 1, retired: 1 });
  });

  test('a host of 2048 MiB (the largest) has all its DRAM, and larger is refused (memoryMiB << 20 overflowed)', () => {
    const mem = HostMemory.create(MAX_HOST_MIB);
    expect(MAX_HOST_MIB).toBe(2048);
    expect(mem.buffers.dram.byteLength).toBe(2048 * 2 ** 20);
    expect(mem.frames).toBe(2048 * 256);
    expect(mem.freeFrames).toBe(2048 * 256);
    expect(() => HostMemory.create(4096)).toThrow(/memoryMiB must be 1-2048, got 4096/);
    expect(() => HostMemory.create(5000)).toThrow(RangeError);
  });
});
