/**
 * Runs static RV32 programs as the processes of one fresh in-process VM on a host of its own and
 * collects what they print: the path `hvsim run`, the differential tests and the CPU benchmark
 * share, so all of them exercise the real guest OS and hypervisor.
 */
import { HostMemory } from '../hypervisor/host-memory.js';
import { KERNEL_REGION } from '../guest/layout.js';
import { DEFAULT_SPEC, Vm, VmCounters, VmSpec } from './vm.js';

export interface RunOptions extends Partial<Omit<VmSpec, 'processes'>> {
  argv?: string[];
  env?: string[];
  stdin?: Uint8Array;
  /** Stop the VM (reason 'instruction-limit') after this many instructions. */
  maxInstructions?: number;
  /** Receives console output as it is flushed (port 0 = stdout, 1 = stderr). */
  onOutput?: (port: number, bytes: Uint8Array) => void;
}

export interface RunResult {
  stdout: Buffer;
  stderr: Buffer;
  /** Exit status of the first process as a shell reports it (128 + signal when killed); -1 if it never ended. */
  status: number;
  counters: VmCounters;
  vm: Vm;
  wallMs: number;
}

/**
 * Host memories of finished runs, by size, reused while every frame is free again: a run does not
 * allocate (and leave to the garbage collector) a fresh SharedArrayBuffer of its whole DRAM, which
 * matters when thousands of programs run in one process. Frames are zeroed when handed out.
 */
const idleHosts = new Map<string, HostMemory>();

/** An idle host of `mib` (DRAM a WebAssembly.Memory when `wasm`, for the wasm engine), or a new one. */
function takeHost(mib: number, wasm: boolean): HostMemory {
  const h = idleHosts.get(`${mib}:${wasm}`);
  if (h && h.freeFrames === h.frames) { idleHosts.delete(`${mib}:${wasm}`); return h; }
  return HostMemory.create(mib, { wasm });
}

/** Host memory for a VM of `memoryMiB`: its RAM plus room for G-stage tables. */
export const hostMiBFor = (memoryMiB: number): number => memoryMiB + Math.max(4, Math.ceil(memoryMiB / 256)) + (KERNEL_REGION >> 20);
/** Host memory a VM's protection domains need besides (their private memory and tables), MiB. */
export const domainsMiB = (domains: ReadonlyArray<{ memoryKiB: number }> = []): number => Math.ceil(domains.reduce((n, d) => n + d.memoryKiB + 64, 0) / 1024);

/**
 * Runs `elf` (plus `more` processes, if given) to completion.
 * Raises: ElfError for a bad image; RangeError for a bad spec.
 */
export function runProgram(elf: Uint8Array, opts: RunOptions = {}, more: Uint8Array[] = []): RunResult {
  const spec: VmSpec = {
    ...DEFAULT_SPEC,
    ...Object.fromEntries(Object.entries(opts).filter(([k, v]) => v !== undefined && k in DEFAULT_SPEC)),
    ...(opts.techniques ? { techniques: opts.techniques } : {}),
    ...(opts.domains ? { domains: opts.domains } : {}),
    ...(opts.disks ? { disks: opts.disks } : {}),
    processes: [elf, ...more].map((bytes, i) => ({
      name: i === 0 ? 'main' : `p${i}`, elf: bytes, argv: opts.argv ?? ['prog'], env: opts.env ?? [], stdin: opts.stdin ?? new Uint8Array(),
    })),
  } as VmSpec;
  const started = performance.now();
  const mib = hostMiBFor(spec.memoryMiB) + domainsMiB(spec.domains);
  const wasm = spec.engine === 'wasm';
  const host = takeHost(mib, wasm);
  let vm: Vm;
  try { vm = new Vm(spec, host, 1); } catch (e) { idleHosts.set(`${mib}:${wasm}`, host); throw e; }
  const out: Buffer[][] = [[], []];
  vm.onConsole((port, bytes) => { out[port].push(Buffer.from(bytes)); opts.onOutput?.(port, bytes); });
  vm.runToCompletion(opts.maxInstructions);
  if (host.freeFrames === host.frames) idleHosts.set(`${mib}:${wasm}`, host);
  const first = vm.processes()[0];
  return {
    stdout: Buffer.concat(out[0]), stderr: Buffer.concat(out[1]), status: first.status ?? -1,
    counters: vm.counters(), vm, wallMs: performance.now() - started,
  };
}
