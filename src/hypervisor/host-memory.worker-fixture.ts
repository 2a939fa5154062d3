// Test fixture: a worker that allocates frames from shared host memory and reports them.
import { parentPort, workerData } from 'node:worker_threads';
import { FrameState, HostMemory, HostMemoryBuffers } from './host-memory.js';

const { buffers, owner, count } = workerData as { buffers: HostMemoryBuffers; owner: number; count: number };
const mem = HostMemory.attach(buffers);
const frames: number[] = [];
for (let i = 0; i < count; i++) frames.push(mem.alloc(owner, FrameState.Guest));
parentPort!.postMessage(frames);
