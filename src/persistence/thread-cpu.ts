/**
 * CPU time (user + system) the calling thread has used, in ms, from Linux's /proc/thread-self/stat
 * (clock ticks of 10 ms); NaN where there is no such file. Node 20 has no per-thread CPU clock,
 * and process.cpuUsage() adds up every thread (V8's compiler and GC helpers too): start-up
 * progress lines use this to tell the main thread's work from the embedded database's thread's.
 */
import { readFileSync } from 'node:fs';

export function threadCpuMs(): number {
  try {
    const stat = readFileSync('/proc/thread-self/stat', 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) * 10;
  } catch { return NaN; }
}
