import { threadCpuMs } from './thread-cpu.js';
import { existsSync } from 'node:fs';

const linux = existsSync('/proc/thread-self/stat');

(linux ? test : test.skip)('threadCpuMs counts the calling thread\'s CPU time and grows with work', () => {
  const before = threadCpuMs();
  expect(before).toBeGreaterThanOrEqual(0);
  let x = 0;
  const until = before + 30; // at least three 10 ms ticks of work
  while (threadCpuMs() < until) for (let i = 0; i < 1e5; i++) x = (x + i * 7) | 0;
  expect(threadCpuMs()).toBeGreaterThanOrEqual(until);
  expect(Number.isFinite(x)).toBe(true);
});

(linux ? test.skip : test)('threadCpuMs is NaN without /proc/thread-self', () => {
  expect(threadCpuMs()).toBeNaN();
});
